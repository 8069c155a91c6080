/**
 * kiln's configuration: one zod schema, loaded once in main.ts and passed down.
 * Nothing else reads process.env.
 */
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { KilnError } from "../errors.js";
import { describeIssues } from "../util/json.js";

export const configSchema = z.object({
  /** Where kiln keeps its state: caches, GC roots, logs (later: the SQLite file). */
  dataDir: z.string().min(1),
  /**
   * Runtime files of running dynos (their relays' sockets): on a tmpfs that a reboot empties, and
   * traversable by the apps' uids, unlike the data directory may be.
   */
  runDir: z.string().min(1),
  /** The kiln checkout (flake.nix, nix/, buildpacks/). */
  projectDir: z.string().min(1),
  /**
   * Which Nix store to talk to: "auto" (the daemon when its socket exists and we are not root,
   * else the local store), "local", "daemon", or any Nix store URI.
   */
  nixStore: z.string().min(1).default("auto"),
  /** Nix's binaries directory, or "" to find them on PATH. */
  nixBinDir: z.string().default(""),
  /** Unset: each entry point picks its own (the CLI warn, so that its progress lines stay readable). */
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).optional(),
  /** The API's admin token, when set by configuration rather than generated at first start. */
  adminToken: z.string().optional(),
  /** Cores a single Nix build may use (NIX_BUILD_CORES); 0 means all. */
  buildCores: z.number().int().min(0).default(0),
  /**
   * Test-only (KILN_TEST_DYNO_PAUSE): a dyno's start stops for good at this step, after writing
   * DATA_DIR/test-pause.json, so a test can kill kiln exactly there.
   */
  testDynoPause: z.enum(["spawned", "cgroups", "before-go", "after-go"]).optional(),
  /**
   * When kiln's control plane runs as an app on a kiln platform (src/bootstrap): the dyno
   * manager's API, `unix:/PATH` (a socket granted to this app alone) or a URL, and its admin
   * token. Every release built here is handed to it, so it runs the app's dynos.
   */
  platformUrl: z
    .string()
    .regex(/^(unix:\/.+|https?:\/\/.+)$/)
    .optional(),
  platformToken: z.string().min(24).optional(),
  /**
   * Where buildpacks' bin/detect runs before a build: in bubblewrap (fast), or in the Nix sandbox
   * (where kiln cannot start bubblewrap: hosted as a dyno, whose seccomp filter forbids namespaces).
   */
  detectIn: z.enum(["bwrap", "nix"]).default("bwrap"),
  /**
   * The store name of this kiln's tools. Running as a dyno, kiln names them after its release, so a
   * new release of kiln (a new stage of the bootstrap) really rebuilds every slug it builds.
   */
  toolsName: z
    .string()
    .regex(/^kiln-tools(-[A-Za-z0-9]+)?$/)
    .default("kiln-tools"),
  /**
   * Origins (scheme://host[:port]) kiln may fetch from besides npm's registry: dependency tarballs
   * named by a lock's `resolved`, and `source_blob` URLs (which may otherwise be https to public
   * addresses only). KILN_FETCH_ALLOW, comma-separated.
   */
  fetchAllow: z.array(z.string().regex(/^https?:\/\/[^/?#]+$/)).default([]),
  /**
   * Tenants' quotas (the platform admin has none): dynos asked for (the formation's total
   * quantity) per app and per owner, and builds in flight (queued + running) per app and per user
   * who started them.
   */
  quotas: z
    .object({
      appDynos: z.number().int().min(0).default(10),
      userDynos: z.number().int().min(0).default(20),
      appBuilds: z.number().int().min(1).default(2),
      userBuilds: z.number().int().min(1).default(4),
    })
    .default({ appDynos: 10, userDynos: 20, appBuilds: 2, userBuilds: 4 }),
  /**
   * Builds' limits (src/builds/limits.ts): the size (a dyno size's memory, processes, CPU, /tmp and
   * open files; an app's KILN_BUILD_SIZE config var overrides it), a wall-clock limit in seconds,
   * and the lockdown itself ("off" only for kiln's tests and bench, to show what it stops).
   */
  buildSize: z.string().min(1).default("performance-m"),
  buildTimeoutSeconds: z.number().int().positive().default(900),
  buildLockdown: z.enum(["on", "off"]).default("on"),
  /**
   * A source's bounds once unpacked (uploads, source_blob and git pushes alike): its bytes
   * (KILN_MAX_UNPACKED_SOURCE_BYTES) and entries, directories included (KILN_MAX_SOURCE_ENTRIES).
   * A push is measured from git's tree before anything is archived: a small pack can name one
   * large blob thousands of times.
   */
  maxUnpackedSourceBytes: z
    .number()
    .int()
    .positive()
    .default(1024 * 1024 * 1024),
  maxSourceEntries: z.number().int().positive().default(200_000),
  /**
   * The most bytes one build's log keeps (KILN_MAX_BUILD_LOG_BYTES); past it, lines are dropped
   * after one "log truncated" line, so a build that prints without end cannot fill the disk.
   */
  maxBuildLogBytes: z
    .number()
    .int()
    .min(4096)
    .default(64 * 1024 * 1024),
  /** Provenance's builder id for this instance (KILN_BUILDER_ID; default: host and data dir). */
  builderId: z.string().min(1).optional(),
  /** The binary cache at /nix-cache needs no token (KILN_CACHE_PUBLIC=1): it serves every slug. */
  cachePublic: z.boolean().default(false),
  /**
   * Nix's remote builders (its `builders` syntax, or `@FILE` for a machines file; KILN_BUILDERS),
   * and whether builds run only there (KILN_REMOTE_ONLY: Nix's max-jobs 0).
   */
  builders: z.string().default(""),
  remoteOnly: z.boolean().default(false),
  /**
   * Binary caches Nix may substitute from (e.g. another kiln's /nix-cache; KILN_SUBSTITUTERS,
   * space-separated) and the keys their paths must be signed by (KILN_TRUSTED_KEYS). A netrc
   * file gives their tokens (KILN_NETRC_FILE).
   */
  substituters: z.array(z.string().regex(/^[a-z][a-z0-9+.-]*:\/\/\S+$/)).default([]),
  trustedKeys: z.array(z.string().regex(/^[^:\s]+:[A-Za-z0-9+/=]+$/)).default([]),
  netrcFile: z.string().min(1).optional(),
  /** `kiln bootstrap`: a stage that shows no progress for this long fails, naming what it awaited. */
  bootstrapSilenceSeconds: z.number().int().positive().default(900),
  /** The CLI's kiln server when no --server is given (KILN_SERVER). */
  server: z.string().min(1).optional(),
  /** The CLI's API token when no --token is given (KILN_TOKEN). */
  token: z.string().min(1).optional(),
  /** The CLI's client settings, `{"server": URL, "token": T}` ($XDG_CONFIG_HOME/kiln/client.json). */
  clientConfigFile: z.string().min(1),
  /** Test-only: a bootstrap stage fails at once ("stage1") or hangs silently ("stage1:hang"). */
  testFailStage: z
    .string()
    .regex(/^(stage0|stage1|platform|upload|stage2|stage3|compare)(:hang)?$/)
    .optional(),
});

export type Config = z.infer<typeof configSchema>;

/** The kiln checkout this code runs from (dist/config/config.js → ../..). */
export function defaultProjectDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
}

export function defaultDataDir(env: NodeJS.ProcessEnv, uid: number): string {
  if (uid === 0) return "/var/lib/kiln";
  const xdg = env.XDG_DATA_HOME;
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), ".local", "share"), "kiln");
}

