/**
 * The one home of execa. Every subprocess kiln starts goes through here, so that failures look the
 * same everywhere: exit code, signal, why it ended (exit / timeout / cancel) and the tail of stderr.
 */
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { execa } from "execa";
import { KilnError } from "../errors.js";

export type EndReason = "exit" | "timeout" | "cancel" | "spawn";

export class ProcessError extends KilnError {
  readonly command: string;
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  readonly reason: EndReason;
  readonly stderrTail: string;

  constructor(opts: {
    command: string;
    exitCode: number | undefined;
    signal: string | undefined;
    reason: EndReason;
    stderrTail: string;
    hint?: string;
  }) {
    const how =
      opts.reason === "timeout"
        ? "timed out"
        : opts.reason === "cancel"
          ? "was cancelled"
          : opts.reason === "spawn"
            ? "could not be started"
            : opts.signal
              ? `was killed by ${opts.signal}`
              : `exited with code ${opts.exitCode}`;
    const tail = opts.stderrTail.trim() ? `\n${indent(opts.stderrTail.trim())}` : "";
    super({
      code: "process_failed",
      message: `${opts.command} ${how}${tail}`,
      ...(opts.hint ? { hint: opts.hint } : {}),
    });
    this.command = opts.command;
    this.exitCode = opts.exitCode;
    this.signal = opts.signal;
    this.reason = opts.reason;
    this.stderrTail = opts.stderrTail;
  }
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Replace the environment instead of extending process.env. */
  extendEnv?: boolean;
  input?: string | Uint8Array;
  /** A file to read stdin from. */
  inputFile?: string;
  /** A file to write stdout to (instead of buffering it). */
  outputFile?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called for every stderr line as it arrives (e.g. Nix's internal-json events). */
  onStderrLine?: (line: string) => void;
  /** Called for every stdout line as it arrives. */
  onStdoutLine?: (line: string) => void;
  /** How many stderr lines to keep for error messages. */
  stderrTailLines?: number;
  /** Don't throw on a non-zero exit; return the result. */
  reject?: boolean;
  /** Inherit the terminal (interactive commands). */
  inherit?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number | undefined;
  signal: string | undefined;
  failed: boolean;
  stderrTail: string;
}

export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const tailLines = opts.stderrTailLines ?? 40;
  const tail: string[] = [];
  const pushTail = (line: string) => {
    tail.push(line);
    if (tail.length > tailLines) tail.shift();
  };
  const command = [file, ...args].map(shellQuote).join(" ");
  const subprocess = execa(file, args, {
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    env: opts.env ?? {},
    extendEnv: opts.extendEnv ?? true,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    ...(opts.inputFile ? { inputFile: opts.inputFile } : {}),
    ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
    stdout: opts.inherit ? "inherit" : opts.outputFile ? { file: opts.outputFile } : "pipe",
    stderr: opts.inherit ? "inherit" : "pipe",
    ...(opts.inherit ? { stdin: "inherit" as const } : {}),
    reject: false,
    // kiln's own SIGINT/SIGTERM handling (main.ts) aborts `signal`, which ends the subprocess.
    // execa's cleanup hooks (signal-exit) would otherwise re-raise the signal and kill kiln
    // before it can clean up.
    cleanup: false,
    stripFinalNewline: false,
    maxBuffer: 1024 * 1024 * 1024,
    // A big output written to a file (a NAR of the seed is 600 MB) is not also kept in memory.
    ...(opts.outputFile ? { buffer: { stdout: false } } : {}),
    lines: false,
  });
  if (!opts.inherit) {
    forEachLine(subprocess.stderr, (line) => {
      pushTail(line);
      opts.onStderrLine?.(line);
    });
    if (opts.onStdoutLine && subprocess.stdout) {
      forEachLine(subprocess.stdout, opts.onStdoutLine);
    }
  }
  const r = await subprocess;
  const stderrTail = tail.join("\n");
  const reason: EndReason = r.timedOut
    ? "timeout"
    : r.isCanceled
      ? "cancel"
      : r.exitCode === undefined && !r.signal
        ? "spawn"
        : "exit";
  const result: RunResult = {
    stdout: typeof r.stdout === "string" ? r.stdout : "",
    stderr: typeof r.stderr === "string" ? r.stderr : "",
    exitCode: r.exitCode,
    signal: r.signal,
    failed: r.failed,
    stderrTail: reason === "spawn" ? `${stderrTail}${r.message ?? ""}` : stderrTail,
  };
  if (r.failed && opts.reject !== false) {
    throw new ProcessError({
      command,
      exitCode: r.exitCode,
      signal: r.signal,
      reason,
      stderrTail: result.stderrTail,
    });
  }
  return result;
}

