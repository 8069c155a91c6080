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
import { mkdir, open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";

export const logLineSchema = z.object({ t: z.string(), src: z.string(), line: z.string() });
export type LogLine = z.infer<typeof logLineSchema>;

export const DEFAULT_LOG_LINES = 1500;
export const DEFAULT_LOG_FILE_BYTES = 4 * 1024 * 1024;
/** One line longer than this is cut (and says so): a runaway line must not fill the buffer. */
const MAX_LINE = 16 * 1024;

export interface AppLog {
  app: string;
  file: string;
  write(src: string, line: string): void;
  recent(): LogLine[];
  /** Called for every line written from now on; returns an unsubscribe function. */
  subscribe(fn: (l: LogLine) => void): () => void;
}

export function logFile(dataDir: string, app: string): string {
  return join(dataDir, "logs", `${app}.log`);
}

export async function openAppLog(
  dataDir: string,
  app: string,
  opts: { maxLines?: number; maxFileBytes?: number } = {},
): Promise<AppLog> {
  const maxLines = opts.maxLines ?? DEFAULT_LOG_LINES;
  const maxFileBytes = opts.maxFileBytes ?? DEFAULT_LOG_FILE_BYTES;
  const file = logFile(dataDir, app);
  await mkdir(join(dataDir, "logs"), { recursive: true });
  const ring: LogLine[] = [];
  const subscribers = new Set<(l: LogLine) => void>();
  return {
    app,
    file,
    write(src, raw) {
      const line = raw.length > MAX_LINE ? `${raw.slice(0, MAX_LINE)} [line cut at ${MAX_LINE} bytes]` : raw;
      const entry: LogLine = { t: new Date().toISOString(), src, line };
      ring.push(entry);
      if (ring.length > maxLines) ring.shift();
      try {
        if ((statSync(file, { throwIfNoEntry: false })?.size ?? 0) > maxFileBytes)
          renameSync(file, `${file}.1`);
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
  const old = await readFile(`${file}.1`, "utf8").catch(() => "");
  const cur = await readFile(file, "utf8").catch(() => "");
  const lines = [...parseLines(old), ...parseLines(cur)];
  return n > 0 ? lines.slice(-n) : [];
}

/** Calls `fn` for every line appended after now, until `signal` aborts (survives rotation). */
export async function followLog(
  dataDir: string,
  app: string,
  fn: (l: LogLine) => void,
  signal: AbortSignal,
): Promise<void> {
  const file = logFile(dataDir, app);
  let st = await stat(file).catch(() => undefined);
  let ino = st?.ino;
  let pos = st?.size ?? 0;
  let partial = "";
  while (!signal.aborted) {
    await new Promise((r) => setTimeout(r, 100));
    st = await stat(file).catch(() => undefined);
    if (!st) continue;
    if (st.ino !== ino || st.size < pos) {
      ino = st.ino;
      pos = 0;
      partial = "";
    }
    if (st.size === pos) continue;
    const fh = await open(file, "r");
    try {
      const buf = Buffer.alloc(st.size - pos);
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      pos += bytesRead;
      const text = partial + buf.subarray(0, bytesRead).toString("utf8");
      const cut = text.lastIndexOf("\n");
      partial = text.slice(cut + 1);
      for (const l of parseLines(text.slice(0, cut + 1))) fn(l);
    } finally {
      await fh.close();
    }
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
