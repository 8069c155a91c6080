/** Reading JSON that kiln validates with zod, with errors a user can act on. */
import type { z } from "zod";
import { type ErrorCode, KilnError } from "../errors.js";

/** `a.b: expected string; (top): …` — zod's issues on one line. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ");
}

/**
 * Parses `text` as JSON and validates it; either failure is a KilnError with `code`, naming `file`
 * and saying what is wrong (`invalid` completes "FILE …: ISSUES", e.g. "is invalid").
 */
export function parseJsonWith<T>(
  text: string,
  schema: z.ZodType<T>,
  opts: { file: string; code: ErrorCode; invalid: string; jsonHint: string; schemaHint: string },
): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new KilnError({
      code: opts.code,
      message: `${opts.file} is not valid JSON${jsonErrorPlace(text, (err as Error).message)}`,
      hint: opts.jsonHint,
    });
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    throw new KilnError({
      code: opts.code,
      message: `${opts.file} ${opts.invalid}: ${describeIssues(r.error)}`,
      hint: opts.schemaHint,
    });
  }
  return r.data;
}

/**
 * Where JSON.parse stopped, as ` (line L, column C)`. V8's own message quotes the text around the
 * error, and the text may not be the tenant's to show (a file read through a link, a secret), so
 * only the position is kept.
 */
function jsonErrorPlace(text: string, message: string): string {
  const m = /at position (\d+)/.exec(message);
  if (!m) return /end of JSON input/.test(message) ? " (it ends too early)" : "";
  const before = text.slice(0, Number(m[1]));
  const line = before.split("\n").length;
  return ` (line ${line}, column ${before.length - before.lastIndexOf("\n")})`;
}
