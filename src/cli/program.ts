/** The `kiln` command line: a commander program with one module of commands per domain. */
import { Command, Option } from "commander";
import { registerBootstrapCommands } from "./bootstrapCommands.js";
import { registerBuildCommands } from "./buildCommands.js";
import { registerCacheCommands } from "./cacheCommands.js";
import { registerCheckCommands } from "./checkCommands.js";
import { registerClientCommands } from "./clientCommands.js";
import type { ContextFactory } from "./context.js";
import { registerDynoCommands } from "./dynoCommands.js";
import { registerGitCommands } from "./gitCommands.js";
import { registerInventoryCommands } from "./inventoryCommands.js";
import { registerSeedCommands } from "./seedCommands.js";
import { registerServeCommands } from "./serveCommands.js";
import { registerStackCommands } from "./stackCommands.js";

export function buildProgram(ctx: ContextFactory, version: string): Command {
  const program = new Command("kiln")
    .description("kiln: hermetic, reproducible Heroku-style builds in Nix, run as bubblewrap dynos")
    .version(version)
    .option("--data-dir <dir>", "where kiln keeps caches, GC roots and state (env KILN_DATA_DIR)")
    .option("--store <uri>", "Nix store: auto, local, daemon or a store URI (env KILN_NIX_STORE)")
    .addOption(
      new Option("--log-level <level>", "log verbosity on stderr (env KILN_LOG_LEVEL)").choices([
        "fatal",
        "error",
        "warn",
        "info",
        "debug",
        "trace",
        "silent",
      ]),
    )
    .option("-q, --quiet", "no progress output")
    .showHelpAfterError("(add --help for usage)")
    .enablePositionalOptions(false)
    // Throw instead of exiting, so main() decides exit codes; set before subcommands inherit it.
    .exitOverride();
  registerBuildCommands(program, ctx);
  registerCheckCommands(program, ctx);
  registerDynoCommands(program, ctx);
  registerSeedCommands(program, ctx);
  registerServeCommands(program, ctx);
  registerBootstrapCommands(program, ctx);
  registerClientCommands(program, ctx);
  registerStackCommands(program, ctx);
  registerGitCommands(program, ctx);
  registerCacheCommands(program, ctx);
  registerInventoryCommands(program, ctx);
  return program;
}
