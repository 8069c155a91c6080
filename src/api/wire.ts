/**
 * kiln's HTTP API on the wire: one zod schema per request and response body. The server validates
 * requests with them and checks every JSON response against them before it leaves (a mismatch is a
 * kiln bug: a 500, logged, instead of a client reading a wrong shape); every client (the CLI, the
 * hosted control plane's handoff, the bootstrap) parses what it reads with them. Only zod here:
 * clients import this module without loading the server. The streaming routes (build output, logs,
 * one-off runs) answer text/plain and have no schema.
 */
import { z } from "zod";

const iso = z.string().datetime();
const stringMap = z.record(z.string(), z.string());
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

// ---- errors (every 4xx/5xx) ----

export const error = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    hint: z.string().optional(),
    /** The request field a 422 is about. */
    field: z.string().optional(),
  }),
});
export type ErrorBody = z.infer<typeof error>;

// ---- health ----

export const health = z.object({ ok: z.literal(true) });

// ---- users and tokens ----

export const user = z.object({
  id: z.string().uuid(),
  name: z.string(),
  admin: z.boolean(),
  created_at: iso,
});
export type User = z.infer<typeof user>;
export const userCreate = z.object({ name: z.string(), admin: z.boolean().default(false) }).strict();

export const token = z.object({
  id: z.string().uuid(),
  name: z.string(),
  /** The user it acts for (an admin user's tokens are admin tokens). */
  user: z.string(),
  admin: z.boolean(),
  created_at: iso,
  last_used_at: iso.nullable(),
});
export type Token = z.infer<typeof token>;
/** A token just made: the only time its secret is shown. */
export const tokenCreated = token.extend({ token: z.string().startsWith("kiln_") });
export const tokenCreate = z
  .object({ name: z.string().min(1).max(100), user: z.string().min(1).max(100).optional() })
  .strict();
export const tokenRevoked = z.object({ id: z.string(), revoked: z.literal(true) });

export const account = user.extend({ token });

// ---- apps and who works on them ----

