/**
 * kiln's HTTP API (fastify, the one home of that dependency), modelled on Heroku's Platform API
 * under /v1. Every request body is validated with zod (422 with the field and the reason), unknown
 * apps are 404, conflicts 409, oversize uploads 413 before they are read, a full build queue 429
 * with Retry-After. Every route but /healthz needs a bearer token.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  LogController,
} from "fastify";
import { z } from "zod";
import { DEFAULT_MAX_ENTRIES, inspectUntrustedTarGz } from "../archive/untrusted.js";
import type { BuildLogs } from "../builds/buildLog.js";
import type { BuildQueue } from "../builds/queue.js";
import { MAX_UNPACKED_SOURCE_BYTES } from "../builds/service.js";
import { type CacheRoutesOptions, cacheRoutes } from "../cache/routes.js";
import { configSchema } from "../config/config.js";
import { dynoFilter, followLog, formatLogLine, readLogTail } from "../dyno/logs.js";
import { KilnError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { CheckRunner } from "../repro/service.js";
import { fetchSourceBlob, receiveUpload, tooLarge } from "../source/upload.js";
import {
  type App,
  createApp,
  deleteApp,
  getConfig,
  isPlatformApp,
  listApps,
  PLATFORM_APP_NAMES,
  patchConfig,
  setPlatformApp,
} from "../store/apps.js";
import { type BuildRecord, createBuild, endBuild, getBuild, listBuilds } from "../store/builds.js";
import { type CheckRecord, getCheck, listChecks } from "../store/checks.js";
import {
  addCollaborator,
  type Collaborator,
  listCollaborators,
  removeCollaborator,
} from "../store/collaborators.js";
import type { Db } from "../store/db.js";
import { ensureDefaultFormation, getFormation, scaleFormation } from "../store/formation.js";
import {
  createRelease,
  currentRelease,
  getRelease,
  listReleases,
  type Release,
  rollback,
} from "../store/releases.js";
import { createToken, listTokens, revokeToken, type TokenInfo, verifyToken } from "../store/tokens.js";
import { createUser, findUser, getUser, listUsers, type User } from "../store/users.js";
import { assertEnvVars } from "../util/envVars.js";
import { hashFile } from "../util/fs.js";
import { describeIssues } from "../util/json.js";
import { errorHandler } from "./errors.js";
import { renderMetrics } from "./metrics.js";
import type { PlatformHandoff } from "./platformHandoff.js";
import { RESPONSES } from "./responses.js";
import {
  appFor,
  assertBuildQuota,
  assertDynoQuota,
  assertMayCreate,
  type Need,
  type Quotas,
} from "./tenancy.js";

export interface ApiDeps {
  db: Db;
  log: Logger;
  dataDir: string;
  queue: BuildQueue;
  logs: BuildLogs;
  maxSourceBytes: number;
  /** Origins a source_blob may come from besides public https (KILN_FETCH_ALLOW). */
  fetchAllow?: readonly string[];
  /** Dynos, when this server runs them: the formation follows every release and scale. */
  dynos?: DynoControl;
  /** Where the router serves an app, when this server routes. */
  webUrl?: (app: string) => string;
  /**
   * The platform this control plane runs on (kiln hosted on kiln): releases made here (config
   * changes, rollbacks) and scaling are handed to it, since it is what runs the dynos.
   */
  platform?: PlatformHandoff;
  /** Reproducibility checks of recorded builds (kiln check --against BUILD_ID). */
  checks?: CheckRunner;
  /** Tenants' quotas (default: the configuration's defaults). */
  quotas?: Quotas;
  /** The binary cache at /nix-cache (src/cache), when this server has a store to serve. */
  cache?: Pick<CacheRoutesOptions, "nix" | "cachePublic">;
}

