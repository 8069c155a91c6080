/**
 * Explains why two builds of the same slug differ, file by file (diffoscope's job, for kiln's slugs):
 * a unified diff for text, key paths for JSON, members for archives (recursively), hex context for
 * the rest. Every detail and every list is bounded, so a 200 MB slug still gives a readable report,
 * and nothing depends on timing, so the same inputs always give the same explanation.
 */
import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { structuredPatch } from "diff";
import { compareBytes, readTarEntries } from "../archive/tar.js";

const gunzipAsync = promisify(gunzip);

export interface Side {
  size: number;
  sha256: string;
  mode?: number;
  type?: string;
  linkpath?: string;
}

export interface FileDifference {
  /** Path in the slug; a member of an archive inside it is "outer.tgz//inner/path". */
  path: string;
  kind: "text" | "json" | "archive" | "binary" | "missing" | "type" | "mode" | "link";
  /** null: the file is missing on that side. */
  a: Side | null;
  b: Side | null;
  /**
   * A readable, bounded difference: unified diff (text), key-level lines (json), member summary
   * (archive), hex context of the first differing offsets (binary), one sentence for the others.
   */
  detail: string;
  /** Fragments of each side near the differences, for naming likely causes; bounded. */
  evidence: { a: string[]; b: string[] };
  /** For archives: the differing members, recursively (same shape). */
  members?: FileDifference[];
}

export interface TreeEntry {
  path: string;
  type: string;
  mode: number;
  linkpath: string;
  data: Buffer;
}

/** Archives nested deeper than this are compared as bytes: the slug, a tarball in it, one in that. */
const MAX_DEPTH = 3;
const TEXT_SNIFF_BYTES = 64 * 1024;
const MAX_DIFF_LINES = 60;
const MAX_JSON_LINES = 40;
const MAX_EVIDENCE = 50;
const MAX_FRAGMENT = 300;
/** Widest line or value shown in a detail; long (minified) lines are cut around the change. */
const MAX_SHOWN = 160;
/** Myers costs O(N·D): past this many edited lines, lines are compared by position instead. */
const MAX_EDIT_LINES = 2000;
const MAX_REGIONS = 3;
/** Differing runs closer than this are one region. */
const REGION_GAP = 16;
const HEX_CONTEXT = 16;
/** Bytes of a long region dumped per side (8 xxd lines). */
const MAX_DUMP = 128;
const STRINGS_WINDOW = 64;
const MIN_STRING = 4;
const MAX_NAMES = 10;

const ARCHIVE_NAME = /\.(tar|tgz|tar\.gz|gz)$/;
const TAR_NAME = /\.(tar|tgz|tar\.gz)$/;
const JSON_NAME = /\.(json|map)$/;

/**
 * Compares two lists of entries (e.g. the members of two slugs) and explains each differing path,
 * sorted by path. Identical entries are omitted; `prefix` goes before every reported path.
 */
export async function compareEntries(
  a: TreeEntry[],
  b: TreeEntry[],
  opts: { prefix?: string; depth?: number } = {},
): Promise<FileDifference[]> {
  const prefix = opts.prefix ?? "";
  const depth = opts.depth ?? 0;
  const ma = byPath(a);
  const mb = byPath(b);
  const paths = [...new Set([...ma.keys(), ...mb.keys()])].sort(compareBytes);
  const out: FileDifference[] = [];
  // One at a time: each comparison may hold a decompressed member in memory.
  for (const p of paths) {
    const d = await compareEntry(prefix + p, p, ma.get(p), mb.get(p), depth);
    if (d) out.push(d);
  }
  return out;
}

/**
 * Explains one differing file given both contents; `depth` counts the archives around it. Equal
 * contents give a "binary" difference that says so (callers compare before asking).
 */
