#!/usr/bin/env node
// Cache and remote-builder benchmarks, in one run, on the machine's Nix store (seed and stack warm),
// each build of a source no earlier run built (a fixture plus a file of random bytes):
//
//   substitute vs build   `kiln build` of the procfile-shell fixture (the slug really built)
//                         vs  `nix copy --from http://…/nix-cache` of that slug (kiln serve, signed,
//                         checked against its key) into a fresh chroot store
//   remote vs local       the same kind of build with --builders ssh-ng://localhost?remote-store=DIR
//                         --remote-only (a second store on this machine; one untimed warm-up
//                         build first copies the seed and stack there) vs the local build
//
// Runnable alone (`node bench/cache.mjs`, after `npm run build`). Options: --json.
import { spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmodSync, cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const root = join(import.meta.dirname, "..");
const kilnBin = join(root, "bin", "kiln.js");
const temps = [];
const temp = (prefix) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  temps.push(d);
  return d;
};

function timed(label, cmd, args, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 30, ...opts });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0)
    throw new Error(`${label} failed (exit ${r.status}):\n${(r.stderr ?? "").slice(-3000)}`);
  return { seconds, stdout: r.stdout };
}

function uniqueApp() {
  const dir = join(temp("kiln-bench-cache-app-"), "app");
  cpSync(join(root, "test", "fixtures", "apps", "procfile-shell"), dir, { recursive: true });
  writeFileSync(join(dir, "public", "marker.txt"), `${randomUUID()}\n`);
  return dir;
}

const data = temp("kiln-bench-cache-data-");
chmodSync(data, 0o711);
const env = { ...process.env, KILN_DATA_DIR: data };
const build = (label, extra = []) => {
  const r = timed(
    label,
    process.execPath,
    [kilnBin, "build", uniqueApp(), "--app", "bench-cache", "--json", ...extra],
    {
      env,
    },
  );
  return { seconds: r.seconds, result: JSON.parse(r.stdout) };
};

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const rows = [];
let server;
try {
  const local = build("local build");
  const slugOut = dirname(local.result.slug.path);

  const port = await freePort();
  server = spawn(process.execPath, [kilnBin, "serve", "--no-dynos", "--port", String(port)], {
    env: { ...env, KILN_CACHE_PUBLIC: "1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  server.stderr.on("data", (d) => (log += d));
  while (!log.includes("kiln API on")) {
    if (server.exitCode !== null) throw new Error(`kiln serve exited:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const key = timed("cache key", process.execPath, [kilnBin, "cache", "key"], { env }).stdout.trim();
  const fresh = join(temp("kiln-bench-cache-store-"), "store");
  const sub = timed("nix copy --from the cache", "nix", [
    ...["--extra-experimental-features", "nix-command", "copy"],
    ...["--option", "substituters", "", "--option", "trusted-public-keys", key],
    ...["--from", `http://127.0.0.1:${port}/nix-cache`, "--to", fresh, slugOut],
  ]);
  rows.push({ name: "substitute the slug vs build it", kiln: sub.seconds, baseline: local.seconds });

  const remoteStore = temp("kiln-bench-cache-remote-");
  const builders = [
    "--builders",
    `ssh-ng://localhost?remote-store=${remoteStore} x86_64-linux - 1 1`,
    "--remote-only",
  ];
  const warm = build("remote warm-up build", builders);
  const remote = build("remote build", builders);
  const local2 = build("local build (again)");
  rows.push({
    name: "remote build vs local build",
    kiln: remote.seconds,
    baseline: local2.seconds,
    warmUp: warm.seconds,
  });
} finally {
  server?.kill("SIGTERM");
  for (const d of temps) rmSync(d, { recursive: true, force: true });
}

if (process.argv.includes("--json")) {
  console.log(JSON.stringify(rows, null, 2));
} else {
  for (const r of rows)
    console.log(
      `${r.name.padEnd(34)} ${r.kiln.toFixed(1).padStart(6)} s vs ${r.baseline.toFixed(1).padStart(6)} s   ratio ${(r.kiln / r.baseline).toFixed(2)}${r.warmUp ? `   (warm-up ${r.warmUp.toFixed(1)} s)` : ""}`,
    );
}
