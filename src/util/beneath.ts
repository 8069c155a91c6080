/**
 * Paths inside a tenant's tree, resolved for real: component by component, following each symlink
 * the way the kernel would, and refusing the moment a step would climb above the root (the
 * semantics of openat2's RESOLVE_BENEATH). A lexical check is not enough: with `u -> .`, the link
 * `up -> u/..` normalises to `.` but the kernel resolves `u` to the root and then `..` to its
 * parent. Every file the host reads from an app goes through `readBeneath`.
 *
 * The trees read this way are kiln's own copies (a snapshot, an extracted upload) that no tenant
 * process can change while kiln reads them, so resolving then opening is not racy.
 */
import { constants } from "node:fs";
import { lstat, open, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { absent } from "../util/fs.js";

/** What one path (relative to the root, no links in its parents) is. */
export type Node = { kind: "dir" | "file" | "other" | "missing" } | { kind: "link"; target: string };
export type Lookup = (rel: string) => Promise<Node> | Node;

/** The kernel's own limit on links followed in one lookup. */
const MAX_LINKS = 40;

export type Resolved =
  | { ok: true; path: string; kind: Node["kind"] }
  | { ok: false; reason: "escapes" | "absolute" | "loop" };

/** The walk itself, asking for each path it needs (so one walk serves sync and async lookups). */
function* walkBeneath(rel: string, followLast: boolean): Generator<string, Resolved, Node> {
  if (rel.startsWith("/")) return { ok: false, reason: "absolute" };
  const stack: string[] = [];
  let queue = rel.split("/");
  let links = 0;
  let kind: Node["kind"] = "dir";
  while (queue.length > 0) {
    const c = queue.shift() as string;
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (stack.length === 0) return { ok: false, reason: "escapes" };
      stack.pop();
      kind = "dir";
      continue;
    }
    const node: Node = yield [...stack, c].join("/");
    if (node.kind === "link" && (queue.length > 0 || followLast)) {
      if (++links > MAX_LINKS) return { ok: false, reason: "loop" };
      if (node.target.startsWith("/")) return { ok: false, reason: "absolute" };
      // Relative to the link's directory: the stack stays as it is.
      queue = [...node.target.split("/"), ...queue];
      continue;
    }
    // A missing component or a non-directory in the middle ends the lookup (ENOENT/ENOTDIR): the
    // kernel never goes on to a `..` after it, so nothing further can escape.
    if (node.kind === "missing" || (node.kind !== "dir" && queue.some((q) => q !== "" && q !== "."))) {
      return { ok: true, path: [...stack, c].join("/"), kind: "missing" };
    }
    stack.push(c);
    kind = node.kind;
  }
  return { ok: true, path: stack.join("/"), kind };
}

/** Resolves `rel` beneath the root `lookup` describes; `followLast` as open() without O_NOFOLLOW. */
export async function resolveBeneath(lookup: Lookup, rel: string, followLast = true): Promise<Resolved> {
  const walk = walkBeneath(rel, followLast);
  let step = walk.next();
  while (!step.done) step = walk.next(await lookup(step.value));
  return step.value;
}

/** The same, for a lookup that answers at once (an archive's entries held in memory). */
export function resolveBeneathSync(lookup: (rel: string) => Node, rel: string, followLast = true): Resolved {
  const walk = walkBeneath(rel, followLast);
  let step = walk.next();
  while (!step.done) step = walk.next(lookup(step.value));
  return step.value;
}

/** A lookup on the real file system under `root` (lstat: links are reported, never followed). */
export function fsLookup(root: string): Lookup {
  return async (rel) => {
    const p = join(root, rel);
    const st = await lstat(p).catch(absent(undefined));
    if (!st) return { kind: "missing" };
    if (st.isSymbolicLink()) return { kind: "link", target: await readlink(p) };
    return { kind: st.isDirectory() ? "dir" : st.isFile() ? "file" : "other" };
  };
}

export function linkOutError(what: string, rel: string, reason: "escapes" | "absolute" | "loop"): KilnError {
  return new KilnError({
    code: "source_unsafe_link",
    message:
      reason === "loop"
        ? `${what} ${rel} is a symlink loop`
        : `${what} ${rel} resolves outside the app (through ${reason === "absolute" ? "an absolute" : "a climbing"} symlink)`,
    hint: "builds see only the app's own files: copy the target in, or make the link relative and inside the app",
  });
}

/** Throws for the first symlink under `root` whose target, resolved for real, is outside it. */
export async function assertLinksBeneath(root: string, what = "the app's"): Promise<void> {
  const lookup = fsLookup(root);
  const walk = async (rel: string): Promise<void> => {
    for (const e of (await readdir(join(root, rel), { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isSymbolicLink()) {
        const res = await resolveBeneath(lookup, r);
        if (!res.ok) throw linkOutError(`${what} symlink`, r, res.reason);
      }
    }
  };
  await walk("");
}

export const DEFAULT_READ_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Reads `rel` from the tree at `root`, following links only while they stay beneath it. Missing:
 * undefined. A link out, a non-file or a file over `maxBytes`: a KilnError naming the path (never
 * quoting what is in it).
 */
export async function readBeneath(
  root: string,
  rel: string,
  opts: { maxBytes?: number } = {},
): Promise<Buffer | undefined> {
  const res = await resolveBeneath(fsLookup(root), rel);
  if (!res.ok) throw linkOutError("the app's", rel, res.reason);
  if (res.kind === "missing") return undefined;
  if (res.kind !== "file") {
    throw new KilnError({
      code: "invalid_app",
      message: `the app's ${rel} is not a regular file`,
      hint: `make ${rel} a plain file`,
    });
  }
  // Every component of res.path was checked to be no link; O_NOFOLLOW guards the last once more.
  const fh = await open(join(root, res.path), constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = await fh.stat();
    const max = opts.maxBytes ?? DEFAULT_READ_MAX_BYTES;
    if (!st.isFile())
      throw new KilnError({ code: "invalid_app", message: `the app's ${rel} is not a regular file` });
    if (st.size > max) {
      throw new KilnError({
        code: "invalid_app",
        message: `the app's ${rel} is ${st.size} bytes, over the ${max} kiln reads`,
        hint: `keep ${rel} under ${max} bytes`,
      });
    }
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

export async function readTextBeneath(
  root: string,
  rel: string,
  opts: { maxBytes?: number } = {},
): Promise<string | undefined> {
  return (await readBeneath(root, rel, opts))?.toString("utf8");
}
