#!/usr/bin/env node
// Dyno benchmarks: the last part of `npm run bench`, or alone with `node bench/dynos.mjs` (after
// `npm run build`). Needs root, as dynos do. Uses the machine's Nix store (building the node-web
// fixture is cached there) and a throwaway data directory (and run directory) under /tmp.
//
//   dyno start → HTTP 200   launchDyno of node-web's `node server.js` until GET / answers 200
//                           through the relay socket   vs  the slug's own node started on the host
//                           (same command, cwd, environment) until GET / on its port answers 200;
//                           alternated, medians and p90
//   lockdown /bin/true      prlimit → setpriv → bwrap with the dyno's full options (namespaces,
//                           seccomp, binds, --block-fd) running /bin/true  vs  bare exec of /bin/true
//   one-off dyno `true`     launchDyno of a one-off `true` until it ended (adds cgroups, the app
//                           uid, state records, the .profile.d loader)  vs  bare exec of /bin/true
//   memory per idle dyno    kiln's share (growth of this process's RSS per dyno) and the sandbox
//                           (bwrap launcher, the sandbox's pid 1, the socat relay), apart from the
//                           app's own node process
//   dynos before 2× start   idle web dynos started one after another (all kept running) until a
//                           start takes over twice the median of the first 3, or --max-dynos
//
// Options: --json (machine-readable results on stdout), --runs N (start-to-200 runs of each side,
// default 15), --true-runs N (default 30), --max-dynos N (default 60).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { buildApp } from "../dist/builds/build.js";
import { loadConfig } from "../dist/config/config.js";
import { dynoSize } from "../dist/config/dynoSizes.js";
import { createCore } from "../dist/core.js";
import { openAppLog } from "../dist/dyno/logs.js";
import { descendants, rssBytes } from "../dist/dyno/procfs.js";
import { launchDyno, prepareDynoRuntime } from "../dist/dyno/runtime.js";
import { DYNO_FDS, dynoBwrapOptions, dynoEnv, dynoLauncher } from "../dist/dyno/sandbox.js";
import { appUid } from "../dist/dyno/uids.js";
import { createLogger } from "../dist/log/logger.js";
import { ensureSeed } from "../dist/seed/seed.js";
import { resolveSlug, unpackSlug } from "../dist/slug/runnable.js";

const root = join(import.meta.dirname, "..");
const fixture = join(root, "test", "fixtures", "apps", "node-web");
/** Between two GET / attempts (both sides). */
const POLL_MS = 1;
const START_TIMEOUT_MS = 30_000;
const MiB = 1048576;

setFlagsFromString("--expose-gc");
/** A full GC before reading RSS, so the supervisor's share is not garbage from the measuring. */
const gc = runInNewContext("gc");

