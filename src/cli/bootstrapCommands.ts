import type { Command } from "commander";
import { BootstrapError, type Bootstrapped, bootstrap } from "../bootstrap/bootstrap.js";
import { npmRegistry } from "../builds/build.js";
import { positive } from "./args.js";
import type { ContextFactory } from "./context.js";
import { formatError, printJson, printLines } from "./output.js";

/** kiln bootstrap's exit statuses (2 is a usage error, as for every command). */
export const BOOTSTRAP_EXIT = { fixedPoint: 0, noFixedPoint: 1, failed: 3, interrupted: 130 } as const;

/**
 * Once the platform is stopped nothing may keep kiln alive: if some handle still does after a
 * grace period, exit anyway (the dynos, relays and nix-daemon die with kiln by then regardless).
 */
function endWith(code: number): void {
  process.exitCode = code;
  setTimeout(() => {
    process.stderr.write(
      `kiln bootstrap: still held after stopping (${process.getActiveResourcesInfo().join(", ")}); exiting\n`,
    );
    process.exit(code);
  }, 10_000).unref();
}

export function registerBootstrapCommands(program: Command, ctx: ContextFactory): void {
  program
    .command("bootstrap")
    .description("kiln builds itself with itself (stage0 → stage3), hosts itself, and checks the fixed point")
    .option("--source <dir>", "kiln's source tree to bootstrap (default: the kiln running this)")
    .option("--api-port <n>", "the self-hosted API (the platform's front door)", positive("--api-port"), 5080)
    .option("--router-port <n>", "the router: http://APP.DOMAIN:PORT/", positive("--router-port"), 5000)
    .option("--domain <domain>", "apps are routed by Host as APP.DOMAIN", "localhost")
    .option("--exit", "stop the platform after the report (default: leave it running)")
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      `
Steps: stage0 (tsc, no buildpack) and stage1 (kiln built by its nodejs buildpack with stage0's
tools) in the Nix sandbox; the platform starts with stage1 as the app "kiln" (a dyno on the build
stack, granted the Nix store, a private nix-daemon and its own state, nothing else); stage2 is
built through stage1's own API and released to the app "kiln" (the old dyno serves until the new
one answers); stage3 is built through stage2's API. The fixed point holds when stage2 and stage3
are byte-identical. The report goes to DATA_DIR/bootstrap-report.json. Needs root (dynos); state
in DATA_DIR (--data-dir).

A failure at any stage (or a stage silent for KILN_BOOTSTRAP_SILENCE_SECONDS, default 900) ends
the bootstrap: everything it started (dynos, relays, the front door, the nix-daemon) is stopped,
with or without --exit, and the report names the stage and the cause.
Exit status: 0 the fixed point holds; 1 it ran to the end but stage2 and stage3 differ; 2 usage;
3 a stage failed (see the report); 130 interrupted (Ctrl-C / SIGTERM).`,
    )
    .action(
      async (
        opts: {
          source?: string;
          apiPort: number;
          routerPort: number;
          domain: string;
          exit?: boolean;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const c = ctx(cmd.optsWithGlobals(), opts);
        const quiet = !!cmd.optsWithGlobals().quiet;
        const say = (line: string) => {
          c.progress.done();
          process.stderr.write(`-----> ${line}\n`);
        };
        let b: Bootstrapped;
        try {
          b = await bootstrap(c, {
            source: opts.source ?? c.config.projectDir,
            apiPort: opts.apiPort,
            routerPort: opts.routerPort,
            domain: opts.domain,
            registry: await npmRegistry(),
            say,
            onLog: (stage, line) => {
              if (quiet) return;
              c.progress.done();
              process.stderr.write(`${stage} | ${line}\n`);
            },
            ...(process.stderr.isTTY ? { onProgress: c.progress.nix } : {}),
            signal: c.signal,
          });
        } catch (err) {
          c.progress.done();
          const f = formatError(err);
          if (opts.json) printJson(f.json);
          process.stderr.write(`${f.text}\n`);
          endWith(
            err instanceof BootstrapError && err.failure.interrupted
              ? BOOTSTRAP_EXIT.interrupted
              : BOOTSTRAP_EXIT.failed,
          );
          return;
        }
        const r = b.report;
        if (opts.json) printJson(r);
        else {
          const row = (
            name: string,
            s: { sha256?: string; bytes?: number; seconds: number; builtBy: string },
          ) =>
            `  ${name}  ${s.sha256 ? s.sha256.slice(0, 16) : "(a tree)".padEnd(16)}  ${s.bytes ? `${(s.bytes / 1048576).toFixed(1)} MiB`.padStart(9) : "".padStart(9)}  ${s.seconds.toFixed(1).padStart(6)} s  built by ${s.builtBy}`;
          printLines([
            `fixed point: ${r.fixedPoint ? "yes (stage2 and stage3 are byte-identical)" : "NO"}`,
            `stage1 matches stage2: ${r.stage1MatchesStage2 ? "yes" : "no"}; stage2 built with stage1's tools: ${r.stage2BuiltByStage1 ? "yes" : "NO"}`,
            row("stage0", r.stages.stage0),
            row("stage1", r.stages.stage1),
            row("stage2", r.stages.stage2),
            row("stage3", r.stages.stage3),
            ...r.differences.map((d) => `  ${d}`),
            `report: ${b.reportFile} (${r.seconds.toFixed(0)} s in all)`,
          ]);
        }
        if (!opts.exit) {
          process.stderr.write(
            `the platform runs itself: its API (kiln ${r.platform.kilnRelease > 0 ? `release v${r.platform.kilnRelease}` : ""}) at ${r.platform.api}, apps at ${r.platform.router.replace("127.0.0.1", `APP.${opts.domain}`)}/\n` +
              `the dyno manager's own API: ${r.platform.manager}; admin token: ${r.platform.adminTokenFile}. Ctrl-C stops it.\n`,
          );
          await new Promise<void>((resolve) =>
            c.signal.addEventListener("abort", () => resolve(), { once: true }),
          );
        }
        await b.close();
        endWith(r.fixedPoint ? BOOTSTRAP_EXIT.fixedPoint : BOOTSTRAP_EXIT.noFixedPoint);
      },
    );
}
