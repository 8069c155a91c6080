import type { AddressInfo } from "node:net";
import { type Command, Option } from "commander";
import { DEFAULT_DYNO_SIZE, DYNO_SIZES } from "../config/dynoSizes.js";
import { detectCgroups } from "../dyno/cgroups.js";
import { dynoFilter, followLog, formatLogLine, type LogLine, openAppLog, readLogTail } from "../dyno/logs.js";
import { forwardPort } from "../dyno/network.js";
import { sameProcess } from "../dyno/procfs.js";
import { reconcileDynos } from "../dyno/reconcile.js";
import { launchDyno, prepareDynoRuntime } from "../dyno/runtime.js";
import { readDynoRecords } from "../dyno/state.js";
import { DEFAULT_BOOT_TIMEOUT_MS, DEFAULT_RESTART, DEFAULT_STOP_TIMEOUT_MS } from "../dyno/supervisor.js";
import { KilnError } from "../errors.js";
import { shellQuote } from "../process/run.js";
import { resolveSlug } from "../slug/runnable.js";
import { collect, parseEnv } from "./args.js";
import { readResponse } from "./client.js";
import { printRemoteDynos } from "./clientCommands.js";
import type { ContextFactory } from "./context.js";
import { escapeControl, printJson, printLines } from "./output.js";
import { clientOf, remoteServer, serverOption, tokenOption } from "./serverOptions.js";

function seconds(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0)
      throw new KilnError({
        code: "usage",
        message: `${name} must be a number of seconds`,
        hint: `e.g. ${name} 30`,
      });
    return n;
  };
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new KilnError({
      code: "usage",
      message: `--port must be 0-65535, not "${v}"`,
      hint: "e.g. --port 8080",
    });
  return n;
}

/** One-off commands: one argument is a shell command line (as Heroku's CLI takes it); several are words. */
export function oneOffCommand(words: string[]): string {
  return words.length === 1 ? (words[0] as string) : words.map(shellQuote).join(" ");
}

