/**
 * Keeps one dyno running: starts it, declares it up when it listens on $PORT (web) or at once
 * (other types), kills it when a web process does not bind within the boot timeout (Heroku's R10),
 * and restarts it after a crash with exponential backoff (10 s doubling to 5 min, as Kubernetes'
 * CrashLoopBackOff) that resets once a run has been stable. One-off dynos are never restarted.
 * Every transition is logged to the app's log and written to the dyno's state record.
 */
import { randomBytes } from "node:crypto";
import { type DynoExit, type DynoSpec, type RunningDyno, startDyno } from "./dyno.js";
import type { AppLog } from "./logs.js";
import { processStartTime } from "./procfs.js";
import { type DynoRecord, type DynoStateName, removeDynoRecord, writeDynoRecord } from "./state.js";

export interface RestartPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  /** A run at least this long resets the backoff. */
  stableMs: number;
}

export const DEFAULT_RESTART: RestartPolicy = {
  initialDelayMs: 10_000,
  maxDelayMs: 300_000,
  stableMs: 600_000,
};
export const DEFAULT_BOOT_TIMEOUT_MS = 60_000;
export const DEFAULT_STOP_TIMEOUT_MS = 30_000;

export interface SuperviseOptions {
  dyno: Omit<DynoSpec, "id" | "onOutput" | "beforeSpawn">;
  type: string;
  sizeName: string;
  slugSha256: string;
  dataDir: string;
  log: AppLog;
  /** false for one-off dynos. */
  restart: RestartPolicy | false;
  bootTimeoutMs?: number;
  stopTimeoutMs?: number;
  url?: string;
  /** Each time a run is up (listening, for web). */
  onUp?: (d: RunningDyno) => void;
  /** Every time the record changes (the control plane keeps it in its database). */
  onRecord?: (rec: DynoRecord) => void;
}

export interface Supervised {
  record(): DynoRecord;
  current(): RunningDyno | undefined;
  /** Stops the dyno for good (SIGTERM, then SIGKILL after the stop timeout). */
  stop(): Promise<void>;
  /** Resolves with the last run's exit once the supervisor is done (stopped, or a one-off ended). */
  done: Promise<DynoExit | undefined>;
}

/** The delay before restart number `crashes` (1-based) in a row. */
export function backoffDelay(policy: RestartPolicy, crashes: number): number {
  return Math.min(policy.initialDelayMs * 2 ** Math.max(0, crashes - 1), policy.maxDelayMs);
}

