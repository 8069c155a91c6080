/** Small file-system helpers shared by several domains. */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";

/**
 * True when a failure means "the path is not there": ENOENT, or ENOTDIR (a component of it is a
 * file). Anything else (EACCES, EIO, EISDIR, ELOOP) is a real failure and is thrown on.
 */
export function isAbsent(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/** For `.catch(absent(fallback))`: the fallback when the path is not there, any other error rethrown. */
export function absent<F>(fallback: F): (err: unknown) => F {
  return (err) => {
    if (isAbsent(err)) return fallback;
    throw err;
  };
}

export async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, absent(false));
}

/** Streams a file through a hash: hex for sha256 (Debian's convention), SRI for sha512 (npm's). */
export async function hashFile(file: string, algo: "sha256" | "sha512"): Promise<string> {
  const h = createHash(algo);
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return algo === "sha256" ? h.digest("hex") : `sha512-${h.digest("base64")}`;
}

/** Writes a file so that a crash leaves either the old or the new content, never half of one. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

/**
 * Runs `fn` holding an exclusive lock file (O_EXCL create). A lock left by a process that no longer
 * exists (killed mid-way) is taken over; a live holder is waited for up to `timeoutMs`.
 */
export async function withFileLock<T>(
  lockFile: string,
  fn: () => Promise<T>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fh = await open(lockFile, "wx");
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = Number((await readFile(lockFile, "utf8").catch(absent(""))).trim());
      if (holder > 0 && !pidAlive(holder)) {
        await rm(lockFile, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for the lock ${lockFile} (held by pid ${holder})`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockFile, { force: true });
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
