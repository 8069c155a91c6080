/** The slug: a deterministic tar.gz of the built app, within a size limit. */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, stat } from "node:fs/promises";
import { join } from "node:path";
import { listTree, writeDeterministicTarGz } from "../archive/tar.js";

export interface PackedSlug {
  sha256: string;
  bytes: number;
  unpackedBytes: number;
  files: number;
}

export class SlugTooLargeError extends Error {}

/** Sizes of the app's top-level entries and largest files, biggest first. */
export async function largestPaths(dir: string, n = 10): Promise<{ path: string; bytes: number }[]> {
  const sizes = new Map<string, number>();
  for (const p of await listTree(dir)) {
    const st = await lstat(join(dir, p));
    if (!st.isFile()) continue;
    const top = p.split("/")[0] as string;
    sizes.set(top, (sizes.get(top) ?? 0) + st.size);
    if (p !== top) sizes.set(p, st.size);
  }
  return [...sizes.entries()]
    .map(([path, bytes]) => ({ path, bytes }))
    .sort((a, b) => b.bytes - a.bytes || (a.path < b.path ? -1 : 1))
    .slice(0, n);
}

export async function packSlug(
  appDir: string,
  file: string,
  opts: { mtime: number; maxBytes: number },
): Promise<PackedSlug> {
  const entries = await listTree(appDir);
  let unpackedBytes = 0;
  let files = 0;
  for (const p of entries) {
    const st = await lstat(join(appDir, p));
    if (st.isFile()) {
      unpackedBytes += st.size;
      files++;
    }
  }
  await writeDeterministicTarGz(appDir, file, { mtime: opts.mtime, prefix: "app/", gzipLevel: 6 });
  const bytes = (await stat(file)).size;
  if (bytes > opts.maxBytes) {
    const top = await largestPaths(appDir);
    throw new SlugTooLargeError(
      `the slug is ${mb(bytes)} compressed, over the ${mb(opts.maxBytes)} limit. Largest paths:\n` +
        top.map((t) => `  ${mb(t.bytes).padStart(10)}  ${t.path}`).join("\n") +
        "\nList what the app does not need at run time in .slugignore, or raise the limit (--slug-max-mb).",
    );
  }
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return { sha256: h.digest("hex"), bytes, unpackedBytes, files };
}

function mb(n: number): string {
  return `${(n / 1048576).toFixed(1)} MB`;
}
