/** How commands print: JSON for scripts (`--json`), short human text otherwise; errors with hints. */
import { isKilnError } from "../errors.js";

export function printJson(data: unknown): void {
  process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
}

export function printLines(lines: string[]): void {
  process.stdout.write(`${lines.join("\n")}\n`);
}

export function formatError(err: unknown): {
  text: string;
  json: { error: { code: string; message: string; hint?: string } };
} {
  if (isKilnError(err)) {
    const text = `error: ${err.message}${err.hint ? `\nhint: ${err.hint}` : ""}`;
    return {
      text,
      json: { error: { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) } },
    };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    text: `error: ${e.message}\n(this is a bug in kiln; the stack trace follows)\n${e.stack ?? ""}`,
    json: { error: { code: "internal", message: e.message } },
  };
}

/**
 * App output made safe for an operator's terminal: control characters (C0 but tab and newline, DEL,
 * C1) become visible `\xNN` / `\uNNNN` escapes, so a line cannot move the cursor, recolour, retitle
 * the window or answer for the terminal (ESC sequences, 8-bit CSI).
 */
export function escapeControl(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x80 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });
}