export function defaultRunDir(env: NodeJS.ProcessEnv, uid: number): string {
  if (uid === 0) return "/run/kiln";
  return join(env.XDG_RUNTIME_DIR || join(homedir(), ".cache"), "kiln");
}

/** Reads KILN_* variables (and overrides from the command line) into a validated Config. */
export function loadConfig(env: NodeJS.ProcessEnv, overrides: Partial<Config> = {}): Config {
  const uid = process.getuid?.() ?? 1000;
  const raw = {
    dataDir: env.KILN_DATA_DIR || defaultDataDir(env, uid),
    projectDir: env.KILN_PROJECT_DIR || defaultProjectDir(),
    runDir: env.KILN_RUN_DIR || defaultRunDir(env, uid),
    nixStore: env.KILN_NIX_STORE || undefined,
    nixBinDir: env.KILN_NIX_BIN_DIR || undefined,
    logLevel: env.KILN_LOG_LEVEL || undefined,
    buildCores: env.KILN_BUILD_CORES ? Number(env.KILN_BUILD_CORES) : undefined,
    testDynoPause: env.KILN_TEST_DYNO_PAUSE || undefined,
    adminToken: env.KILN_ADMIN_TOKEN || undefined,
    platformUrl: env.KILN_PLATFORM_URL || undefined,
    platformToken: env.KILN_PLATFORM_TOKEN || undefined,
    detectIn: env.KILN_DETECT_IN || undefined,
    bootstrapSilenceSeconds: env.KILN_BOOTSTRAP_SILENCE_SECONDS
      ? Number(env.KILN_BOOTSTRAP_SILENCE_SECONDS)
      : undefined,
    testFailStage: env.KILN_TEST_FAIL_STAGE || undefined,
    server: env.KILN_SERVER || undefined,
    token: env.KILN_TOKEN || undefined,
    clientConfigFile: join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "kiln", "client.json"),
    toolsName: env.KILN_RELEASE_VERSION ? `kiln-tools-${env.KILN_RELEASE_VERSION}` : undefined,
    fetchAllow: env.KILN_FETCH_ALLOW
      ? env.KILN_FETCH_ALLOW.split(",").map((o) => o.trim().replace(/\/+$/, ""))
      : undefined,
    quotas: stripUndefined({
      appDynos: numberOr(env.KILN_QUOTA_APP_DYNOS),
      userDynos: numberOr(env.KILN_QUOTA_USER_DYNOS),
      appBuilds: numberOr(env.KILN_QUOTA_APP_BUILDS),
      userBuilds: numberOr(env.KILN_QUOTA_USER_BUILDS),
    }),
    buildSize: env.KILN_BUILD_SIZE || undefined,
    buildTimeoutSeconds: env.KILN_BUILD_TIMEOUT ? Number(env.KILN_BUILD_TIMEOUT) : undefined,
    buildLockdown: env.KILN_BUILD_LOCKDOWN || undefined,
    maxUnpackedSourceBytes: numberOr(env.KILN_MAX_UNPACKED_SOURCE_BYTES),
    maxSourceEntries: numberOr(env.KILN_MAX_SOURCE_ENTRIES),
    maxBuildLogBytes: numberOr(env.KILN_MAX_BUILD_LOG_BYTES),
    builderId: env.KILN_BUILDER_ID || undefined,
    cachePublic: env.KILN_CACHE_PUBLIC
      ? env.KILN_CACHE_PUBLIC === "1" || env.KILN_CACHE_PUBLIC === "true"
      : undefined,
    builders: env.KILN_BUILDERS || undefined,
    remoteOnly: env.KILN_REMOTE_ONLY
      ? env.KILN_REMOTE_ONLY === "1" || env.KILN_REMOTE_ONLY === "true"
      : undefined,
    substituters: words(env.KILN_SUBSTITUTERS),
    trustedKeys: words(env.KILN_TRUSTED_KEYS),
    netrcFile: env.KILN_NETRC_FILE || undefined,
    ...stripUndefined(overrides),
  };
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    throw new KilnError({
      code: "invalid_config",
      message: `invalid kiln configuration: ${describeIssues(parsed.error)}`,
      hint: "check the KILN_* environment variables and the command-line flags",
    });
  }
  return parsed.data;
}

const words = (v: string | undefined) => (v?.trim() ? v.trim().split(/\s+/) : undefined);

const numberOr = (v: string | undefined) => (v ? Number(v) : undefined);

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
