#!/usr/bin/env node
// What the build lockdown costs: cold builds of the node-web fixture (its dependencies and slug
// really rebuilt: package.json's description changes before each, so the dependency derivation's
// input changes) with the lockdown on (seccomp, no user namespaces, sized tmpfs, rlimits, the
// build's cgroup) and off (KILN_BUILD_LOCKDOWN=off, the test-only switch), in turn, in one run.
// The ratio is on / off: 1.00 means the lockdown costs nothing measurable.
//
// Runnable alone (`node bench/buildLockdown.mjs`, on the machine's store with a throwaway data
// directory) or from bench/run.mjs (its throwaway store). Options: --json, --runs N (default 2).
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const kilnBin = join(root, "bin", "kiln.js");

function timed(label, args, env = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [kilnBin, "-q", ...args], {
    encoding: "utf8",
    maxBuffer: 1 << 30,
    env: { ...process.env, ...env },
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0)
    throw new Error(`${label} failed (exit ${r.status}):\n${(r.stderr ?? "").slice(-3000)}`);
  return seconds;
}

/** store: a Nix store URI or "" for the default; data: a data directory. */
export async function benchBuildLockdown({ store = "", data, runs = 2 } = {}) {
  const work = mkdtempSync(join(tmpdir(), "kiln-bench-lockdown-"));
  const dataDir = data ?? join(work, "data");
  const common = [...(store ? ["--store", store] : []), "--data-dir", dataDir];
  const app = join(work, "node-web");
  cpSync(join(root, "test", "fixtures", "apps", "node-web"), app, { recursive: true });
  const pkgFile = join(app, "package.json");
  const pkg = JSON.parse(readFileSync(pkgFile, "utf8"));
  let n = 0;
  const cold = (label, env) => {
    n++;
    writeFileSync(
      pkgFile,
      `${JSON.stringify({ ...pkg, description: `${pkg.description} (bench ${Date.now()}-${n})` }, null, 2)}\n`,
    );
    return timed(label, [...common, "build", app, "--app", "node-web"], env);
  };
  try {
    // Untimed: the stacks, the tarballs, the tools.
    timed("prepare", [...common, "build", app, "--app", "node-web"]);
    const rows = [];
    // In turn, off first then on, then the other way round: the machine's load drifts.
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? ["off", "on"] : ["on", "off"];
      const r = {};
      for (const mode of order) r[mode] = cold(`build (lockdown ${mode})`, { KILN_BUILD_LOCKDOWN: mode });
      rows.push(r);
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const on = median(rows.map((r) => r.on));
    const off = median(rows.map((r) => r.off));
    const out = [
      {
        name: "build lockdown",
        kiln: on,
        baseline: off,
        ratio: on / off,
        note: "cold node-web build, lockdown on vs KILN_BUILD_LOCKDOWN=off",
      },
    ];
    for (const row of out)
      process.stderr.write(
        `${row.name.padEnd(28)} on ${row.kiln.toFixed(2).padStart(7)} s   off ${row.baseline.toFixed(2).padStart(7)} s   ratio ${row.ratio.toFixed(2)}\n`,
      );
    return { rows: out, details: { runs: rows } };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  const runsAt = argv.indexOf("--runs");
  const r = await benchBuildLockdown({ runs: runsAt >= 0 ? Number(argv[runsAt + 1]) : 2 });
  if (argv.includes("--json")) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}
