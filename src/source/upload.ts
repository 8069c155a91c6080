/**
 * Receiving an app's source over HTTP: the request body is streamed to a file while it is hashed
 * and counted, so an oversize upload is refused (413) without ever being held in memory, and the
 * stored file is named by nothing the client chose.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KilnError } from "../errors.js";
import { openUntrustedUrl } from "./remoteFetch.js";

export const DEFAULT_MAX_SOURCE_BYTES = 200 * 1024 * 1024;

export function tooLarge(maxBytes: number): KilnError {
  return new KilnError({
    code: "payload_too_large",
    message: `the source is larger than ${Math.round(maxBytes / 1048576)} MiB`,
    hint: "leave build output and dependencies out of the upload (.gitignore, .slugignore), or raise --max-source-mb",
  });
}

export async function receiveUpload(
  body: Readable,
  opts: { file: string; maxBytes: number },
): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  const partial = `${opts.file}.partial`;
  try {
    await pipeline(
      body,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          bytes += chunk.length;
          if (bytes > opts.maxBytes) throw tooLarge(opts.maxBytes);
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(partial, { mode: 0o600 }),
    );
    await rename(partial, opts.file);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  return { sha256: hash.digest("hex"), bytes };
}

/**
 * A source given by URL (Heroku's `source_blob`): downloaded under the same size limit, and checked
 * against `checksum` (sha256:HEX) when one is given. Only https to public addresses, or an origin
 * the operator allowed (remoteFetch.ts).
 */
export async function fetchSourceBlob(
  blob: { url: string; checksum?: string | undefined },
  opts: { file: string; maxBytes: number; allow?: readonly string[] },
): Promise<{ sha256: string; bytes: number }> {
  const res = await openUntrustedUrl(blob.url, { allow: opts.allow ?? [] });
  const declared = Number(res.headers["content-length"] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > opts.maxBytes) {
    res.destroy();
    throw tooLarge(opts.maxBytes);
  }
  const got = await receiveUpload(res, opts);
  const want = blob.checksum?.slice("sha256:".length).toLowerCase();
  if (want && want !== got.sha256) {
    await rm(opts.file, { force: true });
    throw new KilnError({
      code: "source_checksum_mismatch",
      message: `the source has sha256 ${got.sha256}, not ${want}`,
      hint: "the file changed since the checksum was taken, or the checksum is wrong",
    });
  }
  return got;
}
