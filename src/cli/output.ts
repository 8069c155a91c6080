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
