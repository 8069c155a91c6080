/**
 * Per-dyno cgroups for memory, pids and CPU, on cgroup v1 (one hierarchy per controller, as on these
 * machines) or v2 (one unified tree, as on most hosts today), chosen per controller by what the host
 * mounts. Every dyno gets `kiln/<instance>/<run id>` under each hierarchy it uses (the instance is
 * the kiln data directory it belongs to, see instance.ts: one kiln's reconcile never judges
 * another's). What could not be set up is reported, never silently dropped: `kiln ps` shows it.
 */
import { mkdir, readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { DynoSize } from "../config/dynoSizes.js";
import { absent, exists } from "../util/fs.js";

export const CONTROLLERS = ["memory", "pids", "cpu"] as const;
export type Controller = (typeof CONTROLLERS)[number];

export interface CgroupHost {
  /** Where each controller can be used: a v1 hierarchy's mount point or the v2 root. */
  controllers: Partial<Record<Controller, { version: 1 | 2; mount: string }>>;
  /** Why a controller is unavailable. */
  missing: Partial<Record<Controller, string>>;
}

export interface Limit {
  name: "memory" | "pids" | "cpu" | "tmp" | "shm" | "open-files" | "core-dumps";
  value: string;
  enforced: boolean;
  /** What enforces it, or why nothing does. */
  by: string;
}

/** Reads /proc/self/mountinfo: which controllers are mounted where, v1 and v2. */
export async function detectCgroups(mountinfo = "/proc/self/mountinfo"): Promise<CgroupHost> {
  const text = await readFile(mountinfo, "utf8").catch(absent(""));
  const host: CgroupHost = { controllers: {}, missing: {} };
  const v2Mounts: string[] = [];
  for (const line of text.split("\n")) {
    const [pre, post] = line.split(" - ");
    if (!pre || !post) continue;
    const mount = pre.split(" ")[4];
    const [fstype, , superOpts = ""] = post.split(" ");
    if (!mount) continue;
    if (fstype === "cgroup") {
      const opts = superOpts.split(",");
      for (const c of CONTROLLERS) if (opts.includes(c)) host.controllers[c] = { version: 1, mount };
    } else if (fstype === "cgroup2") v2Mounts.push(mount);
  }
  for (const mount of v2Mounts) {
    const available = (await readFile(join(mount, "cgroup.controllers"), "utf8").catch(absent("")))
      .trim()
      .split(/\s+/);
    for (const c of CONTROLLERS) {
      if (available.includes(c) && !host.controllers[c]) host.controllers[c] = { version: 2, mount };
    }
  }
  for (const c of CONTROLLERS) {
    if (!host.controllers[c]) host.missing[c] = `no cgroup hierarchy on this host has the ${c} controller`;
  }
  return host;
}

export interface DynoCgroup {
  /** Every directory made for this dyno (one per hierarchy used). */
  dirs: string[];
  limits: Limit[];
  /** Moves a process (and so all it will start) into every hierarchy. */
  addProcess(pid: number): Promise<void>;
  /** The pids in the dyno, when a hierarchy can list them. */
  processes(): Promise<number[] | undefined>;
  /** How many times the kernel's OOM killer struck inside this dyno. */
  oomKills(): Promise<number>;
  memoryBytes(): Promise<number | undefined>;
  /** Kills whatever is left and removes the directories. */
  remove(): Promise<void>;
}

export function cgroupDir(host: CgroupHost, c: Controller, id: string): string | undefined {
  const h = host.controllers[c];
  return h ? join(h.mount, "kiln", id) : undefined;
}

/**
 * Where kiln's cgroups live under each hierarchy: dynos under `kiln/`, builds under `kiln-builds/`
 * (a dyno reconcile never judges a build's cgroup, and the other way round).
 */
export type CgroupParent = "kiln" | "kiln-builds";

/**
 * v2 only passes controllers down where every ancestor enables them in cgroup.subtree_control
 * (`id` may itself be nested: `INSTANCE/RUN`).
 */
async function enableV2(
  mount: string,
  controllers: Controller[],
  parent: CgroupParent,
  id: string,
): Promise<void> {
  const want = controllers.map((c) => `+${c}`).join(" ");
  await writeFile(join(mount, "cgroup.subtree_control"), want);
  const levels: string[] = [parent];
  for (let d = dirname(id); d !== "." && d !== "/"; d = dirname(d)) levels.splice(1, 0, join(parent, d));
  for (const level of levels) {
    await mkdir(join(mount, level), { recursive: true });
    await writeFile(join(mount, level, "cgroup.subtree_control"), want);
  }
}

/** The directories createDynoCgroup makes for `id`, known before it makes them (for the record). */
export function dynoCgroupDirs(host: CgroupHost, id: string, opts: { parent?: CgroupParent } = {}): string[] {
  const mounts = new Set(Object.values(host.controllers).map((h) => h.mount));
  return [...mounts].map((m) => join(m, opts.parent ?? "kiln", id));
}

/** The limits of `size` in a new cgroup `PARENT/ID` of every hierarchy kiln can use. */
export async function createDynoCgroup(
  host: CgroupHost,
  id: string,
  size: Pick<DynoSize, "memoryBytes" | "pids" | "cpus" | "name">,
  opts: { parent?: CgroupParent } = {},
): Promise<DynoCgroup> {
  const parent = opts.parent ?? "kiln";
  const limits: Limit[] = [];
  const dirs = new Map<Controller, string>();
  const v2 = CONTROLLERS.filter((c) => host.controllers[c]?.version === 2);
  const v2Mount = v2.length ? host.controllers[v2[0] as Controller]?.mount : undefined;
  let v2Error: string | undefined;
  if (v2Mount) await enableV2(v2Mount, v2, parent, id).catch((e: Error) => (v2Error = e.message));

  const settings: Record<Controller, { value: string; v1: [string, string][]; v2: [string, string][] }> = {
    memory: {
      value: `${Math.round(size.memoryBytes / 1048576)} MiB, no swap`,
      v1: [
        ["memory.limit_in_bytes", String(size.memoryBytes)],
        // With swap accounting, memory+swap gets the same cap: no escaping the quota into swap.
        ["memory.memsw.limit_in_bytes", String(size.memoryBytes)],
      ],
      v2: [
        ["memory.max", String(size.memoryBytes)],
        ["memory.swap.max", "0"],
      ],
    },
    pids: {
      value: String(size.pids),
      v1: [["pids.max", String(size.pids)]],
      v2: [["pids.max", String(size.pids)]],
    },
    cpu: {
      value: `${size.cpus} CPU`,
      v1: [
        ["cpu.cfs_period_us", "100000"],
        ["cpu.cfs_quota_us", String(Math.round(size.cpus * 100000))],
      ],
      v2: [["cpu.max", `${Math.round(size.cpus * 100000)} 100000`]],
    },
  };

  for (const c of CONTROLLERS) {
    const h = host.controllers[c];
    const s = settings[c];
    if (!h) {
      limits.push({ name: c, value: s.value, enforced: false, by: host.missing[c] ?? "unavailable" });
      continue;
    }
    if (h.version === 2 && v2Error) {
      limits.push({ name: c, value: s.value, enforced: false, by: `cgroup v2: ${v2Error}` });
      continue;
    }
    const dir = join(h.mount, parent, id);
    try {
      await mkdir(dir, { recursive: true });
      dirs.set(c, dir);
      for (const [file, value] of h.version === 1 ? s.v1 : s.v2) {
        const path = join(dir, file);
        // memsw/swap files exist only with swap accounting; without it there is no swap to escape to.
        if (!(await exists(path)) && /memsw|swap/.test(file)) continue;
        await writeFile(path, value);
      }
      limits.push({ name: c, value: s.value, enforced: true, by: `cgroup v${h.version} ${c}` });
    } catch (err) {
      limits.push({
        name: c,
        value: s.value,
        enforced: false,
        by: `cgroup v${h.version}: ${(err as Error).message}`,
      });
    }
  }

  const uniqueDirs = [...new Set(dirs.values())];
  const listDir = dirs.get("pids") ?? uniqueDirs[0];
  return {
    dirs: uniqueDirs,
    limits,
    async addProcess(pid) {
      for (const d of uniqueDirs) await writeFile(join(d, "cgroup.procs"), String(pid));
    },
    async processes() {
      if (!listDir) return undefined;
      return parsePids(await readFile(join(listDir, "cgroup.procs"), "utf8").catch(absent("")));
    },
    async oomKills() {
      const d = dirs.get("memory");
      if (!d) return 0;
      const v1 = host.controllers.memory?.version === 1;
      const text = await readFile(join(d, v1 ? "memory.oom_control" : "memory.events"), "utf8").catch(
        () => "",
      );
      return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
    },
    async memoryBytes() {
      const d = dirs.get("memory");
      if (!d) return undefined;
      const v1 = host.controllers.memory?.version === 1;
      const text = await readFile(join(d, v1 ? "memory.usage_in_bytes" : "memory.current"), "utf8").catch(
        () => "",
      );
      return text ? Number(text.trim()) : undefined;
    },
    async remove() {
      await removeCgroupDirs(uniqueDirs);
    },
  };
}

function parsePids(text: string): number[] {
  return text
    .split("\n")
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

/**
 * SIGKILLs every process left in the directories (cgroup.kill where v2 has it: atomic, no pid
 * read and then signalled), waits for them to go, then removes them. Throws if one stays busy.
 */
export async function removeCgroupDirs(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    if (!(await exists(dir))) continue;
    await writeFile(join(dir, "cgroup.kill"), "1").catch(() => {});
    for (let attempt = 0; attempt < 250; attempt++) {
      const pids = parsePids(await readFile(join(dir, "cgroup.procs"), "utf8").catch(absent("")));
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await rmdir(dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOENT") throw e;
    });
  }
}

/** Run ids with a cgroup directory under `kiln/<instance>/` (for reconciling after a crash). */
export async function listDynoCgroups(host: CgroupHost, instance: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const mounts = new Set(Object.values(host.controllers).map((h) => h.mount));
  for (const mount of mounts) {
    const base = join(mount, "kiln", instance);
    for (const e of await readdir(base, { withFileTypes: true }).catch(absent([]))) {
      if (!e.isDirectory()) continue;
      out.set(e.name, [...(out.get(e.name) ?? []), join(base, e.name)]);
    }
  }
  return out;
}
