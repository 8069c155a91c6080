/**
 * What `kiln ps` shows and what reconciling after a crash needs: one small JSON file per dyno under
 * DATA_DIR/dynos/state, rewritten atomically on every state change by the process supervising it.
 * (The control plane keeps the same records in SQLite; the files let separate kiln processes see
 * each other's dynos.)
 */
import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { absent, pidAlive, writeFileAtomic } from "../util/fs.js";

export const DYNO_STATES = ["starting", "up", "crashed", "stopping", "down"] as const;
export type DynoStateName = (typeof DYNO_STATES)[number];

export const dynoRecordSchema = z.object({
  id: z.string(),
  app: z.string(),
  name: z.string(),
  type: z.string(),
  command: z.string(),
  size: z.string(),
  uid: z.number().int(),
  slugSha256: z.string(),
  state: z.enum(DYNO_STATES),
  since: z.string(),
  /** The kiln process supervising the dyno, and its start time (a reused pid is not it). */
  supervisor: z.object({ pid: z.number().int(), startTime: z.number().optional() }),
  /**
   * The current run's id (names its cgroups and run directory), written before the run starts;
   * once it runs, its host pids (launcher, pid 1) with their start times.
   */
  runId: z.string().optional(),
  runDir: z.string().optional(),
  pid: z.number().int().optional(),
  pidStartTime: z.number().optional(),
  initPid: z.number().int().optional(),
  initStartTime: z.number().optional(),
  cgroupDirs: z.array(z.string()),
  url: z.string().optional(),
  restarts: z.number().int(),
  nextRestartAt: z.string().optional(),
  lastExit: z
    .object({
      code: z.number().nullable(),
      signal: z.string().optional(),
      oom: z.boolean(),
      reason: z.string(),
      at: z.string(),
    })
    .optional(),
  limits: z.array(z.object({ name: z.string(), value: z.string(), enforced: z.boolean(), by: z.string() })),
});
export type DynoRecord = z.infer<typeof dynoRecordSchema>;

export function stateDir(dataDir: string): string {
  return join(dataDir, "dynos", "state");
}

export async function writeDynoRecord(dataDir: string, rec: DynoRecord): Promise<void> {
  const dir = stateDir(dataDir);
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, `${rec.id}.json`), `${JSON.stringify(rec, null, 2)}\n`);
}

export async function removeDynoRecord(dataDir: string, id: string): Promise<void> {
  await rm(join(stateDir(dataDir), `${id}.json`), { force: true });
}

/** Every record on disk; unreadable ones (a foreign file) are skipped, not fatal. */
export async function readDynoRecords(dataDir: string): Promise<DynoRecord[]> {
  const dir = stateDir(dataDir);
  const out: DynoRecord[] = [];
  for (const f of await readdir(dir).catch(absent([] as string[]))) {
    if (!f.endsWith(".json")) continue;
    try {
      const r = dynoRecordSchema.safeParse(JSON.parse(await readFile(join(dir, f), "utf8")));
      if (r.success) out.push(r.data);
    } catch {
      // written atomically, so only a foreign or hand-edited file gets here
    }
  }
  return out.sort((a, b) => (a.app === b.app ? a.name.localeCompare(b.name) : a.app.localeCompare(b.app)));
}

/**
 * Removes the temporary files of atomic writes torn by a crash (`NAME.tmp-PID-TIME`): those whose
 * writer is gone, or that are older than any write takes. Returns how many.
 */
export async function sweepTornRecords(dataDir: string): Promise<number> {
  const dir = stateDir(dataDir);
  let removed = 0;
  for (const f of await readdir(dir).catch(absent([] as string[]))) {
    const m = /\.tmp-(\d+)-\d+$/.exec(f);
    if (!m) continue;
    const file = join(dir, f);
    const age = Date.now() - ((await stat(file).catch(absent(undefined)))?.mtimeMs ?? Date.now());
    if (pidAlive(Number(m[1])) && age < 60_000) continue;
    await rm(file, { force: true });
    removed++;
  }
  return removed;
}
