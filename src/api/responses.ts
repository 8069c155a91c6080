/**
 * The API's response bodies as zod schemas, checked before every JSON response goes out (a
 * mismatch is a kiln bug: it fails as a 500 and is logged, instead of reaching a client). The
 * streaming routes (build output, logs, one-off runs) answer text/plain and are not JSON.
 */
import { z } from "zod";

const iso = z.string().datetime();
const stringMap = z.record(z.string(), z.string());

export const appBody = z.object({
  id: z.string().uuid(),
  name: z.string(),
  created_at: iso,
  /** The owner's user name. */
  owner: z.string(),
  /** Only admins see and change platform apps. */
  platform: z.boolean(),
  /** The branch whose pushes deploy (null: main or master). */
  deploy_branch: z.string().nullable(),
});
export const releaseBody = z.object({
  id: z.string().uuid(),
  version: z.number().int().positive(),
  build_id: z.string().uuid().nullable(),
  slug_sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable(),
  process_types: stringMap,
  config_vars: stringMap,
  description: z.string(),
  /** The git commit its slug was built from (a push), else null. */
  commit: z
    .string()
    .regex(/^[0-9a-f]{40,64}$/)
    .nullable(),
  created_at: iso,
});
export const appShowBody = appBody.extend({
  /** What the caller is to the app. */
  role: z.enum(["admin", "owner", "collaborator"]),
  web_url: z.string().url().nullable(),
  release: releaseBody.nullable(),
});
export const checkBody = z.object({
  id: z.string().uuid(),
  build_id: z.string().uuid(),
  status: z.enum(["running", "reproducible", "not_reproducible", "build_failed", "error"]),
  /** The verdict once there is one (null while running, or when the check could not run). */
  verdict: z.enum(["reproducible", "not_reproducible", "build_failed"]).nullable(),
  error: z.string().nullable(),
  builds: z.number().int().positive(),
  variations: z.array(z.string()),
  created_at: iso,
  finished_at: iso.nullable(),
  url: z.string().startsWith("/v1/apps/"),
});

export const buildBody = z.object({
  id: z.string().uuid(),
  app: z.string(),
  status: z.enum(["pending", "building", "succeeded", "failed", "cancelled"]),
  failure_reason: z.string().nullable(),
  created_at: iso,
  started_at: iso.nullable(),
  finished_at: iso.nullable(),
  source_sha256: z.string().regex(/^[0-9a-f]{64}$/),
  slug_sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable(),
  /** The slug in this machine's Nix store (what a release of it runs). */
  slug_path: z.string().startsWith("/nix/store/").nullable(),
  /** false: built to compare or check (?release=false), never released. */
  release: z.boolean(),
  /** The git commit it was built from (a push), else null (an upload). */
  commit: z
    .string()
    .regex(/^[0-9a-f]{40,64}$/)
    .nullable(),
  output_stream_url: z.string().startsWith("/v1/apps/"),
  /** Reproducibility checks of this build, oldest first. */
  checks: z.array(checkBody),
});
export const formationBody = z.array(
  z.object({ type: z.string(), quantity: z.number().int().nonnegative(), size: z.string() }),
);
export const dynoBody = z.object({
  name: z.string(),
  type: z.string(),
  // "failed": a release that could not start (src/dyno/formation.ts), beside the dynos still up.
  state: z.enum(["starting", "up", "crashed", "stopping", "down", "failed"]),
  release: z.number().int().positive(),
  since: iso,
  restarts: z.number().int().nonnegative(),
  last_exit: z.string().nullable(),
});

export const userBody = z.object({
  id: z.string().uuid(),
  name: z.string(),
  admin: z.boolean(),
  created_at: iso,
});

export const tokenBody = z.object({
  id: z.string().uuid(),
  name: z.string(),
  /** The user it acts for (an admin user's tokens are admin tokens). */
  user: z.string(),
  admin: z.boolean(),
  created_at: iso,
  last_used_at: iso.nullable(),
});

export const collaboratorsBody = z.array(
  z.object({ user: z.string(), role: z.enum(["owner", "collaborator"]), created_at: iso }),
);

/** `METHOD /route` → the schema of its 2xx JSON body. */
export const RESPONSES: Record<string, z.ZodType> = {
  "GET /healthz": z.object({ ok: z.literal(true) }),
  "POST /v1/tokens": tokenBody.extend({ token: z.string().startsWith("kiln_") }),
  "GET /v1/tokens": z.array(tokenBody),
  "DELETE /v1/tokens/:id": z.object({ id: z.string(), revoked: z.literal(true) }),
  "POST /v1/users": userBody,
  "GET /v1/users": z.array(userBody),
  "GET /v1/account": userBody.extend({ token: tokenBody }),
  "POST /v1/apps": appBody,
  "GET /v1/apps": z.array(appBody),
  "GET /v1/apps/:app": appShowBody,
  "PATCH /v1/apps/:app": appBody,
  "GET /v1/apps/:app/collaborators": collaboratorsBody,
  "POST /v1/apps/:app/collaborators": collaboratorsBody,
  "DELETE /v1/apps/:app/collaborators/:user": collaboratorsBody,
  "DELETE /v1/apps/:app": appBody.pick({ id: true, name: true }).extend({ deleted: z.literal(true) }),
  "GET /v1/apps/:app/config-vars": stringMap,
  "PATCH /v1/apps/:app/config-vars": stringMap,
  "GET /v1/apps/:app/releases": z.array(releaseBody),
  "GET /v1/apps/:app/releases/:version": releaseBody,
  "POST /v1/apps/:app/releases": releaseBody,
  "GET /v1/apps/:app/formation": formationBody,
  "PATCH /v1/apps/:app/formation": formationBody,
  "GET /v1/apps/:app/dynos": z.array(dynoBody),
  "DELETE /v1/apps/:app/dynos": z.object({ restarted: z.number().int().nonnegative() }),
  "DELETE /v1/apps/:app/dynos/:dyno": z.object({ restarted: z.number().int().nonnegative() }),
  "POST /v1/apps/:app/builds": buildBody,
  "GET /v1/apps/:app/builds": z.array(buildBody),
  "GET /v1/apps/:app/builds/:id": buildBody,
  "DELETE /v1/apps/:app/builds/:id": buildBody,
  "POST /v1/apps/:app/builds/:id/checks": checkBody,
  "GET /v1/apps/:app/builds/:id/checks": z.array(checkBody),
  /** With the whole report (src/repro/check.ts's CheckReport) once it has finished. */
  "GET /v1/apps/:app/builds/:id/checks/:check": checkBody.extend({
    report: z.object({ id: z.string(), verdict: z.string() }).loose().nullable(),
  }),
};
