/**
 * Image layers and the oci-archive: src/archive/tar.ts's deterministic tar stream, gzipped and
 * hashed on both sides, and small layers of exact entries (a sticky /tmp).
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { writeFile } from "node:fs/promises";
import { Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import * as tar from "tar";
import { deterministicPack } from "../archive/tar.js";

export interface LayerTarOptions {
  /** Seconds since the epoch written as every entry's mtime (SOURCE_DATE_EPOCH). */
  mtime: number;
  /** Follow symlinks (archive what they point at): the layout's blobs may be links to the store. */
  follow?: boolean;
}

/** `dir`'s contents as a deterministic tar stream (src/archive/tar.ts's rules). */
export async function tarStream(dir: string, opts: LayerTarOptions): Promise<NodeJS.ReadableStream> {
  return (await deterministicPack(dir, opts)) as unknown as NodeJS.ReadableStream;
}

/** A pass-through that hashes what flows through it. */
function hashing(): { stream: Transform; hex: () => string; bytes: () => number } {
  const h = createHash("sha256");
  let n = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      n += chunk.length;
      cb(null, chunk);
    },
  });
  return { stream, hex: () => h.digest("hex"), bytes: () => n };
}

export interface LayerDigests {
  /** sha256 of the bytes as stored (the blob's name). */
  digest: string;
  /** sha256 of the uncompressed tar (the config's rootfs.diff_ids). */
  diffId: string;
  size: number;
}

/** Writes `dir` as a gzipped layer to `file`, hashing both sides on the way. */
export async function writeGzipLayer(
  dir: string,
  file: string,
  opts: LayerTarOptions,
): Promise<LayerDigests> {
  const plain = hashing();
  const packed = hashing();
  await pipeline(
    await tarStream(dir, opts),
    plain.stream,
    createGzip({ level: 6 }),
    packed.stream,
    createWriteStream(file),
  );
  return { digest: packed.hex(), diffId: plain.hex(), size: packed.bytes() };
}

export interface TarEntry {
  /** Relative; a directory's ends in "/". */
  path: string;
  mode: number;
  /** A file's bytes; absent for a directory. */
  data?: Buffer;
}

/**
 * A small uncompressed layer of exactly these entries (owner 0, no names, one mtime), in the order
 * given: for what a tree on disk cannot say, like a sticky world-writable /tmp (node-tar's
 * portable mode drops group and other write bits from what it reads from disk). Its digest is its
 * diff_id: no gzip to drift between Node releases.
 */
export async function writeEntriesLayer(
  entries: TarEntry[],
  file: string,
  mtime: number,
): Promise<LayerDigests> {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const size = e.data?.length ?? 0;
    const header = new tar.Header({
      path: e.path,
      mode: e.mode,
      uid: 0,
      gid: 0,
      uname: "",
      gname: "",
      size,
      mtime: new Date(mtime * 1000),
      type: e.data ? "File" : "Directory",
    });
    if (header.encode() || !header.block) throw new Error(`${e.path} needs a pax header`);
    blocks.push(Buffer.from(header.block));
    if (e.data) blocks.push(e.data, Buffer.alloc((512 - (size % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  const bytes = Buffer.concat(blocks);
  await writeFile(file, bytes);
  const digest = createHash("sha256").update(bytes).digest("hex");
  return { digest, diffId: digest, size: bytes.length };
}

/**
 * The digests of an existing tar.gz (a slug), in one read that hashes the file and its inflated
 * stream, and the entries' paths (each passed to `onPath`, which may throw to refuse the archive).
 */
export async function digestsOfTarGz(file: string, onPath: (path: string) => void): Promise<LayerDigests> {
  const packed = hashing();
  const plain = hashing();
  // A refusal is kept and thrown once the read is over (thrown inside the parser, it would
  // surface as the pipeline's AbortError instead).
  let refused: unknown;
  const parser = new tar.Parser({
    strict: true,
    onReadEntry: (e) => {
      try {
        if (refused === undefined) onPath(e.path);
      } catch (err) {
        refused = err;
      }
      e.resume();
    },
  });
  const parsed = new Promise<void>((resolve, reject) => {
    parser.on("error", reject);
    parser.on("end", () => resolve());
  });
  await pipeline(createReadStream(file), packed.stream, createGunzip(), plain.stream, async (src) => {
    for await (const chunk of src as AsyncIterable<Buffer>)
      if (!parser.write(chunk)) await new Promise((r) => parser.once("drain", r));
    parser.end();
    await parsed;
  });
  if (refused !== undefined) throw refused;
  return { digest: packed.hex(), diffId: plain.hex(), size: packed.bytes() };
}

/** Writes `dir` (an image layout) as an uncompressed tar to `out`: an oci-archive. */
export async function writeArchive(dir: string, out: Writable, mtime: number): Promise<void> {
  await pipeline(await tarStream(dir, { mtime, follow: true }), out);
}
