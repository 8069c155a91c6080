/**
 * One dyno run: record it, start the locked-down sandbox inside its cgroups, wire its network
 * before the app starts (a gate in the sandbox waits for this run's token), stream its output, tell
 * when it listens, stop it gracefully, and say exactly how it ended.
 */
import type { StdioOptions } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, chown, type FileHandle, mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import type { DynoSize } from "../config/dynoSizes.js";
import { KilnError } from "../errors.js";
import { forEachLine, type LongProcess, spawnProcess } from "../process/run.js";
import { type CgroupHost, createDynoCgroup, type DynoCgroup, dynoCgroupDirs, type Limit } from "./cgroups.js";
import { type Relay, startOutbound, startRelay } from "./network.js";
import { descendants, listensOn, processGroup, processStartTime, signalName } from "./procfs.js";
import {
  assertReachable,
  DYNO_FDS,
  type DynoGrant,
  dynoBwrapOptions,
  dynoLauncher,
  OUTBOUND_RESOLV_CONF,
} from "./sandbox.js";
import { pauseAt, type TestPause } from "./testPause.js";

export interface DynoSpec {
  /** Unique per run: names the cgroups and the run directory. */
  id: string;
  app: string;
  /** `web.1`, `worker.2`, `run.4821`. */
  name: string;
  command: string;
  /** The unpacked slug (bound at /app) and the run stack (bound at /). */
  slugDir: string;
  stackDir: string;
  uid: number;
  size: DynoSize;
  /** The whole environment the app sees. */
  env: Record<string, string>;
  /** The port inside the dyno that the relay forwards to (web dynos). */
  port?: number;
  /** Outbound network access (off by default: the dyno has loopback only). */
  outbound?: boolean;
  /** One-off dynos: the terminal's stdin/stdout/stderr instead of captured lines. */
  attach?: boolean;
  /** A promise back pauses that pipe until it settles (the app blocks on write: see logs.ts). */
  onOutput?: (stream: "stdout" | "stderr", line: string) => undefined | Promise<void>;
  /** Extra binds (and another stack) for the platform's own app; see DynoGrant. */
  grant?: DynoGrant;
  seccompFile: string;
  cgroups: CgroupHost;
  /** config.runDir: per-dyno directories with the relay's socket. */
  runDir: string;
  bwrap?: string;
  /** Names this kiln's cgroups and run directories (instance.ts). */
  instance: string;
  /** Called before anything is made or started: the supervisor writes the run into its record. */
  beforeSpawn?: (run: { runId: string; cgroupDirs: string[]; runDir: string }) => Promise<void>;
  /** Test-only: stop the start at one step (see testPause.ts). */
  testPause?: TestPause;
}

export interface DynoExit {
  code: number | null;
  signal?: string;
  oom: boolean;
  /** One phrase for people: "exited with code 1", "killed by SIGKILL: out of memory (512 MiB)". */
  reason: string;
}

export interface RunningDyno {
  spec: DynoSpec;
  /** Host pid of the launcher (bash → prlimit → setpriv → bwrap, one process). */
  pid: number;
  /** Host pid of the sandbox's pid 1. */
  initPid: number;
  /** Their start times (processStartTime): a pid reused later is not them. */
  pidStartTime?: number;
  initStartTime?: number;
  relay: Relay | undefined;
  limits: Limit[];
  cgroupDirs: string[];
  startedAt: Date;
  exited: Promise<DynoExit>;
  /** Resolves true once the app listens on its port, false if it exits or `timeoutMs` passes. */
  waitListening(timeoutMs: number): Promise<boolean>;
  /** SIGKILL to the whole dyno at once. */
  kill(): Promise<DynoExit>;
  /** SIGTERM to every process in the dyno, SIGKILL after `graceMs`; resolves when all is gone. */
  stop(graceMs: number): Promise<DynoExit>;
  memoryBytes(): Promise<number | undefined>;
}

