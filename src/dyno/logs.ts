/**
 * App logs, Heroku-style: every line a dyno prints, and every state change kiln makes, with a
 * timestamp and its source (`app[web.1]`, `kiln[web.1]`).
 *
 * Kept twice, both bounded: in memory (the last `maxLines`, for whoever supervises the dynos) and in
 * DATA_DIR/logs/<app>.log as JSON lines, rotated to <app>.log.1 past `maxFileBytes`, so `kiln logs`
 * in another terminal can show and follow them. Lines are appended with O_APPEND writes, so
 * several kiln processes can log for one app without tearing lines.
 */
import { closeSync, openSync, renameSync, statSync, writeSync } from "node:fs";
import { type FileHandle, mkdir, open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { MAX_LINE_BYTES } from "../process/run.js";
import { absent } from "../util/fs.js";

export const logLineSchema = z.object({ t: z.string(), src: z.string(), line: z.string() });
export type LogLine = z.infer<typeof logLineSchema>;

export const DEFAULT_LOG_LINES = 1500;
export const DEFAULT_LOG_FILE_BYTES = 4 * 1024 * 1024;

/**
 * What one dyno may log: lines and bytes per second, with a burst of two seconds' worth. Past it,
 * `write` answers with a promise and the dyno's pipe is paused until it settles, so a noisy app
 * blocks on its own stdout instead of costing the server (the pipe's reader is forEachLine in
 * src/process/run.ts). A caller that writes on regardless loses lines, counted in a kiln line
 * like Heroku's L10.
 */
export const DYNO_LOG_RATE = { linesPerSecond: 1000, bytesPerSecond: 1024 * 1024 };

export interface AppLog {
  app: string;
  file: string;
  /**
   * Appends a line (cut at MAX_LINE_BYTES). A dyno's line (`app[NAME]`) past its rate returns a
   * promise: write its next line only once it settles.
   */
  write(src: string, line: string): undefined | Promise<void>;
  recent(): LogLine[];
  /** Called for every line written from now on; returns an unsubscribe function. */
  subscribe(fn: (l: LogLine) => void): () => void;
}

export function logFile(dataDir: string, app: string): string {
  return join(dataDir, "logs", `${app}.log`);
}

/** At most `max` bytes of `s` in UTF-8, cut between characters. */
export function cutUtf8(s: string, max: number): string {
  if (s.length * 3 <= max || Buffer.byteLength(s) <= max) return s;
  const b = Buffer.from(s);
  let cut = max;
  while (cut > 0 && ((b[cut] as number) & 0xc0) === 0x80) cut--;
  return b.subarray(0, cut).toString("utf8");
}

interface Bucket {
  lines: number;
  bytes: number;
  at: number;
  pending: Promise<void> | undefined;
  dropped: number;
}

export async function openAppLog(
  dataDir: string,
  app: string,
  opts: { maxLines?: number; maxFileBytes?: number; rate?: typeof DYNO_LOG_RATE } = {},
): Promise<AppLog> {
  const maxLines = opts.maxLines ?? DEFAULT_LOG_LINES;
  const maxFileBytes = opts.maxFileBytes ?? DEFAULT_LOG_FILE_BYTES;
  const rate = opts.rate ?? DYNO_LOG_RATE;
  const file = logFile(dataDir, app);
  await mkdir(join(dataDir, "logs"), { recursive: true });
  const ring: LogLine[] = [];
  const subscribers = new Set<(l: LogLine) => void>();
  const buckets = new Map<string, Bucket>();

  const emit = (src: string, line: string) => {
    const entry: LogLine = { t: new Date().toISOString(), src, line };
    ring.push(entry);
    if (ring.length > maxLines) ring.shift();
    try {
      if ((statSync(file, { throwIfNoEntry: false })?.size ?? 0) > maxFileBytes) {
        try {
          renameSync(file, `${file}.1`);
        } catch {
          // another kiln process rotated it first
        }
      }
      const fd = openSync(file, "a", 0o600);
      try {
        writeSync(fd, `${JSON.stringify(entry)}\n`);
      } finally {
        closeSync(fd);
      }
    } catch {
      // A full disk must not take the dyno down with it; the in-memory buffer still has the line.
    }
    for (const fn of subscribers) fn(entry);
  };
  const refill = (b: Bucket) => {
    const now = Date.now();
    const dt = (now - b.at) / 1000;
    b.at = now;
    b.lines = Math.min(2 * rate.linesPerSecond, b.lines + dt * rate.linesPerSecond);
    b.bytes = Math.min(2 * rate.bytesPerSecond, b.bytes + dt * rate.bytesPerSecond);
  };
  const take = (b: Bucket, cost: number) => {
    b.lines -= 1;
    b.bytes -= cost;
  };

  return {
    app,
    file,
    write(src, raw) {
      const line = cutUtf8(raw, MAX_LINE_BYTES);
      // kiln's own lines are few and bounded; only a dyno's output is metered.
      if (!src.startsWith("app[")) return void emit(src, line);
      let b = buckets.get(src);
      if (!b) {
        b = {
          lines: 2 * rate.linesPerSecond,
          bytes: 2 * rate.bytesPerSecond,
          at: Date.now(),
          pending: undefined,
          dropped: 0,
        };
        buckets.set(src, b);
      }
      const bucket = b;
      if (bucket.pending) {
        bucket.dropped++;
        return bucket.pending;
      }
      refill(bucket);
      const cost = Buffer.byteLength(line);
      if (bucket.lines >= 1 && bucket.bytes >= cost) {
        take(bucket, cost);
        return void emit(src, line);
      }
      const waitMs =
        1000 *
        Math.max((1 - bucket.lines) / rate.linesPerSecond, (cost - bucket.bytes) / rate.bytesPerSecond);
      bucket.pending = new Promise<void>((r) => setTimeout(r, Math.ceil(waitMs))).then(() => {
        bucket.pending = undefined;
        refill(bucket);
        take(bucket, cost);
        emit(src, line);
        if (bucket.dropped) {
          emit(
            `kiln${src.slice(3)}`,
            `Error L10 (output buffer overflow) -> ${bucket.dropped} line(s) dropped: the dyno logs faster than ${rate.linesPerSecond} lines or ${rate.bytesPerSecond} bytes per second`,
          );
          bucket.dropped = 0;
        }
      });
      return bucket.pending;
    },
    recent: () => [...ring],
    subscribe(fn) {
      subscribers.add(fn);
      return () => subscribers.delete(fn);
    },
  };
}

function parseLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const l of text.split("\n")) {
    if (!l) continue;
    try {
      const r = logLineSchema.safeParse(JSON.parse(l));
      if (r.success) out.push(r.data);
    } catch {
      // a line torn by a crash mid-write: skip it
    }
  }
  return out;
}

