/**
 * Build logs: every line a build prints goes to its log file (DATA_DIR/logs/builds/ID.log) as it
 * happens and to whoever follows the build live; after the build, the file replays it
 * (`output_stream_url` works during and after a build, and after a server restart).
 */
import { appendFileSync, mkdirSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { dirname, join } from "node:path";

export interface BuildLogs {
  path(buildId: string): string;
  /** Starts a build's log; `end` marks it finished for followers. */
  open(buildId: string): { write(line: string): void; end(): void };
  /** Sends the log so far, then every new line until the build ends or `signal` aborts. */
  follow(buildId: string, onText: (text: string) => void, signal: AbortSignal): Promise<void>;
}

export function createBuildLogs(dataDir: string): BuildLogs {
  const live = new Map<
    string,
    { subscribers: Set<(t: string) => void>; ended: Promise<void>; end: () => void }
  >();
  const path = (id: string) => join(dataDir, "logs", "builds", `${id}.log`);
  return {
    path,
    open(id) {
      const file = path(id);
      mkdirSync(dirname(file), { recursive: true });
      let end: () => void = () => {};
      const ended = new Promise<void>((r) => (end = r));
      const entry = { subscribers: new Set<(t: string) => void>(), ended, end };
      live.set(id, entry);
      return {
        write(line) {
          const text = `${line}\n`;
          appendFileSync(file, text);
          for (const s of entry.subscribers) s(text);
        },
        end() {
          live.delete(id);
          entry.end();
        },
      };
    },
    async follow(id, onText, signal) {
      const entry = live.get(id);
      // Subscribing and measuring the file happen in one synchronous step, and writes are
      // synchronous too: everything before `size` is in the file, everything after reaches `sub`.
      const pending: string[] = [];
      let replaying = true;
      const sub = (t: string) => (replaying ? pending.push(t) : onText(t));
      entry?.subscribers.add(sub);
      const size = statSync(path(id), { throwIfNoEntry: false })?.size ?? 0;
      try {
        if (size > 0) {
          const fh = await open(path(id), "r");
          try {
            const buf = Buffer.alloc(size);
            await fh.read(buf, 0, size, 0);
            onText(buf.toString("utf8"));
          } finally {
            await fh.close();
          }
        }
        for (const t of pending) onText(t);
        replaying = false;
        if (entry) {
          await Promise.race([
            entry.ended,
            new Promise((r) => signal.addEventListener("abort", r, { once: true })),
          ]);
        }
      } finally {
        entry?.subscribers.delete(sub);
      }
    },
  };
}