const parseStatusDoc = (doc: unknown): { childPid?: number; exitCode?: number } => {
  if (typeof doc !== "object" || doc === null) return {};
  const d = doc as Record<string, unknown>;
  return {
    ...(typeof d["child-pid"] === "number" ? { childPid: d["child-pid"] } : {}),
    ...(typeof d["exit-code"] === "number" ? { exitCode: d["exit-code"] } : {}),
  };
};

export async function startDyno(spec: DynoSpec): Promise<RunningDyno> {
  const instanceRun = join(spec.runDir, spec.instance);
  const dynoRun = join(instanceRun, spec.id);
  const cgroupId = `${spec.instance}/${spec.id}`;
  // On disk before anything exists: whatever kiln leaves behind if it dies from here on, the next
  // kiln finds by this record (its cgroups, its run directory).
  await spec.beforeSpawn?.({
    runId: spec.id,
    cgroupDirs: dynoCgroupDirs(spec.cgroups, cgroupId),
    runDir: dynoRun,
  });
  await makeRunDirs([spec.runDir, instanceRun], dynoRun);
  const handles: FileHandle[] = [];
  let cgroup: DynoCgroup | undefined;
  let relay: Relay | undefined;
  let outbound: LongProcess | undefined;
  const cleanup = async () => {
    await relay?.stop().catch(() => {});
    outbound?.child.kill("SIGKILL");
    // Everything still in the dyno's cgroups (the relay's connections included) goes with them.
    await cgroup?.remove().catch(() => {});
    await rm(dynoRun, { recursive: true, force: true });
  };
  try {
    cgroup = await createDynoCgroup(spec.cgroups, cgroupId, spec.size);
    const cgroupDirs = cgroup.dirs;
    // The relay's socket directory belongs to the app's uid (the relay runs as it); root reaches in.
    await chown(dynoRun, spec.uid, spec.uid);
    const seccomp = await open(spec.seccompFile, "r");
    handles.push(seccomp);
    await assertReachable(spec.stackDir);
    await assertReachable(spec.slugDir);

    const stdio = sandboxStdio(spec, seccomp.fd);
    const launcher = dynoLauncher({
      uid: spec.uid,
      size: spec.size,
      command: spec.command,
      cgroupDirs,
      keepFds: stdio.length,
      ...(spec.bwrap ? { bwrap: spec.bwrap } : {}),
      ...(spec.testPause?.step === "cgroups"
        ? { pause: { marker: spec.testPause.marker, runId: spec.id } }
        : {}),
    });
    // This run's token: the gate in the sandbox runs the command only once it reads it.
    const token = randomBytes(16).toString("hex");
    const proc = spawnProcess(launcher.file, launcher.args, {
      env: { ...spec.env, KILN_GATE: token },
      stdio,
    });
    await pauseAt(spec.testPause, "spawned", { runId: spec.id, launcherPid: proc.pid });
    // The child has its own copies now.
    for (const h of handles.splice(0)) await h.close();
    const startedAt = new Date();
    const fds = proc.child.stdio as unknown as (Readable & Writable)[];
    const argsPipe = fds[DYNO_FDS.args] as Writable;
    const statusPipe = fds[DYNO_FDS.status] as Readable;
    const gatePipe = fds[DYNO_FDS.gate] as Writable;
    const options = dynoBwrapOptions({
      uid: spec.uid,
      hostname: spec.name,
      size: spec.size,
      stackDir: spec.stackDir,
      slugDir: spec.slugDir,
      ...(spec.grant ? { grant: spec.grant } : {}),
      outbound: !!spec.outbound,
    });
    argsPipe.end(`${options.join("\0")}\0`);
    if (spec.outbound) (fds[DYNO_FDS.resolvConf] as Writable).end(OUTBOUND_RESOLV_CONF);
    const stderrTail = spec.attach ? [] : streamOutput(spec, proc.child);
    const status = watchStatus(statusPipe);
    const early = await Promise.race([status.childPid, proc.exited.then(() => undefined)]);
    if (early === undefined) {
      const end = await proc.exited;
      throw new KilnError({
        code: "dyno_start_failed",
        message: `the dyno's sandbox did not start: ${end.error?.message ?? (stderrTail.join("\n") || `exit ${end.exitCode ?? end.signal}`)}`,
        hint: "check that bubblewrap, util-linux (prlimit, setpriv, nsenter) and socat are installed (npm run setup)",
      });
    }
    const initPid = early;
    try {
      // Before the app runs: its way out (if asked for) and its way in, both in its cgroups, so an
      // app that exits at once is reported by its exit, not by a relay that found no namespace.
      await pauseAt(spec.testPause, "before-go", { runId: spec.id, launcherPid: proc.pid, initPid });
      if (spec.outbound) outbound = await startOutbound({ pid: initPid, cgroupDirs });
      if (spec.port !== undefined) {
        relay = await startRelay({
          pid: initPid,
          uid: spec.uid,
          socket: join(dynoRun, "web.sock"),
          port: spec.port,
          cgroupDirs,
        });
      }
      gatePipe.end(`${token}\n`);
      await pauseAt(spec.testPause, "after-go", { runId: spec.id, launcherPid: proc.pid, initPid });
    } catch (err) {
      proc.child.kill("SIGKILL");
      await proc.exited;
      throw err;
    }
    const [pidStartTime, initStartTime] = await Promise.all([
      processStartTime(proc.pid),
      processStartTime(initPid),
    ]);

    const exited = proc.exited.then(async (end): Promise<DynoExit> => {
      const oomKills = (await cgroup?.oomKills()) ?? 0;
      await cleanup();
      return exitOf(spec.size, { code: status.exitCode() ?? end.exitCode, signal: end.signal, oomKills });
    });
    let ended = false;
    void exited.then(() => (ended = true));
    // pid 1 of the namespace: its death takes every process in the dyno with it.
    const killNow = () => {
      for (const pid of [initPid, proc.pid]) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
    };

    return {
      spec,
      pid: proc.pid,
      initPid,
      ...(pidStartTime !== undefined ? { pidStartTime } : {}),
      ...(initStartTime !== undefined ? { initStartTime } : {}),
      relay,
      limits: [...cgroup.limits, ...sandboxLimits(spec.size)],
      cgroupDirs,
      startedAt,
      exited,
      async waitListening(timeoutMs) {
        if (spec.port === undefined) return false;
        const deadline = Date.now() + timeoutMs;
        for (let i = 0; ; i++) {
          if (ended) return false;
          if (await listensOn(initPid, spec.port)) return true;
          if (Date.now() > deadline) return false;
          await new Promise((r) => setTimeout(r, i < 200 ? 5 : 50));
        }
      },
      async kill() {
        killNow();
        return exited;
      },
      async stop(graceMs) {
        if (!ended) {
          // Every process but the sandbox's own pid 1 (bwrap's reaper), like Heroku's SIGTERM to
          // all processes of the dyno. bwrap does not forward signals, so kiln signals them itself.
          // Not the dyno's relay and NAT: they keep it reachable until the app is gone.
          const helpers = new Set([relay?.process.pid, outbound?.pid].filter((p) => p !== undefined));
          const pids = (await cgroup?.processes()) ?? (await descendants(initPid));
          // Nor the launcher (the outer bwrap, in the cgroups too): it reports how the app ended.
          for (const pid of pids.filter((p) => p !== initPid && p !== proc.pid)) {
            if (helpers.has(pid) || helpers.has((await processGroup(pid)) ?? -1)) continue;
            try {
              process.kill(pid, "SIGTERM");
            } catch {
              // gone already
            }
          }
          let timer: NodeJS.Timeout | undefined;
          const grace = new Promise((r) => (timer = setTimeout(r, graceMs, "timeout")));
          const first = await Promise.race([exited, grace]);
          clearTimeout(timer);
          if (first === "timeout") {
            spec.onOutput?.("stderr", `[kiln] still running ${graceMs / 1000} s after SIGTERM: SIGKILL`);
            killNow();
          }
        }
        return exited;
      },
      memoryBytes: async () => cgroup?.memoryBytes(),
    };
  } catch (err) {
    for (const h of handles) await h.close().catch(() => {});
    await cleanup();
    throw err;
  }
}