export interface DynoControl {
  /** Bring the app's dynos to its current release and formation (in the background). */
  reconcile(appId: string): void;
  list(appName: string): {
    name: string;
    type: string;
    state: string;
    release: number;
    since: string;
    restarts: number;
    last_exit: string | null;
  }[];
  restart(appName: string, name?: string): Promise<number>;
  /** A one-off dyno on the app's current release; resolves with its exit. */
  runOnce(
    appName: string,
    command: string,
    onLine: (line: string) => void,
  ): Promise<{ code: number | null; reason: string }>;
  /** Every managed dyno's state and restarts, for /metrics. */
  all(): { state: string; restarts: number }[];
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new KilnError({
      code: "invalid_body",
      message: `invalid request: ${describeIssues(r.error)}`,
      hint: "see the API section of the README for the body each route takes",
      details: { field: first?.path.join(".") ?? "" },
    });
  }
  return r.data;
}

const appCreateBody = z.object({ name: z.string(), platform: z.boolean().optional() }).strict();
const appPatchBody = z.object({ platform: z.boolean() }).strict();
const userCreateBody = z.object({ name: z.string(), admin: z.boolean().default(false) }).strict();
const tokenCreateBody = z
  .object({ name: z.string().min(1).max(100), user: z.string().min(1).max(100).optional() })
  .strict();
const collaboratorBody = z.object({ user: z.string().min(1).max(100) }).strict();
const sourceBlobBody = z
  .object({
    source_blob: z
      .object({
        url: z
          .string()
          .url()
          .refine((u) => /^https?:/.test(u), "only http and https URLs"),
        checksum: z
          .string()
          .regex(/^sha256:[0-9a-f]{64}$/i, "write it as sha256:HEX")
          .optional(),
      })
      .strict(),
  })
  .strict();
const configPatchBody = z.record(z.string(), z.string().nullable());
const rollbackBody = z.object({ rollback: z.number().int().positive() }).strict();
/**
 * A release of a slug built elsewhere: kiln's own control plane, running as an app on this
 * platform, hands each release it builds to the dyno manager it runs on (admin tokens only).
 */
const importBody = z
  .object({
    slug: z
      .object({
        path: z.string().regex(/^\/nix\/store\/[0-9a-z]{32}-[^/]+\/slug\.tgz$/),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
      })
      .strict(),
    process_types: z.record(z.string().regex(/^[A-Za-z0-9_-]{1,63}$/), z.string().min(1)),
    config: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
    description: z.string().min(1).max(500),
  })
  .strict();
const formationBody = z
  .object({
    updates: z
      .array(z.object({ type: z.string(), quantity: z.number().int(), size: z.string().optional() }).strict())
      .min(1),
  })
  .strict();

const checkBody = z
  .object({
    builds: z.number().int().min(1).max(5).optional(),
    vary: z.array(z.string()).optional(),
    skip: z.array(z.string()).optional(),
  })
  .strict();

