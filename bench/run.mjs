#!/usr/bin/env node
// `npm run bench`: times kiln next to a baseline doing the same work without kiln, in one run, on
// throwaway Nix stores (the machine's store is only used by the dyno part, where building the
// fixture is cached), and prints the ratios.
//
//   seed import      kiln seed (assemble from cached .debs, hash, add-fixed)  vs  nix-store --restore
//                    + --add-fixed of the same bytes (the least any tool must do to store them)
//   seed import NAR  kiln seed import FILE (verify + restore + add)           vs  the same baseline
//   stack cold       kiln stack build NAME on a store with only the seed      vs  cp -a of the same
//                    package trees on the host (the copying the build does, without Nix)
//   stack warm       kiln stack build NAME when already built (CLI process)   vs  nix build of the
//                    same attribute (raw Nix no-op)
//   build …          kiln build of the node-web fixture (cold with its tarballs in the store, no-op,
//                    app-code change)                                         vs  npm ci --offline
//                    (warm npm cache) + tar czf of the app on the host; and the slug's size against
//                    npm ci --omit=dev + tar czf
//   check            kiln check of node-web (2 fresh builds, every variation) vs one cold
//                    kiln build of it, from bench/check.mjs (runnable alone)
//   build lockdown   cold kiln builds of node-web with the build lockdown on  vs  off
//                    (KILN_BUILD_LOCKDOWN=off), from bench/buildLockdown.mjs (runnable alone)
//   bootstrap …      at the very end, from bench/bootstrap.mjs (root; runnable alone): the whole
//                    self-hosting bootstrap warm and after a source change, per stage
//   dyno …           last, from bench/dynos.mjs (runnable alone; on the machine's store, with a
//                    throwaway data directory): start to first HTTP 200, bwrap's own start cost,
//                    memory per idle dyno, and how many idle dynos before start latency doubles
//
// Options: --json (machine-readable results on stdout), --keep (keep the throwaway stores), and
// bench/dynos.mjs's --runs N, --true-runs N, --max-dynos N.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nixSettingArgs } from "../dist/nix/settings.js";
import { shellQuote } from "../dist/process/run.js";
import { benchBootstrap } from "./bootstrap.mjs";
import { benchBuildLockdown } from "./buildLockdown.mjs";
import { benchCheck } from "./check.mjs";
import { benchDynos, dynoBenchOptions } from "./dynos.mjs";
import { benchPlatform, platformBenchOptions } from "./platform.mjs";

const root = join(import.meta.dirname, "..");
const kilnBin = join(root, "bin", "kiln.js");
const args = new Set(process.argv.slice(2));
const lock = JSON.parse(readFileSync(join(root, "nix", "seed.lock.json"), "utf8"));
// kiln's own Nix settings, so the raw-Nix baselines run under the same rules (sandbox on, no cache).
const NIX_OPTS = nixSettingArgs();
const NIX_SH = NIX_OPTS.map(shellQuote).join(" ");
const work = mkdtempSync(join(tmpdir(), "kiln-bench-"));
const results = [];

function timed(label, cmd, cmdArgs, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, cmdArgs, { encoding: "utf8", maxBuffer: 1 << 30, ...opts });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) {
    process.stderr.write(`${label} failed (${cmd} ${cmdArgs.join(" ")}):\n${r.stderr}\n`);
    process.exit(1);
  }
  return { seconds, stdout: r.stdout };
}

const kiln = (store, data, ...a) => ["node", [kilnBin, "-q", "--store", store, "--data-dir", data, ...a]];
const sh = (script) => ["sh", ["-c", script]];

function compare(name, kilnRun, baseRun, note) {
  const k = timed(`${name} (kiln)`, ...kilnRun());
  const b = timed(`${name} (baseline)`, ...baseRun());
  const row = { name, kiln: k.seconds, baseline: b.seconds, ratio: k.seconds / b.seconds, note };
  results.push(row);
  process.stderr.write(
    `${name.padEnd(26)} kiln ${k.seconds.toFixed(2).padStart(7)} s   baseline ${b.seconds.toFixed(2).padStart(7)} s   ratio ${row.ratio.toFixed(2)}\n`,
  );
  return k;
}

