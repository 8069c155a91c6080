/** Counts over the records, for /metrics (src/api/metrics.ts) and the router: the API runs no SQL itself. */
import { type Db, stmt } from "./db.js";

/** Which apps a count is over: all, or these (a tenant's own, for their view of the platform). */
export type AppScope = readonly string[] | undefined;
const inScope = (scope: AppScope, col = "app_id") =>
  scope
    ? { sql: ` AND ${col} IN (SELECT value FROM json_each(?))`, args: [JSON.stringify(scope)] }
    : { sql: "", args: [] };

export function buildCountsByStatus(db: Db, scope?: AppScope): { status: string; n: number }[] {
  const s = inScope(scope);
  return stmt(db, `SELECT status, COUNT(*) AS n FROM builds WHERE 1${s.sql} GROUP BY status`).all(
    ...s.args,
  ) as {
    status: string;
    n: number;
  }[];
}

/** Succeeded builds by each machine their derivations ran on ("local" or a builder's URI). */
export function buildCountsByMachine(db: Db): { machine: string; n: number }[] {
  return stmt(
    db,
    "SELECT j.value AS machine, COUNT(*) AS n FROM builds, json_each(builds.built_on) AS j WHERE builds.built_on IS NOT NULL GROUP BY j.value ORDER BY j.value",
  ).all() as { machine: string; n: number }[];
}

/** How long each finished build took, in seconds. */
export function finishedBuildSeconds(db: Db, scope?: AppScope): number[] {
  const s = inScope(scope);
  return (
    stmt(
      db,
      `SELECT (julianday(finished_at) - julianday(started_at)) * 86400.0 AS s FROM builds WHERE finished_at IS NOT NULL AND started_at IS NOT NULL${s.sql}`,
    ).all(...s.args) as { s: number }[]
  ).map((r) => r.s);
}

export function releaseCount(db: Db, scope?: AppScope): number {
  const s = inScope(scope);
  return (stmt(db, `SELECT COUNT(*) AS n FROM releases WHERE 1${s.sql}`).get(...s.args) as { n: number }).n;
}

export function appNamed(db: Db, name: string): boolean {
  return !!stmt(db, "SELECT 1 FROM apps WHERE name = ?").get(name);
}
