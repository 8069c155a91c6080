/**
 * Build logs: every line a build prints goes to its log file (DATA_DIR/logs/builds/ID.log) as it
 * happens and to whoever follows the build live; after the build, the file replays it
 * (`output_stream_url` works during and after a build, and after a server restart).
 *
 * A log is bounded (`maxBytes`): a build prints what it likes, and a log without end would fill
 * the disk and every viewer's memory. Past the bound one "log truncated" line is written and later
 * lines are dropped, except kiln's step lines ("-----> …"), which keep a small reserve of their
 * own so that the end of the build (built, released, failed) still shows. Viewers read the file in
 * chunks, or only its tail; none loads a whole log.
 */
import { appendFileSync, mkdirSync, statSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { dirname, join } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { isAbsent } from "../util/fs.js";

export interface BuildLogs {
  path(buildId: string): string;
  /** Starts a build's log; `end` marks it finished for followers. */
  open(buildId: string): { write(line: string): void; end(): void };
  /**
   * Sends the log so far (or its last `tailBytes`, from a line start), then every new line until
   * the build ends or `signal` aborts.
   */
  follow(
    buildId: string,
    onText: (text: string) => void,
    signal: AbortSignal,
    opts?: { tailBytes?: number },
  ): Promise<void>;
  /** The last `max` bytes of the log, from a line start ("" before it exists); `cut`: it has more. */
  tail(buildId: string, max: number): Promise<{ text: string; cut: boolean }>;
}

export const DEFAULT_MAX_BUILD_LOG_BYTES = 64 * 1024 * 1024;
/** The start of the one line written where a log reaches its bound. */
export const TRUNCATED_MARKER = "-----> log truncated:";
const STEP_PREFIX = "-----> ";
const READ_CHUNK = 64 * 1024;

export function createBuildLogs(dataDir: string, opts: { maxBytes?: number } = {}): BuildLogs {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BUILD_LOG_BYTES;
  // Of the bound, what only kiln's step lines may use once other lines are dropped.
  const reserve = Math.min(64 * 1024, Math.floor(maxBytes / 4));
  const live = new Map<
    string,
    { subscribers: Set<(t: string) => void>; ended: Promise<void>; end: () => void }
  >();
  const path = (id: string) => join(dataDir, "logs", "builds", `${id}.log`);
  const sizeOf = (file: string) => statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  return {
    path,
    open(id) {
      const file = path(id);
      mkdirSync(dirname(file), { recursive: true });
      let end: () => void = () => {};
      const ended = new Promise<void>((r) => (end = r));
      const entry = { subscribers: new Set<(t: string) => void>(), ended, end };
      live.set(id, entry);
      let size = sizeOf(file);
      let truncated = false;
      const append = (text: string) => {
        appendFileSync(file, text);
        size += Buffer.byteLength(text);
        for (const s of entry.subscribers) s(text);
      };
      return {
        write(line) {
          const text = `${line}\n`;
          const bytes = Buffer.byteLength(text);
          if (!truncated && size + bytes <= maxBytes - reserve) return append(text);
          if (!truncated) {
            truncated = true;
            append(
              `${TRUNCATED_MARKER} the build printed more than ${Math.floor((maxBytes - reserve) / 1024)} KiB; later lines are dropped (the server's bound is KILN_MAX_BUILD_LOG_BYTES)\n`,
            );
          }
          if (line.startsWith(STEP_PREFIX) && size + bytes <= maxBytes) append(text);
        },
        end() {
          live.delete(id);
          entry.end();
        },
      };
    },
    async follow(id, onText, signal, opts = {}) {
      const entry = live.get(id);
      // Subscribing and measuring the file happen in one synchronous step, and writes are
      // synchronous too: everything before `size` is in the file, everything after reaches `sub`.
      const pending: string[] = [];
      let replaying = true;
      const sub = (t: string) => (replaying ? pending.push(t) : onText(t));
      entry?.subscribers.add(sub);
      const size = sizeOf(path(id));
      try {
        if (size > 0) {
          const fh = await open(path(id), "r");
          try {
            const from = opts.tailBytes !== undefined ? await lineStartAfter(fh, size - opts.tailBytes) : 0;
            await readRange(fh, from, size, onText, signal);
          } finally {
            await fh.close();
          }
        }
        for (const t of pending) onText(t);
        replaying = false;
        if (entry && !signal.aborted) {
          await Promise.race([
            entry.ended,
            new Promise((r) => signal.addEventListener("abort", r, { once: true })),
          ]);
        }
      } finally {
        entry?.subscribers.delete(sub);
      }
    },
    async tail(id, max) {
      let fh: FileHandle;
      try {
        fh = await open(path(id), "r");
      } catch (err) {
        if (isAbsent(err)) return { text: "", cut: false };
        throw err;
      }
      try {
        const size = (await fh.stat()).size;
        const from = await lineStartAfter(fh, size - max);
        let text = "";
        await readRange(fh, from, size, (t) => (text += t), new AbortController().signal);
        return { text, cut: from > 0 };
      } finally {
        await fh.close();
      }
    },
  };
}

/** The first line start at or after `at` (0 when `at` ≤ 0), reading a chunk at a time. */
async function lineStartAfter(fh: FileHandle, at: number): Promise<number> {
  if (at <= 0) return 0;
  const buf = Buffer.alloc(READ_CHUNK);
  // A byte at `at - 1` that is a newline means `at` starts a line.
  for (let pos = at - 1; ; pos += READ_CHUNK) {
    const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, pos);
    if (bytesRead === 0) return pos;
    const nl = buf.subarray(0, bytesRead).indexOf(0x0a);
    if (nl !== -1) return pos + nl + 1;
  }
}

/** Bytes [from, to) of the file to `onText`, a chunk at a time (UTF-8 kept whole across chunks). */
async function readRange(
  fh: FileHandle,
  from: number,
  to: number,
  onText: (text: string) => void,
  signal: AbortSignal,
): Promise<void> {
  const decoder = new StringDecoder("utf8");
  const buf = Buffer.alloc(READ_CHUNK);
  for (let pos = from; pos < to && !signal.aborted; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(READ_CHUNK, to - pos), pos);
    if (bytesRead === 0) break;
    pos += bytesRead;
    const text = decoder.write(buf.subarray(0, bytesRead));
    if (text) onText(text);
  }
  const rest = decoder.end();
  if (rest) onText(rest);
}
