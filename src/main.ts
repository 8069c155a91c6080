/**
 * The CLI's entry: parse the command line against command stubs, then load only the module (and
 * the services in core.ts) of the command that runs. Nothing heavy is imported at the top.
 */
import { readFileSync } from "node:fs";
import { CommanderError } from "commander";
import type { AppContext, ContextFactory } from "./cli/context.js";
import { formatError } from "./cli/output.js";
import { buildProgram, NeedsModule } from "./cli/program.js";
import { bug } from "./errors.js";

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
  let core: typeof import("./core.js") | undefined;
  const ctx: ContextFactory = (globals, opts = {}) => {
    if (context) return context;
    if (!core) throw bug("a command asked for its context before core.ts was loaded");
    json = !!opts.json;
    context = core.createContext(globals, process.env, interrupt.signal);
    return context;
  };
  const version = readVersion();
  try {
    try {
      await (await buildProgram({ ctx, version })).parseAsync(argv, { from: "user" });
    } catch (err) {
      if (!(err instanceof NeedsModule)) throw err;
      // A command of err.module runs (or shows its --help, which needs no services).
      if (!wantsHelp(argv)) core = await import("./core.js");
      await (await buildProgram({ ctx, version, load: [err.module] })).parseAsync(argv, { from: "user" });
    }
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

/** -h/--help before any `--` (after it, the words are a one-off command's). */
function wantsHelp(argv: string[]): boolean {
  const end = argv.indexOf("--");
  return (
    (end < 0 ? argv : argv.slice(0, end)).some((a) => a === "--help" || a === "-h") || argv[0] === "help"
  );
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