export async function explainFile(path: string, a: Buffer, b: Buffer, depth = 0): Promise<FileDifference> {
  if (a.equals(b)) {
    return {
      path,
      kind: "binary",
      a: side(a),
      b: side(b),
      detail: "contents are identical",
      evidence: none(),
    };
  }
  if (depth < MAX_DEPTH && ARCHIVE_NAME.test(path)) {
    // Not readable as what the name says: the bytes are all there is to compare.
    const d = await explainArchive(path, a, b, depth).catch(() => null);
    if (d) return d;
  }
  const text = isText(a) && isText(b);
  if (text && JSON_NAME.test(path)) {
    const d = explainJson(path, a, b);
    if (d) return d;
  }
  if (text) {
    const d = explainText(path, a, b);
    if (d) return d;
  }
  return explainBinary(path, a, b);
}

/** Reads two slug files (tar.gz) and compares their members. */
export async function diffArchives(aFile: string, bFile: string): Promise<FileDifference[]> {
  const [a, b] = await Promise.all([readFile(aFile), readFile(bFile)]);
  if (a.equals(b)) return [];
  const [ea, eb] = await Promise.all([readTarEntries(a), readTarEntries(b)]);
  const diffs = await compareEntries(ea, eb, { depth: 1 });
  if (diffs.length > 0) return diffs;
  // Same members, different bytes: explain the archive itself (as ".") rather than say nothing.
  return [await archiveDifference(".", a, b, [], sameOrder(ea, eb))];
}

function byPath(entries: TreeEntry[]): Map<string, TreeEntry> {
  // tar writes directories as "dir/"; a later duplicate wins, as on extraction.
  return new Map(entries.map((e) => [e.path.replace(/\/+$/, "") || e.path, e]));
}

