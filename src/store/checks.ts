/**
 * Check records: running → reproducible | not_reproducible | build_failed (the verdicts) | error
 * (the check itself could not run, or the server stopped under it). The report is a file; the row
 * says where.
 */
import { randomUUID } from "node:crypto";
import { KilnError } from "../errors.js";
import { type Db, stmt } from "./db.js";

export type CheckStatus = "running" | "reproducible" | "not_reproducible" | "build_failed" | "error";

export interface CheckRecord {
  id: string;
  buildId: string;
  status: CheckStatus;
  error: string | null;
  builds: number;
  variations: string[];
  createdAt: string;
  finishedAt: string | null;
  reportPath: string | null;
}

interface CheckRow {
  id: string;
  build_id: string;
  status: CheckStatus;
  error: string | null;
  builds: number;
  variations: string;
  created_at: string;
  finished_at: string | null;
  report_path: string | null;
}

const toCheck = (r: CheckRow): CheckRecord => ({
  id: r.id,
  buildId: r.build_id,
  status: r.status,
  error: r.error,
  builds: r.builds,
  variations: JSON.parse(r.variations) as string[],
  createdAt: r.created_at,
  finishedAt: r.finished_at,
  reportPath: r.report_path,
});

export function createCheck(
  db: Db,
  c: { buildId: string; builds: number; variations: string[] },
): CheckRecord {
  const id = randomUUID();
  stmt(
    db,
    `INSERT INTO checks (id, build_id, status, builds, variations, created_at)
     VALUES (?, ?, 'running', ?, ?, ?)`,
  ).run(id, c.buildId, c.builds, JSON.stringify(c.variations), new Date().toISOString());
  return getCheck(db, id);
}

export function getCheck(db: Db, id: string): CheckRecord {
  const row = stmt(db, "SELECT * FROM checks WHERE id = ?").get(id) as CheckRow | undefined;
  if (!row)
    throw new KilnError({
      code: "unknown_check",
      message: `no check ${id}`,
      hint: "list them: GET …/builds/ID/checks",
    });
  return toCheck(row);
}

export function listChecks(db: Db, buildId: string): CheckRecord[] {
  return (
    stmt(db, "SELECT * FROM checks WHERE build_id = ? ORDER BY created_at").all(buildId) as CheckRow[]
  ).map(toCheck);
}

/** running → a verdict, with the report's file. */
export function finishCheck(
  db: Db,
  id: string,
  verdict: "reproducible" | "not_reproducible" | "build_failed",
  reportPath: string,
): void {
  stmt(
    db,
    "UPDATE checks SET status = ?, report_path = ?, finished_at = ? WHERE id = ? AND status = 'running'",
  ).run(verdict, reportPath, new Date().toISOString(), id);
}

/** running → error, with the reason. */
export function failCheck(db: Db, id: string, error: string): void {
  stmt(
    db,
    "UPDATE checks SET status = 'error', error = ?, finished_at = ? WHERE id = ? AND status = 'running'",
  ).run(error, new Date().toISOString(), id);
}

/** After a crash: checks that were running died with the server (their builds are cached by Nix). */
export function failInterruptedChecks(db: Db): number {
  return stmt(
    db,
    "UPDATE checks SET status = 'error', error = 'interrupted: the server stopped', finished_at = ? WHERE status = 'running'",
  ).run(new Date().toISOString()).changes;
}
