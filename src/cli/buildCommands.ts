import { resolve } from "node:path";
import { type Command, Option } from "commander";
import { type BuildPhase, buildApp, DEFAULT_SLUG_MAX_BYTES } from "../builds/build.js";
import { withBuildLimits } from "../builds/limits.js";
import { KilnError } from "../errors.js";
import { formatBytes } from "../nix/events.js";
import { trackMachines } from "../nix/machines.js";
import { collect, parseEnv } from "./args.js";
import type { ContextFactory } from "./context.js";
import { addDistributionOptions, DISTRIBUTION_HELP } from "./distribution.js";
import { printJson, printLines } from "./output.js";

export function registerBuildCommands(program: Command, ctx: ContextFactory): void {
  const build = program
    .command("build")
    .description("build an app directory into a slug and a release, hermetically, in the Nix sandbox")
    .argument("[dir]", "the app's source directory", ".")
    .option("--app <name>", "the app's name (default: package.json's name, else the directory's)")
    .option(
      "-b, --buildpack <name-or-path>",
      "use this buildpack (repeatable, in order); default: the app's .buildpacks file, else detect",
      collect,
    )
    .option("-e, --env <NAME=value>", "a config var the buildpacks see in ENV_DIR (repeatable)", collect)
    .addOption(
      new Option("--slug-max-mb <n>", "fail when the compressed slug is larger")
        .default(DEFAULT_SLUG_MAX_BYTES / 1048576)
        .argParser(Number),
    )
    .option(
      "--build-size <size>",
      "the build's limits, a dyno size (env KILN_BUILD_SIZE; default performance-m)",
    )
    .option("--json", "print the result as JSON (build output still streams to stderr)");
  addDistributionOptions(build)
    .addHelpText(
      "after",
      `
Shipped buildpacks, tried in this order: nodejs (package.json + package-lock.json), static
(index.html or static.json), procfile (a Procfile). Output streams live, prefixed by phase:
detect, dependencies, compile, release, pack. The same source always gives the same slug sha256.
${DISTRIBUTION_HELP}`,
    )
    .action(
      async (
        dir: string,
        opts: { app?: string; buildpack?: string[]; env?: string[]; slugMaxMb: number; json?: boolean },
        cmd: Command,
      ) => {
        const c = ctx(cmd.optsWithGlobals(), opts);
        if (!Number.isFinite(opts.slugMaxMb) || opts.slugMaxMb <= 0) {
          throw new KilnError({
            code: "usage",
            message: `--slug-max-mb must be a positive number`,
            hint: "e.g. --slug-max-mb 500",
          });
        }
        const quiet = !!cmd.optsWithGlobals().quiet;
        const onLog = (phase: BuildPhase, line: string) => {
          if (quiet) return;
          c.progress.done();
          process.stderr.write(`${phase.padEnd(12)} | ${line}\n`);
        };
        const say = (line: string) => quiet || process.stderr.write(`${line}\n`);
        let builtOn: string[] = [];
        const r = await withBuildLimits(c, { id: `cli-${Date.now()}`, say }, async (limited) => {
          const tracked = trackMachines(limited);
          try {
            return await buildApp(
              { ...c, nix: tracked.nix },
              {
                appDir: resolve(dir),
                ...(opts.app !== undefined ? { app: opts.app } : {}),
                ...(opts.buildpack ? { buildpacks: opts.buildpack } : {}),
                env: parseEnv(opts.env ?? []),
                slugMaxBytes: Math.round(opts.slugMaxMb * 1048576),
                onLog,
                // In a log the build's own output says what is happening; the progress line is for terminals.
                ...(process.stderr.isTTY ? { onProgress: c.progress.nix } : {}),
                onStep: c.progress.step,
                signal: c.signal,
              },
            );
          } finally {
            builtOn = tracked.machines();
          }
        });
        c.progress.done();
        if (opts.json) {
          printJson({
            app: r.app,
            slug: r.slug,
            processTypes: r.release.processTypes,
            configVars: r.release.configVars,
            manifest: r.manifestPath,
            provenance: r.provenance,
            builtOn,
            seconds: r.seconds,
          });
          return;
        }
        const procs = Object.entries(r.release.processTypes);
        printLines([
          `built ${r.app} in ${r.seconds.toFixed(1)} s${r.cached ? " (nothing changed: the slug was already built)" : ""}`,
          `  slug       ${r.slug.path}`,
          `  sha256     ${r.slug.sha256}`,
          `  size       ${formatBytes(r.slug.bytes)}`,
          `  processes  ${procs.length ? procs.map(([k, v]) => `${k}: ${v}`).join("\n             ") : "(none: add a Procfile)"}`,
          `  manifest   ${r.manifestPath}`,
          `  provenance ${r.provenance}`,
          `  built on   ${builtOn.length ? builtOn.join(", ") : "(nothing built: all outputs were already there)"}`,
        ]);
      },
    );
}
