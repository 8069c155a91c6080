/** Nix failures as typed errors: what failed, where, and the tail of the failing build's log. */
import { type ErrorCode, KilnError } from "../errors.js";

/** The seed's fetchTarball "URL" (nix/seed.nix) starts with this, so kiln can recognise the failure. */
export const SEED_MISSING_MARKER = "kiln-seed-is-missing";

export class NixBuildError extends KilnError {
  readonly drvPath: string | undefined;
  readonly exitCode: number | undefined;
  readonly logTail: string[];

  constructor(opts: {
    drvPath: string | undefined;
    exitCode: number | undefined;
    logTail: string[];
    nixMessage: string;
  }) {
    const what = opts.drvPath ? `building ${opts.drvPath}` : "a Nix build";
    const how = opts.exitCode === undefined ? "failed" : `failed with exit code ${opts.exitCode}`;
    const tail =
      opts.logTail.length > 0
        ? `\nlast ${opts.logTail.length} log lines:\n${opts.logTail.map((l) => `  > ${l}`).join("\n")}`
        : "";
    super({
      code: "nix_build_failed",
      message: `${what} ${how}${tail}`,
      hint: opts.drvPath ? `the full log: nix log ${opts.drvPath}` : opts.nixMessage,
      details: { drvPath: opts.drvPath, exitCode: opts.exitCode, nixMessage: opts.nixMessage },
    });
    this.drvPath = opts.drvPath;
    this.exitCode = opts.exitCode;
    this.logTail = opts.logTail;
  }
}

export class NixError extends KilnError {
  readonly nixMessage: string;
  constructor(opts: { code: ErrorCode; message: string; hint?: string; nixMessage: string }) {
    super({ code: opts.code, message: opts.message, ...(opts.hint ? { hint: opts.hint } : {}) });
    this.nixMessage = opts.nixMessage;
  }
}

export class SeedMissingError extends KilnError {
  constructor(command: string) {
    super({
      code: "seed_missing",
      message: "the kiln seed is not in the Nix store",
      hint: `import it with: ${command}`,
    });
  }
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escapes are control characters
const ansi = /\u001b\[[0-9;]*m/g;

export function stripAnsi(s: string): string {
  return s.replace(ansi, "");
}

/** Finds the failing derivation and its exit code in Nix's error text. */
export function parseBuilderFailure(
  message: string,
): { drvPath: string; exitCode: number | undefined } | undefined {
  const m = /builder for '([^']+\.drv)' failed(?: with exit code (\d+))?/.exec(stripAnsi(message));
  if (!m?.[1]) return undefined;
  return { drvPath: m[1], exitCode: m[2] === undefined ? undefined : Number(m[2]) };
}
