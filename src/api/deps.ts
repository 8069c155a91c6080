/** What the API's routes are built from (given by the composition, src/serve/controlPlane.ts). */
import type { FastifyPluginAsync, RawServerDefault } from "fastify";
import type { BuildLogs } from "../builds/buildLog.js";
import type { BuildQueue } from "../builds/queue.js";
import type { ImageDeps } from "../image/export.js";
import type { Logger } from "../log/logger.js";
import type { Nix } from "../nix/driver.js";
import type { CheckRunner } from "../repro/service.js";
import type { Db } from "../store/db.js";
import type { PlatformHandoff } from "./platformHandoff.js";
import type { Quotas } from "./tenancy.js";
import type * as wire from "./wire.js";
import type { ZodTypeProvider } from "./zod.js";

export interface ApiDeps {
  db: Db;
  log: Logger;
  dataDir: string;
  queue: BuildQueue;
  logs: BuildLogs;
  maxSourceBytes: number;
  /** A source's bounds once unpacked (default: the configuration's defaults). */
  unpacked?: SourceBounds;
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
  cache?: { nix?: Nix; cachePublic?: boolean };
  /** Builds exported as OCI images (src/image), when this server has their store. */
  image?: ImageDeps;
}

/** Bytes and entries (directories included) a source may unpack to. */
export interface SourceBounds {
  maxBytes: number;
  maxEntries: number;
}

/** ApiDeps with its defaults filled in: what every route plugin receives as `opts.deps`. */
export type RouteDeps = ApiDeps & {
  quotas: Quotas;
  unpacked: SourceBounds;
  /** Where uploaded sources wait for their build. */
  sourcesDir: string;
};

/**
 * A file of routes: a fastify plugin registered with `{ deps }`, its instance typed for zod
 * schemas (src/api/zod.ts). src/api/server.ts lists them.
 */
export type RoutePlugin = FastifyPluginAsync<{ deps: RouteDeps }, RawServerDefault, ZodTypeProvider>;

export interface DynoControl {
  /** Bring the app's dynos to its current release and formation (in the background). */
  reconcile(appId: string): void;
  list(appName: string): wire.Dyno[];
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
