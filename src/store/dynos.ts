/**
 * The dynos the server runs, as records: written on every state change of every supervised dyno,
 * deleted when it is down. After a crash every row is stale (the dynos died with the server:
 * --die-with-parent), so start-up clears them before the formation is reconciled.
 */
import { type Db, stmt } from "./db.js";

export interface DynoRow {
  id: string;
  appId: string;
  releaseId: string;
  name: string;
  type: string;
  state: string;
  restarts: number;
  lastExit: string | null;
}

export function upsertDyno(db: Db, d: DynoRow): void {
  const now = new Date().toISOString();
  stmt(
    db,
    `INSERT INTO dynos (id, app_id, release_id, name, type, state, restarts, last_exit, created_at, updated_at)
     VALUES (@id, @appId, @releaseId, @name, @type, @state, @restarts, @lastExit, @now, @now)
     ON CONFLICT (id) DO UPDATE SET state = excluded.state, restarts = excluded.restarts,
       last_exit = excluded.last_exit, updated_at = excluded.updated_at`,
  ).run({ ...d, now });
}

export function deleteDyno(db: Db, id: string): void {
  stmt(db, "DELETE FROM dynos WHERE id = ?").run(id);
}

export function listDynoRows(db: Db, appId: string): DynoRow[] {
  return (
    stmt(db, "SELECT * FROM dynos WHERE app_id = ? ORDER BY name").all(appId) as {
      id: string;
      app_id: string;
      release_id: string;
      name: string;
      type: string;
      state: string;
      restarts: number;
      last_exit: string | null;
    }[]
  ).map((r) => ({
    id: r.id,
    appId: r.app_id,
    releaseId: r.release_id,
    name: r.name,
    type: r.type,
    state: r.state,
    restarts: r.restarts,
    lastExit: r.last_exit,
  }));
}

/** Start-up after a crash: the previous server's dynos are gone; returns how many rows that was. */
export function clearDynos(db: Db): number {
  return stmt(db, "DELETE FROM dynos").run().changes;
}
