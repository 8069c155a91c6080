/**
 * Cleaning up after a kiln that died without stopping its dynos (kill -9, power loss): run at the
 * start of every command that runs dynos, and by `kiln ps --reconcile`.
 *
 * The sandboxes themselves die with kiln (bwrap --die-with-parent kills each dyno's pid 1, and the
 * pid namespace takes every process with it; relays have a parent-death signal). What can be left
 * behind is bookkeeping: state records whose supervisor is gone, empty cgroups, and run
 * directories with a dead socket. Records of a live supervisor (another kiln process) are left
 * alone; a cgroup with processes in it always belongs to a live supervisor, so only empty ones are
 * removed here, and a dead supervisor's cgroups are emptied first.
 */

import { readdir, readFile, rm, stat } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { type CgroupHost, listDynoCgroups, removeCgroupDirs } from "./cgroups.js";
import { openAppLog } from "./logs.js";
import { sameProcess } from "./procfs.js";
import { readDynoRecords, removeDynoRecord } from "./state.js";

export interface ReconcileReport {
  /** Dynos whose supervisor was gone, by app and name. */
  lost: string[];
  cgroupsRemoved: number;
  runDirsRemoved: number;
}

function kill(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // gone
  }
}

async function socketDead(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(true));
  });
}

export async function reconcileDynos(opts: {
  dataDir: string;
  runDir: string;
  cgroups: CgroupHost;
}): Promise<ReconcileReport> {
  const report: ReconcileReport = { lost: [], cgroupsRemoved: 0, runDirsRemoved: 0 };
  for (const rec of await readDynoRecords(opts.dataDir)) {
    if (await sameProcess(rec.supervisor.pid, rec.supervisor.startTime)) continue;
    // pid 1 of the dyno's namespace first: with it goes every process inside.
    if (rec.initPid !== undefined && (await sameProcess(rec.initPid, undefined))) kill(rec.initPid);
    await removeCgroupDirs(rec.cgroupDirs).catch(() => {});
    if (rec.runId) await rm(join(opts.runDir, rec.runId), { recursive: true, force: true });
    await removeDynoRecord(opts.dataDir, rec.id);
    const log = await openAppLog(opts.dataDir, rec.app);
    log.write(`kiln[${rec.name}]`, `Lost: its supervisor (pid ${rec.supervisor.pid}) is gone; cleaned up`);
    report.lost.push(`${rec.app} ${rec.name}`);
  }
  for (const dirs of (await listDynoCgroups(opts.cgroups)).values()) {
    // A cgroup is empty for a moment while its dyno starts: judge only ones older than that.
    const ages = await Promise.all(
      dirs.map(async (d) => Date.now() - ((await stat(d).catch(() => undefined))?.mtimeMs ?? 0)),
    );
    if (ages.some((a) => a < 60_000)) continue;
    const busy = await Promise.all(
      dirs.map(async (d) => (await readFile(join(d, "cgroup.procs"), "utf8").catch(() => "")).trim() !== ""),
    );
    if (busy.some(Boolean)) continue;
    await removeCgroupDirs(dirs).catch(() => {});
    report.cgroupsRemoved++;
  }
  for (const id of await readdir(opts.runDir).catch(() => [] as string[])) {
    const sock = join(opts.runDir, id, "web.sock");
    const entries = await readdir(join(opts.runDir, id)).catch(() => [] as string[]);
    if (entries.includes("web.sock") && !(await socketDead(sock))) continue;
    if (!entries.includes("web.sock") && entries.length === 0) {
      // An empty directory is a dyno starting right now or one that never got a relay: only
      // directories that have had a socket are judged.
      continue;
    }
    await rm(join(opts.runDir, id), { recursive: true, force: true });
    report.runDirsRemoved++;
  }
  return report;
}
