// File helpers for the in-sandbox tools. (src/util has an `exists` too; the tools ship only
// sandboxtools/ and archive/, so they keep their own.)
import { access, chmod, copyFile, lstat, mkdir, readdir, readlink, symlink } from "node:fs/promises";
import { join } from "node:path";

export async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Copies a (read-only) tree so that the copy is writable by us; symlinks stay symlinks. Entries are
 * created in byte order (or the reverse, for a reproducibility check): a directory lists its
 * entries in the order they were made, so the order is the same on every machine.
 */
export async function copyWritable(
  src: string,
  dest: string,
  opts: { order?: "sorted" | "reversed" } = {},
): Promise<void> {
  const st = await lstat(src);
  if (st.isSymbolicLink()) {
    await symlink(await readlink(src), dest);
  } else if (st.isDirectory()) {
    await mkdir(dest, { recursive: true, mode: 0o755 });
    await chmod(dest, 0o755);
    const names = (await readdir(src)).sort();
    if (opts.order === "reversed") names.reverse();
    for (const name of names) await copyWritable(join(src, name), join(dest, name), opts);
  } else if (st.isFile()) {
    await copyFile(src, dest);
    await chmod(dest, (st.mode & 0o777) | 0o200);
  }
}
