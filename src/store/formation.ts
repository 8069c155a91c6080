/** The formation: how many dynos of each process type (and what size) an app should run. */

import { DYNO_SIZES } from "../config/dynoSizes.js";
import { KilnError } from "../errors.js";
import { type Db, stmt, tx } from "./db.js";
import type { Release } from "./releases.js";

export interface FormationEntry {
  type: string;
  quantity: number;
  size: string;
}

export const MAX_DYNOS_PER_TYPE = 100;

export function getFormation(db: Db, appId: string): FormationEntry[] {
  return db
    .prepare("SELECT type, quantity, size FROM formation WHERE app_id = ? ORDER BY type")
    .all(appId) as FormationEntry[];
}

/** `web=2 worker=1`: sets the given types (others keep theirs), in one transaction. */
export function scaleFormation(
  db: Db,
  appId: string,
  changes: { type: string; quantity: number; size?: string }[],
): FormationEntry[] {
  for (const c of changes) {
    if (!/^[A-Za-z0-9_-]+$/.test(c.type)) {
      throw new KilnError({
        code: "invalid_process_type",
        message: `"${c.type}" is not a process type name`,
        hint: "e.g. web=2",
      });
    }
    if (!Number.isInteger(c.quantity) || c.quantity < 0 || c.quantity > MAX_DYNOS_PER_TYPE) {
      throw new KilnError({
        code: "invalid_quantity",
        message: `${c.type}=${c.quantity}: the quantity must be a whole number from 0 to ${MAX_DYNOS_PER_TYPE}`,
        hint: "e.g. web=2",
      });
    }
    if (c.size !== undefined && !DYNO_SIZES[c.size]) {
      throw new KilnError({
        code: "invalid_dyno_size",
        message: `unknown dyno size "${c.size}"`,
        hint: `use one of: ${Object.keys(DYNO_SIZES).join(", ")}`,
      });
    }
  }
  return tx(db, () => {
    const upsert = stmt(
      db,
      `INSERT INTO formation (app_id, type, quantity, size) VALUES (?, ?, ?, ?)
       ON CONFLICT (app_id, type) DO UPDATE SET quantity = excluded.quantity, size = COALESCE(?, formation.size)`,
    );
    for (const c of changes) upsert.run(appId, c.type, c.quantity, c.size ?? "standard-1x", c.size ?? null);
    return getFormation(db, appId);
  });
}

/** Like Heroku: an app's first release with a web process runs one web dyno. */
export function ensureDefaultFormation(db: Db, release: Release): void {
  if (getFormation(db, release.appId).length === 0 && release.processTypes.web !== undefined) {
    scaleFormation(db, release.appId, [{ type: "web", quantity: 1 }]);
  }
}
