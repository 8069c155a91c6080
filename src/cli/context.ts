/** What every command gets: config, logger, the Nix driver, and how to show progress. */
import type { Config } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import type { Nix } from "../nix/driver.js";
import type { ProgressLine } from "./progress.js";

export interface GlobalOptions {
  dataDir?: string;
  store?: string;
  logLevel?: string;
  quiet?: boolean;
  /** kiln build's and kiln serve's --build-size. */
  buildSize?: string;
  /** kiln build's and kiln serve's remote builders and substituters (src/cli/distribution.ts). */
  builders?: string;
  remoteOnly?: boolean;
  substituter?: string[];
  trustedKey?: string[];
}

export interface AppContext {
  config: Config;
  log: Logger;
  nix: Nix;
  progress: ProgressLine;
  /** Aborted on Ctrl-C / SIGTERM: long work stops its subprocesses and cleans up after itself. */
  signal: AbortSignal;
}

export type ContextFactory = (globals: GlobalOptions, opts?: { json?: boolean }) => AppContext;
