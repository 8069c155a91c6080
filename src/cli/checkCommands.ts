/**
 * `kiln check`: rebuild an app with variations and compare the slugs (src/repro). Local for a
 * directory (optionally against a slug file from elsewhere); on the server for a recorded build
 * (`--app A --against BUILD_ID`), where the check is recorded with the build.
 * Exit codes: 0 reproducible, 1 not reproducible, 2 could not build (or bad input).
 */
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { type Command, Option } from "commander";
import * as wire from "../api/wire.js";
import { prepareBuild, withBuildTmp } from "../builds/build.js";
import { KilnError } from "../errors.js";
import { type CheckReport, EXIT_CODES, resolveAgainst, runCheck } from "../repro/check.js";
import { recordInManifest, saveCheckReport } from "../repro/records.js";
import { formatJunit, formatReport } from "../repro/report.js";
import { loadVariations, selectVariations } from "../repro/variations.js";
import { collect, parseEnv, positive } from "./args.js";
import type { AppContext, ContextFactory } from "./context.js";
import { formatError, printJson, printLines } from "./output.js";
import { clientOf, withServer } from "./serverOptions.js";

const BUILD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const list = (v: string, prev: string[] = []) => [
  ...prev,
  ...v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
];

interface CheckFlags {
  app?: string;
  buildpack?: string[];
  env?: string[];
  builds?: number;
  jobs?: number;
  bisect?: boolean;
  vary?: string[];
  skip?: string[];
  against?: string;
  json?: boolean;
  junit?: string;
  server?: string;
  token?: string;
}

