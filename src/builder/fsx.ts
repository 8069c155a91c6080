// File helpers for the in-sandbox tools. (src/util has an `exists` too; the tools ship only
// builder/ and archive/, so they keep their own.)
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

/** Copies a (read-only) tree so that the copy is writable by us; symlinks stay symlinks. */
export async function copyWritable(src: string, dest: string): Promise<void> {
  const st = await lstat(src);
  if (st.isSymbolicLink()) {
    await symlink(await readlink(src), dest);
  } else if (st.isDirectory()) {
    await mkdir(dest, { recursive: true, mode: 0o755 });
    await chmod(dest, 0o755);
    for (const name of (await readdir(src)).sort()) await copyWritable(join(src, name), join(dest, name));
  } else if (st.isFile()) {
    await copyFile(src, dest);
    await chmod(dest, (st.mode & 0o777) | 0o200);
  }
}
