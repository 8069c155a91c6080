#!/usr/bin/env node
// Control-plane benchmarks: the last part of `npm run bench`, or alone with `node bench/platform.mjs`
// (after `npm run build`; as root). `kiln serve` runs as its own process on a throwaway data
// directory and the machine's Nix store; autocannon drives the load from this process.
//
//   API         GET /v1/apps (authenticated) for --seconds: requests/s, p50/p99 latency
//   router      GET / of node-web through the router (Host: APP.localhost) vs the same dyno hit
//               directly on its relay socket, in the same run: throughput ratio, added p50
//   queue       200 build submissions for 20 apps at once (procfile-shell sources, each distinct):
//               all accepted or told to retry (429), none lost, every accepted one ends succeeded,
//               failed or cancelled (superseded); total time and the server's peak RSS
//
// Options: --json, --seconds N (load duration per autocannon run, default 10).
import { spawn } from "node:child_process";
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";

const root = join(import.meta.dirname, "..");
const kilnBin = join(root, "bin", "kiln.js");
const fixture = (name) => join(root, "test", "fixtures", "apps", name);

export function platformBenchOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: { json: { type: "boolean" }, seconds: { type: "string" }, keep: { type: "boolean" } },
    strict: false,
  });
  return { json: !!values.json, seconds: Number(values.seconds ?? 10) };
}

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function load(opts) {
  return new Promise((resolve, reject) => {
    autocannon({ connections: 32, pipelining: 1, ...opts }, (err, r) => (err ? reject(err) : resolve(r)));
  });
}

const summary = (r) => ({
  rps: r.requests.average,
  p50: r.latency.p50,
  p99: r.latency.p99,
  errors: r.errors + r.non2xx,
  total: r.requests.total,
});

function rssOf(pid) {
  try {
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb ? Number(kb) * 1024 : 0;
  } catch {
    return 0;
  }
}