/** Heroku's logplex cuts lines here; no caller needs more, and a runaway line must not grow a buffer. */
export const MAX_LINE_BYTES = 10_000;

/**
 * Calls `cb` for every line of a stream as it arrives (the last one even without a newline). A line
 * longer than `maxLineBytes` (in UTF-8) is cut into pieces of at most that many bytes, split between
 * characters, so at most one piece is ever buffered whatever the stream sends. When `cb` returns a
 * promise the stream is paused until it settles: a slow consumer pushes back on the writer (a dyno
 * blocks on its stdout) instead of kiln queueing its output.
 */
export function forEachLine(
  stream: NodeJS.ReadableStream | null | undefined,
  cb: (line: string) => unknown,
  opts: { maxLineBytes?: number } = {},
): void {
  if (!stream) return;
  const src = stream;
  const max = opts.maxLineBytes ?? MAX_LINE_BYTES;
  // Bytes, not strings: a newline byte never occurs inside a UTF-8 character, and a cut can be
  // moved back to a character boundary.
  let held: Buffer = Buffer.alloc(0);
  let waiting = false;
  let ended = false;
  const next = (): Buffer | undefined => {
    const nl = held.indexOf(10);
    if (nl !== -1 && nl <= max) {
      const line = held.subarray(0, nl);
      held = held.subarray(nl + 1);
      return line;
    }
    if (held.length > max) {
      // No newline within the limit: cut before the character that crosses it.
      let cut = max;
      while (cut > 0 && ((held[cut] as number) & 0xc0) === 0x80) cut--;
      if (cut === 0) cut = max;
      const piece = held.subarray(0, cut);
      held = held.subarray(cut);
      return piece;
    }
    if (ended && held.length) {
      const last = held;
      held = Buffer.alloc(0);
      return last;
    }
    return undefined;
  };
  const drain = () => {
    while (!waiting) {
      const line = next();
      if (!line) break;
      const r = cb(line.toString("utf8"));
      if (r && typeof (r as Promise<unknown>).then === "function") {
        // The rest waits (at most one chunk is held) and so does the writer.
        waiting = true;
        src.pause();
        const go = () => {
          waiting = false;
          drain();
          if (!waiting && !ended) src.resume();
        };
        (r as Promise<unknown>).then(go, go);
      }
    }
    // A copy, so a big chunk is not kept alive by the small tail of it.
    if (!waiting && held.length) held = Buffer.from(held);
  };
  src.on("data", (chunk: string | Buffer) => {
    held = held.length ? Buffer.concat([held, Buffer.from(chunk)]) : Buffer.from(chunk);
    drain();
  });
  src.on("end", () => {
    ended = true;
    drain();
  });
}

function indent(s: string): string {
  return s
    .split("\n")
    .map((l) => `  | ${l}`)
    .join("\n");
}

export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

export interface LongProcess {
  pid: number;
  child: ChildProcess;
  /** Settles when the process is gone; `error` is set when it could not be started. */
  exited: Promise<{ exitCode: number | null; signal: string | null; error?: Error }>;
}

/**
 * A long-running process with extra file descriptors (fd 3 and up: pipes or open files), for
 * dynos and their relays. execa is built around processes that end; this is Node's spawn with the
 * same environment rule (nothing inherited unless given) and a promise for the end.
 */
export function spawnProcess(
  file: string,
  args: readonly string[],
  opts: { env: Record<string, string>; stdio: StdioOptions; cwd?: string; detached?: boolean },
): LongProcess {
  const child = spawn(file, args, {
    env: opts.env,
    stdio: opts.stdio,
    cwd: opts.cwd ?? "/",
    detached: !!opts.detached,
  });
  // A pipe reset by a child being killed is how these processes end, not an error to crash on.
  for (const stream of child.stdio) stream?.on("error", () => {});
  const exited = new Promise<{ exitCode: number | null; signal: string | null; error?: Error }>((resolve) => {
    child.once("error", (error) => resolve({ exitCode: null, signal: null, error }));
    child.once("exit", (exitCode, signal) => resolve({ exitCode, signal }));
  });
  return { pid: child.pid ?? -1, child, exited };
}