/** Traversable (not listable) by the apps' uids; each dyno's own directory is its uid's alone. */
async function makeRunDirs(shared: string[], dynoRun: string): Promise<void> {
  for (const d of shared) {
    await mkdir(d, { recursive: true });
    await chmod(d, 0o711);
  }
  await mkdir(dynoRun, { mode: 0o700 });
}

/** The launcher's fds, in DYNO_FDS's order. */
function sandboxStdio(spec: DynoSpec, seccompFd: number): StdioOptions {
  return [
    spec.attach ? "inherit" : "ignore",
    spec.attach ? "inherit" : "pipe",
    spec.attach ? "inherit" : "pipe",
    "pipe", // DYNO_FDS.args
    "pipe", // DYNO_FDS.status
    "pipe", // DYNO_FDS.gate
    seccompFd,
    ...(spec.outbound ? ["pipe" as const] : []), // DYNO_FDS.resolvConf
  ];
}

/** The app's lines to onOutput; returns the last lines on stderr, for the error when the sandbox
 * itself fails to start. */
function streamOutput(spec: DynoSpec, child: { stdout: Readable | null; stderr: Readable | null }): string[] {
  const stderrTail: string[] = [];
  forEachLine(child.stdout, (l) => spec.onOutput?.("stdout", l));
  forEachLine(child.stderr, (l) => {
    stderrTail.push(l);
    if (stderrTail.length > 5) stderrTail.shift();
    return spec.onOutput?.("stderr", l);
  });
  return stderrTail;
}

