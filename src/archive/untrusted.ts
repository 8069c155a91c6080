// Host-only (the build sandbox's tools import tar.ts, which must not depend on kiln's error types).
/**
 * Untrusted tar.gz archives (uploaded app sources). One set of rules, applied twice: when the
 * upload arrives (`inspectUntrustedTarGz`, so a hostile archive is a 422 before anything is
 * queued) and again while extracting into the build's scratch directory (defence in depth).
 *
 * Allowed: files, directories, and symlinks that stay inside the tree. Refused, naming the entry:
 * absolute paths and `..`; hard links, devices, FIFOs; a symlink whose target, resolved for real
 * through the archive's other links (src/util/beneath.ts), leaves the tree; any entry under a
 * path that is a symlink (writing through it); more than `maxEntries` entries, `maxBytes`
 * unpacked or `maxRatio` times the compressed size (gzip bombs); truncated or corrupt archives.
 * setuid/setgid/sticky bits are stripped.
 *
 * The archive is inflated as a stream and every limit is checked on each chunk as it comes out of
 * gzip: the first problem stops reading, so a bomb costs one chunk of memory and no more.
 */
import { once } from "node:events";
import { createReadStream } from "node:fs";
import { dirname, isAbsolute, normalize } from "node:path";
import { createGunzip } from "node:zlib";
import * as tar from "tar";
import { KilnError } from "../errors.js";
import { assertLinksBeneath, linkOutError, type Node, resolveBeneathSync } from "../util/beneath.js";

export interface UntrustedLimits {
  maxBytes: number;
  maxEntries: number;
  /** Most inflated bytes per compressed byte (past the first RATIO_GRACE_BYTES). */
  maxRatio?: number;
  /** setuid/setgid bits: stripped (sources), or refused (slugs: kiln's packer never writes them). */
  specialModes?: "strip" | "refuse";
}

export const DEFAULT_MAX_ENTRIES = 200_000;
/** Source trees compress 3–10×; only runs of one byte reach hundreds (gzip's ceiling is ~1032). */
export const DEFAULT_MAX_RATIO = 200;
const RATIO_GRACE_BYTES = 8 * 1024 * 1024;
/** Per entry: a header, a possible pax/long-name header and the padding to 512 bytes. */
const ENTRY_OVERHEAD_BYTES = 2048;

const ALLOWED_TYPES = ["File", "OldFile", "ContiguousFile", "Directory", "SymbolicLink"];

interface EntryLike {
  type?: string;
  size?: number;
  mode?: number;
  linkpath?: string;
}

function refusal(path: string, why: string): KilnError {
  return new KilnError({
    code: "source_unsafe_entry",
    message: `the source archive's entry ${JSON.stringify(path)} ${why}`,
    hint: "upload a plain tar.gz of the app directory (git archive or tar czf)",
  });
}

/** A checker for one pass over an archive's entries: returns the problem, if any. */
function rules(limits: UntrustedLimits) {
  let total = 0;
  let count = 0;
  const links = new Set<string>();
  /** The tree the archive makes (last entry wins, as when extracting), for resolving links. */
  const nodes = new Map<string, Node>();
  const lookup = (rel: string): Node => nodes.get(rel) ?? { kind: "missing" };
  let problem: KilnError | undefined;
  const refuse = (path: string, why: string) => {
    problem ??= refusal(path, why);
  };
  const check = (rawPath: string, entry: EntryLike): boolean => {
    if (problem) return false;
    const path = rawPath.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
    const type = entry.type ?? "File";
    total += entry.size ?? 0;
    count++;
    if (isAbsolute(rawPath) || path.split("/").includes("..")) refuse(rawPath, "leaves the app directory");
    else if (!ALLOWED_TYPES.includes(type))
      refuse(rawPath, `is a ${type}, which an app source may not contain`);
    // Each ancestor looked up (not every link scanned): slugs hold 100,000s of entries.
    else if (path.split("/").some((_, i, parts) => links.has(parts.slice(0, i + 1).join("/"))))
      refuse(rawPath, "is written through a symlink");
    else if (count > limits.maxEntries)
      refuse(rawPath, `takes the archive over ${limits.maxEntries} entries`);
    else if (total > limits.maxBytes)
      refuse(rawPath, `takes the unpacked source over ${Math.round(limits.maxBytes / 1048576)} MiB`);
    else if (limits.specialModes === "refuse" && ((entry.mode ?? 0) & 0o6000) !== 0)
      refuse(rawPath, "has the setuid or setgid bit");
    else if (type === "SymbolicLink") {
      const target = entry.linkpath ?? "";
      const lexical = normalize(`${dirname(path)}/${target}`);
      if (isAbsolute(target) || lexical === ".." || lexical.startsWith("../"))
        refuse(rawPath, `is a symlink to ${target}, outside the app`);
      else {
        // Resolved through the links seen so far (checkLinks does it again with all of them).
        const res = resolveBeneathSync(lookup, path === "" ? target : `${dirname(path)}/${target}`);
        if (!res.ok) problem ??= linkOutError("the source archive's symlink", path, res.reason);
      }
      links.add(path);
    }
    if (!problem && path !== "" && path !== ".") {
      nodes.set(
        path,
        type === "SymbolicLink"
          ? { kind: "link", target: entry.linkpath ?? "" }
          : { kind: type === "Directory" ? "dir" : "file" },
      );
      for (let d = dirname(path); d !== "." && !nodes.has(d); d = dirname(d)) nodes.set(d, { kind: "dir" });
    }
    // No setuid, setgid or sticky bits in anything kiln unpacks as root.
    if (entry.mode !== undefined) entry.mode &= 0o777;
    return !problem;
  };
  /** Every link resolved through the others, as the kernel will once they are on disk. */
  const checkLinks = () => {
    if (problem) return;
    for (const [path, node] of [...nodes].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (node.kind !== "link") continue;
      const res = resolveBeneathSync(lookup, path);
      if (!res.ok) {
        problem = linkOutError("the source archive's symlink", path, res.reason);
        return;
      }
    }
  };
  return { check, checkLinks, problem: () => problem, entries: () => count };
}

