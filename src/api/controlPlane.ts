/**
 * `kiln serve`'s composition: the state file, crash recovery, the admin token, the build queue and
 * the API on a real socket.
 */
import { rmSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { createBuildLogs } from "../builds/buildLog.js";
import { createBuildQueue } from "../builds/queue.js";
import { runQueuedBuild } from "../builds/service.js";
import type { Config } from "../config/config.js";
import { createFormationManager, type FormationManager } from "../dyno/formation.js";
import { prepareDynoRuntime } from "../dyno/runtime.js";
import type { Logger } from "../log/logger.js";
import type { Nix } from "../nix/driver.js";
import { createRouter } from "../router/router.js";
import { DEFAULT_MAX_SOURCE_BYTES } from "../source/upload.js";
import { getApp, listApps } from "../store/apps.js";
import { endBuild, failInterruptedBuilds, getBuild, pendingBuilds } from "../store/builds.js";
import { type Db, openStore, STORE_FILE, stmt } from "../store/db.js";
import { clearDynos, deleteDyno, upsertDyno } from "../store/dynos.js";
import { getFormation } from "../store/formation.js";
import { currentRelease, type Release } from "../store/releases.js";
import { addToken, createToken, hasAdminToken, verifyToken } from "../store/tokens.js";
import { createApi, type DynoControl } from "./server.js";

export const DEFAULT_BUILD_TIMEOUT_MS = 15 * 60 * 1000;

export interface ControlPlaneOptions {
  host: string;
  port: number;
  /** Run dynos and route to them (needs root); false: builds and records only. */
  dynos?: boolean;
  routerHost?: string;
  routerPort?: number;
  /** Apps are routed as <app>.<domain>. */
  domain?: string;
  /** An admin token from configuration instead of a generated one. */
  adminToken?: string;
  concurrency?: number;
  maxQueued?: number;
  buildTimeoutMs?: number;
  maxSourceBytes?: number;
}

export interface ControlPlane {
  url: string;
  routerUrl: string | undefined;
  formation: FormationManager | undefined;
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
  if (opts.adminToken) {
    // Given by configuration (KILN_ADMIN_TOKEN): accepted from now on, never printed.
    if (!verifyToken(db, opts.adminToken))
      addToken(db, { name: "admin (configured)", admin: true, token: opts.adminToken });
  } else if (!hasAdminToken(db)) {
    adminToken = createToken(db, { name: "admin", admin: true }).token;
    // Only root (or the data directory's owner) can read it; the database keeps only its hash.
    writeFileSync(adminTokenFile, `${adminToken}\n`, { mode: 0o600 });
  }
  // Dynos: the formation of every app follows its releases; the router reaches their web dynos.
  let formation: FormationManager | undefined;
  let dynoControl: DynoControl | undefined;
  if (opts.dynos !== false) {
    const rt = await prepareDynoRuntime(deps);
    const stale = clearDynos(db);
    if (stale)
      deps.log.warn(
        { dynos: stale },
        "the previous server's dynos are gone; the formation starts them again",
      );
    const fm = createFormationManager({
      rt,
      nix: deps.nix,
      log: deps.log,
      onDyno: (_app, release, rec) => {
        try {
          if (rec.state === "down") deleteDyno(db, rec.id);
          else
            upsertDyno(db, {
              id: rec.id,
              appId: release.appId,
              releaseId: release.id,
              name: rec.name,
              type: rec.type,
              state: rec.state,
              restarts: rec.restarts,
              lastExit: rec.lastExit?.reason ?? null,
            });
        } catch {
          // the app (and with it its dyno rows) was deleted meanwhile
        }
      },
    });
    formation = fm;
    const reconcile = (appId: string) => {
      const app = getApp(db, appId);
      void fm.apply(app.name, currentRelease(db, app.id), getFormation(db, app.id)).catch(() => {});
    };
    dynoControl = {
      reconcile,
      list: (appName) =>
        fm.dynos(appName).map((d) => {
          const r = d.supervised.record();
          return {
            name: d.name,
            type: d.type,
            state: r.state,
            release: d.releaseVersion,
            since: r.since,
            restarts: r.restarts,
            last_exit: r.lastExit?.reason ?? null,
          };
        }),
      restart: (appName, name) => fm.restart(appName, name),
      runOnce: (appName, command, onLine) => {
        const app = getApp(db, appName);
        const release = currentRelease(db, app.id);
        if (!release) throw new Error(`${appName} has no release`);
        return fm.runOnce(appName, release, command, onLine);
      },
      all: () => listApps(db).flatMap((a) => fm.dynos(a.name).map((d) => d.supervised.record())),
    };
  }
  const queue = createBuildQueue({
    concurrency: opts.concurrency ?? availableParallelism(),
    maxQueued: opts.maxQueued ?? 100,
    timeoutMs: opts.buildTimeoutMs ?? DEFAULT_BUILD_TIMEOUT_MS,
    run: (job, signal) =>
      runQueuedBuild(
        {
          ...deps,
          db,
          logs,
          ...(dynoControl ? { onRelease: (r: Release) => dynoControl?.reconcile(r.appId) } : {}),
        },
        job,
        getApp(db, job.appId).name,
        signal,
      ),
    onSuperseded: (old, by) => {
      endBuild(db, old.buildId, "cancelled", `superseded by build ${by.buildId}`);
      // It will never run: its uploaded source goes now.
      rmSync(getBuild(db, old.buildId).sourcePath, { force: true });
    },
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
    ...(dynoControl ? { dynos: dynoControl } : {}),
    webUrl: (app) => (routerUrl ? `http://${app}.${domain}:${new URL(routerUrl).port}/` : ""),
  });
  let router: FastifyInstance | undefined;
  let routerUrl: string | undefined;
  const domain = opts.domain ?? "localhost";
  if (formation) {
    const fm = formation;
    router = await createRouter({
      domain,
      log: deps.log,
      webSockets: (app) => fm.webSockets(app),
      appExists: (app) => !!stmt(db, "SELECT 1 FROM apps WHERE name = ?").get(app),
    });
    routerUrl = await router.listen({ host: opts.routerHost ?? opts.host, port: opts.routerPort ?? 0 });
  }
  const address = await api.listen({ host: opts.host, port: opts.port });
  if (formation) {
    // After a restart: every app's dynos back to its formation.
    for (const app of listApps(db)) dynoControl?.reconcile(app.id);
  }
  return {
    url: address,
    routerUrl,
    formation,
    db,
    api,
    adminToken,
    adminTokenFile,
    recovered: { interrupted, requeued: pending.length },
    async close() {
      await api.close();
      await router?.close();
      await formation?.stopAll();
      // Running builds end as failed ("interrupted: the server stopped"); waiting ones stay pending.
      queue.stopAll("interrupted: the server stopped");
      await queue.idle();
      db.close();
    },
  };
}
