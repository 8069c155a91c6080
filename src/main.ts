/** Composition root: config, logger, Nix driver, CLI. Nothing else wires dependencies together. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CommanderError } from "commander";
import type { AppContext, GlobalOptions } from "./cli/context.js";
import { formatError } from "./cli/output.js";
import { buildProgram } from "./cli/program.js";
import { createProgressLine } from "./cli/progress.js";
import { type Config, loadConfig } from "./config/config.js";
import { createLogger, type Logger } from "./log/logger.js";
import { createNix, type Nix } from "./nix/driver.js";
import { checkDistribution, type Distribution } from "./nix/settings.js";
import { SEED_IMPORT_COMMAND } from "./seed/seed.js";

/** The services every entry point (the CLI's commands, `kiln serve` among them, and the tests) is built from. */
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

export async function main(argv: string[]): Promise<number> {
  let json = argv.includes("--json");
  // The first Ctrl-C asks running work to stop (subprocesses are ended, temporary files removed);
  // a second one exits at once.
  const interrupt = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupt.signal.aborted) process.exit(130);
    process.stderr.write(`\n${sig}: stopping (again to exit at once)\n`);
    interrupt.abort(new Error(`interrupted by ${sig}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let context: AppContext | undefined;
  const ctx = (globals: GlobalOptions, opts: { json?: boolean } = {}): AppContext => {
    if (context) return context;
    json = !!opts.json;
    const overrides: Partial<Config> = {};
    if (globals.dataDir) overrides.dataDir = globals.dataDir;
    if (globals.store) overrides.nixStore = globals.store;
    if (globals.buildSize) overrides.buildSize = globals.buildSize;
    if (globals.builders) overrides.builders = globals.builders;
    if (globals.remoteOnly) overrides.remoteOnly = true;
    if (globals.substituter?.length) overrides.substituters = globals.substituter;
    if (globals.trustedKey?.length) overrides.trustedKeys = globals.trustedKey;
    if (globals.logLevel) overrides.logLevel = globals.logLevel as Config["logLevel"];
    const config = loadConfig(process.env, overrides);
    // --log-level info means info; only an unset level is quieter on a terminal.
    const log = createLogger(config.logLevel ?? "warn");
    context = {
      ...createCore(config, log),
      progress: createProgressLine(process.stderr, !globals.quiet),
      signal: interrupt.signal,
    };
    return context;
  };
  const program = buildProgram(ctx, readVersion());
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    context?.progress.done();
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (interrupt.signal.aborted) {
      process.stderr.write("interrupted: nothing was recorded\n");
      return 130;
    }
    const f = formatError(err);
    if (json) process.stdout.write(`${JSON.stringify(f.json, null, 2)}\n`);
    process.stderr.write(`${f.text}\n`);
    // Usage errors exit 2, as commander's own do (and kiln check keeps 1 for "not reproducible").
    return f.json.error.code === "usage" ? 2 : 1;
  }
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}
