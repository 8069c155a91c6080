// Host-only (the build sandbox's tools import tar.ts, which must not depend on kiln's error types).
/**
 * Untrusted tar.gz archives (uploaded app sources). One set of rules, applied twice: when the
 * upload arrives (`inspectUntrustedTarGz`, so a hostile archive is a 422 before anything is
 * queued) and again while extracting into the build's scratch directory (defence in depth).
 *
 * Allowed: files, directories, and symlinks that stay inside the tree. Refused, naming the entry:
 * absolute paths and `..`; hard links, devices, FIFOs; a symlink pointing out of the tree; any
 * entry under a path that is a symlink (writing through it); more than `maxEntries` entries or
 * `maxBytes` unpacked (gzip bombs); truncated or corrupt archives. setuid/setgid/sticky bits are
 * stripped.
 */
import { dirname, isAbsolute, normalize } from "node:path";
import * as tar from "tar";
import { KilnError } from "../errors.js";

export interface UntrustedLimits {
  maxBytes: number;
  maxEntries: number;
}

export const DEFAULT_MAX_ENTRIES = 200_000;

const ALLOWED_TYPES = ["File", "OldFile", "ContiguousFile", "Directory", "SymbolicLink"];

interface EntryLike {
  type?: string;
  size?: number;
  mode?: number;
  linkpath?: string;
}

/** A checker for one pass over an archive's entries: returns the problem, if any. */
function rules(limits: UntrustedLimits) {
  let total = 0;
  let count = 0;
  const links = new Set<string>();
  let problem: KilnError | undefined;
  const refuse = (path: string, why: string) => {
    problem ??= new KilnError({
      code: "source_unsafe_entry",
      message: `the source archive's entry ${JSON.stringify(path)} ${why}`,
      hint: "upload a plain tar.gz of the app directory (git archive or tar czf)",
    });
  };
  const check = (rawPath: string, entry: EntryLike): boolean => {
    if (problem) return false;
    const path = rawPath.replace(/^\.\//, "").replace(/\/+$/, "");
    const type = entry.type ?? "File";
    total += entry.size ?? 0;
    count++;
    if (isAbsolute(rawPath) || path.split("/").includes("..")) refuse(rawPath, "leaves the app directory");
    else if (!ALLOWED_TYPES.includes(type))
      refuse(rawPath, `is a ${type}, which an app source may not contain`);
    else if ([...links].some((l) => path === l || path.startsWith(`${l}/`)))
      refuse(rawPath, "is written through a symlink");
    else if (count > limits.maxEntries)
      refuse(rawPath, `takes the archive over ${limits.maxEntries} entries`);
    else if (total > limits.maxBytes)
      refuse(rawPath, `takes the unpacked source over ${Math.round(limits.maxBytes / 1048576)} MiB`);
    else if (type === "SymbolicLink") {
      const target = entry.linkpath ?? "";
      const resolved = normalize(`${dirname(path)}/${target}`);
      if (isAbsolute(target) || resolved === ".." || resolved.startsWith("../"))
        refuse(rawPath, `is a symlink to ${target}, outside the app`);
      links.add(path);
    }
    // No setuid, setgid or sticky bits in anything kiln unpacks as root.
    if (entry.mode !== undefined) entry.mode &= 0o777;
    return !problem;
  };
  return { check, problem: () => problem };
}

function unreadable(err: Error): KilnError {
  return new KilnError({
    code: "source_invalid_archive",
    message: `the source is not a readable tar.gz: ${err.message}`,
    hint: "upload a tar.gz of the app directory (git archive --format=tar.gz HEAD, or tar czf)",
  });
}

/** Reads the whole archive without writing anything; throws the first problem. */
export async function inspectUntrustedTarGz(
  file: string,
  limits: UntrustedLimits,
): Promise<{ entries: number }> {
  const r = rules(limits);
  let entries = 0;
  let failure: KilnError | undefined;
  await tar
    .list({
      file,
      strict: true,
      onReadEntry: (e) => {
        entries++;
        r.check(e.path, e as EntryLike);
      },
    })
    .catch((err: Error) => {
      failure = unreadable(err);
    });
  const problem = r.problem() ?? failure;
  if (problem) throw problem;
  if (entries === 0) throw unreadable(new Error("it has no entries"));
  return { entries };
}

/** Extracts into `dir` under the same rules. */
export async function extractUntrustedTarGz(
  file: string,
  dir: string,
  limits: UntrustedLimits,
): Promise<void> {
  const r = rules(limits);
  let failure: KilnError | undefined;
  await tar
    .extract({
      file,
      cwd: dir,
      preservePaths: false,
      preserveOwner: false,
      strict: true,
      filter: (path, entry) => r.check(path, entry as EntryLike),
    })
    .catch((err: Error) => {
      failure = unreadable(err);
    });
  const problem = r.problem() ?? failure;
  if (problem) throw problem;
}
