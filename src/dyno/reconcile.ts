/**
 * Cleaning up after a kiln that died without stopping its dynos (kill -9, power loss): run at the
 * start of every command that runs dynos, and by `kiln ps --reconcile`.
 *
 * Everything of a dyno lives in its cgroups from before it execs anything (sandbox.ts), and its
 * record (run id, cgroup directories, run directory) is on disk before anything is made. So a
 * dyno whose supervisor is gone is killed by emptying its cgroups, never by a bare pid (a pid may
 * belong to anyone by now): only on a host with no cgroup hierarchy at all is its pid 1 killed,
 * and then only if its recorded start time still matches.
 *
 * Only this kiln's own tree is judged (`kiln/<instance>/` and `RUN_DIR/<instance>/`, instance.ts):
 * another instance's dynos on the same host are never touched, nor builds' `kiln-builds/`.
 * Because a record is written before its cgroups and run directory exist, and the listing is read
 * before the records, a cgroup or run directory that no record names has no live owner.
 */
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { absent } from "../util/fs.js";
import { type CgroupHost, dynoCgroupDirs, listDynoCgroups, removeCgroupDirs } from "./cgroups.js";
import { instanceId, isPlainName } from "./instance.js";
import { openAppLog } from "./logs.js";
import { sameProcess } from "./procfs.js";
import { type DynoRecord, readDynoRecords, removeDynoRecord, sweepTornRecords } from "./state.js";

export interface ReconcileReport {
  /** Dynos whose supervisor was gone, by app and name. */
  lost: string[];
  cgroupsRemoved: number;
  runDirsRemoved: number;
  tempFilesRemoved: number;
  /** What could not be cleaned up (it is tried again next time). */
  errors: string[];
}

/** The cgroup directories of a record's run: computed from its run id, never taken from the file. */
function recordCgroups(host: CgroupHost, instance: string, rec: DynoRecord): string[] {
  if (!rec.runId || !isPlainName(rec.runId)) return [];
  const dirs = dynoCgroupDirs(host, `${instance}/${rec.runId}`);
  // Written by an older kiln, which kept them at kiln/<run id>: this data directory's own.
  const legacy = dynoCgroupDirs(host, rec.runId);
  return [...dirs, ...rec.cgroupDirs.filter((d) => legacy.includes(d))];
}

export async function reconcileDynos(opts: {
  dataDir: string;
  runDir: string;
  cgroups: CgroupHost;
}): Promise<ReconcileReport> {
  const report: ReconcileReport = {
    lost: [],
    cgroupsRemoved: 0,
    runDirsRemoved: 0,
    tempFilesRemoved: 0,
    errors: [],
  };
  const instance = instanceId(opts.dataDir);
  const instanceRun = join(opts.runDir, instance);
  report.tempFilesRemoved = await sweepTornRecords(opts.dataDir);
  // First what exists, then the records: anything listed here has its record on disk already.
  const cgroups = await listDynoCgroups(opts.cgroups, instance);
  const runDirs = await readdir(instanceRun).catch(absent([] as string[]));

  for (const rec of await readDynoRecords(opts.dataDir)) {
    if (await sameProcess(rec.supervisor.pid, rec.supervisor.startTime)) continue;
    const dirs = recordCgroups(opts.cgroups, instance, rec);
    try {
      if (Object.keys(opts.cgroups.controllers).length === 0 && rec.initPid !== undefined) {
        // No cgroups on this host: pid 1 of the dyno's namespace, if it is still that process.
        if (rec.initStartTime !== undefined && (await sameProcess(rec.initPid, rec.initStartTime)))
          process.kill(rec.initPid, "SIGKILL");
      }
      await removeCgroupDirs(dirs);
    } catch (err) {
      report.errors.push(`${rec.app} ${rec.name}: ${(err as Error).message}`);
      continue;
    }
    if (rec.runId && cgroups.delete(rec.runId)) report.cgroupsRemoved++;
    if (rec.runId && isPlainName(rec.runId)) {
      await rm(join(instanceRun, rec.runId), { recursive: true, force: true });
      // An older kiln kept run directories at RUN_DIR/<run id>.
      await rm(join(opts.runDir, rec.runId), { recursive: true, force: true });
    }
    await removeDynoRecord(opts.dataDir, rec.id);
    const log = await openAppLog(opts.dataDir, rec.app);
    log.write(`kiln[${rec.name}]`, `Lost: its supervisor (pid ${rec.supervisor.pid}) is gone; cleaned up`);
    report.lost.push(`${rec.app} ${rec.name}`);
  }

  // What no record names any more (a record removed, its clean-up cut short): no owner.
  const named = new Set((await readDynoRecords(opts.dataDir)).map((r) => r.runId).filter(Boolean));
  for (const [runId, dirs] of cgroups) {
    if (named.has(runId)) continue;
    try {
      await removeCgroupDirs(dirs);
      report.cgroupsRemoved++;
    } catch (err) {
      report.errors.push(`cgroup ${runId}: ${(err as Error).message}`);
    }
  }
  for (const runId of runDirs) {
    if (named.has(runId)) continue;
    await rm(join(instanceRun, runId), { recursive: true, force: true });
    report.runDirsRemoved++;
  }
  return report;
}
