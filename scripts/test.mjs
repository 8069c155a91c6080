#!/usr/bin/env node
// `npm test`'s runner. The unit tests first (a logic slip fails in seconds), then the integration
// tests in two lanes at once, each running its files one at a time:
//   selfhost     kiln building and checking itself (bootstrap, flake, check, cache-substitute):
//                long Nix builds
//   integration  everything else: dynos, the API, git, the dashboard, builds of small apps
// The lanes share only what kiln and Nix already make safe for several kilns on one host: the Nix
// store (Nix locks its builds) and the host-wide uid registry (locked; src/dyno/uids.ts). Much of
// an integration test is waiting (dynos starting, backoffs, bounds), so two lanes take about half
// the wall time of one. Each lane's lines are prefixed with its name; the last line sums them.
//
//   npm test                      all of it, as CI runs it
//   npm test -- PATH…             only those files (one vitest run, files one at a time)
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const vitest = join(root, "node_modules", "vitest", "vitest.mjs");
const args = process.argv.slice(2);
const children = new Set();

/** One vitest run; resolves to its exit code and the summary counts its reporter printed. */
function lane(name, vitestArgs, prefix) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [vitest, "run", ...vitestArgs], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, FORCE_COLOR: process.env.FORCE_COLOR ?? (process.stdout.isTTY ? "1" : "0") },
    });
    children.add(child);
    const counts = { passed: 0, failed: 0, skipped: 0 };
    const pipe = (stream, out) => {
      let rest = "";
      stream.on("data", (chunk) => {
        const lines = (rest + chunk).split("\n");
        rest = lines.pop() ?? "";
        for (const line of lines) {
          const m = /^(\d+) passed, (\d+) failed, (\d+) skipped$/.exec(line);
          if (m) [counts.passed, counts.failed, counts.skipped] = m.slice(1).map(Number);
          out.write(prefix ? `[${name}] ${line}\n` : `${line}\n`);
        }
      });
      stream.on("end", () => rest && out.write(prefix ? `[${name}] ${rest}\n` : `${rest}\n`));
    };
    pipe(child.stdout, process.stdout);
    pipe(child.stderr, process.stderr);
    child.on("close", (code, signal) => {
      children.delete(child);
      resolve({ name, code: code ?? (signal ? 1 : 0), counts });
    });
  });
}

for (const sig of ["SIGINT", "SIGTERM"])
  process.on(sig, () => {
    for (const c of children) c.kill(sig);
    process.exitCode = 130;
  });

let results;
if (args.length > 0) {
  results = [await lane("vitest", args, false)];
} else {
  const unit = await lane("unit", ["--project", "unit"], false);
  if (unit.code !== 0) {
    process.stdout.write("\nthe unit tests failed: the integration tests were not started\n");
    process.exit(unit.code);
  }
  const started = Date.now();
  const lanes = await Promise.all([
    lane("selfhost", ["--project", "selfhost"], true),
    lane("integration", ["--project", "integration"], true),
  ]);
  results = [unit, ...lanes];
  process.stdout.write(
    `\nintegration lanes: ${lanes.map((l) => `${l.name} exit ${l.code}`).join(", ")} (${Math.round((Date.now() - started) / 1000)} s)\n`,
  );
}
const sum = { passed: 0, failed: 0, skipped: 0 };
for (const r of results) for (const k of Object.keys(sum)) sum[k] += r.counts[k];
process.stdout.write(`\n${sum.passed} passed, ${sum.failed} failed, ${sum.skipped} skipped\n`);
process.exit(results.find((r) => r.code !== 0)?.code ?? 0);