export async function superviseDyno(opts: SuperviseOptions): Promise<Supervised> {
  const bootTimeout = opts.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS;
  const stopTimeout = opts.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  const name = opts.dyno.name;
  const say = (msg: string) => opts.log.write(`kiln[${name}]`, msg);
  const baseId = `${opts.dyno.app}-${name}-${randomBytes(4).toString("hex")}`;
  const rec: DynoRecord = {
    id: baseId,
    app: opts.dyno.app,
    name,
    type: opts.type,
    command: opts.dyno.command,
    size: opts.sizeName,
    uid: opts.dyno.uid,
    slugSha256: opts.slugSha256,
    state: "starting",
    since: new Date().toISOString(),
    supervisor: { pid: process.pid, ...(await startTimeOf(process.pid)) },
    cgroupDirs: [],
    ...(opts.url ? { url: opts.url } : {}),
    restarts: 0,
    limits: [],
  };
  let writes = Promise.resolve();
  /** Rejects when the record could not be written (the queue goes on). */
  const persistOrThrow = () => {
    const snapshot = structuredClone(rec);
    opts.onRecord?.(snapshot);
    const write = writes.then(() => writeDynoRecord(opts.dataDir, snapshot));
    writes = write.catch(() => {});
    return write;
  };
  const persist = () => persistOrThrow().catch(() => {});
  const setState = (state: DynoStateName) => {
    if (rec.state !== state) say(`State changed from ${rec.state} to ${state}`);
    rec.state = state;
    rec.since = new Date().toISOString();
  };

  let running: RunningDyno | undefined;
  let stopping = false;
  let wake: () => void = () => {};

  const loop = async (): Promise<DynoExit | undefined> => {
    let crashes = 0;
    let last: DynoExit | undefined;
    for (let run = 1; !stopping; run++) {
      setState("starting");
      say(`Starting process with command \`${opts.dyno.command}\``);
      const id = run === 1 ? baseId : `${baseId}-${run}`;
      try {
        running = await startDyno({
          ...opts.dyno,
          id,
          onOutput: (_stream, line) => opts.log.write(`app[${name}]`, line),
          // Nothing of the run exists before its record says where it will be.
          beforeSpawn: async (r) => {
            Object.assign(rec, { runId: r.runId, runDir: r.runDir, cgroupDirs: r.cgroupDirs });
            for (const k of ["pid", "pidStartTime", "initPid", "initStartTime"] as const) delete rec[k];
            await persistOrThrow();
          },
        });
      } catch (err) {
        const reason = `failed to start: ${(err as Error).message}`;
        say(`Failed to start: ${(err as Error).message}`);
        clearRun();
        rec.lastExit = { code: null, oom: false, reason, at: new Date().toISOString() };
        last = { code: null, oom: false, reason };
        if (!opts.restart || stopping) {
          setState("down");
          await persist();
          if (!opts.restart) {
            await removeDynoRecord(opts.dataDir, rec.id);
            throw err;
          }
          break;
        }
        crashes++;
        await crashed(backoffDelay(opts.restart, crashes), crashes);
        continue;
      }
      const d = running;
      // stop() came while the dyno was starting: it had nothing to stop yet, so stop it here.
      if (stopping) await d.stop(stopTimeout);
      Object.assign(rec, {
        runId: id,
        pid: d.pid,
        initPid: d.initPid,
        ...(d.pidStartTime !== undefined ? { pidStartTime: d.pidStartTime } : {}),
        ...(d.initStartTime !== undefined ? { initStartTime: d.initStartTime } : {}),
        cgroupDirs: d.cgroupDirs,
        limits: d.limits,
      });
      await persist();

      if (d.spec.port !== undefined) {
        const listening = await d.waitListening(bootTimeout);
        if (!listening && !stopping && !(await isSettled(d.exited))) {
          say(
            `Error R10 (Boot timeout) -> Web process failed to bind to $PORT within ${bootTimeout / 1000} seconds of launch`,
          );
          say("Stopping process with SIGKILL");
          await d.kill();
        } else if (listening) {
          setState("up");
          await persist();
          opts.onUp?.(d);
        }
      } else {
        setState("up");
        await persist();
        opts.onUp?.(d);
      }

      const exit = await d.exited;
      last = exit;
      running = undefined;
      const ranMs = Date.now() - d.startedAt.getTime();
      rec.lastExit = {
        code: exit.code,
        ...(exit.signal ? { signal: exit.signal } : {}),
        oom: exit.oom,
        reason: exit.reason,
        at: new Date().toISOString(),
      };
      clearRun();
      if (exit.oom)
        say("Error R15 (Memory quota vastly exceeded): the kernel's OOM killer stopped the process");
      say(`Process ${exit.reason}`);
      if (stopping || !opts.restart) break;
      crashes = opts.restart && ranMs >= opts.restart.stableMs ? 1 : crashes + 1;
      await crashed(backoffDelay(opts.restart, crashes), crashes);
    }
    setState("down");
    await persist();
    await removeDynoRecord(opts.dataDir, rec.id);
    return last;
  };

  const clearRun = () => {
    for (const k of ["pid", "pidStartTime", "initPid", "initStartTime", "runId", "runDir"] as const)
      delete rec[k];
    rec.cgroupDirs = [];
  };
  /** Every crash, whether the run ended or never started: counted, announced, waited out. */
  const crashed = async (delay: number, inARow: number) => {
    rec.restarts++;
    rec.nextRestartAt = new Date(Date.now() + delay).toISOString();
    setState("crashed");
    say(`Restarting in ${formatDelay(delay)} (crash ${inARow} in a row)`);
    await persist();
    await pause(delay);
    delete rec.nextRestartAt;
  };

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });

  await persist();
  const done = loop();
  return {
    record: () => structuredClone(rec),
    current: () => running,
    async stop() {
      if (stopping) return void (await done.catch(() => undefined));
      stopping = true;
      wake();
      const d = running;
      if (d) {
        setState("stopping");
        await persist();
        say(`Stopping all processes with SIGTERM`);
        await d.stop(stopTimeout);
      }
      await done.catch(() => undefined);
    },
    done,
  };
}

async function isSettled(p: Promise<unknown>): Promise<boolean> {
  return Promise.race([p.then(() => true), new Promise<boolean>((r) => setImmediate(() => r(false)))]);
}

async function startTimeOf(pid: number): Promise<{ startTime?: number }> {
  const t = await processStartTime(pid);
  return t === undefined ? {} : { startTime: t };
}

function formatDelay(ms: number): string {
  return ms >= 60_000
    ? `${(ms / 60_000).toFixed(ms % 60_000 ? 1 : 0)} min`
    : `${(ms / 1000).toFixed(ms % 1000 ? 1 : 0)} s`;
}
