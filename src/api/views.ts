/** Store records as the API shows them (src/api/wire.ts says the shapes). */
import { type App, isPlatformApp } from "../store/apps.js";
import type { BuildRecord } from "../store/builds.js";
import type { CheckRecord } from "../store/checks.js";
import type { Collaborator } from "../store/collaborators.js";
import type { Db } from "../store/db.js";
import type { Release } from "../store/releases.js";
import type { TokenInfo } from "../store/tokens.js";
import { getUser, type User } from "../store/users.js";
import type * as wire from "./wire.js";

export const appView = (db: Db, a: App): wire.App => ({
  id: a.id,
  name: a.name,
  created_at: a.createdAt,
  owner: getUser(db, a.ownerId).name,
  platform: isPlatformApp(a),
  deploy_branch: a.deployBranch,
});

export const checkView = (c: CheckRecord, appName: string): wire.Check => ({
  id: c.id,
  build_id: c.buildId,
  status: c.status,
  verdict: c.status === "running" || c.status === "error" ? null : c.status,
  error: c.error,
  builds: c.builds,
  variations: c.variations,
  created_at: c.createdAt,
  finished_at: c.finishedAt,
  url: `/v1/apps/${appName}/builds/${c.buildId}/checks/${c.id}`,
});

export const buildView = (b: BuildRecord, appName: string, checks: CheckRecord[] = []): wire.Build => ({
  id: b.id,
  app: appName,
  status: b.status,
  failure_reason: b.failureReason,
  created_at: b.createdAt,
  started_at: b.startedAt,
  finished_at: b.finishedAt,
  source_sha256: b.sourceSha256,
  slug_sha256: b.slugSha256,
  slug_path: b.slugPath,
  release: b.release,
  commit: b.commit,
  built_on: b.builtOn,
  output_stream_url: `/v1/apps/${appName}/builds/${b.id}/output`,
  checks: checks.map((c) => checkView(c, appName)),
});

export const tokenView = (t: TokenInfo): wire.Token => ({
  id: t.id,
  name: t.name,
  user: t.user,
  admin: t.admin,
  created_at: t.createdAt,
  last_used_at: t.lastUsedAt,
});

export const userView = (u: User): wire.User => ({
  id: u.id,
  name: u.name,
  admin: u.admin,
  created_at: u.createdAt,
});

export const collaboratorView = (c: Collaborator): wire.Collaborators[number] => ({
  user: c.user,
  role: c.role,
  created_at: c.createdAt,
});

export const releaseView = (r: Release): wire.Release => ({
  id: r.id,
  version: r.version,
  build_id: r.buildId,
  slug_sha256: r.slugSha256,
  process_types: r.processTypes,
  config_vars: r.config,
  description: r.description,
  commit: r.commit,
  created_at: r.createdAt,
});
