/**
 * Which kiln a dyno belongs to. Several kiln instances (one per data directory) may share a host;
 * each keeps its dynos' cgroups under `kiln/<instance>/` and their run directories under
 * `RUN_DIR/<instance>/`, so one instance's clean-up after a crash never touches another's dynos.
 * The id is derived from the data directory's real path: the same directory, the same instance.
 */
import { createHash } from "node:crypto";
import { realpathSync } from "node:fs";
import { resolve } from "node:path";

export function instanceId(dataDir: string): string {
  let path = resolve(dataDir);
  try {
    path = realpathSync(path);
  } catch {
    // not made yet: its resolved name is what it will be
  }
  return `i-${createHash("sha256").update(path).digest("hex").slice(0, 12)}`;
}

/** Run ids name directories: nothing a record says may climb out of its parent. */
export function isPlainName(name: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(name) && name.length <= 200;
}
