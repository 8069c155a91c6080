/**
 * The one home of the `tar` library. Archives kiln writes are deterministic: entries in byte order,
 * one fixed mtime, numeric owner 0 and no user/group names, modes normalised to 0755/0644, no
 * pax headers that vary, and gzip without a name or timestamp. Same tree in → same bytes out.
 */
import { lstat, open, readdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import * as tar from "tar";

const gzipAsync = promisify(gzip);

export interface DeterministicTarOptions {
  /** Seconds since the epoch written as every entry's mtime (SOURCE_DATE_EPOCH). */
  mtime: number;
  /** Entry name prefix (e.g. "./" or "app/"); "" puts entries at the top level. */
  prefix?: string;
  gzipLevel?: number;
}

/** All paths under `root`, relative, sorted by their UTF-8 bytes, directories before their contents. */
export async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    const names = (await readdir(join(root, rel))).sort(compareBytes);
    for (const name of names) {
      const p = rel ? `${rel}/${name}` : name;
      out.push(p);
      const st = await lstat(join(root, p));
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk("");
  return out;
}

export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * `dir`'s contents as a deterministic tar stream (the rules above): the slug writer's and the image
 * layers'. `follow` archives what symlinks point at instead of the links.
 */
export async function deterministicPack(
  dir: string,
  opts: { mtime: number; prefix?: string; follow?: boolean },
): Promise<tar.Pack> {
  const entries = await listTree(dir);
  const pack = new tar.Pack({
    cwd: dir,
    portable: true,
    noDirRecurse: true,
    follow: opts.follow ?? false,
    mtime: new Date(opts.mtime * 1000),
    prefix: opts.prefix ?? "",
    // `portable` already drops uid/gid/uname/gname/atime/ctime (written as 0); modes are
    // normalised here, before the header is made: only the executable bit survives, as in a NAR.
    onWriteEntry: (entry) => {
      const st = entry.stat;
      if (!st) return;
      const exec = st.isDirectory() || (st.mode & 0o100) !== 0;
      st.mode = (st.mode & ~0o7777) | (exec ? 0o755 : 0o644);
    },
  });
  for (const e of entries) pack.add(e);
  pack.end();
  return pack;
}

/**
 * gzip members of this many input bytes each: compressed in parallel (zlib runs in libuv's thread
 * pool), written in order. A gzip file may hold several members (RFC 1952; gunzip, tar and Node
 * read them as one stream), and fixed member boundaries keep the output deterministic.
 */
const GZIP_MEMBER_BYTES = 4 * 1024 * 1024;
const GZIP_PARALLEL = 4;

/** Writes `dir`'s contents to `file` as a deterministic tar.gz. */
export async function writeDeterministicTarGz(
  dir: string,
  file: string,
  opts: DeterministicTarOptions,
): Promise<void> {
  const pack = await deterministicPack(dir, opts);
  const level = opts.gzipLevel ?? 9;
  const out = await open(file, "w");
  try {
    const pending: Promise<Buffer>[] = [];
    const flushOne = async () => {
      const member = await (pending.shift() as Promise<Buffer>);
      await out.write(member);
    };
    let chunks: Buffer[] = [];
    let size = 0;
    const emit = async (final: boolean) => {
      while (size >= GZIP_MEMBER_BYTES || (final && size > 0)) {
        const all = Buffer.concat(chunks);
        const take = Math.min(GZIP_MEMBER_BYTES, all.length);
        pending.push(gzipAsync(all.subarray(0, take), { level }));
        chunks = take < all.length ? [all.subarray(take)] : [];
        size = all.length - take;
        if (pending.length >= GZIP_PARALLEL) await flushOne();
      }
    };
    for await (const chunk of pack as unknown as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= GZIP_MEMBER_BYTES) await emit(false);
    }
    await emit(true);
    while (pending.length > 0) await flushOne();
  } finally {
    await out.close();
  }
}

/** Extracts a tar.gz into `dir`, dropping `strip` leading path components; refuses paths that escape. */
export async function extractTarGz(file: string, dir: string, opts: { strip?: number } = {}): Promise<void> {
  await tar.extract({ file, cwd: dir, strip: opts.strip ?? 0, preservePaths: false, preserveOwner: false });
}

export interface TarEntryInfo {
  path: string;
  type: string;
  size: number;
  mode: number;
  mtime: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
}

/** Lists a tar.gz's entries — for checks and tests. */
export async function listTarGz(file: string): Promise<TarEntryInfo[]> {
  const out: TarEntryInfo[] = [];
  await tar.list({
    file,
    onReadEntry: (e) => {
      out.push({
        path: e.path,
        type: e.type,
        size: e.size ?? 0,
        mode: e.mode ?? 0,
        mtime: e.mtime ? Math.floor(e.mtime.getTime() / 1000) : 0,
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        uname: e.uname ?? "",
        gname: e.gname ?? "",
      });
    },
  });
  return out;
}

export interface TarMember {
  path: string;
  /** As tar reports it: "File", "Directory", "SymbolicLink", "Link", … */
  type: string;
  mode: number;
  linkpath: string;
  /** The member's bytes; empty for anything but files. */
  data: Buffer;
}

/**
 * Every entry of a tar or tar.gz held in memory, in archive order — for comparing archives. Strict:
 * a damaged or non-tar input rejects rather than yielding a partial list.
 */
export function readTarEntries(data: Buffer): Promise<TarMember[]> {
  return new Promise((resolve, reject) => {
    const out: TarMember[] = [];
    const parser = new tar.Parser({
      strict: true,
      onReadEntry: (e) => {
        const chunks: Buffer[] = [];
        e.on("data", (c: Buffer) => chunks.push(c));
        e.on("end", () => {
          out.push({
            path: e.path,
            type: e.type,
            mode: e.mode ?? 0,
            linkpath: e.linkpath ?? "",
            data: Buffer.concat(chunks),
          });
        });
      },
    });
    parser.on("error", reject);
    parser.on("end", () => resolve(out));
    parser.end(data);
  });
}

/** A tar.gz of the given paths under `root` (a source upload: portable headers, no owners). */
export async function writeTarGzOf(root: string, paths: string[], file: string): Promise<void> {
  await tar.create({ gzip: true, cwd: root, file, portable: true, noDirRecurse: true }, paths);
}
