// A bootstrap run as a user starts it (`kiln bootstrap` or `nix run .#bootstrap`), watched from
// outside: every process it starts is noted while it runs (by parent pid, with its start time and
// cgroups), so that once it has ended the test can tell whether anything of it is left.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { freePort } from "./slugRunner.js";
import { tempDir } from "./tmp.js";

export interface SeenProcess {
  pid: number;
  /** /proc/PID/stat's starttime: a pid reused later is another process. */
  start: string;
  cmd: string;
  /** The dyno cgroups it was in (paths under /sys/fs/cgroup, in a `kiln/` parent). */
  cgroups: string[];
}

export interface BootstrapRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** It had not ended within the bound (and was killed by the test). */
  hung: boolean;
  output: string;
  dataDir: string;
  runDir: string;
  apiPort: number;
  routerPort: number;
  pid: number;
  seen: SeenProcess[];
  report: () => Record<string, unknown> & {
    outcome?: string;
    failed?: { stage: string; code: string; message: string; waitingFor: string; interrupted: boolean };
    platform?: { manager?: string; router?: string; api?: string };
  };
}

function procStat(pid: number): { ppid: number; start: string; pgid: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command (field 2) may hold spaces and parentheses: the fields after its last ")".
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(f[1]), pgid: Number(f[2]), start: f[19] ?? "" };
  } catch {
    return undefined;
  }
}

const pids = () =>
  readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number);

const read = (file: string) => {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
};

/** The dyno cgroups (under a `kiln/` parent) a process is in, as directories. */
function dynoCgroups(pid: number): string[] {
  const out: string[] = [];
  for (const line of read(`/proc/${pid}/cgroup`).split("\n")) {
    const [, controllers, path] = line.split(":");
    if (!path?.includes("/kiln/")) continue;
    const ctrl = controllers ? (controllers.split(",")[0]?.replace(/^name=/, "") ?? "") : "";
    for (const base of [`/sys/fs/cgroup/${ctrl}`, "/sys/fs/cgroup/unified", "/sys/fs/cgroup"]) {
      if (existsSync(join(base, path))) {
        out.push(join(base, path));
        break;
      }
    }
  }
  return out;
}

export async function runBootstrap(opts: {
  command: string;
  args: (ports: { apiPort: number; routerPort: number }) => string[];
  env?: Record<string, string>;
  /** Kill it (and fail the test) when it has not ended by then. */
  boundMs: number;
  /**
   * A finished run's data directory whose unpacked slugs (content-addressed, read-only to dynos)
   * this run starts with, hard-linked: unpacking kiln's 58 MB slug again costs most of a minute.
   */
  slugsFrom?: string | undefined;
}): Promise<BootstrapRun> {
  const dataDir = tempDir("kiln-bootfail-");
  chmodSync(dataDir, 0o711);
  if (opts.slugsFrom && existsSync(join(opts.slugsFrom, "slugs")))
    spawnSync("cp", ["-a", "-l", join(opts.slugsFrom, "slugs"), join(dataDir, "slugs")]);
  const runDir = tempDir("kiln-bootfail-run-");
  const apiPort = await freePort();
  const routerPort = await freePort();
  const child: ChildProcess = spawn(opts.command, opts.args({ apiPort, routerPort }), {
    env: {
      ...process.env,
      KILN_DATA_DIR: dataDir,
      KILN_RUN_DIR: runDir,
      KILN_LOG_LEVEL: "warn",
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group: a leftover in it is found by the group alone.
    detached: true,
  });
  const pid = child.pid ?? -1;
  let output = "";
  child.stdout?.on("data", (c: Buffer) => (output += c));
  child.stderr?.on("data", (c: Buffer) => (output += c));
  const seen = new Map<string, SeenProcess>();
  const survey = () => {
    const kids = new Map<number, number[]>();
    for (const p of pids()) {
      const st = procStat(p);
      if (st) kids.set(st.ppid, [...(kids.get(st.ppid) ?? []), p]);
    }
    const queue = [pid];
    while (queue.length > 0) {
      const p = queue.shift() as number;
      const st = procStat(p);
      if (!st) continue;
      const key = `${p}:${st.start}`;
      const cg = dynoCgroups(p);
      const had = seen.get(key);
      if (had) had.cgroups = [...new Set([...had.cgroups, ...cg])];
      else
        seen.set(key, {
          pid: p,
          start: st.start,
          cmd: read(`/proc/${p}/cmdline`).replaceAll("\0", " "),
          cgroups: cg,
        });
      queue.push(...(kids.get(p) ?? []));
    }
  };
  const timer = setInterval(survey, 200);
  let hung = false;
  const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    const bound = setTimeout(() => {
      hung = true;
      survey();
      try {
        process.kill(-pid, "SIGKILL");
      } catch {}
    }, opts.boundMs);
    child.once("exit", (code, signal) => {
      clearTimeout(bound);
      resolve({ code, signal });
    });
  });
  clearInterval(timer);
  return {
    exitCode: ended.code,
    signal: ended.signal,
    hung,
    output,
    dataDir,
    runDir,
    apiPort,
    routerPort,
    pid,
    seen: [...seen.values()],
    report: () => JSON.parse(read(join(dataDir, "bootstrap-report.json")) || "{}"),
  };
}

const canListen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });

/**
 * What is left of a run once it has ended: processes it started that still live, any process
 * whose command line or environment names its data or run directory, a process in its process
 * group, a dyno cgroup with processes in it, a port still taken. Empty when nothing is left.
 */
export async function leftovers(r: BootstrapRun): Promise<string[]> {
  // Processes that end as kiln ends (a parent-death signal) get a moment to go.
  for (let i = 0; i < 20; i++) {
    if (r.seen.every((p) => procStat(p.pid)?.start !== p.start)) break;
    await new Promise((res) => setTimeout(res, 250));
  }
  const left: string[] = [];
  for (const p of r.seen) {
    const st = procStat(p.pid);
    if (st && st.start === p.start) left.push(`still running: ${p.pid} ${p.cmd}`);
  }
  try {
    process.kill(-r.pid, 0);
    left.push(`its process group ${r.pid} still has processes`);
  } catch {}
  for (const p of pids()) {
    if (p === process.pid) continue;
    const text = `${read(`/proc/${p}/cmdline`)}\0${read(`/proc/${p}/environ`)}`;
    if (text.includes(r.dataDir) || text.includes(r.runDir))
      left.push(`names its directories: ${p} ${read(`/proc/${p}/cmdline`).replaceAll("\0", " ")}`);
  }
  for (const dir of new Set(r.seen.flatMap((p) => p.cgroups))) {
    const procs = read(join(dir, "cgroup.procs")).trim();
    if (procs) left.push(`cgroup ${dir} still has processes: ${procs.split("\n").join(" ")}`);
  }
  const report = r.report();
  const manager = report.platform?.manager ? Number(new URL(report.platform.manager).port) : undefined;
  for (const port of [r.apiPort, r.routerPort, ...(manager ? [manager] : [])])
    if (!(await canListen(port))) left.push(`port ${port} is still taken`);
  return [...new Set(left)];
}
