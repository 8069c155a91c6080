/**
 * `kiln serve`'s composition: the state file, crash recovery, the admin token, the build queue and
 * the API on a real socket.
 */
import { chmodSync, chownSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { createPlatformHandoff } from "../api/platformHandoff.js";
import { buildApi, type DynoControl, type RoutePlugin } from "../api/server.js";
import type * as wire from "../api/wire.js";
import { createBuildLogs } from "../builds/buildLog.js";
import { createBuildQueue } from "../builds/queue.js";
import { runQueuedBuild } from "../builds/service.js";
import { type SweepReport, sweepBuildLeftovers } from "../builds/sweep.js";
import type { Config } from "../config/config.js";
import { dashboardRoutes } from "../dashboard/plugin.js";
import { createFormationManager, type FormationManager } from "../dyno/formation.js";
import { prepareDynoRuntime } from "../dyno/runtime.js";
import type { DynoGrant } from "../dyno/sandbox.js";
import { KilnError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { Nix } from "../nix/driver.js";
import { createCheckRunner } from "../repro/service.js";
import { createRouter } from "../router/router.js";
import { DEFAULT_MAX_SOURCE_BYTES } from "../source/upload.js";
import { getApp, listApps } from "../store/apps.js";
import { endBuild, failInterruptedBuilds, getBuild, pendingBuilds } from "../store/builds.js";
import { failInterruptedChecks } from "../store/checks.js";
import { type Db, openStore, STORE_FILE } from "../store/db.js";
import { clearDynos, deleteDyno, upsertDyno } from "../store/dynos.js";
import { getFormation } from "../store/formation.js";
import { currentRelease, type Release } from "../store/releases.js";
import { appNamed } from "../store/stats.js";
import { addToken, createToken, hasAdminToken, verifyToken } from "../store/tokens.js";

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
  /** What given apps alone are granted in their dynos (kiln hosted on itself: see src/bootstrap). */
  grants?: Record<string, DynoGrant>;
  /**
   * The API also on this Unix socket, owned by `uid` alone (mode 0600): the way in for the one app
   * granted it (the hosted control plane hands its releases over here).
   */
  socket?: { path: string; uid: number };
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
  /** What interrupted builds and torn writes had left, removed at this start. */
  swept: SweepReport;
  /** Brings an app's dynos in line with its current release and formation. */
  reconcile(appName: string): void;
  close(): Promise<void>;
}

/** The dashboard (src/dashboard) on the API's port, with its own session auth. */
const dashboard: RoutePlugin = async (api, { deps }) =>
  dashboardRoutes(api as unknown as FastifyInstance, deps);

export async function startControlPlane(
  deps: { config: Config; log: Logger; nix: Nix },
  opts: ControlPlaneOptions,
): Promise<ControlPlane> {
  const db = openStore(join(deps.config.dataDir, STORE_FILE));
  const logs = createBuildLogs(deps.config.dataDir, { maxBytes: deps.config.maxBuildLogBytes });
  const interrupted = failInterruptedBuilds(db);
  // With the interrupted builds failed, what they and torn writes left can go (see sweep.ts).
  const swept = await sweepBuildLeftovers(db, deps.config.dataDir);
  failInterruptedChecks(db);
  const checks = createCheckRunner({ ...deps, db });
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
    const rt = { ...(await prepareDynoRuntime(deps)), ...(opts.grants ? { grants: opts.grants } : {}) };
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
      list: (appName) => {
        const rows = fm.dynos(appName).map((d): wire.Dyno => {
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
        });
        // A release that could not start shows beside the dynos still serving the old one.
        const failed = fm.failedRoll(appName);
        if (failed)
          rows.push({
            name: `release.v${failed.version}`,
            type: "release",
            state: "failed",
            release: failed.version,
            since: failed.at,
            restarts: 0,
            last_exit: failed.reason,
          });
        return rows;
      },
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
  // Which tools built a release (the manifest records their NAR hash): what built this kiln.
  const builtWith = async (r: Release) => {
    const manifest = r.buildId ? getBuild(db, r.buildId).manifestPath : null;
    if (!manifest) return undefined;
    const m = JSON.parse(await readFile(manifest, "utf8")) as { tools?: { narHash?: string } };
    return m.tools?.narHash ? `tools ${m.tools.narHash}` : undefined;
  };
  // Hosted on a kiln platform (src/bootstrap): its dyno manager runs what this one releases.
  const { platformUrl, platformToken } = deps.config;
  const handoff =
    platformUrl && platformToken
      ? createPlatformHandoff({ url: platformUrl, token: platformToken })
      : undefined;
  const queue = createBuildQueue({
    concurrency: opts.concurrency ?? availableParallelism(),
    maxQueued: opts.maxQueued ?? 100,
    timeoutMs: opts.buildTimeoutMs ?? DEFAULT_BUILD_TIMEOUT_MS,
    // async: an app deleted while its build waited makes getApp throw; as a rejection the queue
    // frees the slot (thrown synchronously it escaped the queue's catch and held the slot for good).
    run: async (job, signal) =>
      runQueuedBuild(
        {
          ...deps,
          db,
          logs,
          onRelease: async (r: Release, say: (line: string) => void) => {
            dynoControl?.reconcile(r.appId);
            if (!handoff) return;
            const name = getApp(db, r.appId).name;
            try {
              say(
                `-----> Released on the platform as v${await handoff.release(name, r, await builtWith(r))}`,
              );
            } catch (err) {
              say(`-----> Could not hand release v${r.version} to the platform: ${(err as Error).message}`);
              deps.log.error({ app: name, err }, "release handoff failed");
            }
          },
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
  const api = buildApi(
    {
      db,
      log: deps.log,
      dataDir: deps.config.dataDir,
      queue,
      logs,
      maxSourceBytes: opts.maxSourceBytes ?? DEFAULT_MAX_SOURCE_BYTES,
      unpacked: { maxBytes: deps.config.maxUnpackedSourceBytes, maxEntries: deps.config.maxSourceEntries },
      fetchAllow: deps.config.fetchAllow,
      ...(dynoControl ? { dynos: dynoControl } : {}),
      ...(handoff ? { platform: handoff } : {}),
      checks,
      quotas: deps.config.quotas,
      cache: { nix: deps.nix, cachePublic: deps.config.cachePublic },
      image: { config: deps.config, nix: deps.nix, log: deps.log },
      webUrl: (app) => (routerUrl ? `http://${app}.${domain}:${new URL(routerUrl).port}/` : ""),
    },
    [dashboard],
  );
  let router: FastifyInstance | undefined;
  let routerUrl: string | undefined;
  const domain = opts.domain ?? "localhost";
  if (formation) {
    const fm = formation;
    router = await createRouter({
      domain,
      log: deps.log,
      webSockets: (app) => fm.webSockets(app),
      appExists: (app) => appNamed(db, app),
    });
  }
  let address: string;
  try {
    const r = router;
    if (r)
      routerUrl = await listenOn(
        {
          host: opts.routerHost ?? opts.host,
          port: opts.routerPort ?? 0,
          flag: "--router-port",
          what: "router",
        },
        (o) => r.listen(o),
      );
    address = await listenOn({ host: opts.host, port: opts.port, flag: "--port", what: "API" }, (o) =>
      api.listen(o),
    );
  } catch (err) {
    // Nothing was started yet (dynos start below): close what is open, so the process can end.
    await router?.close();
    await api.close();
    db.close();
    throw err;
  }
  // Listening: the builds still queued at the last stop run now (not before: a server that cannot
  // start must not start builds it would then abandon).
  for (const b of pending) queue.submit({ buildId: b.id, appId: b.appId });
  // The same HTTP server, fed connections from a Unix socket too.
  let socketServer: Server | undefined;
  if (opts.socket) {
    const { path, uid } = opts.socket;
    rmSync(path, { force: true });
    const server = createServer((conn) => api.server.emit("connection", conn));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
    chmodSync(path, 0o600);
    chownSync(path, uid, uid);
    socketServer = server;
  }
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
    swept,
    reconcile: (appName) => dynoControl?.reconcile(getApp(db, appName).id),
    async close() {
      await new Promise<void>((resolve) => (socketServer ? socketServer.close(() => resolve()) : resolve()));
      await api.close();
      await router?.close();
      await formation?.stopAll();
      // Running builds end as failed ("interrupted: the server stopped"); waiting ones stay pending.
      queue.stopAll("interrupted: the server stopped");
      await Promise.all([queue.idle(), checks.close()]);
      db.close();
    },
  };
}

/** Listens, turning the errors a user causes (a port in use, a privileged one) into what to do. */
async function listenOn(
  at: { host: string; port: number; flag: string; what: string },
  listen: (o: { host: string; port: number }) => Promise<string>,
): Promise<string> {
  try {
    return await listen({ host: at.host, port: at.port });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE")
      throw new KilnError({
        code: "port_in_use",
        message: `the ${at.what}'s port ${at.port} on ${at.host} is already in use`,
        hint: `stop whatever listens there (ss -ltnp 'sport = :${at.port}') or choose another port with ${at.flag}`,
      });
    if (code === "EACCES")
      throw new KilnError({
        code: "port_not_allowed",
        message: `the ${at.what} may not listen on port ${at.port} on ${at.host} (ports below 1024 need root)`,
        hint: `choose another port with ${at.flag}`,
      });
    if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND")
      throw new KilnError({
        code: "host_unavailable",
        message: `the ${at.what} cannot listen on ${at.host}: no such local address`,
        hint: "choose another address with --host",
      });
    throw err;
  }
}