export async function benchPlatform(opts = platformBenchOptions([])) {
  if (process.getuid?.() !== 0) {
    process.stderr.write("\nplatform benchmarks skipped: kiln serve runs dynos, which needs root\n");
    return { rows: [], details: { skipped: "not root" } };
  }
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-platform-"));
  chmodSync(dataDir, 0o711);
  const apiPort = await freePort();
  const routerPort = await freePort();
  const env = { ...process.env, KILN_DATA_DIR: dataDir, KILN_LOG_LEVEL: "error" };
  const server = spawn(
    process.execPath,
    [kilnBin, "serve", "--port", String(apiPort), "--router-port", String(routerPort)],
    {
      env,
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let serverLog = "";
  server.stderr.on("data", (d) => (serverLog += d));
  const api = `http://127.0.0.1:${apiPort}`;
  const rows = [];
  const details = {};
  try {
    while (!serverLog.includes("kiln API on")) {
      if (server.exitCode !== null) throw new Error(`kiln serve did not start:\n${serverLog}`);
      await sleep(100);
    }
    const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const call = async (method, path, body) => {
      const r = await fetch(`${api}${path}`, {
        method,
        headers,
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const text = await r.text();
      return { status: r.status, json: text ? JSON.parse(text) : undefined, headers: r.headers };
    };
    process.stderr.write(`\nkiln bench: platform (kiln serve on ${api}, data directory ${dataDir})\n`);

    // 1. API throughput.
    for (let i = 0; i < 10; i++) await call("POST", "/v1/apps", { name: `app-${i}` });
    const apiRun = summary(
      await load({
        url: `${api}/v1/apps`,
        headers: { authorization: `Bearer ${token}` },
        duration: opts.seconds,
      }),
    );
    details.api = apiRun;
    rows.push({
      name: "API GET /v1/apps",
      kiln: apiRun.rps,
      baseline: 5000,
      ratio: apiRun.rps / 5000,
      note: "req/s vs the 5,000 target",
    });
    process.stderr.write(
      `API GET /v1/apps          ${apiRun.rps.toFixed(0)} req/s, p50 ${apiRun.p50} ms, p99 ${apiRun.p99} ms, ${apiRun.errors} errors (target ≥ 5000 req/s, p99 < 10 ms: ${apiRun.rps >= 5000 && apiRun.p99 < 10 ? "met" : "not met"})\n`,
    );

    // 2. Router vs the dyno directly.
    await call("POST", "/v1/apps", { name: "shop" });
    const deploy = spawn(
      process.execPath,
      [kilnBin, "deploy", fixture("node-web"), "-a", "shop", "--server", api],
      {
        env,
        stdio: "ignore",
      },
    );
    await new Promise((r) => deploy.once("exit", r));
    let socket;
    for (let i = 0; i < 600 && !socket; i++) {
      await sleep(100);
      const dynos = (await call("GET", "/v1/apps/shop/dynos")).json ?? [];
      if (dynos.some((d) => d.state === "up")) {
        // The relay socket of the one web dyno: /run/kiln/<run id>/web.sock, found by its record.
        const { readdirSync } = await import("node:fs");
        const stateDir = join(dataDir, "dynos", "state");
        for (const f of readdirSync(stateDir)) {
          const rec = JSON.parse(readFileSync(join(stateDir, f), "utf8"));
          if (rec.app === "shop" && rec.state === "up" && rec.runId)
            socket = join("/run/kiln", rec.runId, "web.sock");
        }
      }
    }
    if (!socket) throw new Error("the shop web dyno did not come up");
    const direct = summary(await load({ url: "http://dyno/", socketPath: socket, duration: opts.seconds }));
    const routed = summary(
      await load({
        url: `http://127.0.0.1:${routerPort}/`,
        headers: { host: "shop.localhost" },
        duration: opts.seconds,
      }),
    );
    details.router = { direct, routed };
    const ratio = routed.rps / direct.rps;
    rows.push({
      name: "router vs direct (req/s)",
      kiln: routed.rps,
      baseline: direct.rps,
      ratio,
      note: "higher is better",
    });
    process.stderr.write(
      `router                    ${routed.rps.toFixed(0)} req/s vs ${direct.rps.toFixed(0)} direct (${(ratio * 100).toFixed(0)} %, target ≥ 70 %); p50 ${routed.p50} vs ${direct.p50} ms (+${(routed.p50 - direct.p50).toFixed(1)} ms, target < 1 ms)\n`,
    );

    // 3. The queue: 200 submissions for 20 apps at once.
    const apps = Array.from({ length: 20 }, (_, i) => `q-${i}`);
    for (const a of apps) await call("POST", "/v1/apps", { name: a });
    const tarballs = [];
    const work = mkdtempSync(join(tmpdir(), "kiln-bench-queue-"));
    for (let i = 0; i < 200; i++) {
      const dir = join(work, `src-${i}`);
      cpSync(fixture("procfile-shell"), dir, { recursive: true });
      writeFileSync(join(dir, "public", "n.txt"), `${i}\n`);
      const file = join(work, `src-${i}.tar.gz`);
      const { execFileSync } = await import("node:child_process");
      execFileSync("tar", ["czf", file, "-C", dir, "."]);
      tarballs.push(file);
    }
    let peak = rssOf(server.pid);
    const watch = setInterval(() => (peak = Math.max(peak, rssOf(server.pid))), 100);
    const t0 = Date.now();
    const submitted = await Promise.all(
      tarballs.map(async (file, i) => {
        const r = await fetch(`${api}/v1/apps/${apps[i % apps.length]}/builds`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/gzip" },
          body: readFileSync(file),
        });
        const body = await r.json();
        return {
          status: r.status,
          id: body.id,
          app: apps[i % apps.length],
          retryAfter: r.headers.get("retry-after"),
        };
      }),
    );
    const accepted = submitted.filter((s) => s.status === 201);
    const retry = submitted.filter((s) => s.status === 429 && s.retryAfter);
    const other = submitted.filter((s) => s.status !== 201 && s.status !== 429);
    const final = new Map();
    while (final.size < accepted.length) {
      for (const a of apps) {
        const builds = (await call("GET", `/v1/apps/${a}/builds`)).json ?? [];
        for (const b of builds)
          if (["succeeded", "failed", "cancelled"].includes(b.status)) final.set(b.id, b);
      }
      if (Date.now() - t0 > 30 * 60_000) break;
      if (final.size < accepted.length) await sleep(500);
    }
    clearInterval(watch);
    const seconds = (Date.now() - t0) / 1000;
    const byStatus = {};
    for (const b of final.values()) {
      const key =
        b.status === "cancelled" && /superseded/.test(b.failure_reason ?? "") ? "superseded" : b.status;
      byStatus[key] = (byStatus[key] ?? 0) + 1;
    }
    const lost = accepted.filter((s) => !final.has(s.id)).length;
    details.queue = {
      submitted: submitted.length,
      accepted: accepted.length,
      retry: retry.length,
      other: other.length,
      lost,
      byStatus,
      seconds,
      peakRss: peak,
    };
    rows.push({
      name: "queue: 200 builds, 20 apps",
      kiln: seconds,
      baseline: Number.NaN,
      ratio: Number.NaN,
      note: "seconds to drain",
    });
    rmSync(work, { recursive: true, force: true });
    process.stderr.write(
      `queue: 200 submissions     ${accepted.length} accepted, ${retry.length} told to retry (429), ${other.length} other, ${lost} lost; ends: ${JSON.stringify(byStatus)}; ${seconds.toFixed(1)} s, server peak RSS ${(peak / 1048576).toFixed(0)} MiB\n`,
    );
  } finally {
    server.kill("SIGTERM");
    await new Promise((r) => (server.exitCode !== null ? r() : server.once("exit", r)));
    rmSync(dataDir, { recursive: true, force: true });
  }
  return { rows, details };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const opts = platformBenchOptions(process.argv.slice(2));
  const r = await benchPlatform(opts);
  if (opts.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}
