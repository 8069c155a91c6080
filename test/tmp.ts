/**
 * One home for tests' temp directories: `tempDir("kiln-foo-")` makes one under the OS temp dir and
 * remembers it; test/tmpCleanup.ts (a vitest setup file) removes them all once the test file is done,
 * after the file's own afterAll hooks (which stop servers and dynos writing there) have run.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made: string[] = [];

/** A fresh directory (mode 0700, as mkdtemp makes it), removed when the test file ends. */
export function tempDir(prefix = "kiln-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Removes every directory tempDir made in this file. A leftover is reported, never a failure. */
export function removeTempDirs(): void {
  for (const dir of made.splice(0)) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch (err) {
      process.stderr.write(`could not remove the temp dir ${dir}: ${(err as Error).message}\n`);
    }
  }
}
