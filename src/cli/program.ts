/**
 * The `kiln` command line: a commander program whose command modules load lazily. The first parse
 * sees only stubs (names and descriptions from commandTable.ts), enough for `kiln --help`,
 * `--version` and usage errors; a stub that is run names its module (NeedsModule), and main parses
 * again with that one module's real commands in its place.
 */
import { Command, Help, Option } from "commander";
import { COMMAND_MODULES, type CommandModule } from "./commandTable.js";
import type { ContextFactory } from "./context.js";

/** Thrown by a stub's action: run the command line again with this module loaded. */
export class NeedsModule extends Error {
  constructor(readonly module: CommandModule) {
    super("a command module is needed");
  }
}

export interface ProgramOptions {
  ctx: ContextFactory;
  version: string;
  /** The modules whose real commands replace their stubs (`"all"`: every one, as the table test does). */
  load?: readonly CommandModule[] | "all";
}

export async function buildProgram({ ctx, version, load = [] }: ProgramOptions): Promise<Command> {
  const stubTerms = new Map<Command, string>();
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
    // A stub lists as its real command would (its term from the table), not as a bare name.
    .configureHelp({
      subcommandTerm(this: Help, cmd: Command) {
        return stubTerms.get(cmd) ?? Help.prototype.subcommandTerm.call(this, cmd);
      },
    })
    // Throw instead of exiting, so main() decides exit codes; set before subcommands inherit it.
    .exitOverride();
  for (const module of COMMAND_MODULES) {
    if (load === "all" || load.includes(module)) {
      (await module.load())(program, ctx);
      continue;
    }
    for (const [term, description] of module.commands) {
      const stub = program
        .command(term.split(" ")[0] as string)
        .description(description)
        // Whatever follows is the real command's to judge (its --help too).
        .helpOption(false)
        .allowUnknownOption()
        .allowExcessArguments()
        .action(() => {
          throw new NeedsModule(module);
        });
      // `kiln help CMD` calls the command's help() directly.
      stub.help = () => {
        throw new NeedsModule(module);
      };
      stubTerms.set(stub, term);
    }
  }
  return program;
}
