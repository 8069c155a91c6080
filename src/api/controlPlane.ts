/**
 * `kiln serve`'s composition: the state file, crash recovery, the admin token, the build queue and
 * the API on a real socket.
 */
import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { createBuildLogs } from "../builds/buildLog.js";
import { createBuildQueue } from "../builds/queue.js";
import { runQueuedBuild } from "../builds/service.js";
import type { Config } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import type { Nix } from "../nix/driver.js";
import { DEFAULT_MAX_SOURCE_BYTES } from "../source/upload.js";
import { getApp } from "../store/apps.js";
import { endBuild, failInterruptedBuilds, pendingBuilds } from "../store/builds.js";
import { type Db, openStore, STORE_FILE } from "../store/db.js";
import { createToken, hasAdminToken } from "../store/tokens.js";
import { createApi } from "./server.js";

export const DEFAULT_BUILD_TIMEOUT_MS = 15 * 60 * 1000;

export interface ControlPlaneOptions {
  host: string;
  port: number;
  concurrency?: number;
  maxQueued?: number;
  buildTimeoutMs?: number;
  maxSourceBytes?: number;
}

export interface ControlPlane {
  url: string;
  db: Db;
  api: FastifyInstance;
  /** Set only at the very first start: the admin token, also written to `adminTokenFile`. */
  adminToken: string | undefined;
  adminTokenFile: string;
  recovered: { interrupted: string[]; requeued: number };
  close(): Promise<void>;
}

export async function startControlPlane(
  deps: { config: Config; log: Logger; nix: Nix },
  opts: ControlPlaneOptions,
): Promise<ControlPlane> {
  const db = openStore(join(deps.config.dataDir, STORE_FILE));
  const logs = createBuildLogs(deps.config.dataDir);
  const interrupted = failInterruptedBuilds(db);
  const adminTokenFile = join(deps.config.dataDir, "admin-token");
  let adminToken: string | undefined;
  if (!hasAdminToken(db)) {
    adminToken = createToken(db, { name: "admin", admin: true }).token;
    // Only root (or the data directory's owner) can read it; the database keeps only its hash.
    writeFileSync(adminTokenFile, `${adminToken}\n`, { mode: 0o600 });
  }
  const queue = createBuildQueue({
    concurrency: opts.concurrency ?? availableParallelism(),
    maxQueued: opts.maxQueued ?? 100,
    timeoutMs: opts.buildTimeoutMs ?? DEFAULT_BUILD_TIMEOUT_MS,
    run: (job, signal) => runQueuedBuild({ ...deps, db, logs }, job, getApp(db, job.appId).name, signal),
    onSuperseded: (old, by) => endBuild(db, old.buildId, "cancelled", `superseded by build ${by.buildId}`),
  });
  // Accepted but never started before the last stop: they run now, in their original order.
  const pending = pendingBuilds(db);
  for (const b of pending) queue.submit({ buildId: b.id, appId: b.appId });
  const api = createApi({
    db,
    log: deps.log,
    dataDir: deps.config.dataDir,
    queue,
    logs,
    maxSourceBytes: opts.maxSourceBytes ?? DEFAULT_MAX_SOURCE_BYTES,
  });
  const address = await api.listen({ host: opts.host, port: opts.port });
  return {
    url: address,
    db,
    api,
    adminToken,
    adminTokenFile,
    recovered: { interrupted, requeued: pending.length },
    async close() {
      await api.close();
      // Running builds end as failed ("interrupted: the server stopped"); waiting ones stay pending.
      queue.stopAll("interrupted: the server stopped");
      await queue.idle();
      db.close();
    },
  };
}
