/**
 * Progress on stderr. On a terminal: one line rewritten in place. Elsewhere (CI logs): a line when
 * the message changes, at most every few seconds, so logs stay readable.
 */
import { formatProgress, type ProgressSnapshot } from "../nix/events.js";

export interface ProgressLine {
  step(message: string): void;
  nix(p: ProgressSnapshot): void;
  done(): void;
}

export function createProgressLine(
  stream: NodeJS.WriteStream = process.stderr,
  enabled = true,
): ProgressLine {
  const tty = stream.isTTY === true;
  let shown = false;
  let lastText = "";
  let lastAt = 0;
  const write = (text: string, force = false) => {
    if (!enabled) return;
    if (tty) {
      const width = stream.columns ?? 100;
      stream.write(`\r\u001b[2K${text.length > width - 1 ? `${text.slice(0, width - 2)}…` : text}`);
      shown = true;
      return;
    }
    const now = Date.now();
    if (text === lastText || (!force && now - lastAt < 3000)) return;
    lastText = text;
    lastAt = now;
    stream.write(`${text}\n`);
  };
  let lastKey = "";
  return {
    step: (message) => write(message, true),
    nix: (p) => {
      if (p.buildsDone === 0 && p.buildsRunning === 0 && p.bytesDone === 0) return; // nothing built yet
      // Always show a change in what is built or running (so the last line logged is the final state).
      const key = `${p.buildsDone}/${p.buildsRunning}/${p.buildsFailed}`;
      const force = key !== lastKey;
      lastKey = key;
      write(formatProgress(p), force);
    },
    done: () => {
      if (tty && shown) stream.write("\r\u001b[2K");
      shown = false;
    },
  };
}
