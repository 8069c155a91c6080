import type { Command } from "commander";
import { assertReachable } from "../dyno/sandbox.js";
import { startControlPlane } from "../serve/controlPlane.js";
import { positive } from "./args.js";
import type { ContextFactory } from "./context.js";
import { addDistributionOptions, DISTRIBUTION_HELP } from "./distribution.js";

export function registerServeCommands(program: Command, ctx: ContextFactory): void {
  const serve = program
    .command("serve")
    .description("run kiln's HTTP build API: apps, config, builds (queued), releases, formation")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "the API's port", positive("--port"), 5080)
    .option(
      "--router-port <n>",
      "the router's port: http://APP.DOMAIN:PORT/ reaches the app's web dynos",
      positive("--router-port"),
      5000,
    )
    .option("--domain <domain>", "apps are routed by Host as APP.DOMAIN", "localhost")
    .option("--no-dynos", "build and record only: run no dynos and no router (no root needed)")
    .option("--concurrency <n>", "builds at once (default: the machine's cores)", positive("--concurrency"))
    .option("--build-timeout <min>", "a build running longer is stopped", positive("--build-timeout"), 15)
    .option(
      "--build-size <size>",
      "builds' limits, a dyno size (env KILN_BUILD_SIZE; an app's KILN_BUILD_SIZE wins)",
    )
    .option("--max-source-mb <n>", "largest source upload accepted", positive("--max-source-mb"), 200);
  addDistributionOptions(serve)
    .addHelpText(
      "after",
      `
State lives in DATA_DIR/kiln.sqlite. At the first start kiln creates an admin API token, prints it
once and keeps it in DATA_DIR/admin-token (mode 0600); the database stores only its hash. Or set
one with KILN_ADMIN_TOKEN (24+ characters). Builds
that were running when the server last stopped are marked failed (interrupted); queued ones run.
${DISTRIBUTION_HELP}`,
    )
    .action(
      async (
        opts: {
          host: string;
          port: number;
          routerPort: number;
          domain: string;
          dynos: boolean;
          concurrency?: number;
          buildTimeout: number;
          maxSourceMb: number;
        },
        cmd: Command,
      ) => {
        const c = ctx(cmd.optsWithGlobals());
        // Dynos run as unprivileged uids that must pass through the data directory to their
        // slugs: said now, with the fix, rather than as every dyno's crash loop.
        if (opts.dynos) await assertReachable(c.config.dataDir);
        const cp = await startControlPlane(c, {
          host: opts.host,
          port: opts.port,
          routerPort: opts.routerPort,
          domain: opts.domain,
          dynos: opts.dynos,
          ...(c.config.adminToken ? { adminToken: c.config.adminToken } : {}),
          ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
          buildTimeoutMs: opts.buildTimeout * 60_000,
          maxSourceBytes: Math.round(opts.maxSourceMb * 1048576),
        });
        process.stderr.write(`kiln API on ${cp.url} (state: ${c.config.dataDir})\n`);
        if (cp.routerUrl)
          process.stderr.write(
            `router on ${cp.routerUrl}: apps at http://APP.${opts.domain}:${new URL(cp.routerUrl).port}/\n`,
          );
        if (cp.adminToken)
          process.stderr.write(
            `admin token (shown once; also in ${cp.adminTokenFile}):\n  ${cp.adminToken}\n`,
          );
        if (cp.recovered.interrupted.length)
          process.stderr.write(`marked ${cp.recovered.interrupted.length} interrupted build(s) failed\n`);
        const sw = cp.swept;
        if (sw.sources + sw.partials + sw.tmpDirs + sw.tornFiles)
          process.stderr.write(
            `removed what interrupted builds left: ${sw.sources} source(s), ${sw.partials} torn upload(s), ${sw.tmpDirs} work dir(s), ${sw.tornFiles} torn file(s)\n`,
          );
        if (cp.recovered.requeued)
          process.stderr.write(`re-queued ${cp.recovered.requeued} pending build(s)\n`);
        await new Promise<void>((resolve) =>
          c.signal.addEventListener("abort", () => resolve(), { once: true }),
        );
        process.stderr.write("stopping the API\n");
        await cp.close();
      },
    );
}
