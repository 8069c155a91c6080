/**
 * Build records: pending (queued) → building → succeeded | failed | cancelled. Each transition is
 * one committed UPDATE guarded by the state it leaves, so a record never goes backwards.
 */
import { randomUUID } from "node:crypto";
import { KilnError } from "../errors.js";
import { type Db, stmt } from "./db.js";

export const BUILD_STATUSES = ["pending", "building", "succeeded", "failed", "cancelled"] as const;
export type BuildStatus = (typeof BUILD_STATUSES)[number];

export interface BuildRecord {
  id: string;
  appId: string;
  status: BuildStatus;
  failureReason: string | null;
  /** What to do about the failure (the error's hint), when it had one. */
  failureHint: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  sourceSha256: string;
  sourcePath: string;
  slugSha256: string | null;
  slugPath: string | null;
  manifestPath: string | null;
  logPath: string;
  /** Whether success makes a release (false: a build to compare or check, kept aside). */
  release: boolean;
  /** The git commit it was built from (a push), or null (an upload). */
  commit: string | null;
  /** Where its derivations were built ("local", builders' URIs); null until it succeeds. */
  builtOn: string[] | null;
  /** The buildpacks asked for (git push -o buildpack=…), or null: the app's own or detected. */
  buildpacks: string[] | null;
}

interface BuildRow {
  id: string;
  app_id: string;
  status: BuildStatus;
  failure_reason: string | null;
  failure_hint: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  source_sha256: string;
  source_path: string;
  slug_sha256: string | null;
  slug_path: string | null;
  manifest_path: string | null;
  log_path: string;
  release: number;
  commit_id: string | null;
  built_on: string | null;
  buildpacks: string | null;
}

const toBuild = (r: BuildRow): BuildRecord => ({
  id: r.id,
  appId: r.app_id,
  status: r.status,
  failureReason: r.failure_reason,
  failureHint: r.failure_hint,
  createdAt: r.created_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  sourceSha256: r.source_sha256,
  sourcePath: r.source_path,
  slugSha256: r.slug_sha256,
  slugPath: r.slug_path,
  manifestPath: r.manifest_path,
  logPath: r.log_path,
  release: r.release === 1,
  commit: r.commit_id,
  builtOn: r.built_on === null ? null : (JSON.parse(r.built_on) as string[]),
  buildpacks: r.buildpacks === null ? null : (JSON.parse(r.buildpacks) as string[]),
});

export function createBuild(
  db: Db,
  b: {
    appId: string;
    sourceSha256: string;
    sourcePath: string;
    logPath: (id: string) => string;
    release?: boolean;
    /** Who started it (a user's id): per-user build quotas count it. */
    userId?: string;
    /** The git commit pushed (git push). */
    commit?: string;
    /** Buildpacks by name, instead of the app's or detection (git push -o buildpack=…). */
    buildpacks?: string[];
  },
): BuildRecord {
  const id = randomUUID();
  const row = {
    id,
    app_id: b.appId,
    status: "pending" as const,
    created_at: new Date().toISOString(),
    source_sha256: b.sourceSha256,
    source_path: b.sourcePath,
    log_path: b.logPath(id),
    release: b.release === false ? 0 : 1,
    user_id: b.userId ?? null,
    commit_id: b.commit ?? null,
    buildpacks: b.buildpacks?.length ? JSON.stringify(b.buildpacks) : null,
  };
  stmt(
    db,
    `INSERT INTO builds (id, app_id, status, created_at, source_sha256, source_path, log_path, release, user_id, commit_id, buildpacks)
     VALUES (@id, @app_id, @status, @created_at, @source_sha256, @source_path, @log_path, @release, @user_id, @commit_id, @buildpacks)`,
  ).run(row);
  return getBuild(db, id);
}

export function getBuild(db: Db, id: string): BuildRecord {
  const row = stmt(db, "SELECT * FROM builds WHERE id = ?").get(id) as BuildRow | undefined;
  if (!row) {
    throw new KilnError({
      code: "unknown_build",
      message: `no build ${id}`,
      hint: "list builds with kiln builds APP",
    });
  }
  return toBuild(row);
}

export function listBuilds(db: Db, appId: string): BuildRecord[] {
  return (
    stmt(db, "SELECT * FROM builds WHERE app_id = ? ORDER BY created_at DESC").all(appId) as BuildRow[]
  ).map(toBuild);
}

/** pending → building; false when the build was no longer pending (cancelled or superseded). */
export function startBuild(db: Db, id: string): boolean {
  const r = db
    .prepare("UPDATE builds SET status = 'building', started_at = ? WHERE id = ? AND status = 'pending'")
    .run(new Date().toISOString(), id);
  return r.changes === 1;
}

export function succeedBuild(
  db: Db,
  id: string,
  out: { slugSha256: string; slugPath: string; manifestPath: string; builtOn?: string[] },
): void {
  stmt(
    db,
    `UPDATE builds SET status = 'succeeded', finished_at = ?, slug_sha256 = ?, slug_path = ?, manifest_path = ?, built_on = ?
     WHERE id = ? AND status = 'building'`,
  ).run(
    new Date().toISOString(),
    out.slugSha256,
    out.slugPath,
    out.manifestPath,
    JSON.stringify(out.builtOn ?? []),
    id,
  );
}

/** building or pending → failed / cancelled, with the reason. */
export function endBuild(
  db: Db,
  id: string,
  status: "failed" | "cancelled",
  reason: string,
  hint?: string,
): boolean {
  const r = db
    .prepare(
      "UPDATE builds SET status = ?, failure_reason = ?, failure_hint = ?, finished_at = ? WHERE id = ? AND status IN ('pending', 'building')",
    )
    .run(status, reason, hint ?? null, new Date().toISOString(), id);
  return r.changes === 1;
}

/**
 * After a crash: builds that were running are marked failed with reason `interrupted` — not
 * resumed, because their Nix build died with the server and a half-streamed log cannot be
 * continued honestly; Nix caches what finished, so resubmitting costs little. Builds still pending
 * were accepted but never started: they stay queued and run again. Returns the ids marked failed.
 */
export function failInterruptedBuilds(db: Db): string[] {
  const ids = (stmt(db, "SELECT id FROM builds WHERE status = 'building'").all() as { id: string }[]).map(
    (r) => r.id,
  );
  const mark = stmt(
    db,
    "UPDATE builds SET status = 'failed', failure_reason = 'interrupted', finished_at = ? WHERE id = ? AND status = 'building'",
  );
  const now = new Date().toISOString();
  db.transaction(() => {
    for (const id of ids) mark.run(now, id);
  })();
  return ids;
}

export function pendingBuilds(db: Db): BuildRecord[] {
  return (
    stmt(db, "SELECT * FROM builds WHERE status = 'pending' ORDER BY created_at").all() as BuildRow[]
  ).map(toBuild);
}
