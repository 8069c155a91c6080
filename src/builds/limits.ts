/**
 * A build's limits, as a dyno's: a size (memory, processes, CPU, /tmp, open files; the server's
 * `buildSize`, or the app's KILN_BUILD_SIZE config var) and a wall-clock limit.
 *
 * Inside the Nix sandbox, nix/build/phase.sh applies what it can itself: the seccomp filter, no user
 * namespaces or capabilities, size-capped tmpfs, rlimits (sizes from the /kiln-limits file bound in
 * here through Nix's sandbox-paths, so they are not part of the derivation). Memory, processes and
 * CPU need cgroups, which Nix 2.8 does not use: with the local store as root, `nix build` forks the
 * builders itself, so it is started inside a `kiln-builds/` cgroup and everything it starts inherits
 * it. Through a Nix daemon the builders are the daemon's children, outside any cgroup kiln makes:
 * those limits are then NOT ENFORCED, and the build log says so.
 */
import { createHash } from "node:crypto";
import { chmod, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config/config.js";
import { type DynoSize, dynoSize } from "../config/dynoSizes.js";
import {
  type CgroupHost,
  createDynoCgroup,
  type DynoCgroup,
  detectCgroups,
  removeCgroupDirs,
} from "../dyno/cgroups.js";
import { processStartTime, sameProcess } from "../dyno/procfs.js";
import type { Logger } from "../log/logger.js";
import type { BuildOptions, Nix } from "../nix/driver.js";
import { absent } from "../util/fs.js";

/** The app config var that picks a build size for that app's builds. */
export const APP_BUILD_SIZE_VAR = "KILN_BUILD_SIZE";
/** /dev/shm in a build (POSIX shared memory: a few small segments, never bulk data). */
export const BUILD_SHM_BYTES = 64 * 1024 * 1024;
/** Where phase.sh finds its limits inside the Nix sandbox. */
export const LIMITS_SANDBOX_PATH = "/kiln-limits";

export interface BuildLimitRow {
  name: string;
  value: string;
  /** What enforces it, or why nothing does. */
  by: string;
  enforced: boolean;
}

export interface BuildLimits {
  size: DynoSize;
  rows: BuildLimitRow[];
  /** What nix build gets: the cgroups to start in, the limits file, Nix's own timeout. */
  nixOptions: Pick<BuildOptions, "cgroupProcs" | "sandboxPaths" | "buildTimeoutSeconds" | "timeoutMs">;
  /** Kills whatever of the build is left and removes its cgroups and limits file. */
  release(): Promise<void>;
}

/** The build size: the app's KILN_BUILD_SIZE if set, else the server's (both checked names). */
export function buildSizeFor(config: Config, appVars: Record<string, string> = {}): DynoSize {
  const name = appVars[APP_BUILD_SIZE_VAR] || config.buildSize;
  return dynoSize(name);
}

/** Tells this kiln's cgroups from another instance's on the same host: its data directory. */
export function instanceTag(dataDir: string): string {
  return createHash("sha256").update(dataDir).digest("hex").slice(0, 12);
}

/** `TAG-PID-STARTTIME-ID`: who owns the cgroup, checkable after that kiln is gone. */
const CGROUP_NAME = /^([0-9a-f]{12})-(\d+)-(\d+)-([A-Za-z0-9_.-]+)$/;

let sweptFor: string | undefined;

/**
 * Kills and removes `kiln-builds/` cgroups of this instance whose kiln is provably gone (its pid is
 * dead or now has another start time). Other instances' and live owners' are never touched, nor is
 * anything under `kiln/` (dynos').
 */
export async function sweepBuildCgroups(host: CgroupHost, dataDir: string): Promise<string[]> {
  const tag = instanceTag(dataDir);
  const removed: string[] = [];
  const mounts = new Set(Object.values(host.controllers).map((h) => h.mount));
  for (const mount of mounts) {
    const base = join(mount, "kiln-builds");
    for (const e of await readdir(base, { withFileTypes: true }).catch(absent([]))) {
      const m = CGROUP_NAME.exec(e.name);
      if (!e.isDirectory() || !m || m[1] !== tag) continue;
      if (await sameProcess(Number(m[2]), Number(m[3]))) continue;
      await removeCgroupDirs([join(base, e.name)]);
      removed.push(join(base, e.name));
    }
  }
  return removed;
}

let sweptFiles: string | undefined;

/** Removes this instance's limits files whose kiln is gone (named like the cgroups). */
export async function sweepLimitFiles(dir: string, dataDir: string): Promise<string[]> {
  const tag = instanceTag(dataDir);
  const removed: string[] = [];
  for (const e of await readdir(dir).catch(absent([]))) {
    const m = CGROUP_NAME.exec(e);
    if (!m || m[1] !== tag || (await sameProcess(Number(m[2]), Number(m[3])))) continue;
    await rm(join(dir, e), { force: true });
    removed.push(e);
  }
  return removed;
}

const MiB = 1024 * 1024;
const mib = (n: number) => `${Math.round(n / MiB)} MiB`;

/** Sets up one build's limits; `release()` when the build is over, whatever its outcome. */
export async function setUpBuildLimits(
  deps: { config: Config; nix: Nix; log: Logger },
  opts: { id: string; size: DynoSize },
): Promise<BuildLimits> {
  const { config } = deps;
  const { size } = opts;
  const locked = config.buildLockdown === "on";
  const timeout = config.buildTimeoutSeconds;
  const rows: BuildLimitRow[] = [];
  const row = (name: string, value: string, by: string, enforced = true) =>
    rows.push({ name, value, by, enforced });

  // What phase.sh enforces itself, in the Nix sandbox. Through a daemon the limits file is not
  // passed (the daemon may see another filesystem, and an untrusted client may not set sandbox
  // paths): phase.sh then uses its defaults, performance-m's sizes, and the rows say so.
  const local =
    deps.nix.store === "local" || deps.nix.store.startsWith("/") || deps.nix.store.startsWith("local");
  const sizes = local ? size : dynoSize("performance-m");
  const sizesBy = local
    ? "tmpfs size (bwrap)"
    : "tmpfs size (bwrap), performance-m's: a daemon's builds get no file from kiln";
  if (locked) {
    row("seccomp", "kiln's dyno filter", "bwrap --seccomp (nix/build/seccomp.bpf)");
    row("namespaces", "no new user namespaces, no capabilities", "bwrap --disable-userns --cap-drop ALL");
    row("/tmp", mib(sizes.tmpBytes), sizesBy);
    row("/app", mib(sizes.memoryBytes), sizesBy);
    row("/dev/shm", mib(BUILD_SHM_BYTES), sizesBy);
    row("open-files", String(sizes.openFiles), "rlimit (phase.sh), at most Nix's own hard limit");
    row("core-dumps", "off", "rlimit (phase.sh)");
  } else {
    row("lockdown", "OFF", "KILN_BUILD_LOCKDOWN=off (for kiln's own tests and bench only)", false);
  }
  row(
    "wall-clock",
    `${timeout} s`,
    "Nix's timeout (kills every process of the build user) and kiln killing nix build",
  );

  // Memory, processes, CPU: a cgroup around nix build, when nix build is what forks the builders.
  let cgroup: DynoCgroup | undefined;
  const cgroupReason = !local
    ? "the Nix daemon forks the builders, outside any cgroup kiln can make per build"
    : process.getuid?.() !== 0
      ? "cgroups need kiln to run as root"
      : !locked
        ? "KILN_BUILD_LOCKDOWN=off"
        : undefined;
  const start = await processStartTime(process.pid);
  const name = `${instanceTag(config.dataDir)}-${process.pid}-${start ?? 0}-${opts.id.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
  const dir = join(config.runDir, "build-limits");
  if (sweptFiles !== config.dataDir) {
    sweptFiles = config.dataDir;
    await sweepLimitFiles(dir, config.dataDir);
  }
  if (cgroupReason) {
    for (const [name, value] of cgroupRows(size)) row(name, value, `NOT ENFORCED: ${cgroupReason}`, false);
  } else {
    const host = await detectCgroups();
    if (sweptFor !== config.dataDir) {
      sweptFor = config.dataDir;
      const removed = await sweepBuildCgroups(host, config.dataDir);
      if (removed.length) deps.log.warn({ removed }, "removed cgroups of builds whose kiln is gone");
    }
    cgroup = await createDynoCgroup(host, name, size, { parent: "kiln-builds" });
    for (const l of cgroup.limits) {
      const value = cgroupRows(size).find(([n]) => n === l.name)?.[1] ?? l.value;
      row(l.name, value, l.enforced ? l.by : `NOT ENFORCED: ${l.by}`, l.enforced);
    }
  }

  // The limits file phase.sh reads (names and numbers only).
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await chmod(dir, 0o755);
  const file = join(dir, name);
  const lines = [
    `tmp ${size.tmpBytes}`,
    `app ${size.memoryBytes}`,
    `shm ${BUILD_SHM_BYTES}`,
    `open-files ${size.openFiles}`,
    `lockdown ${locked ? 1 : 0}`,
  ];
  await writeFile(file, `${lines.join("\n")}\n`, { mode: 0o644 });

  return {
    size,
    rows,
    nixOptions: {
      ...(cgroup ? { cgroupProcs: cgroup.dirs.map((d) => join(d, "cgroup.procs")) } : {}),
      ...(local ? { sandboxPaths: [`${LIMITS_SANDBOX_PATH}=${file}`] } : {}),
      buildTimeoutSeconds: timeout,
      // The whole build (several derivations) in a little more than one's limit: then kiln stops
      // nix build, and the cgroup's removal kills whatever is left.
      timeoutMs: (timeout + 60) * 1000,
    },
    async release() {
      await cgroup?.remove();
      await rm(file, { force: true });
    },
  };
}

function cgroupRows(size: DynoSize): [string, string][] {
  return [
    ["memory", `${mib(size.memoryBytes)}, no swap`],
    ["pids", String(size.pids)],
    ["cpu", `${size.cpus} CPU`],
  ];
}

/** The lines the build log starts with: one per limit. */
export function formatLimits(limits: BuildLimits): string[] {
  return [
    `-----> Build limits (size ${limits.size.name}):`,
    ...limits.rows.map((r) => `       ${r.name.padEnd(11)} ${r.value.padEnd(40)} ${r.by}`),
  ];
}

/** The same Nix, with every build under these limits. */
export function limitedNix(nix: Nix, limits: BuildLimits): Nix {
  const o = limits.nixOptions;
  return {
    ...nix,
    build: (targets, bo = {}) => nix.build(targets, { ...o, ...bo }),
    check: (target, bo = {}) => nix.check(target, { ...o, ...bo }),
  };
}

/**
 * One build's limits, set up and written to its log (`say`): a Nix whose builds are under them, and
 * `release()`, to call when the build is over whatever happened.
 */
export async function openBuildLimits(
  deps: { config: Config; nix: Nix; log: Logger },
  opts: { id: string; appVars?: Record<string, string>; say: (line: string) => void },
): Promise<{ nix: Nix; limits: BuildLimits; release(): Promise<void> }> {
  const size = buildSizeFor(deps.config, opts.appVars);
  const limits = await setUpBuildLimits(deps, { id: opts.id, size });
  for (const line of formatLimits(limits)) opts.say(line);
  return { nix: limitedNix(deps.nix, limits), limits, release: () => limits.release() };
}

/** `fn` with a Nix under one build's limits, released afterwards whatever happens. */
export async function withBuildLimits<T>(
  deps: { config: Config; nix: Nix; log: Logger },
  opts: { id: string; appVars?: Record<string, string>; say: (line: string) => void },
  fn: (nix: Nix) => Promise<T>,
): Promise<T> {
  const open = await openBuildLimits(deps, opts);
  try {
    return await fn(open.nix);
  } finally {
    await open.release();
  }
}