const checkView = (c: CheckRecord, appName: string) => ({
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

export const buildView = (b: BuildRecord, appName: string, checks: CheckRecord[] = []) => ({
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
  output_stream_url: `/v1/apps/${appName}/builds/${b.id}/output`,
  checks: checks.map((c) => checkView(c, appName)),
});

const tokenView = (t: TokenInfo) => ({
  id: t.id,
  name: t.name,
  user: t.user,
  admin: t.admin,
  created_at: t.createdAt,
  last_used_at: t.lastUsedAt,
});

const userView = (u: User) => ({ id: u.id, name: u.name, admin: u.admin, created_at: u.createdAt });

const collaboratorView = (c: Collaborator) => ({ user: c.user, role: c.role, created_at: c.createdAt });

const releaseView = (r: Release) => ({
  id: r.id,
  version: r.version,
  build_id: r.buildId,
  slug_sha256: r.slugSha256,
  process_types: r.processTypes,
  config_vars: r.config,
  description: r.description,
  created_at: r.createdAt,
});

/** An imported release's slug must be on this machine, with the sha256 it claims. */
async function assertSlugFile(path: string, sha256: string): Promise<void> {
  const got = await hashFile(path, "sha256").catch(() => undefined);
  if (got !== sha256) {
    throw new KilnError({
      code: "invalid_slug",
      message:
        got === undefined
          ? `${path} is not a file on this machine`
          : `${path} has sha256 ${got}, not ${sha256}`,
      hint: "import a slug from this machine's Nix store (built through its daemon) with its own sha256",
    });
  }
}

export function createApi(deps: ApiDeps): FastifyInstance {
  const { db } = deps;
  const quotas = deps.quotas ?? configSchema.shape.quotas.parse(undefined);
  const sources = join(deps.dataDir, "sources");
  mkdirSync(sources, { recursive: true });
  const api = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    // kiln logs one summary line per request itself (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
  });
  api.setErrorHandler(errorHandler);
  // Every JSON response is checked against its schema before it leaves.
  api.addHook("preSerialization", async (req, reply, payload) => {
    const schema = RESPONSES[`${req.method} ${req.routeOptions.url}`];
    if (!schema || reply.statusCode >= 400) return payload;
    const r = schema.safeParse(payload);
    if (!r.success)
      throw new Error(
        `response of ${req.method} ${req.routeOptions.url} broke its schema: ${describeIssues(r.error)}`,
      );
    return payload;
  });
  // One summary line per request.
  api.addHook("onResponse", async (req, reply) => {
    req.log.info(
      { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      "request",
    );
  });
  // A source upload is a stream, read by the route (never buffered whole).
  for (const type of ["application/gzip", "application/x-gzip", "application/octet-stream"]) {
    api.addContentTypeParser(type, (_req, payload, done) => done(null, payload));
  }

  // Which token made each request, and so which user (every route checks what it may do).
  const callers = new WeakMap<FastifyRequest, TokenInfo>();
  api.addHook("onRequest", async (req: FastifyRequest) => {
    // The binary cache checks its own readers (src/cache/routes.ts: Basic for Nix, or public).
    if (req.url === "/healthz" || req.url.startsWith("/nix-cache/")) return;
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "");
    const info = m?.[1] ? verifyToken(db, m[1]) : undefined;
    if (!info) {
      throw new KilnError({
        code: "unauthorized",
        message: "a valid API token is required",
        hint: "send Authorization: Bearer TOKEN (kiln serve printed the admin token at first start)",
      });
    }
    callers.set(req, info);
  });
  const caller = (req: FastifyRequest): TokenInfo => {
    const c = callers.get(req);
    if (!c) throw new KilnError({ code: "unauthorized", message: "a valid API token is required" });
    return c;
  };
  const requireAdmin = (req: FastifyRequest, what = "manage users") => {
    if (!caller(req).admin) {
      throw new KilnError({
        code: "forbidden",
        message: `only an admin token may ${what}`,
        hint: "use the admin token",
      });
    }
  };
  /** The app named in the route, when the caller may do `need` to it (else 404, as if missing). */
  const appOf = (req: FastifyRequest, nameOrId: string, need: Need) =>
    appFor(db, caller(req), nameOrId, need);
  const appView = (a: App) => ({
    id: a.id,
    name: a.name,
    created_at: a.createdAt,
    owner: getUser(db, a.ownerId).name,
    platform: isPlatformApp(a),
  });

  // Users (admins make and list them) and who the caller is.
  api.post("/v1/users", async (req, reply) => {
    requireAdmin(req);
    const user = createUser(db, parse(userCreateBody, req.body));
    void reply.status(201);
    return userView(user);
  });
  api.get("/v1/users", async (req) => {
    requireAdmin(req);
    return listUsers(db).map(userView);
  });
  api.get("/v1/account", async (req) => {
    const c = caller(req);
    return { ...userView(getUser(db, c.userId)), token: tokenView(c) };
  });

  // Tokens: a user makes (shown once), lists and revokes its own; an admin anyone's.
  api.post("/v1/tokens", async (req, reply) => {
    const c = caller(req);
    const body = parse(tokenCreateBody, req.body);
    let userId = c.userId;
    if (body.user !== undefined) {
      const mine = body.user === c.user || body.user === c.userId;
      if (!mine) requireAdmin(req, "make tokens for another user");
      userId = getUser(db, body.user).id;
    }
    const { token, info } = createToken(db, { name: body.name, userId });
    void reply.status(201);
    return { ...tokenView(info), token };
  });
  api.get("/v1/tokens", async (req) => {
    const c = caller(req);
    return listTokens(db, c.admin ? {} : { userId: c.userId }).map(tokenView);
  });
  api.delete<{ Params: { id: string } }>("/v1/tokens/:id", async (req) => {
    const c = caller(req);
    if (c.id === req.params.id) {
      throw new KilnError({
        code: "conflict",
        message: "a token cannot revoke itself",
        hint: "revoke it with another token of yours (or an admin token)",
      });
    }
    // Another user's token is as unknown as a missing one.
    if (!revokeToken(db, req.params.id, c.admin ? {} : { userId: c.userId }))
      throw new KilnError({ code: "unknown_token", message: `no token ${req.params.id}` });
    return { id: req.params.id, revoked: true };
  });

  api.get("/healthz", async () => ({ ok: true }));
  api.get("/metrics", async (_req, reply) => {
    void reply.type("text/plain; version=0.0.4");
    return renderMetrics(db, deps.queue, deps.dynos?.all() ?? []);
  });

  // Apps: each caller sees its own (owned or shared with it); admins see all.
  api.post("/v1/apps", async (req, reply) => {
    const c = caller(req);
    const body = parse(appCreateBody, req.body);
    assertMayCreate(c, body.name);
    if (body.platform !== undefined) requireAdmin(req, "make a platform app");
    const app = createApp(db, body.name, { ownerId: c.userId, ...(body.platform ? { platform: true } : {}) });
    void reply.status(201);
    return appView(app);
  });
  api.get("/v1/apps", async (req) => {
    const c = caller(req);
    const apps = c.admin
      ? listApps(db)
      : listApps(db, { memberId: c.userId }).filter((a) => !isPlatformApp(a));
    return apps.map(appView);
  });
  api.get<{ Params: { app: string } }>("/v1/apps/:app", async (req) => {
    const a = appOf(req, req.params.app, "read");
    const rel = currentRelease(db, a.id);
    return {
      ...appView(a),
      role: a.role,
      web_url: deps.webUrl?.(a.name) || null,
      release: rel ? releaseView(rel) : null,
    };
  });
  // Marking an app as the platform's own (or not): admins only.
  api.patch<{ Params: { app: string } }>("/v1/apps/:app", async (req) => {
    const a = appOf(req, req.params.app, "own");
    const body = parse(appPatchBody, req.body);
    requireAdmin(req, "mark platform apps");
    if (!body.platform && PLATFORM_APP_NAMES.includes(a.name)) {
      throw new KilnError({
        code: "invalid_platform",
        message: `${a.name} is a reserved platform app name: it stays a platform app`,
        hint: `reserved: ${PLATFORM_APP_NAMES.join(", ")}`,
      });
    }
    return appView(setPlatformApp(db, a.id, body.platform));
  });
  api.delete<{ Params: { app: string } }>("/v1/apps/:app", async (req) => {
    const owned = appOf(req, req.params.app, "own");
    // Its builds go with it: a queued one left behind would run for an app that is gone.
    for (const b of listBuilds(db, owned.id))
      if (b.status === "pending" || b.status === "building") deps.queue.cancel(b.id, "the app was deleted");
    const a = deleteApp(db, owned.id);
    return { id: a.id, name: a.name, deleted: true };
  });

  // Collaborators: members see them; the owner (or an admin) adds and removes them; a collaborator may leave.
  api.get<{ Params: { app: string } }>("/v1/apps/:app/collaborators", async (req) =>
    listCollaborators(db, appOf(req, req.params.app, "read").id).map(collaboratorView),
  );
  api.post<{ Params: { app: string } }>("/v1/apps/:app/collaborators", async (req, reply) => {
    const a = appOf(req, req.params.app, "own");
    const body = parse(collaboratorBody, req.body);
    if (isPlatformApp(a)) {
      throw new KilnError({
        code: "invalid_collaborator",
        message: `${a.name} is a platform app: only admins work on it`,
        hint: "make the user an admin instead (kiln users:create NAME --admin)",
      });
    }
    addCollaborator(db, a, getUser(db, body.user));
    void reply.status(201);
    return listCollaborators(db, a.id).map(collaboratorView);
  });
  api.delete<{ Params: { app: string; user: string } }>("/v1/apps/:app/collaborators/:user", async (req) => {
    const c = caller(req);
    const leaving = req.params.user === c.user || req.params.user === c.userId;
    const a = appOf(req, req.params.app, leaving ? "read" : "own");
    const user = findUser(db, req.params.user);
    if (!user || !removeCollaborator(db, a.id, user.id)) {
      throw new KilnError({
        code: user?.id === a.ownerId ? "conflict" : "unknown_collaborator",
        message:
          user?.id === a.ownerId
            ? `${user.name} owns ${a.name}: an owner cannot be removed`
            : `${req.params.user} is not a collaborator of ${a.name}`,
        hint: `list them with kiln access -a ${a.name}`,
      });
    }
    return listCollaborators(db, a.id).map(collaboratorView);
  });

  // Config vars: a change makes a new release (once the app has one), as on Heroku.
  api.get<{ Params: { app: string } }>("/v1/apps/:app/config-vars", async (req) =>
    getConfig(db, appOf(req, req.params.app, "read").id),
  );
  api.patch<{ Params: { app: string } }>("/v1/apps/:app/config-vars", async (req) => {
    const app = appOf(req, req.params.app, "write");
    const patch = parse(configPatchBody, req.body);
    assertEnvVars(patch);
    const keys = Object.keys(patch);
    const { config, result } = patchConfig(db, app.id, patch, (cfg) => {
      const cur = currentRelease(db, app.id);
      if (!cur) return undefined;
      const set = keys.filter((k) => patch[k] !== null);
      const unset = keys.filter((k) => patch[k] === null);
      const description = [
        set.length ? `Set ${set.join(", ")}` : "",
        unset.length ? `Unset ${unset.join(", ")}` : "",
      ]
        .filter(Boolean)
        .join("; ");
      // The release's config: the current one (buildpack defaults included), with the patch applied.
      const next = { ...cur.config };
      for (const k of unset) delete next[k];
      for (const k of set) next[k] = cfg[k] as string;
      return createRelease(db, {
        appId: app.id,
        buildId: cur.buildId,
        slugSha256: cur.slugSha256,
        slugPath: cur.slugPath,
        processTypes: cur.processTypes,
        config: next,
        description,
      });
    });
    if (result) {
      deps.dynos?.reconcile(app.id);
      await deps.platform?.release(app.name, result);
    }
    return config;
  });

  // Releases.
  api.get<{ Params: { app: string } }>("/v1/apps/:app/releases", async (req) =>
    listReleases(db, appOf(req, req.params.app, "read").id).map(releaseView),
  );
  api.get<{ Params: { app: string; version: string } }>("/v1/apps/:app/releases/:version", async (req) => {
    const app = appOf(req, req.params.app, "read");
    return releaseView(getRelease(db, app.id, parse(z.coerce.number().int().positive(), req.params.version)));
  });
  api.post<{ Params: { app: string } }>("/v1/apps/:app/releases", async (req, reply) => {
    const app = appOf(req, req.params.app, "write");
    let r: Release;
    if (typeof req.body === "object" && req.body !== null && "slug" in req.body) {
      requireAdmin(req, "import a release");
      const body = parse(importBody, req.body);
      assertEnvVars(body.config);
      await assertSlugFile(body.slug.path, body.slug.sha256);
      r = createRelease(db, {
        appId: app.id,
        buildId: null,
        slugSha256: body.slug.sha256,
        slugPath: body.slug.path,
        processTypes: body.process_types,
        // The platform's own config vars for the app (its wiring: state, sockets, tokens) win.
        config: { ...body.config, ...getConfig(db, app.id) },
        description: body.description,
      });
      ensureDefaultFormation(db, r);
    } else {
      r = rollback(db, app.id, parse(rollbackBody, req.body).rollback);
      await deps.platform?.release(app.name, r);
    }
    deps.dynos?.reconcile(app.id);
    void reply.status(201);
    return releaseView(r);
  });

  // Formation.
  api.get<{ Params: { app: string } }>("/v1/apps/:app/formation", async (req) =>
    getFormation(db, appOf(req, req.params.app, "read").id),
  );
  api.patch<{ Params: { app: string } }>("/v1/apps/:app/formation", async (req) => {
    const app = appOf(req, req.params.app, "write");
    const body = parse(formationBody, req.body);
    const updates = body.updates.map((u) => ({
      type: u.type,
      quantity: u.quantity,
      ...(u.size ? { size: u.size } : {}),
    }));
    assertDynoQuota(db, { caller: caller(req), app, updates, quotas });
    const formation = scaleFormation(db, app.id, updates);
    deps.dynos?.reconcile(app.id);
    await deps.platform?.scale(app.name, updates);
    return formation;
  });

  // Dynos: list (state, release, since), restart all or one.
  const dynoControl = () => {
    if (!deps.dynos) {
      throw new KilnError({
        code: "dynos_disabled",
        message: "this server does not run dynos",
        hint: "start kiln serve as root without --no-dynos",
      });
    }
    return deps.dynos;
  };
  // (The app first: one the caller may not see is a 404 whether or not this server runs dynos.)
  api.get<{ Params: { app: string } }>("/v1/apps/:app/dynos", async (req) => {
    const app = appOf(req, req.params.app, "read");
    return dynoControl().list(app.name);
  });
  api.delete<{ Params: { app: string } }>("/v1/apps/:app/dynos", async (req) => {
    const app = appOf(req, req.params.app, "write");
    return { restarted: await dynoControl().restart(app.name) };
  });
  api.delete<{ Params: { app: string; dyno: string } }>("/v1/apps/:app/dynos/:dyno", async (req) => {
    const app = appOf(req, req.params.app, "write");
    const n = await dynoControl().restart(app.name, req.params.dyno);
    if (n === 0)
      throw new KilnError({
        code: "unknown_dyno",
        message: `no dyno ${req.params.dyno}`,
        hint: "list them with kiln ps",
      });
    return { restarted: n };
  });

  // Builds: the source as a tar.gz request body.
  api.post<{ Params: { app: string }; Querystring: Record<string, string> }>(
    "/v1/apps/:app/builds",
    async (req, reply) => {
      const app = appOf(req, req.params.app, "write");
      // kiln's addition to Heroku's builds: ?release=false builds (and records) without releasing.
      const { release } = parse(
        z.object({ release: z.enum(["true", "false"]).default("true") }).strict(),
        req.query,
      );
      const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim() ?? "";
      const isTarball = ["application/gzip", "application/x-gzip", "application/octet-stream"].includes(type);
      if (!isTarball && type !== "application/json") {
        throw new KilnError({
          code: "unsupported_media_type",
          message: `a build takes the app's source as a tar.gz body (or JSON with a source_blob), not ${type || "no content type"}`,
          hint: "POST it with Content-Type: application/gzip (kiln deploy does this)",
        });
      }
      const declared = Number(req.headers["content-length"] ?? Number.NaN);
      if (isTarball && Number.isFinite(declared) && declared > deps.maxSourceBytes)
        throw tooLarge(deps.maxSourceBytes);
      const quota = { caller: caller(req), app, release: release === "true", quotas };
      assertBuildQuota(db, quota); // before reading the upload, and again once it is in (below)
      if (deps.queue.isFull()) {
        void reply.header("retry-after", "60");
        throw new KilnError({
          code: "queue_full",
          message: "the build queue is full",
          hint: "retry in a minute",
        });
      }
      const file = join(sources, `${randomUUID()}.tar.gz`);
      const { sha256 } = isTarball
        ? await receiveUpload(req.body as Readable, { file, maxBytes: deps.maxSourceBytes })
        : await fetchSourceBlob(parse(sourceBlobBody, req.body).source_blob, {
            file,
            maxBytes: deps.maxSourceBytes,
            allow: deps.fetchAllow ?? [],
          });
      // A hostile or broken archive is refused now (422), before anything is queued or unpacked.
      try {
        await inspectUntrustedTarGz(file, {
          maxBytes: MAX_UNPACKED_SOURCE_BYTES,
          maxEntries: DEFAULT_MAX_ENTRIES,
        });
        // Other builds may have started while this one uploaded (nothing yields between here and the insert).
        assertBuildQuota(db, quota);
      } catch (err) {
        await rm(file, { force: true });
        throw err;
      }
      const build = createBuild(db, {
        appId: app.id,
        sourceSha256: sha256,
        sourcePath: file,
        logPath: deps.logs.path,
        release: release === "true",
        userId: caller(req).userId,
      });
      try {
        deps.queue.submit({ buildId: build.id, appId: app.id });
      } catch (err) {
        endBuild(db, build.id, "failed", "the build queue was full");
        if (err instanceof KilnError && err.code === "queue_full") void reply.header("retry-after", "60");
        throw err;
      }
      void reply.status(201);
      return buildView(getBuild(db, build.id), app.name);
    },
  );
  api.get<{ Params: { app: string } }>("/v1/apps/:app/builds", async (req) => {
    const app = appOf(req, req.params.app, "read");
    return listBuilds(db, app.id).map((b) => buildView(b, app.name, listChecks(db, b.id)));
  });
  const appBuild = (req: FastifyRequest, appName: string, id: string, need: Need) => {
    const app = appOf(req, appName, need);
    const b = getBuild(db, id);
    if (b.appId !== app.id)
      throw new KilnError({ code: "unknown_build", message: `no build ${id} in ${app.name}` });
    return { app, b };
  };
  api.get<{ Params: { app: string; id: string } }>("/v1/apps/:app/builds/:id", async (req) => {
    const { app, b } = appBuild(req, req.params.app, req.params.id, "read");
    return buildView(b, app.name, listChecks(db, b.id));
  });

  // Reproducibility checks of a recorded build: rebuilt with variations, compared with its slug.
  api.post<{ Params: { app: string; id: string } }>("/v1/apps/:app/builds/:id/checks", async (req, reply) => {
    const { app, b } = appBuild(req, req.params.app, req.params.id, "write");
    const body = parse(checkBody, req.body ?? {});
    if (!deps.checks)
      throw new KilnError({ code: "checks_disabled", message: "this server does not run checks" });
    const c = await deps.checks.submit(b, app.name, body);
    void reply.status(202);
    return checkView(c, app.name);
  });
  api.get<{ Params: { app: string; id: string } }>("/v1/apps/:app/builds/:id/checks", async (req) => {
    const { app, b } = appBuild(req, req.params.app, req.params.id, "read");
    return listChecks(db, b.id).map((c) => checkView(c, app.name));
  });
  api.get<{ Params: { app: string; id: string; check: string } }>(
    "/v1/apps/:app/builds/:id/checks/:check",
    async (req) => {
      const { app, b } = appBuild(req, req.params.app, req.params.id, "read");
      const c = getCheck(db, req.params.check);
      if (c.buildId !== b.id)
        throw new KilnError({
          code: "unknown_check",
          message: `no check ${req.params.check} of build ${b.id}`,
        });
      const report = c.reportPath ? JSON.parse(await readFile(c.reportPath, "utf8")) : null;
      return { ...checkView(c, app.name), report };
    },
  );
  api.delete<{ Params: { app: string; id: string } }>("/v1/apps/:app/builds/:id", async (req) => {
    const { app, b } = appBuild(req, req.params.app, req.params.id, "write");
    if (!deps.queue.cancel(b.id) && b.status !== "pending") {
      throw new KilnError({ code: "conflict", message: `build ${b.id} is ${b.status}: nothing to cancel` });
    }
    // A running build ends (and cleans up) in its own time; a queued one never starts, so its source goes now.
    if (endBuild(db, b.id, "cancelled", "cancelled") && b.status === "pending")
      await rm(b.sourcePath, { force: true });
    return buildView(getBuild(db, b.id), app.name, listChecks(db, b.id));
  });
  // The build's output: what it printed so far, then live until it ends (text, chunked).
  api.get<{ Params: { app: string; id: string } }>("/v1/apps/:app/builds/:id/output", async (req, reply) => {
    const { b } = appBuild(req, req.params.app, req.params.id, "read");
    reply.raw.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
    const closed = new AbortController();
    req.raw.on("close", () => closed.abort());
    // A pending build has no log yet: wait for it to start (or end) before following.
    while (getBuild(db, b.id).status === "pending" && !closed.signal.aborted)
      await new Promise((r) => setTimeout(r, 100));
    await deps.logs.follow(b.id, (t) => reply.raw.write(t), closed.signal);
    reply.raw.end();
    return reply;
  });

  // Logs: the app's recent lines (dyno output and kiln's events), then live ones with ?tail=true.
  api.get<{ Params: { app: string }; Querystring: { lines?: string; tail?: string; dyno?: string } }>(
    "/v1/apps/:app/logs",
    async (req, reply) => {
      const app = appOf(req, req.params.app, "read");
      const lines = parse(z.coerce.number().int().min(0).max(10000).default(100), req.query.lines);
      const keep = dynoFilter(req.query.dyno);
      reply.raw.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      const recent = (await readLogTail(deps.dataDir, app.name, Number.MAX_SAFE_INTEGER))
        .filter(keep)
        .slice(-lines);
      for (const l of recent) reply.raw.write(`${formatLogLine(l)}\n`);
      if (req.query.tail === "true" || req.query.tail === "1") {
        const closed = new AbortController();
        req.raw.on("close", () => closed.abort());
        await followLog(
          deps.dataDir,
          app.name,
          (l) => keep(l) && reply.raw.write(`${formatLogLine(l)}\n`),
          closed.signal,
        );
      }
      reply.raw.end();
      return reply;
    },
  );

  // A one-off dyno: its output streams back as it runs; the last line says how it ended.
  api.post<{ Params: { app: string } }>("/v1/apps/:app/dynos", async (req, reply) => {
    const app = appOf(req, req.params.app, "write");
    const body = parse(z.object({ command: z.string().min(1) }).strict(), req.body);
    const control = dynoControl();
    if (!currentRelease(db, app.id)) {
      throw new KilnError({
        code: "conflict",
        message: `${app.name} has no release yet`,
        hint: "deploy it first",
      });
    }
    reply.raw.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
    const exit = await control.runOnce(app.name, body.command, (line) => reply.raw.write(`${line}\n`));
    reply.raw.end(`kiln: ${exit.reason}\n`);
    return reply;
  });

  void api.register(cacheRoutes, { db, dataDir: deps.dataDir, ...deps.cache });
  return api;
}
