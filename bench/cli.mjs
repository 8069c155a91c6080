#!/usr/bin/env node
// CLI start-up: `kiln --version`, `kiln --help`, `kiln apps --help` against `node -e 0`, in one run.
// Usage: npm run build && node bench/cli.mjs [runs]   (runs: default 10 each, interleaved)
import { execFileSync } from "node:child_process";
import { join } from "node:path";

const bin = join(import.meta.dirname, "..", "bin", "kiln.js");
const runs = Number(process.argv[2] ?? 10);
const cases = {
  "node -e 0": ["-e", "0"],
  "kiln --version": [bin, "--version"],
  "kiln --help": [bin, "--help"],
  "kiln apps --help": [bin, "apps", "--help"],
};
const times = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let i = 0; i < runs; i++) {
  // Interleaved, so a load spike on a shared machine hits every case alike.
  for (const [name, args] of Object.entries(cases)) {
    const t = process.hrtime.bigint();
    execFileSync(process.execPath, args, { stdio: "ignore" });
    times[name].push(Number(process.hrtime.bigint() - t) / 1e6);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(times["node -e 0"]);
for (const [name, xs] of Object.entries(times)) {
  const m = median(xs);
  console.log(
    `${name.padEnd(18)} median ${m.toFixed(0).padStart(5)} ms  ${(m / base).toFixed(2)}× node -e 0`,
  );
}