export function registerDynoCommands(program: Command, ctx: ContextFactory): void {
  program
    .command("run")
    .description(
      "run a built app as a dyno in the foreground (a process type, or a one-off command after --)",
    )
    .argument("<slug-or-build>", "an app name (its latest build), a build id, a manifest or a build output")
    .argument("[command...]", "a one-off command (after --): attached to the terminal, never restarted")
    .option("-p, --process <type>", "the process type to run (default: web, or the only one)")
    .option("--port <n>", "the local port the web dyno is served on (default: a free one)", parsePort)
    .option("-e, --env <NAME=value>", "a config var (repeatable)", collect)
    .option("--outbound", "let the dyno open outbound connections (default: it has loopback only)")
    .addOption(serverOption("run the one-off command on a kiln server (env KILN_SERVER)"))
    .addOption(tokenOption("the server's API token (env KILN_TOKEN)"))
    .addOption(
      new Option("-s, --size <size>", "the dyno size (memory, processes, CPU, /tmp, open files)")
        .choices(Object.keys(DYNO_SIZES))
        .default(DEFAULT_DYNO_SIZE),
    )
    .option(
      "--boot-timeout <s>",
      "a web dyno must listen on $PORT within this",
      seconds("--boot-timeout"),
      DEFAULT_BOOT_TIMEOUT_MS / 1000,
    )
    .option(
      "--stop-timeout <s>",
      "SIGKILL this long after SIGTERM",
      seconds("--stop-timeout"),
      DEFAULT_STOP_TIMEOUT_MS / 1000,
    )
    .option(
      "--restart-delay <s>",
      "first restart delay after a crash (doubles up to 5 min)",
      seconds("--restart-delay"),
      DEFAULT_RESTART.initialDelayMs / 1000,
    )
    .addHelpText(
      "after",
      `
Examples:
  kiln run node-web                       the web process at http://127.0.0.1:PORT/, logs below
  kiln run node-web --port 8080 -e GREETING=hi
  kiln run node-web -- node -e 'console.log(process.version)'
  kiln run node-web -- sh                 a shell in a one-off dyno (busybox sh; bash is not on the run stack)

The dyno runs under the app's own unprivileged uid, in new namespaces (user, pid, network, ipc,
uts, cgroup, mount) with a seccomp filter, its stack read-only at /, the slug read-only at /app,
a size-capped /tmp and no network but the port kiln relays. Crashes restart it with backoff;
Ctrl-C sends SIGTERM to every process in it, then SIGKILL after --stop-timeout.`,
    )
    .action(async (ref: string, words: string[], opts: RunOpts, cmd: Command) => {
      const c = ctx(cmd.optsWithGlobals());
      const env = parseEnv(opts.env ?? []);
      if (remoteServer(cmd, ctx)) {
        // On a server: a one-off dyno of the app's current release, its output streamed here.
        if (words.length === 0)
          throw new KilnError({
            code: "usage",
            message: "on a server, kiln run takes a one-off command",
            hint: `kiln run ${ref} --server URL -- CMD (the server's formation runs the process types)`,
          });
        const api = clientOf(cmd, ctx);
        const res = await api.fetch(`/v1/apps/${encodeURIComponent(ref)}/dynos`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ command: oneOffCommand(words) }),
        });
        if (!res.ok) await readResponse(res);
        let last = "";
        if (res.body) {
          for await (const chunk of res.body) {
            const text = Buffer.from(chunk).toString("utf8");
            last = (last + text).slice(-200);
            process.stdout.write(text);
          }
        }
        const code = /kiln: exited with code (\d+)\n$/.exec(last)?.[1];
        process.exitCode = code !== undefined ? Number(code) : 1;
        return;
      }
      const rt = await prepareDynoRuntime(c);
      for (const l of rt.reconciled.lost)
        process.stderr.write(`cleaned up after a dyno whose kiln died: ${l}\n`);
      const slug = await resolveSlug({ nix: c.nix, dataDir: c.config.dataDir }, ref);
      const log = await openAppLog(c.config.dataDir, slug.app);
      const common = {
        slug,
        configVars: env,
        size: opts.size,
        log,
        bootTimeoutMs: opts.bootTimeout * 1000,
        stopTimeoutMs: opts.stopTimeout * 1000,
        outbound: !!opts.outbound,
      };

      if (words.length > 0) {
        // One-off: the terminal is the dyno's; kiln's own notes go to the log only.
        const dyno = await launchDyno(rt, {
          ...common,
          command: oneOffCommand(words),
          restart: false,
          attach: true,
        });
        const stop = () => void dyno.stop();
        c.signal.addEventListener("abort", stop);
        const exit = await dyno.done;
        c.signal.removeEventListener("abort", stop);
        process.exitCode = exit?.code ?? 1;
        return;
      }

      const types = Object.keys(slug.processTypes);
      const type =
        opts.process ?? (types.includes("web") || types.length !== 1 ? "web" : (types[0] as string));
      const quiet = !!cmd.optsWithGlobals().quiet;
      const unsubscribe = log.subscribe((l: LogLine) => {
        if (!quiet) process.stdout.write(`${formatLogLine(l)}\n`);
      });
      let current: string | undefined;
      const server =
        type === "web"
          ? await forwardPort({ host: "127.0.0.1", port: opts.port ?? 0, target: () => current })
          : undefined;
      const url = server ? `http://127.0.0.1:${(server.address() as AddressInfo).port}/` : undefined;
      const dyno = await launchDyno(rt, {
        ...common,
        type,
        restart: { ...DEFAULT_RESTART, initialDelayMs: opts.restartDelay * 1000 },
        ...(url ? { url } : {}),
      });
      const watch = setInterval(() => (current = dyno.current()?.relay?.socket), 20);
      process.stderr.write(
        `${slug.app} ${type}.1 (${opts.size}, slug ${slug.sha256.slice(0, 12)})${url ? ` on ${url}` : ""}; Ctrl-C stops it\n`,
      );
      await new Promise<void>((resolve) => {
        if (c.signal.aborted) return resolve();
        c.signal.addEventListener("abort", () => resolve(), { once: true });
        void dyno.done.then(
          () => resolve(),
          () => resolve(),
        );
      });
      await dyno.stop();
      clearInterval(watch);
      server?.close();
      unsubscribe();
      process.stderr.write("stopped\n");
      // Ctrl-C is how a foreground dyno is meant to end: not an error.
      process.exitCode = 0;
    });

  program
    .command("ps")
    .description(
      "list the dynos running on this machine (state, limits enforced); -a APP: an app's on a server",
    )
    .argument("[app]", "only this app's dynos")
    .option("--reconcile", "also clean up after dynos whose kiln process died (needs root)")
    .option("-a, --app <name>", "this app's dynos on a kiln server (see --server) instead of this machine's")
    .addOption(serverOption("the kiln server for -a (env KILN_SERVER; default http://127.0.0.1:5080)"))
    .addOption(tokenOption("the server's API token (env KILN_TOKEN)"))
    .option("--json", "print machine-readable JSON")
    .action(
      async (
        app: string | undefined,
        opts: { reconcile?: boolean; json?: boolean; app?: string; server?: string; token?: string },
        cmd: Command,
      ) => {
        const c = ctx(cmd.optsWithGlobals(), opts);
        if (opts.app) {
          const api = clientOf(cmd, ctx);
          return printRemoteDynos(api, opts.app, !!opts.json);
        }
        if (opts.reconcile) {
          const r = await reconcileDynos({
            dataDir: c.config.dataDir,
            runDir: c.config.runDir,
            cgroups: await detectCgroups(),
          });
          if (!opts.json)
            process.stderr.write(
              `reconciled: ${r.lost.length} lost dynos, ${r.cgroupsRemoved} cgroups, ${r.runDirsRemoved} run directories removed\n`,
            );
        }
        const records = (await readDynoRecords(c.config.dataDir)).filter((r) => !app || r.app === app);
        const rows = await Promise.all(
          records.map(async (r) => ({
            ...r,
            live: await sameProcess(r.supervisor.pid, r.supervisor.startTime),
          })),
        );
        if (opts.json) return printJson({ dynos: rows });
        if (rows.length === 0) return printLines([app ? `no dynos for ${app}` : "no dynos running"]);
        const lines: string[] = [];
        for (const r of rows) {
          const state = r.live ? r.state : "lost (its kiln process is gone: kiln ps --reconcile)";
          const since = `${ago(r.since)}`;
          lines.push(`${r.app} ${r.name}: ${state} since ${since}  (${r.size})  ${r.command}`);
          if (r.url) lines.push(`  url        ${r.url}`);
          if (r.restarts)
            lines.push(
              `  restarts   ${r.restarts}${r.nextRestartAt ? `, next in ${ago(r.nextRestartAt)}` : ""}`,
            );
          if (r.lastExit) lines.push(`  last exit  ${r.lastExit.reason} (${ago(r.lastExit.at)} ago)`);
          for (const l of r.limits)
            lines.push(
              `  ${l.name.padEnd(10)} ${l.value.padEnd(18)} ${l.enforced ? "enforced" : "NOT ENFORCED"} by ${l.by}`,
            );
        }
        printLines(lines);
      },
    );

  program
    .command("logs")
    .description("show an app's logs (dyno output and kiln's events); -t follows them")
    .argument("<app>", "the app")
    .option("-n, --num <n>", "how many recent lines", (v) => Number(v), 100)
    .option("-t, --tail", "keep following new lines until Ctrl-C")
    .option("-d, --dyno <name>", "only lines from this dyno (e.g. web.1) or type (web)")
    .addOption(serverOption("read them from a kiln server (env KILN_SERVER) instead of this machine"))
    .addOption(tokenOption("the server's API token (env KILN_TOKEN)"))
    .option("--raw", "write app output as it is, control characters too (default on a terminal: escaped)")
    .action(
      async (
        app: string,
        opts: { num: number; tail?: boolean; dyno?: string; server?: string; token?: string; raw?: boolean },
        cmd: Command,
      ) => {
        const c = ctx(cmd.optsWithGlobals());
        // An app's output must not drive the operator's terminal; a pipe gets the bytes as logged.
        const safe = !opts.raw && process.stdout.isTTY ? escapeControl : (t: string) => t;
        if (remoteServer(cmd, ctx)) {
          const api = clientOf(cmd, ctx);
          const q = new URLSearchParams({
            lines: String(opts.num),
            ...(opts.tail ? { tail: "true" } : {}),
            ...(opts.dyno ? { dyno: opts.dyno } : {}),
          });
          const res = await api.fetch(`/v1/apps/${encodeURIComponent(app)}/logs?${q}`, { signal: c.signal });
          if (!res.ok) await readResponse(res);
          try {
            const text = new TextDecoder();
            if (res.body)
              for await (const chunk of res.body)
                process.stdout.write(safe(text.decode(chunk as Uint8Array, { stream: true })));
          } catch (err) {
            if (!c.signal.aborted) throw err;
          }
          return;
        }
        const keep = dynoFilter(opts.dyno);
        const lines = (await readLogTail(c.config.dataDir, app, Number.MAX_SAFE_INTEGER))
          .filter(keep)
          .slice(-opts.num);
        if (lines.length === 0 && !opts.tail)
          process.stderr.write(
            `no logs for ${app} yet (they appear once one of its dynos runs: kiln run ${app})\n`,
          );
        for (const l of lines) process.stdout.write(`${safe(formatLogLine(l))}\n`);
        if (opts.tail) {
          await followLog(
            c.config.dataDir,
            app,
            (l) => keep(l) && process.stdout.write(`${safe(formatLogLine(l))}\n`),
            c.signal,
          );
        }
      },
    );
}

interface RunOpts {
  process?: string;
  port?: number;
  env?: string[];
  size: string;
  bootTimeout: number;
  stopTimeout: number;
  restartDelay: number;
  outbound?: boolean;
  server?: string;
  token?: string;
}

function ago(iso: string): string {
  const ms = Math.abs(Date.now() - Date.parse(iso));
  const s = Math.round(ms / 1000);
  const text = s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
  return text;
}