try {
  process.stderr.write(`kiln bench: throwaway stores under ${work}\n\n`);
  // Prepare: the seed as a NAR (for the import benchmarks) and a warm .deb cache in the real data dir.
  const nar = join(work, "seed.nar");
  timed("prepare", "node", [kilnBin, "-q", "seed"]);
  timed("prepare", "node", [kilnBin, "-q", "seed", "export", nar]);

  const store = (n) => join(work, `store-${n}`);
  const data = (n) => join(work, `data-${n}`);
  const realData =
    process.env.KILN_DATA_DIR ||
    (process.getuid() === 0 ? "/var/lib/kiln" : join(process.env.HOME, ".local/share/kiln"));

  compare(
    "seed import (from .debs)",
    // Caches come from the real data dir (no download); the store is new.
    () => ["node", [kilnBin, "-q", "--store", store("a"), "--data-dir", realData, "seed"]],
    () =>
      sh(
        `mkdir -p ${join(work, "r1")} && nix-store --restore ${join(work, "r1", "kiln-seed")} < ${nar} && nix-store ${NIX_SH} --store ${store("b")} --add-fixed --recursive sha256 ${join(work, "r1", "kiln-seed")}`,
      ),
    "baseline: nix-store --restore + --add-fixed of the same NAR",
  );
  compare(
    "seed import (kiln seed import)",
    () => kiln(store("c"), data("c"), "seed", "import", nar),
    () =>
      sh(
        `mkdir -p ${join(work, "r2")} && nix-store --restore ${join(work, "r2", "kiln-seed")} < ${nar} && nix-store ${NIX_SH} --store ${store("d")} --add-fixed --recursive sha256 ${join(work, "r2", "kiln-seed")}`,
      ),
    "kiln also hashes the NAR file before touching the store",
  );

  for (const name of ["run", "build"]) {
    const pkgs = lock.stacks[name].map((p) => join(lock.storePath, "deb", p));
    const extra = name === "build" ? [join(lock.storePath, "node"), join(lock.storePath, "npm")] : [];
    compare(
      `stack-${name} cold build`,
      () => kiln(store("c"), data("c"), "stack", "build", name),
      () =>
        sh(
          `mkdir -p ${join(work, `cp-${name}`)} && for p in ${[...pkgs, ...extra].join(" ")}; do cp -a "$p/." ${join(work, `cp-${name}`)}/; done`,
        ),
      "baseline: cp -a of the same trees on the host, no Nix",
    );
  }
  for (const name of ["run", "build"]) {
    compare(
      `stack-${name} warm (no-op)`,
      () => kiln(store("c"), data("c"), "stack", "build", name),
      () => [
        "nix",
        [
          "build",
          ...NIX_OPTS,
          "--store",
          store("c"),
          "--no-link",
          "--file",
          join(root, "nix", "default.nix"),
          `stack-${name}`,
        ],
      ],
      "baseline: raw nix build of the same attribute",
    );
  }

  // Builds of the node-web fixture, in store c (seed and stacks are there now).
  const fixture = join(root, "test", "fixtures", "apps", "node-web");
  const app = join(work, "node-web");
  const base = join(work, "baseline-node-web");
  spawnSync("cp", ["-r", fixture, app]);
  spawnSync("cp", ["-r", fixture, base]);
  // Untimed preparation: the tarballs into store c (through a build under another app name, so
  // node-web's own derivations stay unbuilt), and npm's cache warm for the baseline.
  timed("prepare", ...kiln(store("c"), data("c"), "build", app, "--app", "warmup"));
  timed("prepare", "npm", ["ci", "--no-audit", "--no-fund"], { cwd: base });
  const baseline = () =>
    sh(
      `cd ${base} && rm -rf node_modules && npm ci --offline --no-audit --no-fund >/dev/null && tar czf ${join(work, "base.tgz")} .`,
    );
  const build = () => kiln(store("c"), data("c"), "build", app, "--app", "node-web");
  compare(
    "build cold (tarballs in store)",
    build,
    baseline,
    "baseline: npm ci --offline (warm cache) + tar czf",
  );
  compare("build no-op", build, baseline, "the same baseline");
  spawnSync("sh", ["-c", `echo '// edited' >> ${join(app, "server.js")}`]);
  compare("build app-code change", build, baseline, "dependency derivation reused");
  const slugJson = JSON.parse(
    timed("slug", ...kiln(store("c"), data("c"), "build", app, "--app", "node-web", "--json")).stdout,
  );
  timed("prod baseline", "sh", [
    "-c",
    `cd ${base} && rm -rf node_modules && npm ci --offline --omit=dev --no-audit --no-fund >/dev/null && tar czf ${join(work, "prod.tgz")} .`,
  ]);

  const info = JSON.parse(
    timed("sizes", "node", [
      kilnBin,
      "-q",
      "--store",
      store("c"),
      "--data-dir",
      data("c"),
      "stack",
      "build",
      "--json",
    ]).stdout,
  );
  const sizes = {
    seedNar: statSync(nar).size,
    nodeWebSlug: slugJson.slug.bytes,
    nodeWebProdTarball: statSync(join(work, "prod.tgz")).size,
    ...Object.fromEntries(info.stacks.map((s) => [`stack-${s.name}`, s.narSize])),
  };
  process.stderr.write("\nsizes (NAR bytes):\n");
  for (const [k, v] of Object.entries(sizes))
    process.stderr.write(`  ${k.padEnd(12)} ${(v / 1048576).toFixed(1)} MiB\n`);
  const check = await benchCheck({ store: store("c"), data: data("c") });
  results.push(...check.rows);
  const lockdown = await benchBuildLockdown({ store: store("c"), data: data("c") });
  results.push(...lockdown.rows);
  const dynos = await benchDynos(dynoBenchOptions(process.argv.slice(2)));
  results.push(...dynos.rows);
  const platform = await benchPlatform(platformBenchOptions(process.argv.slice(2)));
  results.push(...platform.rows);
  const boot = await benchBootstrap();
  results.push(...boot.rows);
  if (args.has("--json"))
    process.stdout.write(
      `${JSON.stringify({ results, sizes, dynos: dynos.details, platform: platform.details, bootstrap: boot.details, check: check.details, lockdown: lockdown.details }, null, 2)}\n`,
    );
} finally {
  if (!args.has("--keep")) {
    // Chroot stores have read-only directories; make them writable before removing.
    spawnSync("chmod", ["-R", "u+w", work]);
    rmSync(work, { recursive: true, force: true });
  }
}
