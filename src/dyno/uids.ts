/**
 * One unprivileged host uid per app. kiln runs as root, so bwrap alone is no boundary: each app's
 * dynos run as a uid no other app and no host user has, so even a process that got out of every
 * namespace would hold no host privilege and could not touch another app's processes.
 *
 * "No other app" means on the whole host, whatever kiln instance (data directory) runs it: the
 * uids are handed out from one registry, HOST_UID_REGISTRY/uids.json (root's alone, under a lock),
 * which says which data directory and app holds each uid. Each data directory also keeps its own
 * map (DATA_DIR/dynos/uids.json) so an app keeps its uid; a uid that the registry gives to another
 * instance (a map written by an older kiln, which counted from the same base in every data
 * directory) is given up for a free one. A data directory that no longer exists frees its uids.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { z } from "zod";
import { KilnError } from "../errors.js";
import { exists, withFileLock, writeFileAtomic } from "../util/fs.js";
import { parseJsonWith } from "../util/json.js";

/** Far above login users (1000+) and the usual subuid ranges' start (100000). */
export const DYNO_UID_BASE = 400_000;
export const DYNO_UID_COUNT = 65_536;

/** Fixed, root-only, shared by every kiln on the host (persistent: an app keeps its uid). */
export const HOST_UID_REGISTRY = "/var/lib/kiln-uids";

const uidMapSchema = z.record(z.string(), z.number().int());
const registrySchema = z.record(z.string(), z.object({ dataDir: z.string(), app: z.string() }));
type Registry = z.infer<typeof registrySchema>;

/** An app's uid never changes once given, so each kiln process asks the files once per app. */
const known = new Map<string, number>();

export async function appUid(dataDir: string, app: string): Promise<number> {
  const key = `${resolve(dataDir)}\0${app}`;
  const cached = known.get(key);
  if (cached !== undefined) return cached;
  const uid = await allocateUid(resolve(dataDir), app);
  known.set(key, uid);
  return uid;
}

const localMapFile = (dataDir: string) => join(dataDir, "dynos", "uids.json");

async function allocateUid(dataDir: string, app: string): Promise<number> {
  await mkdir(HOST_UID_REGISTRY, { recursive: true, mode: 0o700 });
  const registryFile = join(HOST_UID_REGISTRY, "uids.json");
  await mkdir(join(dataDir, "dynos"), { recursive: true });
  const file = localMapFile(dataDir);
  // One lock for the host: two instances never pick the same free uid at once.
  return withFileLock(`${registryFile}.lock`, async () => {
    const map = parseJsonWith(await readFile(file, "utf8").catch(() => "{}"), uidMapSchema, {
      file,
      code: "invalid_state",
      invalid: "is invalid",
      jsonHint: "restore it from a backup, or delete it (apps then get new uids)",
      schemaHint: "it maps app names to uids; restore it from a backup, or delete it",
    });
    const registry = parseJsonWith(await readFile(registryFile, "utf8").catch(() => "{}"), registrySchema, {
      file: registryFile,
      code: "invalid_state",
      invalid: "is invalid",
      jsonHint: "restore it from a backup, or delete it (every kiln's apps then get new uids)",
      schemaHint: "it maps uids to the data directory and app holding them; restore it, or delete it",
    });
    await freeGoneDataDirs(registry, dataDir);
    const holds = (uid: number) => {
      const e = registry[String(uid)];
      return e !== undefined && !(e.dataDir === dataDir && e.app === app);
    };
    let uid = map[app];
    if (uid === undefined || holds(uid) || uid < DYNO_UID_BASE || uid >= DYNO_UID_BASE + DYNO_UID_COUNT) {
      const mine = new Set(Object.entries(map).flatMap(([a, u]) => (a === app ? [] : [u])));
      uid = DYNO_UID_BASE;
      while (uid < DYNO_UID_BASE + DYNO_UID_COUNT && (registry[String(uid)] || mine.has(uid))) uid++;
      if (uid >= DYNO_UID_BASE + DYNO_UID_COUNT) {
        throw new KilnError({
          code: "uids_exhausted",
          message: `no free dyno uid left on this host for app "${app}"`,
          hint: `remove apps you no longer use (the host's uids are listed in ${registryFile})`,
        });
      }
    }
    if (map[app] !== uid) await writeFileAtomic(file, `${JSON.stringify({ ...map, [app]: uid }, null, 2)}\n`);
    const entry = registry[String(uid)];
    if (entry?.dataDir !== dataDir || entry.app !== app) {
      registry[String(uid)] = { dataDir, app };
      await writeFileAtomic(registryFile, `${JSON.stringify(registry, null, 2)}\n`);
    }
    return uid;
  });
}

/** Entries of data directories whose uid map is gone (the directory was deleted) are free again. */
async function freeGoneDataDirs(registry: Registry, current: string): Promise<void> {
  const alive = new Map<string, boolean>();
  for (const [uid, e] of Object.entries(registry)) {
    if (e.dataDir === current) continue;
    if (!alive.has(e.dataDir)) alive.set(e.dataDir, await exists(localMapFile(e.dataDir)));
    if (!alive.get(e.dataDir)) delete registry[uid];
  }
}