export function dynoBenchOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: {
      json: { type: "boolean" },
      runs: { type: "string" },
      "true-runs": { type: "string" },
      "max-dynos": { type: "string" },
    },
  });
  const int = (v, d) => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive whole number, got ${v}`);
    return n;
  };
  return {
    json: !!values.json,
    runs: int(values.runs, 15),
    trueRuns: int(values["true-runs"], 30),
    maxDynos: int(values["max-dynos"], 60),
  };
}

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
}
const median = (xs) => quantile(xs, 0.5);

/** Status of GET / on a TCP port or a Unix socket; throws when nothing answers. */
function get(target) {
  return new Promise((resolve, reject) => {
    const req = request({ ...target, path: "/", headers: { host: "dyno" }, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(5000, () => req.destroy(new Error("no answer within 5 s")));
    req.end();
  });
}

/**
 * Polls GET / until 200; resolves with the number of GETs made. `target()` is undefined until
 * there is something to connect to.
 */
async function until200(what, target, failed) {
  const deadline = now() + START_TIMEOUT_MS;
  for (let attempts = 1; ; ) {
    const reason = failed();
    if (reason) throw new Error(`${what}: ${reason}`);
    const t = target();
    if (t) {
      if ((await get(t).catch(() => 0)) === 200) return attempts;
      attempts++;
    }
    if (now() > deadline) throw new Error(`${what}: no HTTP 200 within ${START_TIMEOUT_MS / 1000} s`);
    await sleep(POLL_MS);
  }
}

async function freePort() {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address();
  srv.close();
  await once(srv, "close");
  return port;
}

/** Spawns and waits; resolves with the exit code (rejects if it could not start). */
async function run(file, args, opts) {
  const child = spawn(file, args, opts);
  const [code, signal] = await once(child, "exit");
  return code ?? signal;
}

async function comm(pid) {
  return (await readFile(`/proc/${pid}/comm`, "utf8").catch(() => "")).trim();
}

/** Proportional set size: shared pages (the node binary, libc) split between their users. */
async function pssBytes(pid) {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
  const kb = /^Pss:\s+(\d+) kB$/m.exec(text)?.[1];
  return kb ? Number(kb) * 1024 : 0;
}

/** RSS and PSS summed over processes. */
async function memOf(pids) {
  const sum = { rss: 0, pss: 0 };
  for (const p of pids) {
    sum.rss += (await rssBytes(p)) ?? 0;
    sum.pss += await pssBytes(p);
  }
  return sum;
}

function heapBytes() {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

/**
 * Supervised.stop() that also works while the dyno is still starting: the supervisor only looks
 * at its stop flag between runs, so a stop() that comes before the run is in place would wait for
 * the run to end by itself. Wait for the start to settle first (running, or failed).
 */
async function stopSafely(d) {
  let settled = false;
  d.done.then(
    () => (settled = true),
    () => (settled = true),
  );
  while (!d.current() && !settled) await sleep(5);
  await d.stop().catch(() => {});
}

const fmtMs = (ms) => `${ms.toFixed(1).padStart(7)} ms`;

export async function benchDynos(opts = dynoBenchOptions([])) {
  const rows = [];
  const details = {};
  if (process.getuid?.() !== 0) {
    process.stderr.write("\ndynos: skipped (running dynos needs root)\n");
    return { rows, details: { skipped: "running dynos needs root" } };
  }
  const started = new Set();
  let interrupted;
  // The first Ctrl-C stops the dynos and removes the data directory; a second one exits at once
  // (the dynos die with this process: bwrap --die-with-parent, the relays' parent-death signal).
  const onSignal = (sig) => {
    if (interrupted) process.exit(130);
    interrupted = `interrupted by ${sig}`;
    process.stderr.write(`\n${sig}: stopping the dynos (again to exit at once)\n`);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const checkInterrupt = () => {
    if (interrupted) throw new Error(interrupted);
  };
  const say = (s) => process.stderr.write(s);
  const row = (name, kilnMs, baseMs, note, extra = "") => {
    const r = { name, kiln: kilnMs / 1000, baseline: baseMs / 1000, ratio: kilnMs / baseMs, note };
    rows.push(r);
    say(
      `${name.padEnd(26)} kiln ${fmtMs(kilnMs)}  baseline ${fmtMs(baseMs)}  ratio ${r.ratio.toFixed(2)}${extra}\n`,
    );
  };

  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-dynos-"));
  // Dynos run as unprivileged uids, which must pass through it to their slug and relay directory.
  chmodSync(dataDir, 0o711);
  try {
    say(`\nkiln bench: dynos (the machine's Nix store, data directory ${dataDir})\n`);
    const config = loadConfig(process.env, { dataDir, runDir: join(dataDir, "run") });
    const deps = createCore(config, createLogger("warn"));
    await ensureSeed(deps);
    const build = await buildApp(deps, { appDir: fixture });
    const slug = await resolveSlug({ nix: deps.nix, dataDir }, build.manifestPath);
    const appDir = await unpackSlug(dataDir, slug);
    const rt = await prepareDynoRuntime(deps);
    const log = await openAppLog(dataDir, slug.app);
    let serial = 0;

    /** Launches a node-web dyno; resolves with it and the ms from launchDyno to the first 200. */
    const startWeb = async () => {
      checkInterrupt();
      const t0 = now();
      const d = await launchDyno(rt, {
        slug,
        type: "web",
        command: "node server.js",
        name: `web.${++serial}`,
        restart: false,
        log,
      });
      started.add(d);
      // A failed start rejects `done`; the polling below reports it.
      d.done.catch(() => {});
      const launchedMs = now() - t0;
      let readyMs;
      const gets = await until200(
        `dyno ${d.record().name}`,
        () => {
          // Like the router: nothing is sent to a dyno before kiln has seen it listen ("up").
          const socketPath = d.record().state === "up" ? d.current()?.relay?.socket : undefined;
          if (!socketPath) return undefined;
          readyMs ??= now() - t0;
          return { socketPath };
        },
        () => interrupted ?? (["down", "crashed"].includes(d.record().state) ? "it stopped" : undefined),
      );
      return { d, ms: now() - t0, launchedMs, readyMs, gets };
    };
    const stopDyno = async (d) => {
      await d.stop();
      started.delete(d);
    };

    // The host baseline: the slug's own node, the same command and environment, on a free port.
    const hostNode = join(appDir, ".heroku", "node", "bin", "node");
    const hostEnv = (port) => ({
      ...dynoEnv({ dyno: "web.1", port, releaseVars: slug.configVars, configVars: {} }),
      PATH: `${join(appDir, ".heroku", "node", "bin")}:${process.env.PATH}`,
      HOME: appDir,
    });
    const startHost = async () => {
      checkInterrupt();
      const port = await freePort();
      const t0 = now();
      const child = spawn(hostNode, ["server.js"], { cwd: appDir, env: hostEnv(port), stdio: "ignore" });
      let exit;
      const exited = new Promise((resolve) => {
        const end = (why) => {
          exit = why;
          resolve();
        };
        child.once("exit", (code, signal) => end(`exited with ${code ?? signal}`));
        child.once("error", (err) => end(err.message));
      });
      try {
        const gets = await until200(
          "node on the host",
          () => ({ host: "127.0.0.1", port }),
          () => interrupted ?? exit,
        );
        return { ms: now() - t0, gets };
      } finally {
        child.kill("SIGKILL");
        await exited;
      }
    };

    // 1. Start to first HTTP 200, alternated, after one untimed run of each (page cache, JIT).
    await stopDyno((await startWeb()).d);
    await startHost();
    const kilnRuns = [];
    const hostRuns = [];
    for (let i = 0; i < opts.runs; i++) {
      const k = await startWeb();
      kilnRuns.push(k);
      await stopDyno(k.d);
      hostRuns.push(await startHost());
    }
    const kilnStarts = kilnRuns.map((r) => r.ms);
    const hostStarts = hostRuns.map((r) => r.ms);
    const start = {
      runs: opts.runs,
      kilnMedianMs: median(kilnStarts),
      kilnP90Ms: quantile(kilnStarts, 0.9),
      baselineMedianMs: median(hostStarts),
      baselineP90Ms: quantile(hostStarts, 0.9),
      // Where the dyno's time goes: launchDyno returned (the supervisor is set up), the sandbox
      // is running with its cgroups and relay (the app released), then the app boots to a 200.
      kilnPhasesMedianMs: {
        launched: median(kilnRuns.map((r) => r.launchedMs)),
        sandboxReady: median(kilnRuns.map((r) => r.readyMs)),
        readyTo200: median(kilnRuns.map((r) => r.ms - r.readyMs)),
      },
      getsMedian: {
        kiln: median(kilnRuns.map((r) => r.gets)),
        baseline: median(hostRuns.map((r) => r.gets)),
      },
      kilnMs: kilnStarts,
      baselineMs: hostStarts,
    };
    start.addedMedianMs = start.kilnMedianMs - start.baselineMedianMs;
    start.targetMet = start.addedMedianMs <= 20;
    details.start = start;
    row(
      "dyno start → HTTP 200",
      start.kilnMedianMs,
      start.baselineMedianMs,
      "medians; baseline: the slug's node started on the host, polled the same way",
      `   added ${start.addedMedianMs.toFixed(1)} ms (target ≤ 20: ${start.targetMet ? "met" : "not met"}); p90 ${start.kilnP90Ms.toFixed(1)} vs ${start.baselineP90Ms.toFixed(1)} ms`,
    );
    const ph = start.kilnPhasesMedianMs;
    say(
      `  dyno medians: launchDyno returned ${ph.launched.toFixed(1)} ms, sandbox + cgroups + relay ready ${ph.sandboxReady.toFixed(1)} ms, ` +
        `then ${ph.readyTo200.toFixed(1)} ms to the 200 (GETs until 200: ${start.getsMedian.kiln} dyno, ${start.getsMedian.baseline} host)\n`,
    );

    // 2. bwrap's own start cost: /bin/true in the full lockdown, then as a one-off dyno.
    const uid = await appUid(dataDir, slug.app);
    const size = dynoSize("standard-1x");
    const launcher = dynoLauncher({ uid, size, command: "true" });
    // The launcher chain and bwrap's options exactly as a dyno's, but /bin/true instead of the
    // .profile.d loader.
    const bwrapArgs = [...launcher.args.slice(0, launcher.args.indexOf("--args") + 2), "--", "/bin/true"];
    const bwrapOptions = `${dynoBwrapOptions({
      uid,
      hostname: "run.1",
      size,
      stackDir: rt.stackDir,
      slugDir: appDir,
    }).join("\0")}\0`;
    const env = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };
    const lockdownTrue = async () => {
      const seccomp = await open(rt.seccompFile, "r");
      try {
        const t0 = now();
        const child = spawn(launcher.file, bwrapArgs, {
          env,
          stdio: ["ignore", "ignore", "pipe", "pipe", "pipe", "pipe", seccomp.fd],
        });
        let stderr = "";
        child.stderr.on("data", (d) => (stderr += d));
        for (const fd of [DYNO_FDS.args, DYNO_FDS.status, DYNO_FDS.block])
          child.stdio[fd].on("error", () => {});
        child.stdio[DYNO_FDS.args].end(bwrapOptions);
        child.stdio[DYNO_FDS.status].resume();
        child.stdio[DYNO_FDS.block].end("go");
        const [code, signal] = await once(child, "exit");
        const ms = now() - t0;
        if (code !== 0)
          throw new Error(`/bin/true in the lockdown: exit ${code ?? signal}: ${stderr.trim()}`);
        return ms;
      } finally {
        await seccomp.close();
      }
    };
    const bareTrue = async () => {
      const t0 = now();
      const code = await run("/bin/true", [], { env, stdio: "ignore" });
      const ms = now() - t0;
      if (code !== 0) throw new Error(`/bin/true: exit ${code}`);
      return ms;
    };
    const oneOffTrue = async () => {
      const t0 = now();
      const d = await launchDyno(rt, { slug, command: "true", restart: false, log });
      started.add(d);
      const exit = await d.done;
      const ms = now() - t0;
      started.delete(d);
      if (exit?.code !== 0) throw new Error(`one-off dyno \`true\`: ${exit?.reason ?? "no exit"}`);
      return ms;
    };
    await lockdownTrue();
    await bareTrue();
    await oneOffTrue();
    const lockdown = [];
    const oneOff = [];
    const bare = [];
    for (let i = 0; i < opts.trueRuns; i++) {
      checkInterrupt();
      lockdown.push(await lockdownTrue());
      bare.push(await bareTrue());
      oneOff.push(await oneOffTrue());
      bare.push(await bareTrue());
    }
    details.true = {
      runs: opts.trueRuns,
      lockdownMedianMs: median(lockdown),
      oneOffDynoMedianMs: median(oneOff),
      bareMedianMs: median(bare),
      lockdownMs: lockdown,
      oneOffDynoMs: oneOff,
      bareMs: bare,
    };
    row(
      "lockdown /bin/true",
      median(lockdown),
      median(bare),
      "prlimit → setpriv → bwrap with the dyno's options (seccomp included), no cgroups; baseline: bare exec",
      `   added ${(median(lockdown) - median(bare)).toFixed(1)} ms`,
    );
    row(
      "one-off dyno `true`",
      median(oneOff),
      median(bare),
      "launchDyno to the end of a one-off `true`: lockdown + cgroups + state + .profile.d loader; baseline: bare exec",
      `   added ${(median(oneOff) - median(bare)).toFixed(1)} ms`,
    );

    // 3 and 4. Idle web dynos one after another, all kept running, until a start takes more than
    // twice the median of the first 3 (or the cap); the memory of each is read at the end.
    gc();
    await sleep(200);
    const rssBefore = process.memoryUsage().rss;
    const heapBefore = heapBytes();
    const fleet = [];
    let limitMs;
    let doubled = false;
    say(`idle web dynos: starting up to ${opts.maxDynos}, each kept running\n`);
    while (fleet.length < opts.maxDynos) {
      fleet.push(await startWeb());
      const { ms } = fleet.at(-1);
      if (fleet.length === 3) limitMs = 2 * median(fleet.map((f) => f.ms));
      if (limitMs !== undefined && fleet.length > 3 && ms > limitMs) {
        doubled = true;
        break;
      }
    }
    await sleep(1000);
    gc();
    await sleep(200);
    const rssAfter = process.memoryUsage().rss;
    const heapAfter = heapBytes();
    const mem = [];
    for (const { d } of fleet) {
      const cur = d.current();
      if (!cur) continue;
      const app = [];
      const loader = [];
      for (const p of await descendants(cur.initPid)) ((await comm(p)) === "node" ? app : loader).push(p);
      const relay = cur.relay ? [cur.relay.process.pid, ...(await descendants(cur.relay.process.pid))] : [];
      const parts = {
        launcher: await memOf([cur.pid]),
        init: await memOf([cur.initPid]),
        relay: await memOf(relay),
        loader: await memOf(loader),
        app: await memOf(app),
      };
      parts.sandbox = {
        rss: parts.launcher.rss + parts.init.rss + parts.relay.rss + parts.loader.rss,
        pss: parts.launcher.pss + parts.init.pss + parts.relay.pss + parts.loader.pss,
      };
      mem.push(parts);
    }
    const perDyno = (part, kind) => median(mem.map((m) => m[part][kind]));
    const memory = {
      dynos: fleet.length,
      supervisorRssBytesPerDyno: (rssAfter - rssBefore) / fleet.length,
      supervisorHeapBytesPerDyno: (heapAfter - heapBefore) / fleet.length,
    };
    for (const part of ["sandbox", "launcher", "init", "relay", "loader", "app"]) {
      memory[part] = { rssBytes: perDyno(part, "rss"), pssBytes: perDyno(part, "pss") };
    }
    details.memory = memory;
    const MiBs = (b) => `${(b / MiB).toFixed(2).padStart(6)} MiB`;
    const both = (part) => `${MiBs(memory[part].rssBytes)} RSS ${MiBs(memory[part].pssBytes)} PSS`;
    say(
      `\nmemory per idle web dyno (medians over ${fleet.length} running dynos):\n` +
        `  kiln supervisor     ${MiBs(memory.supervisorRssBytesPerDyno)} RSS (growth of this process's RSS per dyno; JS heap + buffers: ${MiBs(memory.supervisorHeapBytesPerDyno)})\n` +
        `  sandbox             ${both("sandbox")}\n` +
        `    bwrap launcher    ${both("launcher")}\n` +
        `    sandbox pid 1     ${both("init")}\n` +
        `    socat relay       ${both("relay")}\n` +
        (memory.loader.rssBytes ? `    loader shell      ${both("loader")}\n` : "") +
        `  the app (node)      ${both("app")}\n`,
    );
    const latencies = fleet.map((f) => f.ms);
    details.scaling = {
      dynos: fleet.length,
      // Running idle when a start took twice as long (or all of them, when none did).
      held: doubled ? fleet.length - 1 : fleet.length,
      cap: opts.maxDynos,
      doubled,
      firstThreeMedianMs: latencies.length >= 3 ? median(latencies.slice(0, 3)) : undefined,
      lastMs: latencies.at(-1),
      latenciesMs: latencies,
    };
    const lat = (xs) => xs.map((x) => Math.round(x)).join(" ");
    say(
      `\nidle web dynos held before a start takes 2× the first 3 (${details.scaling.firstThreeMedianMs?.toFixed(1)} ms): ` +
        (doubled
          ? `${details.scaling.held} (start number ${fleet.length} took ${details.scaling.lastMs.toFixed(1)} ms)\n`
          : `≥ ${fleet.length} (the cap; the last start took ${details.scaling.lastMs.toFixed(1)} ms)\n`) +
        `  start-to-200 ms, in order: ${lat(latencies)}\n`,
    );
    return { rows, details };
  } finally {
    await Promise.all([...started].map(stopSafely));
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[1] === import.meta.filename) {
  const opts = dynoBenchOptions(process.argv.slice(2));
  const { rows, details } = await benchDynos(opts);
  if (details.skipped) process.exitCode = 1;
  if (opts.json) process.stdout.write(`${JSON.stringify({ results: rows, dynos: details }, null, 2)}\n`);
}
