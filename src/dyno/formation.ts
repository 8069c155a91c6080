/**
 * Keeps each app's declared dynos running: for its current release, `quantity` supervised dynos of
 * each process type. A new release rolls them: the new dynos start first and the old ones stop only
 * once every new dyno is up (web: listening; no request lost for a web app that binds quickly). A
 * release whose dynos crash or never come up fails: they are stopped, the old ones keep running,
 * and the failure is reported (the app's log, `failedRoll`, the API's dyno list); a formation
 * change starts or stops the difference. Crash restarts are the supervisors' job (their backoff
 * starts fresh with each release, since each release gets new supervisors).
 */
import type { Logger } from "../log/logger.js";
import type { Nix } from "../nix/driver.js";
import type { RunnableSlug } from "../slug/runnable.js";
import type { FormationEntry } from "../store/formation.js";
import type { Release } from "../store/releases.js";
import { openAppLog } from "./logs.js";
import { type DynoRuntime, launchDyno } from "./runtime.js";
import type { DynoRecord } from "./state.js";
import type { Supervised } from "./supervisor.js";

export interface ManagedDyno {
  name: string;
  type: string;
  releaseVersion: number;
  supervised: Supervised;
}

/** A new web dyno binds within the supervisor's boot timeout (60 s) or crashes with R10 first. */
const UP_TIMEOUT_MS = 90_000;

export interface RollFailure {
  /** The release that could not start. */
  version: number;
  reason: string;
  at: string;
}

export interface FormationManager {
  /** The app's last failed roll (its old release kept running), until a roll succeeds. */
  failedRoll(app: string): RollFailure | undefined;
  /** Brings the app's dynos to `formation` on `release` (rolling when the release changed). */
  apply(app: string, release: Release | undefined, formation: FormationEntry[]): Promise<void>;
  /** Relay sockets of the app's web dynos that are up, for the router. */
  webSockets(app: string): string[];
  dynos(app: string): ManagedDyno[];
  /** A one-off dyno on `release`, its output lines to `onLine`; never restarted. */
  runOnce(
    app: string,
    release: Release,
    command: string,
    onLine: (line: string) => void,
  ): Promise<{ code: number | null; reason: string }>;
  /** Restarts one dyno (by name) or all of the app's. */
  restart(app: string, name?: string): Promise<number>;
  stopAll(): Promise<void>;
}

