/**
 * Errors a user can hit. Each carries a stable `code`, a message that says what went wrong,
 * and a `hint` that says what to do about it. The CLI prints all three; the API (later) maps
 * `code` to an HTTP status in one place.
 */
export class KilnError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(opts: {
    code: string;
    message: string;
    hint?: string;
    details?: Record<string, unknown>;
    cause?: unknown;
  }) {
    super(opts.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "KilnError";
    this.code = opts.code;
    this.hint = opts.hint;
    this.details = opts.details;
  }
}

export function isKilnError(err: unknown): err is KilnError {
  return err instanceof KilnError;
}
