/**
 * Releases: numbered per app (v1, v2, …), each a slug plus the config and process types it runs
 * with. A new build, a config change and a rollback each make a new release; none is ever edited.
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { KilnError } from "../errors.js";
import { type Db, stmt, tx } from "./db.js";

interface ReleaseRow {
  id: string;
  app_id: string;
  version: number;
  build_id: string | null;
  slug_sha256: string | null;
  slug_path: string | null;
  process_types_json: string;
  config_json: string;
  description: string;
  created_at: string;
  commit_id: string | null;
}

const stringMap = z.record(z.string(), z.string());

const toRelease = (r: ReleaseRow): Release => ({
  id: r.id,
  appId: r.app_id,
  version: r.version,
  buildId: r.build_id,
  slugSha256: r.slug_sha256,
  slugPath: r.slug_path,
  processTypes: stringMap.parse(JSON.parse(r.process_types_json)),
  config: stringMap.parse(JSON.parse(r.config_json)),
  description: r.description,
  createdAt: r.created_at,
  commit: r.commit_id,
});

export interface NewRelease {
  appId: string;
  buildId: string | null;
  slugSha256: string | null;
  slugPath: string | null;
  processTypes: Record<string, string>;
  config: Record<string, string>;
  description: string;
  /** The git commit its slug was built from (a push), when there was one. */
  commit?: string | null;
}

export interface Release extends NewRelease {
  id: string;
  version: number;
  createdAt: string;
  commit: string | null;
}

/** The next version number is taken inside the transaction, so concurrent releases never collide. */
export function createRelease(db: Db, r: NewRelease): Release {
  return tx(db, () => {
    const { v } = db
      .prepare("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM releases WHERE app_id = ?")
      .get(r.appId) as {
      v: number;
    };
    const release: Release = {
      id: randomUUID(),
      appId: r.appId,
      version: v,
      buildId: r.buildId,
      slugSha256: r.slugSha256,
      slugPath: r.slugPath,
      processTypes: r.processTypes,
      config: r.config,
      description: r.description,
      createdAt: new Date().toISOString(),
      commit: r.commit ?? null,
    };
    stmt(
      db,
      `INSERT INTO releases (id, app_id, version, build_id, slug_sha256, slug_path, process_types_json, config_json, description, created_at, commit_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      release.id,
      release.appId,
      release.version,
      release.buildId,
      release.slugSha256,
      release.slugPath,
      JSON.stringify(release.processTypes),
      JSON.stringify(release.config),
      release.description,
      release.createdAt,
      release.commit,
    );
    return release;
  });
}

export function currentRelease(db: Db, appId: string): Release | undefined {
  const row = db
    .prepare("SELECT * FROM releases WHERE app_id = ? ORDER BY version DESC LIMIT 1")
    .get(appId) as ReleaseRow | undefined;
  return row ? toRelease(row) : undefined;
}

export function listReleases(db: Db, appId: string): Release[] {
  return (
    stmt(db, "SELECT * FROM releases WHERE app_id = ? ORDER BY version DESC").all(appId) as ReleaseRow[]
  ).map(toRelease);
}

export function getRelease(db: Db, appId: string, version: number): Release {
  const row = stmt(db, "SELECT * FROM releases WHERE app_id = ? AND version = ?").get(appId, version) as
    | ReleaseRow
    | undefined;
  if (!row) {
    throw new KilnError({
      code: "unknown_release",
      message: `the app has no release v${version}`,
      hint: "list its releases with kiln releases",
    });
  }
  return toRelease(row);
}

/** The release a build made, if it made one (a build makes at most one; rollbacks reuse its id). */
export function releaseOfBuild(db: Db, appId: string, buildId: string): Release | undefined {
  const row = stmt(
    db,
    "SELECT * FROM releases WHERE app_id = ? AND build_id = ? ORDER BY version ASC LIMIT 1",
  ).get(appId, buildId) as ReleaseRow | undefined;
  return row ? toRelease(row) : undefined;
}

/** Rolling back to vN is a new release with vN's slug and config (as on Heroku). */
export function rollback(db: Db, appId: string, version: number): Release {
  return tx(db, () => {
    const target = getRelease(db, appId, version);
    return createRelease(db, {
      appId,
      buildId: target.buildId,
      slugSha256: target.slugSha256,
      slugPath: target.slugPath,
      processTypes: target.processTypes,
      config: target.config,
      description: `Rollback to v${version}`,
      commit: target.commit,
    });
  });
}
