#!/usr/bin/env node
// kiln check benchmark: a check of the node-web fixture (2 fresh builds with every variation on,
// dependencies and slug each, side by side) vs one ordinary cold build of the same app (its
// dependencies and slug really rebuilt too: package.json's description changes before each run, so
// the dependency derivation's input changes). The ratio says what a check costs over the extra
// build: 2 would be two builds' worth; below 2, the builds overlapped on the machine's cores.
//
// Twice: the builds side by side (kiln check's default, --jobs 2) and in turn (--jobs 1).
// Runnable alone (`node bench/check.mjs`, on the machine's store with a throwaway data directory)
// or from bench/run.mjs (its throwaway store). Options: --json, --runs N (default 2).
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const kilnBin = join(root, "bin", "kiln.js");

function timed(label, args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [kilnBin, "-q", ...args], { encoding: "utf8", maxBuffer: 1 << 30 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0)
    throw new Error(`${label} failed (exit ${r.status}):\n${(r.stderr ?? "").slice(-3000)}`);
  return { seconds, stdout: r.stdout };
}

/** store: a Nix store URI or "" for the default; data: a data directory. */
export async function benchCheck({ store = "", data, runs = 2 } = {}) {
  const work = mkdtempSync(join(tmpdir(), "kiln-bench-check-"));
  const dataDir = data ?? join(work, "data");
  const common = [...(store ? ["--store", store] : []), "--data-dir", dataDir];
  const app = join(work, "node-web");
  cpSync(join(root, "test", "fixtures", "apps", "node-web"), app, { recursive: true });
  const pkgFile = join(app, "package.json");
  const pkg = JSON.parse(readFileSync(pkgFile, "utf8"));
  let n = 0;
  const fresh = () => {
    n++;
    writeFileSync(
      pkgFile,
      `${JSON.stringify({ ...pkg, description: `${pkg.description} (bench ${Date.now()}-${n})` }, null, 2)}\n`,
    );
  };
  try {
    // Untimed: the stacks, the tarballs, the tools.
    timed("prepare", [...common, "build", app, "--app", "node-web"]);
    const rows = [];
    for (let i = 0; i < runs; i++) {
      fresh();
      const build = timed("build", [...common, "build", app, "--app", "node-web"]).seconds;
      const check = (jobs) => {
        fresh();
        const out = timed("check", [
          ...common,
          "check",
          "--json",
          "--jobs",
          String(jobs),
          app,
          "--app",
          "node-web",
        ]);
        const report = JSON.parse(out.stdout);
        if (report.verdict !== "reproducible") throw new Error(`node-web is not reproducible: ${out.stdout}`);
        return out.seconds;
      };
      rows.push({ build, check: check(2), sequential: check(1) });
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const k = median(rows.map((r) => r.check));
    const b = median(rows.map((r) => r.build));
    const seq = median(rows.map((r) => r.sequential));
    const out = [
      { name: "check, 2 builds side by side", kiln: k, baseline: b, ratio: k / b },
      { name: "check, 2 builds in turn", kiln: seq, baseline: b, ratio: seq / b },
    ].map((r) => ({ ...r, note: "vs 1 cold kiln build; node-web, every variation" }));
    for (const row of out)
      process.stderr.write(
        `${row.name.padEnd(28)} kiln ${row.kiln.toFixed(2).padStart(7)} s   baseline ${row.baseline.toFixed(2).padStart(7)} s   ratio ${row.ratio.toFixed(2)}\n`,
      );
    return { rows: out, details: { runs: rows } };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  const runsAt = argv.indexOf("--runs");
  const r = await benchCheck({ runs: runsAt >= 0 ? Number(argv[runsAt + 1]) : 2 });
  if (argv.includes("--json")) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}
