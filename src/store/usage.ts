/** What a quota counts: dynos asked for (formation quantities) and builds in flight. */
import { type Db, stmt } from "./db.js";

/** The total formation quantity of one app, or of every app a user owns. */
export function dynoTotal(db: Db, of: { appId: string } | { ownerId: string }): number {
  const row = (
    "appId" in of
      ? stmt(db, "SELECT COALESCE(SUM(quantity), 0) AS n FROM formation WHERE app_id = ?").get(of.appId)
      : stmt(
          db,
          "SELECT COALESCE(SUM(f.quantity), 0) AS n FROM formation f JOIN apps a ON a.id = f.app_id WHERE a.owner_id = ?",
        ).get(of.ownerId)
  ) as { n: number };
  return row.n;
}

/** The app's formation quantity per type (what a scale would change). */
export function formationQuantities(db: Db, appId: string): Map<string, number> {
  const rows = stmt(db, "SELECT type, quantity FROM formation WHERE app_id = ?").all(appId) as {
    type: string;
    quantity: number;
  }[];
  return new Map(rows.map((r) => [r.type, r.quantity]));
}

/** Builds queued or running: of one app, or started by one user. */
export function buildsInFlight(db: Db, of: { appId: string } | { userId: string }): number {
  const row = (
    "appId" in of
      ? stmt(
          db,
          "SELECT COUNT(*) AS n FROM builds WHERE app_id = ? AND status IN ('pending', 'building')",
        ).get(of.appId)
      : stmt(
          db,
          "SELECT COUNT(*) AS n FROM builds WHERE user_id = ? AND status IN ('pending', 'building')",
        ).get(of.userId)
  ) as { n: number };
  return row.n;
}

/** The app's queued (not yet running) build, which a newer one would supersede. */
export function pendingBuildOf(db: Db, appId: string): { id: string; userId: string | null } | undefined {
  const row = stmt(
    db,
    "SELECT id, user_id FROM builds WHERE app_id = ? AND status = 'pending' ORDER BY created_at DESC LIMIT 1",
  ).get(appId) as { id: string; user_id: string | null } | undefined;
  return row ? { id: row.id, userId: row.user_id } : undefined;
}

/**
 * The owner's apps that have no formation yet but a releasing build in flight: each will get one
 * web dyno when it releases (the default formation), so a dyno quota counts them ahead.
 */
export function pendingFirstDynos(db: Db, ownerId: string, exceptAppId: string): number {
  const row = stmt(
    db,
    `SELECT COUNT(DISTINCT a.id) AS n FROM apps a JOIN builds b ON b.app_id = a.id
     WHERE a.owner_id = ? AND a.id != ? AND b.release = 1 AND b.status IN ('pending', 'building')
       AND NOT EXISTS (SELECT 1 FROM formation f WHERE f.app_id = a.id)`,
  ).get(ownerId, exceptAppId) as { n: number };
  return row.n;
}
