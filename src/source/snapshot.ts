/**
 * An app directory as build input: a filtered, safe copy (no `.git`, no top-level `node_modules`,
 * no links that leave the tree, resolved for real as in beneath.ts; no devices or sockets) with
 * normalised modes, ready to be added to the store content-addressed. Paths, owners, mtimes and
 * umask of the original do not matter.
 */
import { chmod, copyFile, lstat, mkdir, readdir, readlink, symlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { KilnError } from "../errors.js";
import { fsLookup, linkOutError, resolveBeneath } from "../util/beneath.js";
import { absent } from "../util/fs.js";

export interface SnapshotStats {
  files: number;
  bytes: number;
}

const SKIP_ANYWHERE = new Set([".git"]);
const SKIP_AT_ROOT = new Set(["node_modules"]);

export async function snapshotDir(appDir: string, dest: string): Promise<SnapshotStats> {
  const root = resolve(appDir);
  const st = await lstat(root).catch(absent(undefined));
  if (!st?.isDirectory()) {
    throw new KilnError({
      code: "app_not_found",
      message: `${appDir} is not a directory`,
      hint: "give the path of the app's source directory",
    });
  }
  const stats: SnapshotStats = { files: 0, bytes: 0 };
  const lookup = fsLookup(root);
  const walk = async (rel: string) => {
    await mkdir(join(dest, rel), { recursive: true, mode: 0o755 });
    for (const name of (await readdir(join(root, rel))).sort()) {
      if (SKIP_ANYWHERE.has(name) || (rel === "" && SKIP_AT_ROOT.has(name))) continue;
      const r = rel ? `${rel}/${name}` : name;
      const src = join(root, r);
      const s = await lstat(src);
      if (s.isDirectory()) await walk(r);
      else if (s.isFile()) {
        await copyFile(src, join(dest, r));
        await chmod(join(dest, r), s.mode & 0o111 ? 0o755 : 0o644);
        stats.files++;
        stats.bytes += s.size;
      } else if (s.isSymbolicLink()) {
        const target = await readlink(src);
        // Resolved for real, link by link: `up -> u/..` with `u -> .` looks inside but is not.
        const res = await resolveBeneath(lookup, r);
        if (!res.ok) throw linkOutError("symlink", r, res.reason);
        await symlink(target, join(dest, r));
      } else {
        throw new KilnError({
          code: "source_special_file",
          message: `${r} is not a regular file, directory or symlink (a device, socket or FIFO)`,
          hint: "remove it from the app directory",
        });
      }
    }
  };
  await walk("");
  return stats;
}