export function registerCheckCommands(program: Command, ctx: ContextFactory): void {
  withServer(
    program
      .command("check")
      .description(
        "rebuild an app with variations that must not matter and prove the slugs are byte-identical",
      )
      .argument("[dir]", "the app's source directory", ".")
      .option("--app <name>", "the app's name (with --against BUILD_ID: the server's app)")
      .option("-b, --buildpack <name-or-path>", "as for kiln build (repeatable)", collect)
      .option("-e, --env <NAME=value>", "as for kiln build (repeatable)", collect)
      .addOption(
        new Option("-n, --builds <n>", "fresh builds to make (default 2, or 1 with --against)").argParser(
          positive("--builds"),
        ),
      )
      .addOption(
        new Option("-j, --jobs <n>", "builds at once (default: one per core)").argParser(positive("--jobs")),
      )
      .option("--vary <names>", "only these variations (comma-separated, repeatable; default: all)", list)
      .option("--skip <names>", "switch these variations off (comma-separated, repeatable)", list)
      .option(
        "--bisect",
        "when slugs differ, build once per variation (it alone on) to say which changes what",
      )
      .option(
        "--against <build-id|file>",
        "compare with a recorded build (needs --app) or a slug.tgz from elsewhere",
      )
      .option("--json", "print the whole report as JSON")
      .option("--junit <file>", "also write the verdict as JUnit XML (for CI systems)"),
    {
      server: "with --against BUILD_ID: the kiln server (env KILN_SERVER)",
      token: "with --against BUILD_ID: an API token (env KILN_TOKEN)",
    },
  )
    .addHelpText(
      "after",
      `
Variations (all on by default; names for --vary and --skip):
  build-path  time  tz  locale  umask  hostname  user  cpus  env  fs-order
Build 0 is an ordinary build; build 1, 2, … vary everything switched on (nix/build/variations.json
has the values). Every build is its own derivation, so nothing comes from the cache. Differences
are explained file by file (text diff, JSON keys, archive members, binary offsets) with the likely
cause. Each report is kept in DATA_DIR/checks/, and in the manifest of the build it checked.

Exit status: 0 reproducible, 1 not reproducible, 2 a build failed or the input was bad.

Examples:
  kiln check ./my-app                          two builds, every variation
  kiln check ./my-app --vary time,tz -n 3      three builds, only clock and time zone
  kiln check ./my-app --bisect                 and, if they differ, which variation changes which file
  kiln check ./my-app --against slug.tgz       a rebuild against a slug built on another machine
  kiln check --app my-app --against BUILD_ID   on the server: a rebuild against a recorded build`,
    )
    .action(async (dir: string, opts: CheckFlags, cmd: Command) => {
      const c = ctx(cmd.optsWithGlobals(), opts);
      let report: CheckReport;
      try {
        report =
          opts.against && BUILD_ID.test(opts.against)
            ? await checkOnServer(opts, cmd)
            : await checkLocally(c, dir, opts, !!cmd.optsWithGlobals().quiet);
      } catch (err) {
        if (c.signal.aborted) throw err;
        // Bad input or a failed preparation: "could not check", never "not reproducible".
        c.progress.done();
        const f = formatError(err);
        if (opts.json) printJson(f.json);
        process.stderr.write(`${f.text}\n`);
        process.exitCode = 2;
        return;
      }
      c.progress.done();
      if (opts.junit) await writeFile(opts.junit, formatJunit(report));
      if (opts.json) printJson(report);
      else printLines(formatReport(report));
      process.exitCode = EXIT_CODES[report.verdict];
    });

  async function checkLocally(
    c: AppContext,
    dir: string,
    opts: CheckFlags,
    quiet: boolean,
  ): Promise<CheckReport> {
    const table = await loadVariations(c.config.projectDir);
    const variations = selectVariations(table, {
      ...(opts.vary ? { only: opts.vary } : {}),
      ...(opts.skip ? { skip: opts.skip } : {}),
    });
    // Checked (and hashed) before anything is built.
    const against = opts.against ? await resolveAgainst(resolve(opts.against), opts.against) : undefined;
    const builds = opts.builds ?? (against ? 1 : 2);
    if (!against && builds < 2)
      throw new KilnError({
        code: "usage",
        message: "a check needs at least 2 builds to compare",
        hint: "use --builds 2 or more, or --against a slug to compare one build with",
      });
    const report = await withBuildTmp(c.config, async (tmp) => {
      const prepared = await prepareBuild(
        c,
        {
          appDir: resolve(dir),
          ...(opts.app !== undefined ? { app: opts.app } : {}),
          ...(opts.buildpack ? { buildpacks: opts.buildpack } : {}),
          env: parseEnv(opts.env ?? []),
          onStep: c.progress.step,
          ...(process.stderr.isTTY ? { onProgress: c.progress.nix } : {}),
          signal: c.signal,
        },
        tmp,
      );
      return runCheck(c, prepared, {
        builds: Math.round(builds),
        ...(opts.jobs ? { jobs: Math.round(opts.jobs) } : {}),
        ...(opts.bisect ? { bisect: true } : {}),
        variations,
        ...(against ? { against } : {}),
        onStep: c.progress.step,
        ...(process.stderr.isTTY ? { onProgress: c.progress.nix } : {}),
        onLog: (i, line) => {
          if (quiet) return;
          c.progress.done();
          process.stderr.write(`build ${i}      | ${line}\n`);
        },
        signal: c.signal,
      });
    });
    await saveCheckReport(c.config.dataDir, report);
    await recordInManifest(c.config.dataDir, report);
    return report;
  }

  async function checkOnServer(opts: CheckFlags, cmd: Command): Promise<CheckReport> {
    if (!opts.app)
      throw new KilnError({
        code: "usage",
        message: "--against BUILD_ID needs --app",
        hint: "kiln check --app APP --against BUILD_ID",
      });
    const client = clientOf(cmd, ctx);
    const body: Record<string, unknown> = {};
    if (opts.builds !== undefined) body.builds = Math.round(opts.builds);
    if (opts.vary) body.vary = opts.vary;
    if (opts.skip) body.skip = opts.skip;
    const base = `/v1/apps/${encodeURIComponent(opts.app)}/builds/${opts.against}/checks`;
    const started = await client.request(wire.check, "POST", base, body);
    process.stderr.write(`-----> check ${started.id} started on ${client.server}\n`);
    for (;;) {
      const got = await client.request(wire.checkWithReport, "GET", `${base}/${started.id}`);
      // The report is src/repro/check.ts's, written by this kiln's server; the wire checks its id and verdict.
      if (got.report) return got.report as unknown as CheckReport;
      if (got.status === "error")
        throw new KilnError({
          code: "check_failed",
          message: `the server's check failed: ${got.error ?? "unknown"}`,
        });
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
