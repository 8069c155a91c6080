/**
 * One unprivileged host uid per app. kiln runs as root, so bwrap alone is no boundary: each app's
 * dynos run as a uid no other app and no host user has, so even a process that got out of every
 * namespace would hold no host privilege and could not touch another app's processes.
 *
 * The map lives in DATA_DIR/dynos/uids.json (written atomically under a lock) so an app keeps its uid.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { KilnError } from "../errors.js";
import { withFileLock, writeFileAtomic } from "../util/fs.js";
import { parseJsonWith } from "../util/json.js";

/** Far above login users (1000+) and the usual subuid ranges' start (100000). */
export const DYNO_UID_BASE = 400_000;
export const DYNO_UID_COUNT = 65_536;

const uidMapSchema = z.record(z.string(), z.number().int());

/** An app's uid never changes once given, so each kiln process asks the file once per app. */
const known = new Map<string, number>();

export async function appUid(dataDir: string, app: string): Promise<number> {
  const key = `${dataDir}\0${app}`;
  const cached = known.get(key);
  if (cached !== undefined) return cached;
  const uid = await allocateUid(dataDir, app);
  known.set(key, uid);
  return uid;
}

async function allocateUid(dataDir: string, app: string): Promise<number> {
  const dir = join(dataDir, "dynos");
  await mkdir(dir, { recursive: true });
  const file = join(dir, "uids.json");
  return withFileLock(`${file}.lock`, async () => {
    const text = await readFile(file, "utf8").catch(() => "{}");
    const map = parseJsonWith(text, uidMapSchema, {
      file,
      code: "invalid_state",
      invalid: "is invalid",
      jsonHint: "restore it from a backup, or delete it (apps then get new uids)",
      schemaHint: "it maps app names to uids; restore it from a backup, or delete it",
    });
    const mine = map[app];
    if (mine !== undefined) return mine;
    const used = new Set(Object.values(map));
    let uid = DYNO_UID_BASE;
    while (used.has(uid)) uid++;
    if (uid >= DYNO_UID_BASE + DYNO_UID_COUNT) {
      throw new KilnError({
        code: "uids_exhausted",
        message: `no free dyno uid left for app "${app}"`,
        hint: `remove apps you no longer use from ${file}`,
      });
    }
    await writeFileAtomic(file, `${JSON.stringify({ ...map, [app]: uid }, null, 2)}\n`);
    return uid;
  });
}