export const app = z.object({
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
export type App = z.infer<typeof app>;
export const appCreate = z.object({ name: z.string(), platform: z.boolean().optional() }).strict();
export const appPatch = z.object({ platform: z.boolean() }).strict();
export const appDeleted = app.pick({ id: true, name: true }).extend({ deleted: z.literal(true) });

export const collaborators = z.array(
  z.object({ user: z.string(), role: z.enum(["owner", "collaborator"]), created_at: iso }),
);
export type Collaborators = z.infer<typeof collaborators>;
export const collaboratorAdd = z.object({ user: z.string().min(1).max(100) }).strict();

/** GET/PATCH /v1/apps/:app/git: where the app's repository is and which branch deploys. */
export const gitSettings = z.object({
  app: z.string(),
  git_path: z.string().startsWith("/git/"),
  deploy_branch: z.string().nullable(),
  deploy_branches: z.array(z.string()),
  default_deploy_branches: z.array(z.string()),
});
export type GitSettings = z.infer<typeof gitSettings>;
export const gitSettingsPatch = z.object({ deploy_branch: z.string().min(1).max(200).nullable() }).strict();

// ---- releases and config vars ----

export const release = z.object({
  id: z.string().uuid(),
  version: z.number().int().positive(),
  build_id: z.string().uuid().nullable(),
  slug_sha256: sha256Hex.nullable(),
  process_types: stringMap,
  config_vars: stringMap,
  description: z.string(),
  /** The git commit it was built from (a push), else null (an upload). */
  commit: z
    .string()
    .regex(/^[0-9a-f]{40,64}$/)
    .nullable(),
  created_at: iso,
});
export type Release = z.infer<typeof release>;

export const appShow = app.extend({
  /** What the caller is to the app. */
  role: z.enum(["admin", "owner", "collaborator"]),
  web_url: z.string().url().nullable(),
  release: release.nullable(),
});
export type AppShow = z.infer<typeof appShow>;

/** Config vars, and a patch of them (null unsets). */
export const configVars = stringMap;
export const configPatch = z.record(z.string(), z.string().nullable());

export const rollback = z.object({ rollback: z.number().int().positive() }).strict();
/**
 * A release of a slug built elsewhere: kiln's own control plane, running as an app on this
 * platform, hands each release it builds to the dyno manager it runs on (admin tokens only).
 */
export const releaseImport = z
  .object({
    slug: z
      .object({
        path: z.string().regex(/^\/nix\/store\/[0-9a-z]{32}-[^/]+\/slug\.tgz$/),
        sha256: sha256Hex,
      })
      .strict(),
    process_types: z.record(z.string().regex(/^[A-Za-z0-9_-]{1,63}$/), z.string().min(1)),
    config: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
    description: z.string().min(1).max(500),
  })
  .strict();
export type ReleaseImport = z.input<typeof releaseImport>;
/** POST /v1/apps/:app/releases: a rollback, or (admins) an imported slug. */
export const releaseCreate = z.union([rollback, releaseImport]);

// ---- formation and dynos ----

export const formation = z.array(
  z.object({ type: z.string(), quantity: z.number().int().nonnegative(), size: z.string() }),
);
export type Formation = z.infer<typeof formation>;
export const formationUpdate = z.object({
  type: z.string(),
  quantity: z.number().int(),
  size: z.string().optional(),
});
export type FormationUpdate = z.infer<typeof formationUpdate>;
export const formationPatch = z.object({ updates: z.array(formationUpdate.strict()).min(1) }).strict();

export const dyno = z.object({
  name: z.string(),
  type: z.string(),
  // "failed": a release that could not start (src/dyno/formation.ts), beside the dynos still up.
  state: z.enum(["starting", "up", "crashed", "stopping", "down", "failed"]),
  release: z.number().int().positive(),
  since: iso,
  restarts: z.number().int().nonnegative(),
  last_exit: z.string().nullable(),
});
export type Dyno = z.infer<typeof dyno>;
export const dynos = z.array(dyno);
export const dynosRestarted = z.object({ restarted: z.number().int().nonnegative() });
export const dynoRun = z.object({ command: z.string().min(1) }).strict();

// ---- builds and their reproducibility checks ----

export const check = z.object({
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
export type Check = z.infer<typeof check>;
/** With the whole report (src/repro/check.ts's CheckReport) once it has finished. */
export const checkWithReport = check.extend({
  report: z.object({ id: z.string(), verdict: z.string() }).loose().nullable(),
});
export type CheckWithReport = z.infer<typeof checkWithReport>;
export const checkCreate = z
  .object({
    builds: z.number().int().min(1).max(5).optional(),
    vary: z.array(z.string()).optional(),
    skip: z.array(z.string()).optional(),
  })
  .strict();
export type CheckCreate = z.infer<typeof checkCreate>;

export const build = z.object({
  id: z.string().uuid(),
  app: z.string(),
  status: z.enum(["pending", "building", "succeeded", "failed", "cancelled"]),
  failure_reason: z.string().nullable(),
  created_at: iso,
  started_at: iso.nullable(),
  finished_at: iso.nullable(),
  source_sha256: sha256Hex,
  slug_sha256: sha256Hex.nullable(),
  /** The slug in this machine's Nix store (what a release of it runs). */
  slug_path: z.string().startsWith("/nix/store/").nullable(),
  /** false: built to compare or check (?release=false), never released. */
  release: z.boolean(),
  /** The git commit it was built from (a push), else null (an upload). */
  commit: z
    .string()
    .regex(/^[0-9a-f]{40,64}$/)
    .nullable(),
  /**
   * Where its derivations were built: "local" and/or remote builders' URIs; [] when nothing
   * needed building; null until it succeeds.
   */
  built_on: z.array(z.string()).nullable(),
  output_stream_url: z.string().startsWith("/v1/apps/"),
  /** Reproducibility checks of this build, oldest first. */
  checks: z.array(check),
});
export type Build = z.infer<typeof build>;
/** A build from a URL instead of an uploaded body (Heroku's source_blob). */
export const buildFromUrl = z
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