function unreadable(err: Error): KilnError {
  return new KilnError({
    code: "source_invalid_archive",
    message: `the source is not a readable tar.gz: ${err.message}`,
    hint: "upload a tar.gz of the app directory (git archive --format=tar.gz HEAD, or tar czf)",
  });
}

/**
 * Inflates `file` into `sink` chunk by chunk, checking the limits on every chunk and stopping at the
 * first problem (a limit, or one the entry rules found in what was already written).
 */
async function inflateInto(
  file: string,
  limits: UntrustedLimits,
  sink: tar.Parser,
  r: ReturnType<typeof rules>,
): Promise<KilnError | undefined> {
  const maxRatio = limits.maxRatio ?? DEFAULT_MAX_RATIO;
  const input = createReadStream(file, { highWaterMark: 64 * 1024 });
  const gunzip = createGunzip({ chunkSize: 64 * 1024 });
  let sinkError: Error | undefined;
  const ended = new Promise<void>((resolve) => {
    sink.on("error", (err: Error) => {
      sinkError ??= err;
      resolve();
    });
    sink.on("end", () => resolve());
  });
  input.on("error", (err) => gunzip.destroy(err));
  input.pipe(gunzip);
  let inflated = 0;
  let problem: KilnError | undefined;
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      inflated += chunk.length;
      // The stream's own limits: what the headers declare may be a lie (or absent, for padding).
      if (inflated > limits.maxBytes + (r.entries() + 2) * ENTRY_OVERHEAD_BYTES)
        problem = refusal(
          "(archive)",
          `takes the unpacked source over ${Math.round(limits.maxBytes / 1048576)} MiB while inflating`,
        );
      else if (inflated > RATIO_GRACE_BYTES && inflated > maxRatio * gunzip.bytesWritten)
        problem = refusal(
          "(archive)",
          `inflates more than ${maxRatio} times its compressed size (a gzip bomb); kiln stopped reading it`,
        );
      if (problem) break;
      const more = sink.write(chunk);
      // The entry rules run as the parser reads headers: a refused entry ends the read here.
      if (r.problem() || sinkError) break;
      if (!more) await Promise.race([once(sink, "drain"), ended]);
    }
  } catch (err) {
    problem ??= unreadable(err as Error);
  } finally {
    input.destroy();
    gunzip.destroy();
  }
  problem = r.problem() ?? problem;
  if (problem) {
    sink.abort(problem);
    return problem;
  }
  if (!sinkError) {
    sink.end();
    await ended;
  }
  return r.problem() ?? (sinkError ? unreadable(sinkError) : undefined);
}

/** Reads the whole archive without writing anything; throws the first problem. */
export async function inspectUntrustedTarGz(
  file: string,
  limits: UntrustedLimits,
): Promise<{ entries: number }> {
  const r = rules(limits);
  const parser = new tar.Parser({
    strict: true,
    onReadEntry: (e) => {
      r.check(e.path, e as EntryLike);
      e.resume();
    },
  });
  const problem = await inflateInto(file, limits, parser, r);
  if (problem) throw problem;
  r.checkLinks();
  const linkProblem = r.problem();
  if (linkProblem) throw linkProblem;
  if (r.entries() === 0) throw unreadable(new Error("it has no entries"));
  return { entries: r.entries() };
}

/** Extracts into `dir` under the same rules, then checks every link on disk once more. */
export async function extractUntrustedTarGz(
  file: string,
  dir: string,
  limits: UntrustedLimits,
): Promise<void> {
  const r = rules(limits);
  const unpack = new tar.Unpack({
    cwd: dir,
    preservePaths: false,
    preserveOwner: false,
    strict: true,
    filter: (path, entry) => r.check(path, entry as EntryLike),
  });
  const problem = await inflateInto(file, limits, unpack, r);
  if (problem) throw problem;
  r.checkLinks();
  const linkProblem = r.problem();
  if (linkProblem) throw linkProblem;
  // What is on disk is what the host will read: the links there, resolved by the file system.
  await assertLinksBeneath(dir, "the source archive's");
}
