/**
 * The composition of a command's services: config (from the environment, once), logger, Nix driver,
 * progress. main.ts imports this only when a command runs, so `kiln --help` loads none of it.
 */
import { join } from "node:path";
import type { AppContext, GlobalOptions } from "./cli/context.js";
import { createProgressLine } from "./cli/progress.js";
import { type Config, loadConfig } from "./config/config.js";
import { createLogger, type Logger } from "./log/logger.js";
import { createNix, type Nix } from "./nix/driver.js";
import { checkDistribution, type Distribution } from "./nix/settings.js";
import { SEED_IMPORT_COMMAND } from "./seed/seed.js";

/** The services every entry point (CLI, tests, the API server) is built from. */
export function createCore(config: Config, log: Logger): { config: Config; log: Logger; nix: Nix } {
  const distribution: Distribution = {
    builders: config.builders,
    remoteOnly: config.remoteOnly,
    substituters: config.substituters,
    trustedKeys: config.trustedKeys,
    ...(config.netrcFile ? { netrcFile: config.netrcFile } : {}),
  };
  checkDistribution(distribution);
  const nix = createNix({
    distribution,
    store: config.nixStore,
    binDir: config.nixBinDir,
    gcRootsDir: join(config.dataDir, "gcroots"),
    cores: config.buildCores,
    log,
    seedImportCommand: SEED_IMPORT_COMMAND,
  });
  return { config, log, nix };
}

/** A command's context: the command line's global flags over the environment's KILN_* variables. */
export function createContext(
  globals: GlobalOptions,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
): AppContext {
  const overrides: Partial<Config> = {};
  if (globals.dataDir) overrides.dataDir = globals.dataDir;
  if (globals.store) overrides.nixStore = globals.store;
  if (globals.buildSize) overrides.buildSize = globals.buildSize;
  if (globals.builders) overrides.builders = globals.builders;
  if (globals.remoteOnly) overrides.remoteOnly = true;
  if (globals.substituter?.length) overrides.substituters = globals.substituter;
  if (globals.trustedKey?.length) overrides.trustedKeys = globals.trustedKey;
  if (globals.logLevel) overrides.logLevel = globals.logLevel as Config["logLevel"];
  const config = loadConfig(env, overrides);
  // --log-level info means info; only an unset level is quieter on a terminal.
  const log = createLogger(config.logLevel ?? "warn");
  return { ...createCore(config, log), progress: createProgressLine(process.stderr, !globals.quiet), signal };
}
