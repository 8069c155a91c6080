/**
 * What an earlier kiln left behind when it was killed mid-build, swept when `kiln serve` starts:
 * - uploaded sources (DATA_DIR/sources/*.tar.gz) no build can use any more: kept only while their
 *   build is still pending (it runs after this start); a build that was interrupted is failed for
 *   good (kiln has no retry; deploy again), so its source goes, as does one no build records
 *   (written, but the server died before recording the build);
 * - torn uploads (`sources/*.partial`): no upload is in flight before the server listens;
 * - unpack and work dirs (DATA_DIR/tmp/upload-*, tmp/build-*) of builds no live process runs: their
 *   names carry the pid of the kiln that made them; a live one other than this very process (a
 *   local `kiln build` on the same data directory) keeps its dirs;
 * - torn atomic writes (`*.tmp-PID-TIME`) under builds/ whose writer is dead.
 * Dynos' files (dynos/, slugs/) are the dyno runtime's own sweep (src/dyno/reconcile.ts).
 */
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Db } from "../store/db.js";
import { stmt } from "../store/db.js";
import { absent, pidAlive } from "../util/fs.js";

export interface SweepReport {
  sources: number;
  partials: number;
  tmpDirs: number;
  tornFiles: number;
}

/** The pid a scratch or temp name was made by (`upload-123-…`, `build-123-…`, `x.tmp-123-…`). */
function ownerPid(name: string): number | undefined {
  const m = /^(?:upload|build)-(\d+)-/.exec(name) ?? /\.tmp-(\d+)-\d+$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Made by a process that is gone (this process has made none yet: its pid is an earlier life's). */
function ownerGone(name: string): boolean {
  // Named before names carried a pid (mkdtemp's six characters): made by an older kiln.
  if (/^(?:upload|build)-[A-Za-z0-9]{6}$/.test(name)) return true;
  const pid = ownerPid(name);
  if (pid === undefined) return false;
  return pid === process.pid || !pidAlive(pid);
}

const entries = (dir: string) => readdir(dir, { withFileTypes: true }).catch(absent([]));

export async function sweepBuildLeftovers(db: Db, dataDir: string): Promise<SweepReport> {
  const report: SweepReport = { sources: 0, partials: 0, tmpDirs: 0, tornFiles: 0 };
  const sources = join(dataDir, "sources");
  const needed = new Set(
    (
      stmt(db, "SELECT source_path FROM builds WHERE status IN ('pending', 'building')").all() as {
        source_path: string;
      }[]
    ).map((r) => r.source_path),
  );
  for (const e of await entries(sources)) {
    const file = join(sources, e.name);
    if (e.name.endsWith(".partial")) {
      await rm(file, { force: true });
      report.partials++;
    } else if (e.name.endsWith(".tar.gz") && !needed.has(file)) {
      await rm(file, { force: true });
      report.sources++;
    }
  }
  const tmp = join(dataDir, "tmp");
  for (const e of await entries(tmp)) {
    if (!e.isDirectory() || !ownerGone(e.name)) continue;
    await rm(join(tmp, e.name), { recursive: true, force: true });
    report.tmpDirs++;
  }
  // Manifests (builds/APP/…) are records: only torn temp files beside them go.
  const builds = join(dataDir, "builds");
  for (const app of await entries(builds)) {
    if (!app.isDirectory()) continue;
    for (const e of await entries(join(builds, app.name))) {
      if (!e.isFile() || !/\.tmp-\d+-\d+$/.test(e.name) || !ownerGone(e.name)) continue;
      await rm(join(builds, app.name, e.name), { force: true });
      report.tornFiles++;
    }
  }
  return report;
}
