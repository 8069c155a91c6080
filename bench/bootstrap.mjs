#!/usr/bin/env node
// Bootstrap benchmarks (root: the platform runs dynos), on the machine's Nix store, each run with a
// throwaway data directory, so the platform starts from nothing every time:
//
//   bootstrap warm           `kiln bootstrap --exit` with nothing changed: Nix stages cached, the
//                            platform starts, stage1 boots as a dyno, stage2 and stage3 go through
//                            the hosted API (their derivations cached too)
//                            vs  `nix build` of the same fixed-point check in Nix alone (a no-op)
//   bootstrap source change  the same after a one-line change to kiln's source: every stage is
//                            really rebuilt (stage0's tsc, three buildpack builds), dependencies reused
//                            vs  tsc -p tsconfig.build.json four times on the host (the compiles alone)
//
// Per-stage seconds come from each run's report. Runnable alone (`node bench/bootstrap.mjs`) or as
// part of `npm run bench`. Options: --json.
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nixSettingArgs } from "../dist/nix/settings.js";

const root = join(import.meta.dirname, "..");
const kilnBin = join(root, "bin", "kiln.js");

function timed(label, cmd, args, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 30, ...opts });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0)
    throw new Error(`${label} failed (exit ${r.status}):\n${(r.stderr ?? "").slice(-3000)}`);
  return seconds;
}

function bootstrapOnce(label, source) {
  const data = mkdtempSync(join(tmpdir(), "kiln-bench-boot-"));
  chmodSync(data, 0o711);
  const run = mkdtempSync(join(tmpdir(), "kiln-bench-boot-run-"));
  try {
    const seconds = timed(
      label,
      process.execPath,
      [
        kilnBin,
        "-q",
        "bootstrap",
        "--exit",
        "--source",
        source,
        "--api-port",
        "5190",
        "--router-port",
        "5191",
      ],
      { env: { ...process.env, KILN_DATA_DIR: data, KILN_RUN_DIR: run, KILN_LOG_LEVEL: "error" } },
    );
    const report = JSON.parse(readFileSync(join(data, "bootstrap-report.json"), "utf8"));
    return { seconds, report };
  } finally {
    rmSync(data, { recursive: true, force: true });
    rmSync(run, { recursive: true, force: true });
  }
}

export async function benchBootstrap() {
  if (process.getuid?.() !== 0) {
    process.stderr.write("\nbootstrap benchmarks skipped: the platform runs dynos, which needs root\n");
    return { rows: [], details: { skipped: "not root" } };
  }
  const rows = [];
  const details = {};
  const stageTimes = (r) =>
    Object.fromEntries(Object.entries(r.stages).map(([k, s]) => [k, Number(s.seconds.toFixed(1))]));

  // Warm: run once untimed so every derivation exists, then time it.
  bootstrapOnce("warm-up", root);
  const warm = bootstrapOnce("bootstrap warm", root);
  const fixedPoint = `(import ${root}/nix/bootstrap { src = ${root}; }).fixed-point`;
  timed("nix fixed-point warm-up", "nix", [
    ...nixSettingArgs(),
    "build",
    "--no-link",
    "--impure",
    "--expr",
    fixedPoint,
  ]);
  const nixWarm = timed("nix fixed-point", "nix", [
    ...nixSettingArgs(),
    "build",
    "--no-link",
    "--impure",
    "--expr",
    fixedPoint,
  ]);
  rows.push({
    name: "bootstrap warm (nothing changed)",
    kiln: warm.seconds,
    baseline: nixWarm,
    ratio: warm.seconds / nixWarm,
    note: "baseline: nix build of the fixed-point check (Nix alone, no platform)",
  });
  details.warm = { stages: stageTimes(warm.report), fixedPoint: warm.report.fixedPoint };

  // Source change: a copy of the checkout with one more line in a source file.
  const copy = mkdtempSync(join(tmpdir(), "kiln-bench-src-"));
  try {
    const files = spawnSync("git", ["-C", root, "ls-files", "-z"], { encoding: "utf8" })
      .stdout.split("\0")
      .filter(Boolean);
    for (const f of files) cpSync(join(root, f), join(copy, f), { recursive: true });
    writeFileSync(
      join(copy, "src", "main.ts"),
      `${readFileSync(join(copy, "src", "main.ts"), "utf8")}// bench ${Date.now()}\n`,
    );
    const changed = bootstrapOnce("bootstrap source change", copy);
    cpSync(join(root, "node_modules"), join(copy, "node_modules"), {
      recursive: true,
      verbatimSymlinks: true,
    });
    const tsc = timed("tsc x4", "sh", [
      "-c",
      `cd ${copy} && for i in 1 2 3 4; do rm -rf dist && node node_modules/typescript/bin/tsc -p tsconfig.build.json || exit 1; done`,
    ]);
    rows.push({
      name: "bootstrap source change (all stages rebuilt)",
      kiln: changed.seconds,
      baseline: tsc,
      ratio: changed.seconds / tsc,
      note: "baseline: tsc of kiln, four times, on the host",
    });
    details.sourceChange = { stages: stageTimes(changed.report), fixedPoint: changed.report.fixedPoint };
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }

  process.stderr.write("\nbootstrap:\n");
  for (const r of rows)
    process.stderr.write(
      `  ${r.name.padEnd(46)} ${r.kiln.toFixed(1).padStart(7)} s  vs ${r.baseline.toFixed(1).padStart(6)} s  (${r.ratio.toFixed(1)}x)  ${r.note}\n`,
    );
  for (const [k, v] of Object.entries(details))
    process.stderr.write(`  ${k}: stages ${JSON.stringify(v.stages)}, fixed point ${v.fixedPoint}\n`);
  return { rows, details };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchBootstrap();
  if (process.argv.includes("--json")) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}
