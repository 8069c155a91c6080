/** What tests need to see whether anything of a dyno is left on the host. */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

/** Live (not zombie) host processes of a uid. */
export async function processesOf(uid: number): Promise<number[]> {
  const out: number[] = [];
  for (const p of await readdir("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    const status = await readFile(`/proc/${p}/status`, "utf8").catch(() => "");
    if (new RegExp(`^Uid:\\s+${uid}\\s`, "m").test(status) && !/^State:\s+Z/m.test(status))
      out.push(Number(p));
  }
  return out;
}

/** Every directory named `name` at most `depth` levels below `root`. */
export async function findDirs(root: string, name: string, depth = 3): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (!e.isDirectory()) continue;
    const p = join(root, e.name);
    if (e.name === name) out.push(p);
    else if (depth > 1) out.push(...(await findDirs(p, name, depth - 1)));
  }
  return out;
}