async function compareEntry(
  path: string,
  rel: string,
  ea: TreeEntry | undefined,
  eb: TreeEntry | undefined,
  depth: number,
): Promise<FileDifference | null> {
  if (!ea || !eb) {
    const e = (ea ?? eb) as TreeEntry;
    const what = e.linkpath
      ? `${e.type} → ${e.linkpath}`
      : e.type === "File"
        ? `File, ${e.data.length} bytes`
        : e.type;
    return {
      path,
      kind: "missing",
      a: ea ? entrySide(ea) : null,
      b: eb ? entrySide(eb) : null,
      detail: `only in ${ea ? "a" : "b"} (${what})`,
      evidence: ea ? { a: [rel], b: [] } : { a: [], b: [rel] },
    };
  }
  const sides = { a: entrySide(ea), b: entrySide(eb) };
  if (ea.type !== eb.type) {
    const show = (e: TreeEntry) => (e.linkpath ? `${e.type} → ${e.linkpath}` : e.type);
    return {
      path,
      kind: "type",
      ...sides,
      detail: `type differs: ${show(ea)} in a, ${show(eb)} in b`,
      evidence: { a: ea.linkpath ? [ea.linkpath] : [], b: eb.linkpath ? [eb.linkpath] : [] },
    };
  }
  const modeNote = ea.mode !== eb.mode ? `mode differs: ${octal(ea.mode)} → ${octal(eb.mode)}` : "";
  if (ea.linkpath !== eb.linkpath) {
    const what = ea.type === "Link" ? "hard link" : "symlink";
    const targets = `${JSON.stringify(ea.linkpath)} in a, ${JSON.stringify(eb.linkpath)} in b`;
    return {
      path,
      kind: "link",
      ...sides,
      detail: `${what} target differs: ${targets}${modeNote ? `; ${modeNote}` : ""}`,
      evidence: { a: [clip(ea.linkpath, 0, MAX_FRAGMENT)], b: [clip(eb.linkpath, 0, MAX_FRAGMENT)] },
    };
  }
  if (!ea.data.equals(eb.data)) {
    const d = await explainFile(path, ea.data, eb.data, depth);
    return { ...d, ...sides, detail: modeNote ? `${d.detail}\n${modeNote}` : d.detail };
  }
  if (modeNote) {
    return { path, kind: "mode", ...sides, detail: `${modeNote} (same content)`, evidence: none() };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Archives

async function explainArchive(path: string, a: Buffer, b: Buffer, depth: number): Promise<FileDifference> {
  if (!TAR_NAME.test(path)) {
    // A single gzip member: compare what it holds, as one member named without ".gz".
    const [ia, ib] = await Promise.all([gunzipAsync(a), gunzipAsync(b)]);
    const inner = `${path}//${basename(path).slice(0, -3)}`;
    const members = ia.equals(ib) ? [] : [await explainFile(inner, ia, ib, depth + 1)];
    return archiveDifference(path, a, b, members, true);
  }
  const [ea, eb] = await Promise.all([readTarEntries(a), readTarEntries(b)]);
  const members = await compareEntries(ea, eb, { prefix: `${path}//`, depth: depth + 1 });
  return archiveDifference(path, a, b, members, sameOrder(ea, eb));
}

async function archiveDifference(
  path: string,
  a: Buffer,
  b: Buffer,
  members: FileDifference[],
  inOrder: boolean,
): Promise<FileDifference> {
  const base: Pick<FileDifference, "path" | "kind" | "a" | "b"> = {
    path,
    kind: "archive",
    a: side(a),
    b: side(b),
  };
  if (members.length > 0) {
    const names = members.map((m) => m.path.slice(path.length + 2));
    const shown = names.slice(0, MAX_NAMES).join(", ") + (names.length > MAX_NAMES ? ", …" : "");
    const evidence = none();
    for (const m of members) {
      for (const s of m.evidence.a) push(evidence.a, s);
      for (const s of m.evidence.b) push(evidence.b, s);
    }
    const n = members.length;
    return {
      ...base,
      detail: `${n} member${n === 1 ? "" : "s"} differ${n === 1 ? "s" : ""}: ${shown}`,
      evidence,
      members,
    };
  }
  // Every member is equal: the headers (times, owners), the order or the compression differ.
  // Compare the uncompressed streams so the hex context lands on the header field that differs.
  const [ua, ub] = await Promise.all([gunzipIfGzip(a), gunzipIfGzip(b)]);
  const streams = ua.equals(ub)
    ? { x: a, y: b, what: "compressed bytes" }
    : { x: ua, y: ub, what: "archive stream" };
  const bin = explainBinary(path, streams.x, streams.y);
  const head = [
    "archive metadata only (member order, headers, or compression)",
    ...(inOrder ? [] : ["member order differs"]),
    ...(ua !== a && ua.equals(ub)
      ? ["uncompressed, the archives are identical: only the compression differs"]
      : []),
    `${streams.what}:`,
  ];
  return { ...base, detail: `${head.join("\n")}\n${bin.detail}`, evidence: bin.evidence, members: [] };
}

function sameOrder(a: TreeEntry[], b: TreeEntry[]): boolean {
  return a.length === b.length && a.every((e, i) => e.path === b[i]?.path);
}

async function gunzipIfGzip(buf: Buffer): Promise<Buffer> {
  if (buf[0] !== 0x1f || buf[1] !== 0x8b) return buf;
  return gunzipAsync(buf).catch(() => buf);
}

// ---------------------------------------------------------------------------------------------
// Text

function isText(buf: Buffer): boolean {
  // NULs are the cheap tell of binary; isUtf8 then checks the whole file, as it is decoded whole.
  return !buf.subarray(0, TEXT_SNIFF_BYTES).includes(0) && isUtf8(buf);
}

function explainText(path: string, a: Buffer, b: Buffer, note?: string): FileDifference | null {
  const sa = a.toString("utf8");
  const sb = b.toString("utf8");
  const la = `a/${path}`;
  const lb = `b/${path}`;
  const patch = structuredPatch(la, lb, sa, sb, undefined, undefined, {
    context: 3,
    maxEditLength: MAX_EDIT_LINES,
  });
  const evidence = none();
  const body: string[] = [];
  if (patch) {
    if (patch.hunks.length === 0) return null;
    for (const h of patch.hunks) {
      body.push(`@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`);
      body.push(...pairedLines(h.lines, evidence));
    }
  } else {
    // Too many edits for a minimal diff in bounded time: lines by position, which stays readable.
    body.push("(too many changes for a minimal diff: lines compared by position)");
    const xa = sa.split("\n");
    const xb = sb.split("\n");
    for (let i = 0; i < Math.max(xa.length, xb.length); i++) {
      if (xa[i] === xb[i]) continue;
      if (body.length >= MAX_DIFF_LINES - 6) {
        body.push(`… more lines differ from line ${i + 1}`);
        break;
      }
      const pair = [...(i < xa.length ? [`-${xa[i]}`] : []), ...(i < xb.length ? [`+${xb[i]}`] : [])];
      body.push(`@@ line ${i + 1} @@`, ...pairedLines(pair, evidence));
    }
  }
  const lines = [...(note ? [note] : []), `--- ${la}`, `+++ ${lb}`, ...body];
  return {
    path,
    kind: "text",
    a: side(a),
    b: side(b),
    detail: truncateLines(lines, MAX_DIFF_LINES, "lines"),
    evidence,
  };
}

/**
 * Formats a hunk's lines, cutting long ones around where each removed line and the added line
 * paired with it (the i-th of a -/+ run) first differ, and collects those lines as evidence.
 */
function pairedLines(lines: string[], evidence: { a: string[]; b: string[] }): string[] {
  const out: string[] = [];
  let i = 0;
  // A run of one sign, each line with the "\ No newline at end of file" markers after it.
  const take = (sign: string) => {
    const run: { text: string; marks: string[] }[] = [];
    while (i < lines.length && lines[i]?.[0] === sign) {
      const r = { text: (lines[i++] as string).slice(1), marks: [] as string[] };
      while (i < lines.length && lines[i]?.[0] === "\\") r.marks.push(lines[i++] as string);
      run.push(r);
    }
    return run;
  };
  while (i < lines.length) {
    const line = lines[i] as string;
    if (line[0] !== "-" && line[0] !== "+") {
      out.push(clip(line, 0, MAX_SHOWN));
      i++;
      continue;
    }
    const removed = take("-");
    const added = take("+");
    const at = (k: number) => firstDifference(removed[k]?.text ?? "", added[k]?.text ?? "");
    for (const [sign, run, ev] of [
      ["-", removed, evidence.a],
      ["+", added, evidence.b],
    ] as const) {
      run.forEach((r, k) => {
        out.push(`${sign}${clip(r.text, at(k), MAX_SHOWN)}`, ...r.marks);
        push(ev, clip(r.text, at(k), MAX_FRAGMENT));
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON

interface JsonChange {
  path: string;
  a?: unknown;
  b?: unknown;
  op: "changed" | "added" | "removed";
}

function explainJson(path: string, a: Buffer, b: Buffer): FileDifference | null {
  let ja: unknown;
  let jb: unknown;
  try {
    ja = JSON.parse(a.toString("utf8"));
    jb = JSON.parse(b.toString("utf8"));
  } catch {
    return null;
  }
  const changes: JsonChange[] = [];
  const total = walkJson(ja, jb, "", changes);
  if (total === 0) return explainText(path, a, b, "same JSON value: only formatting or key order differs");
  const evidence = none();
  const lines = changes.map((c) => {
    const p = c.path || ".";
    if (c.op === "removed") {
      push(evidence.a, fragment(c.a));
      return `  ${p}: removed`;
    }
    if (c.op === "added") {
      push(evidence.b, fragment(c.b));
      return `  ${p}: added ${shown(c.b)}`;
    }
    const at = typeof c.a === "string" && typeof c.b === "string" ? firstDifference(c.a, c.b) : 0;
    push(evidence.a, fragment(c.a, at));
    push(evidence.b, fragment(c.b, at));
    return `  ${p}: ${shown(c.a, at)} → ${shown(c.b, at)}`;
  });
  if (total > changes.length) lines.push(`  … ${total - changes.length} more changes`);
  return { path, kind: "json", a: side(a), b: side(b), detail: lines.join("\n"), evidence };
}

/** Records changed leaves (up to MAX_JSON_LINES) and returns how many there are in all. */
function walkJson(a: unknown, b: unknown, path: string, out: JsonChange[]): number {
  const add = (c: JsonChange) => {
    if (out.length < MAX_JSON_LINES) out.push(c);
    return 1;
  };
  if (Array.isArray(a) && Array.isArray(b)) {
    let n = 0;
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const p = `${path}[${i}]`;
      if (i >= b.length) n += add({ path: p, a: a[i], op: "removed" });
      else if (i >= a.length) n += add({ path: p, b: b[i], op: "added" });
      else n += walkJson(a[i], b[i], p, out);
    }
    return n;
  }
  if (isObject(a) && isObject(b)) {
    let n = 0;
    for (const k of Object.keys(a)) {
      const p = `${path}${jsonKey(k)}`;
      if (!Object.hasOwn(b, k)) n += add({ path: p, a: a[k], op: "removed" });
      else n += walkJson(a[k], b[k], p, out);
    }
    for (const k of Object.keys(b)) {
      if (!Object.hasOwn(a, k)) n += add({ path: `${path}${jsonKey(k)}`, b: b[k], op: "added" });
    }
    return n;
  }
  if (a === b || (isContainer(a) && isContainer(b) && JSON.stringify(a) === JSON.stringify(b))) return 0;
  return add({ path, a, b, op: "changed" });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isContainer(v: unknown): boolean {
  return typeof v === "object" && v !== null;
}

function jsonKey(k: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`;
}

function shown(v: unknown, at = 0): string {
  return clip(JSON.stringify(v) ?? "undefined", at, MAX_SHOWN);
}

/** Evidence: strings raw, anything else as JSON. */
function fragment(v: unknown, at = 0): string {
  return clip(typeof v === "string" ? v : (JSON.stringify(v) ?? ""), at, MAX_FRAGMENT);
}

// ---------------------------------------------------------------------------------------------
// Binary

interface Region {
  start: number;
  /** Exclusive. */
  end: number;
}

function explainBinary(path: string, a: Buffer, b: Buffer): FileDifference {
  const { regions, next } = findRegions(a, b);
  const lines: string[] = [];
  const evidence = none();
  if (a.length !== b.length) lines.push(`sizes differ: ${a.length} bytes in a, ${b.length} in b`);
  for (const r of regions) {
    const len = r.end - r.start;
    lines.push(`differs at ${hex(r.start)} (${r.start}), ${len} byte${len === 1 ? "" : "s"}:`);
    for (const [name, buf, ev] of [
      ["a", a, evidence.a],
      ["b", b, evidence.b],
    ] as const) {
      lines.push(`  ${name}:`);
      const from = Math.max(0, r.start - HEX_CONTEXT) & ~0xf;
      const to = Math.min(buf.length, r.end + HEX_CONTEXT, from + MAX_DUMP);
      if (from >= to) lines.push(`    (ends at ${hex(buf.length)})`);
      else lines.push(...xxd(buf, from, to).map((l) => `    ${l}`));
      if (r.end + HEX_CONTEXT > from + MAX_DUMP && to === from + MAX_DUMP) lines.push("    …");
      // Long regions (recompressed data) only contribute strings near their start.
      const hi = Math.min(r.end, r.start + MAX_DUMP) + STRINGS_WINDOW;
      for (const s of printableRuns(buf, r.start - STRINGS_WINDOW, hi)) push(ev, s);
    }
  }
  if (next >= 0) lines.push(`more differences from ${hex(next)} (${next})`);
  return { path, kind: "binary", a: side(a), b: side(b), detail: lines.join("\n"), evidence };
}

/** The first MAX_REGIONS differing regions and where the next one starts (-1: none). */
function findRegions(a: Buffer, b: Buffer): { regions: Region[]; next: number } {
  const regions: Region[] = [];
  let start = nextDiff(a, b, 0);
  while (start >= 0 && regions.length < MAX_REGIONS) {
    let end = nextSame(a, b, start);
    let next = nextDiff(a, b, end);
    while (next >= 0 && next - end < REGION_GAP) {
      end = nextSame(a, b, next);
      next = nextDiff(a, b, end);
    }
    regions.push({ start, end });
    start = next;
  }
  return { regions, next: start };
}

/** First offset at or after `from` where the bytes differ (past the shorter side all do), or -1. */
function nextDiff(a: Buffer, b: Buffer, from: number): number {
  const n = Math.min(a.length, b.length);
  let i = from;
  while (i < n) {
    // Skip equal stretches with memcmp; only a differing chunk is walked byte by byte.
    const end = Math.min(i + 4096, n);
    if (!a.subarray(i, end).equals(b.subarray(i, end))) {
      while (a[i] === b[i]) i++;
      return i;
    }
    i = end;
  }
  return i < Math.max(a.length, b.length) ? i : -1;
}

/** First offset at or after `from` where the bytes are equal (or the end of the longer side). */
function nextSame(a: Buffer, b: Buffer, from: number): number {
  const n = Math.min(a.length, b.length);
  let i = from;
  while (i < n && a[i] !== b[i]) i++;
  return i < n ? i : Math.max(a.length, b.length);
}

/** `xxd`-style lines: offset, 16 bytes in pairs, ASCII. */
function xxd(buf: Buffer, from: number, to: number): string[] {
  const out: string[] = [];
  for (let off = from; off < to; off += 16) {
    const row = buf.subarray(off, Math.min(off + 16, to));
    const pairs: string[] = [];
    for (let i = 0; i < 16; i += 2) pairs.push(hexPair(row.subarray(i, i + 2)));
    const ascii = [...row].map((c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : ".")).join("");
    out.push(`${off.toString(16).padStart(8, "0")}: ${pairs.join(" ")}  ${ascii}`);
  }
  return out;
}

function hexPair(b: Buffer): string {
  return b.toString("hex").padEnd(4);
}

/** Runs of printable ASCII of at least MIN_STRING bytes that overlap or touch [lo, hi). */
function printableRuns(buf: Buffer, lo: number, hi: number): string[] {
  const printable = (c: number | undefined) => c !== undefined && ((c >= 0x20 && c < 0x7f) || c === 0x09);
  const out: string[] = [];
  let i = Math.max(0, lo);
  while (i > 0 && printable(buf[i - 1])) i--;
  const stop = Math.min(buf.length, hi);
  while (i < stop) {
    if (!printable(buf[i])) {
      i++;
      continue;
    }
    const s = i;
    while (i < buf.length && printable(buf[i])) i++;
    if (i - s >= MIN_STRING) {
      const run = buf.subarray(s, i).toString("latin1");
      out.push(clip(run, Math.max(0, lo - s), MAX_FRAGMENT));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Shared

function side(buf: Buffer): Side {
  return { size: buf.length, sha256: createHash("sha256").update(buf).digest("hex") };
}

function entrySide(e: TreeEntry): Side {
  return { ...side(e.data), mode: e.mode, type: e.type, ...(e.linkpath ? { linkpath: e.linkpath } : {}) };
}

function none(): { a: string[]; b: string[] } {
  return { a: [], b: [] };
}

/** Adds a fragment once, up to MAX_EVIDENCE. */
function push(list: string[], s: string): void {
  if (s && list.length < MAX_EVIDENCE && !list.includes(s)) list.push(s);
}

function firstDifference(a: string, b: string): number {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return i;
}

/** At most `width` characters of `s`; when it must be cut, the window starts a third before `at`. */
function clip(s: string, at: number, width: number): string {
  if (s.length <= width) return s;
  const start = Math.max(0, Math.min(at - Math.floor(width / 3), s.length - width));
  if (start === 0) return `${s.slice(0, width - 1)}…`;
  if (start === s.length - width) return `…${s.slice(start + 1)}`;
  return `…${s.slice(start + 1, start + width - 1)}…`;
}

function truncateLines(lines: string[], max: number, what: string): string {
  if (lines.length <= max) return lines.join("\n");
  return [...lines.slice(0, max), `… ${lines.length - max} more ${what}`].join("\n");
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, "0")}`;
}