/** bwrap's status documents: the sandbox's pid 1 once it runs, the app's exit code at the end. */
function watchStatus(statusPipe: Readable): {
  childPid: Promise<number>;
  exitCode: () => number | undefined;
} {
  let exitCode: number | undefined;
  let resolvePid: (pid: number) => void = () => {};
  const childPid = new Promise<number>((r) => (resolvePid = r));
  forEachLine(statusPipe, (line) => {
    if (!line.trim()) return;
    try {
      const doc = parseStatusDoc(JSON.parse(line));
      if (doc.childPid !== undefined) resolvePid(doc.childPid);
      if (doc.exitCode !== undefined) exitCode = doc.exitCode;
    } catch {
      // not one of bwrap's status documents
    }
  });
  return { childPid, exitCode: () => exitCode };
}

/** How the dyno ended, with one phrase for people. */
function exitOf(
  size: DynoSize,
  end: { code: number | null; signal: string | null | undefined; oomKills: number },
): DynoExit {
  const { code } = end;
  let signal = end.signal ?? undefined;
  // bwrap reports a child killed by signal N as 128+N.
  if (!signal && code !== null && code > 128 && code < 128 + 65) signal = signalName(code - 128);
  // The OOM killer may have taken only a child the app survived; the dyno died of it only
  // if it ended by SIGKILL.
  const oom = end.oomKills > 0 && signal === "SIGKILL";
  const mem = `${Math.round(size.memoryBytes / 1048576)} MiB`;
  const reason = oom
    ? `killed by ${signal ?? "the OOM killer"}: out of memory (the ${size.name} quota is ${mem})`
    : signal
      ? `killed by ${signal}`
      : `exited with code ${code}`;
  return { code, ...(signal ? { signal } : {}), oom, reason };
}

/** The limits the sandbox itself enforces (the cgroups report their own). */
function sandboxLimits(size: DynoSize): Limit[] {
  const tmp = `${Math.round(size.tmpBytes / 1048576)} MiB`;
  return [
    { name: "shm", value: tmp, enforced: true, by: "tmpfs size" },
    { name: "tmp", value: tmp, enforced: true, by: "tmpfs size" },
    { name: "open-files", value: String(size.openFiles), enforced: true, by: "RLIMIT_NOFILE" },
    { name: "core-dumps", value: "off", enforced: true, by: "RLIMIT_CORE 0" },
  ];
}