/** The last `n` lines on disk (the rotated file first, then the current one). */
export async function readLogTail(dataDir: string, app: string, n: number): Promise<LogLine[]> {
  const file = logFile(dataDir, app);
  const old = await readFile(`${file}.1`, "utf8").catch(absent(""));
  const cur = await readFile(file, "utf8").catch(absent(""));
  const lines = [...parseLines(old), ...parseLines(cur)];
  return n > 0 ? lines.slice(-n) : [];
}

/**
 * Calls `fn` for every line appended after now, until `signal` aborts. Rotation loses nothing: the
 * file being read stays open, so after the rename to .1 its unread rest is still read to the end
 * before the new file is taken up (and a whole generation rotated away between two polls is read
 * from the .1 file, if it is still there).
 */
export async function followLog(
  dataDir: string,
  app: string,
  fn: (l: LogLine) => void,
  signal: AbortSignal,
): Promise<void> {
  const file = logFile(dataDir, app);
  const CHUNK = 1024 * 1024;
  let fh: FileHandle | undefined;
  let ino: number | undefined;
  let pos = 0;
  let partial = "";
  const openCurrent = async (at: "start" | "end") => {
    const next = await open(file, "r").catch(absent(undefined));
    if (!next) return false;
    await fh?.close();
    fh = next;
    const st = await fh.stat();
    ino = st.ino;
    pos = at === "end" ? st.size : 0;
    partial = "";
    return true;
  };
  /** Reads `h` from `pos` to its end, in bounded chunks. */
  const readRest = async (h: FileHandle, from: number) => {
    let at = from;
    const buf = Buffer.alloc(CHUNK);
    for (;;) {
      const { bytesRead } = await h.read(buf, 0, CHUNK, at);
      if (bytesRead === 0) return at;
      at += bytesRead;
      const text = partial + buf.subarray(0, bytesRead).toString("utf8");
      const cut = text.lastIndexOf("\n");
      partial = text.slice(cut + 1);
      for (const l of parseLines(text.slice(0, cut + 1))) fn(l);
    }
  };
  await openCurrent("end");
  try {
    while (!signal.aborted) {
      if (fh) pos = await readRest(fh, pos);
      const st = await stat(file).catch(absent(undefined));
      if (st && st.ino !== ino) {
        // Rotated (or created): finish the old generation, catch any we missed, then the new one.
        if (fh) pos = await readRest(fh, pos);
        partial = "";
        const old = await stat(`${file}.1`).catch(absent(undefined));
        if (fh && old && old.ino !== ino && old.ino !== st.ino) {
          const missed = await open(`${file}.1`, "r").catch(absent(undefined));
          if (missed) {
            try {
              await readRest(missed, 0);
            } finally {
              await missed.close();
            }
            partial = "";
          }
        }
        await openCurrent("start");
        continue;
      }
      if (st && fh && st.size < pos) {
        // Truncated in place: start over.
        pos = 0;
        partial = "";
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await fh?.close();
  }
}

export function formatLogLine(l: LogLine): string {
  return `${l.t} ${l.src}: ${l.line}`;
}

/** Lines from one dyno (`web.1`) or every dyno of a type (`web`); all lines without a name. */
export function dynoFilter(dyno: string | undefined): (l: LogLine) => boolean {
  return (l) => {
    if (!dyno) return true;
    const src = /\[([^\]]+)\]/.exec(l.src)?.[1] ?? "";
    return src === dyno || src.startsWith(`${dyno}.`);
  };
}
