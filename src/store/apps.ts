/** Apps, their owners and their config vars. */
import { randomUUID } from "node:crypto";
import { KilnError } from "../errors.js";
import { type Db, stmt, tx } from "./db.js";
import { platformAdmin } from "./users.js";

export interface App {
  id: string;
  name: string;
  createdAt: string;
  /** The user who created it (existing apps at migration 4: the platform admin). */
  ownerId: string;
  /** Marked by an admin as one of the platform's own (the reserved names always are). */
  platform: boolean;
  /** The branch whose pushes deploy; null: main or master (DEFAULT_DEPLOY_BRANCHES). */
  deployBranch: string | null;
}

interface AppRow {
  id: string;
  name: string;
  created_at: string;
  owner_id: string;
  platform: number;
  deploy_branch: string | null;
}

/**
 * The platform's own apps (the control plane and its add-ons): only the platform admin may create,
 * see or change them. The one list of these names.
 */
export const PLATFORM_APP_NAMES: readonly string[] = ["kiln", "kiln-postgres", "kiln-scheduler"];

/** Whether only admins may see and change the app. */
export const isPlatformApp = (app: { name: string; platform: boolean }) =>
  app.platform || PLATFORM_APP_NAMES.includes(app.name);

const APP_NAME = /^[a-z][a-z0-9-]{0,29}$/;
const CONFIG_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

const toApp = (r: AppRow): App => ({
  id: r.id,
  name: r.name,
  createdAt: r.created_at,
  ownerId: r.owner_id,
  platform: r.platform === 1,
  deployBranch: r.deploy_branch,
});

/** Owned by `ownerId` (default: the platform admin, as for apps kiln makes itself). */
export function createApp(db: Db, name: string, opts: { ownerId?: string; platform?: boolean } = {}): App {
  if (!APP_NAME.test(name)) {
    throw new KilnError({
      code: "invalid_app_name",
      message: `"${name}" is not a valid app name`,
      hint: "use lowercase letters, digits and dashes, starting with a letter (at most 30 characters)",
    });
  }
  const app: App = {
    id: randomUUID(),
    name,
    createdAt: new Date().toISOString(),
    ownerId: opts.ownerId ?? platformAdmin(db).id,
    platform: opts.platform === true,
    deployBranch: null,
  };
  try {
    stmt(db, "INSERT INTO apps (id, name, created_at, owner_id, platform) VALUES (?, ?, ?, ?, ?)").run(
      app.id,
      app.name,
      app.createdAt,
      app.ownerId,
      app.platform ? 1 : 0,
    );
  } catch (err) {
    if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") {
      throw new KilnError({
        code: "conflict",
        message: `an app called "${name}" already exists`,
        hint: "choose another name, or use the existing app",
      });
    }
    throw err;
  }
  return app;
}

export function getApp(db: Db, nameOrId: string): App {
  const row = stmt(db, "SELECT * FROM apps WHERE name = ? OR id = ?").get(nameOrId, nameOrId) as
    | AppRow
    | undefined;
  if (!row) throw unknownApp(nameOrId);
  return toApp(row);
}

/** What asking for a missing app answers (and, word for word, an app the caller may not see). */
export const unknownApp = (nameOrId: string) =>
  new KilnError({
    code: "unknown_app",
    message: `no app called "${nameOrId}"`,
    hint: "list apps with kiln apps, or create it with kiln apps:create NAME",
  });

/** Every app, or those `memberId` owns or collaborates on. */
export function listApps(db: Db, opts: { memberId?: string } = {}): App[] {
  const rows = opts.memberId
    ? stmt(
        db,
        `SELECT * FROM apps WHERE owner_id = @u
           OR id IN (SELECT app_id FROM collaborators WHERE user_id = @u) ORDER BY name`,
      ).all({ u: opts.memberId })
    : stmt(db, "SELECT * FROM apps ORDER BY name").all();
  return (rows as AppRow[]).map(toApp);
}

/** Marks (or unmarks) an app as one of the platform's own. */
export function setPlatformApp(db: Db, appId: string, platform: boolean): App {
  stmt(db, "UPDATE apps SET platform = ? WHERE id = ?").run(platform ? 1 : 0, appId);
  return getApp(db, appId);
}

/** What a push deploys when an app has no deploy branch of its own (Heroku's two). */
export const DEFAULT_DEPLOY_BRANCHES: readonly string[] = ["main", "master"];

/** Sets the branch whose pushes deploy (null: back to main or master). */
export function setDeployBranch(db: Db, appId: string, branch: string | null): App {
  stmt(db, "UPDATE apps SET deploy_branch = ? WHERE id = ?").run(branch, appId);
  return getApp(db, appId);
}

/** Deletes the app and (by cascade) its config, builds, releases, formation and dyno records. */
export function deleteApp(db: Db, nameOrId: string): App {
  const app = getApp(db, nameOrId);
  stmt(db, "DELETE FROM apps WHERE id = ?").run(app.id);
  return app;
}

export function getConfig(db: Db, appId: string): Record<string, string> {
  const rows = stmt(db, "SELECT key, value FROM config_vars WHERE app_id = ? ORDER BY key").all(appId) as {
    key: string;
    value: string;
  }[];
  return Object.fromEntries(rows.map((r) => [r.key, r.value]));
}

/**
 * Sets (string) and unsets (null) config vars in one transaction; returns the whole new config.
 * `then` runs inside the same transaction (cutting the release that a config change makes).
 */
export function patchConfig<T>(
  db: Db,
  appId: string,
  patch: Record<string, string | null>,
  then: (config: Record<string, string>) => T,
): { config: Record<string, string>; result: T } {
  for (const key of Object.keys(patch)) {
    if (!CONFIG_KEY.test(key)) {
      throw new KilnError({
        code: "invalid_config_key",
        message: `"${key}" is not a valid config var name`,
        hint: "use letters, digits and _, not starting with a digit",
      });
    }
  }
  return tx(db, () => {
    const set = stmt(
      db,
      "INSERT INTO config_vars (app_id, key, value) VALUES (?, ?, ?) ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value",
    );
    const unset = stmt(db, "DELETE FROM config_vars WHERE app_id = ? AND key = ?");
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) unset.run(appId, key);
      else set.run(appId, key, value);
    }
    const config = getConfig(db, appId);
    return { config, result: then(config) };
  });
}