export function createFormationManager(deps: {
  rt: DynoRuntime;
  nix: Nix;
  log: Logger;
  /** Each state change of a dyno the formation runs (for the control plane's records). */
  onDyno?: (app: string, release: Release, rec: DynoRecord) => void;
}): FormationManager {
  // `dynos` serve the current release; `incoming` are a new release's, starting during a roll.
  const byApp = new Map<
    string,
    { release: Release | undefined; dynos: ManagedDyno[]; incoming: ManagedDyno[] }
  >();
  // The last roll of each app that failed (its release could not start), until one succeeds.
  const failures = new Map<string, RollFailure>();
  // One apply at a time per app, in order.
  const chains = new Map<string, Promise<void>>();

  const slugOf = (app: string, r: Release): RunnableSlug => ({
    app,
    file: r.slugPath?.startsWith("/nix/store/") ? deps.nix.realPath(r.slugPath) : (r.slugPath ?? ""),
    sha256: r.slugSha256 ?? "",
    processTypes: r.processTypes,
    // The release's config is complete (buildpack defaults and the app's vars), so it is the user layer.
    configVars: {},
  });

  const start = async (
    app: string,
    r: Release,
    type: string,
    index: number,
    size: string,
  ): Promise<ManagedDyno> => {
    const supervised = await launchDyno(deps.rt, {
      slug: slugOf(app, r),
      type,
      name: `${type}.${index}`,
      configVars: r.config,
      releaseVersion: r.version,
      size,
      log: await openAppLog(deps.rt.dataDir, app),
      restart: { initialDelayMs: 10_000, maxDelayMs: 300_000, stableMs: 600_000 },
      ...(deps.onDyno ? { onRecord: (rec: DynoRecord) => deps.onDyno?.(app, r, rec) } : {}),
    });
    return { name: `${type}.${index}`, type, releaseVersion: r.version, supervised };
  };

  /**
   * Resolves once `d` is up (listening, for web), or with why not: it crashed or could not start
   * before it was ever up, or it was still starting after `timeoutMs`.
   */
  const waitUp = async (d: ManagedDyno, timeoutMs: number): Promise<string | undefined> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const r = d.supervised.record();
      if (r.state === "up") return undefined;
      if (r.state === "crashed" || r.state === "down")
        return `${d.name} ${r.lastExit ? r.lastExit.reason : "could not start"}`;
      await new Promise((res) => setTimeout(res, 50));
    }
    return `${d.name} was not up within ${timeoutMs / 1000} s`;
  };
  /** Waits for every one of `fresh`; the first reason one of them is not up, if any. */
  const allUp = async (fresh: ManagedDyno[]) =>
    (await Promise.all(fresh.map((d) => waitUp(d, UP_TIMEOUT_MS)))).find((r) => r !== undefined);
  const say = async (app: string, line: string) => {
    await (await openAppLog(deps.rt.dataDir, app)).write("kiln[release]", line);
  };

  /** `fresh` takes `old`'s place once it is up; if it never is, it goes and `old` stays. */
  const replace = async (app: string, old: ManagedDyno, fresh: ManagedDyno) => {
    const cur = byApp.get(app);
    if (!cur) return;
    cur.incoming.push(fresh);
    const why = await waitUp(fresh, UP_TIMEOUT_MS);
    cur.incoming = cur.incoming.filter((x) => x !== fresh);
    if (why) {
      await fresh.supervised.stop();
      await say(app, `Replacing ${old.name} failed: ${why}; the running one stays`);
      return;
    }
    cur.dynos = cur.dynos.map((x) => (x === old ? fresh : x));
    await old.supervised.stop();
  };

  const doApply = async (app: string, release: Release | undefined, formation: FormationEntry[]) => {
    const cur = byApp.get(app) ?? { release: undefined, dynos: [], incoming: [] };
    byApp.set(app, cur);
    if (!release?.slugPath) {
      await Promise.all(cur.dynos.map((d) => d.supervised.stop()));
      cur.dynos = [];
      cur.release = release;
      return;
    }
    const wanted = formation.filter((f) => f.quantity > 0 && release.processTypes[f.type] !== undefined);
    if (cur.release?.id !== release.id) {
      // Rolling: the new generation first; the old one goes only once every new dyno is up.
      const fresh: ManagedDyno[] = [];
      cur.incoming = fresh;
      for (const f of wanted)
        for (let i = 1; i <= f.quantity; i++) fresh.push(await start(app, release, f.type, i, f.size));
      const why = await allUp(fresh);
      if (why && cur.dynos.length === 0) {
        // Nothing older to keep serving: these are all there is, and their supervisors keep
        // restarting them (with backoff), as for any crash.
        failures.set(app, { version: release.version, reason: why, at: new Date().toISOString() });
        await say(app, `Release v${release.version}: ${why}; no older dyno runs, so it keeps restarting`);
      } else if (why) {
        // The release cannot run: its dynos go, the old ones keep serving.
        cur.incoming = [];
        await Promise.all(fresh.map((d) => d.supervised.stop()));
        const failure = { version: release.version, reason: why, at: new Date().toISOString() };
        failures.set(app, failure);
        const still = cur.release ? `v${cur.release.version} keeps running` : "no release is running";
        await say(app, `Release v${release.version} failed: ${why}; ${still}`);
        deps.log.warn({ app, release: release.version, reason: why }, "release failed to start");
        return;
      }
      if (!why) failures.delete(app);
      const old = cur.dynos;
      cur.dynos = fresh;
      cur.incoming = [];
      cur.release = release;
      await Promise.all(old.map((d) => d.supervised.stop()));
      deps.log.info({ app, release: release.version, dynos: fresh.length }, "formation rolled");
      return;
    }
    // Same release: start or stop the difference, type by type.
    for (const f of formation) {
      const mine = cur.dynos.filter((d) => d.type === f.type);
      const want = wanted.find((w) => w.type === f.type)?.quantity ?? 0;
      for (let i = mine.length + 1; i <= want; i++)
        cur.dynos.push(await start(app, release, f.type, i, f.size));
      const extra = mine.slice(want);
      cur.dynos = cur.dynos.filter((d) => !extra.includes(d));
      await Promise.all(extra.map((d) => d.supervised.stop()));
      // A new size: replace the kept dynos one by one (each new one up before its old one stops).
      for (const d of mine.slice(0, want)) {
        if (d.supervised.record().size === f.size) continue;
        const fresh = await start(app, release, d.type, Number(d.name.split(".")[1] ?? 1), f.size);
        await replace(app, d, fresh);
      }
    }
  };

  return {
    failedRoll: (app) => failures.get(app),
    apply(app, release, formation) {
      const next = (chains.get(app) ?? Promise.resolve()).then(() => doApply(app, release, formation));
      chains.set(
        app,
        next.catch((err) => deps.log.error({ app, err }, "formation change failed")),
      );
      return next;
    },
    webSockets(app) {
      // A rolling release's new web dynos take traffic as soon as they listen, next to the old ones.
      const a = byApp.get(app);
      return [...(a?.dynos ?? []), ...(a?.incoming ?? [])]
        .filter((d) => d.type === "web" && d.supervised.record().state === "up")
        .map((d) => d.supervised.current()?.relay?.socket)
        .filter((s): s is string => !!s);
    },
    dynos: (app) => [...(byApp.get(app)?.dynos ?? []), ...(byApp.get(app)?.incoming ?? [])],
    async runOnce(app, release, command, onLine) {
      const log = await openAppLog(deps.rt.dataDir, app);
      const d = await launchDyno(deps.rt, {
        slug: slugOf(app, release),
        command,
        configVars: release.config,
        log,
        restart: false,
      });
      const name = d.record().name;
      const unsubscribe = log.subscribe((l) => {
        if (l.src === `app[${name}]`) onLine(l.line);
      });
      try {
        const exit = await d.done;
        return { code: exit?.code ?? null, reason: exit?.reason ?? "ended" };
      } finally {
        unsubscribe();
      }
    },
    async restart(app, name) {
      const cur = byApp.get(app);
      if (!cur?.release) return 0;
      const targets = cur.dynos.filter((d) => !name || d.name === name);
      for (const d of targets) {
        const size = d.supervised.record().size;
        const index = Number(d.name.split(".")[1] ?? 1);
        await replace(app, d, await start(app, cur.release, d.type, index, size));
      }
      return targets.length;
    },
    async stopAll() {
      await Promise.all(
        [...byApp.values()].flatMap((a) => [...a.dynos, ...a.incoming].map((d) => d.supervised.stop())),
      );
      byApp.clear();
    },
  };
}
