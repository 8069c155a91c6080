/**
 * Who may work on an app besides its owner. A collaborator deploys, configures, scales, restarts,
 * rolls back and reads it; only the owner (or an admin) deletes it or changes who collaborates.
 */
import { KilnError } from "../errors.js";
import { type Db, stmt } from "./db.js";

export interface Collaborator {
  userId: string;
  user: string;
  role: "owner" | "collaborator";
  createdAt: string;
}

/** The owner first, then collaborators in the order they were added. */
export function listCollaborators(db: Db, appId: string): Collaborator[] {
  const rows = stmt(
    db,
    `SELECT u.id AS user_id, u.name AS user, 'owner' AS role, a.created_at AS created_at
       FROM apps a JOIN users u ON u.id = a.owner_id WHERE a.id = @app
     UNION ALL
     SELECT * FROM (SELECT u.id, u.name, 'collaborator', c.created_at
       FROM collaborators c JOIN users u ON u.id = c.user_id WHERE c.app_id = @app
       ORDER BY c.created_at, u.name)`,
  ).all({ app: appId }) as {
    user_id: string;
    user: string;
    role: Collaborator["role"];
    created_at: string;
  }[];
  return rows.map((r) => ({ userId: r.user_id, user: r.user, role: r.role, createdAt: r.created_at }));
}

export function isCollaborator(db: Db, appId: string, userId: string): boolean {
  return !!stmt(db, "SELECT 1 FROM collaborators WHERE app_id = ? AND user_id = ?").get(appId, userId);
}

export function addCollaborator(
  db: Db,
  app: { id: string; name: string; ownerId: string },
  user: {
    id: string;
    name: string;
  },
): void {
  if (user.id === app.ownerId || isCollaborator(db, app.id, user.id)) {
    throw new KilnError({
      code: "conflict",
      message: `${user.name} already works on ${app.name}`,
      hint: `list who does with kiln access -a ${app.name}`,
    });
  }
  stmt(db, "INSERT INTO collaborators (app_id, user_id, created_at) VALUES (?, ?, ?)").run(
    app.id,
    user.id,
    new Date().toISOString(),
  );
}

/** False when the user is not a collaborator of the app. */
export function removeCollaborator(db: Db, appId: string, userId: string): boolean {
  return (
    stmt(db, "DELETE FROM collaborators WHERE app_id = ? AND user_id = ?").run(appId, userId).changes === 1
  );
}
