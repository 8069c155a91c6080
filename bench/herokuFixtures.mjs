#!/usr/bin/env node
// kiln measured against Heroku's own Node.js buildpack fixture suite (a measure, not a test: the
// fixtures are Heroku's, so they are read from a checkout outside this repo, never copied in).
//
//   node bench/herokuFixtures.mjs HEROKU_CHECKOUT [--only a,b] [--out results.json] [--markdown FILE]
//
// HEROKU_CHECKOUT is a work tree of github:heroku/heroku-buildpack-nodejs (e.g.
// `git --git-dir=… worktree add /tmp/heroku-nodejs` or `git --git-dir=… archive HEAD | tar -x -C …`).
// Each directory under test/fixtures is built with `node bin/kiln.js build DIR --json`, one at a time
// (concurrency 1: builds are heavy and the machine is shared), in a throwaway KILN_DATA_DIR, and
// classified:
//   built    kiln made a slug
//   refused  kiln said no before building (its error code is the reason)
//   failed   the build itself failed (nix_build_failed and the like: a buildpack step broke)
// Heroku's own expectation comes from its shunit tests (test/run-*): a fixture compiled by a test
// that asserts an error is one Heroku expects to fail; one asserting success, to build.
// Prints the rate over the fixtures Heroku builds, a table of refusal reasons, and every fixture.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const kilnBin = join(root, "bin", "kiln.js");

/** Errors that mean a build ran and broke (the rest are refusals before building). */
const FAILED_CODES = new Set(["nix_build_failed", "build_download_blocked", "slug_tampered", "internal"]);

function parseArgs(argv) {
  const opts = { checkout: undefined, only: undefined, out: undefined, markdown: undefined, timeout: 900 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--only") opts.only = new Set(argv[++i].split(","));
    else if (a === "--out") opts.out = argv[++i];
    else if (a === "--markdown") opts.markdown = argv[++i];
    else if (a === "--timeout") opts.timeout = Number(argv[++i]);
    else if (a === "-h" || a === "--help") {
      process.stdout.write(readFileSync(import.meta.filename, "utf8").split("\nimport ")[0]);
      process.exit(0);
    } else opts.checkout = a;
  }
  if (!opts.checkout) {
    process.stderr.write("usage: node bench/herokuFixtures.mjs HEROKU_CHECKOUT [--only a,b] [--out FILE]\n");
    process.exit(2);
  }
  return opts;
}

/**
 * Heroku's expectation per fixture, from its shunit tests: each `testX() { … }` body compiles some
 * fixtures and asserts success or an error after each. A fixture that some test builds is "build";
 * one only ever asserted to fail is "fail"; one no test compiles is undefined.
 */
export function herokuExpectations(checkout) {
  const dir = join(checkout, "test");
  const expect = new Map();
  for (const f of readdirSync(dir).filter((n) => n.startsWith("run-") && n !== "run-helpers")) {
    const text = readFileSync(join(dir, f), "utf8");
    const bodies = text.split(/^(?=test\w*\s*\(\)\s*\{)/m).slice(1);
    for (const body of bodies) {
      const name = /^(test\w*)/.exec(body)?.[1] ?? "?";
      // One segment per compile call, up to the next: its assertions are about that compile.
      const segments = body.split(
        /^(?=\s*(?:compile|compile_and_report|compileTest|testCompile|compileDir)\s)/m,
      );
      for (const seg of segments) {
        const fx =
          /^\s*(?:compile|compile_and_report|compileTest|testCompile|compileDir)\s+"?([\w.-]+)"?/.exec(
            seg,
          )?.[1];
        if (!fx) continue;
        const verdict = /assertCapturedSuccess/.test(seg)
          ? "build"
          : /assertCapturedError/.test(seg)
            ? "fail"
            : undefined;
        if (!verdict) continue;
        // A fixture some test builds is one Heroku builds (others fail it on purpose, e.g. a bad
        // NODE_BINARY_URL in the test's env).
        const prev = expect.get(fx);
        if (!prev || (verdict === "build" && prev.verdict !== "build"))
          expect.set(fx, { verdict, test: `${f}:${name}` });
      }
    }
  }
  return expect;
}

function buildOne(dir, timeoutSeconds) {
  const data = mkdtempSync(join(tmpdir(), "kiln-heroku-data-"));
  const runDir = mkdtempSync(join(tmpdir(), "kiln-heroku-run-"));
  const t0 = process.hrtime.bigint();
  try {
    const r = spawnSync(process.execPath, [kilnBin, "build", dir, "--json"], {
      cwd: root,
      encoding: "utf8",
      maxBuffer: 1 << 28,
      timeout: timeoutSeconds * 1000,
      env: { ...process.env, KILN_DATA_DIR: data, KILN_RUN_DIR: runDir },
    });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    let json;
    try {
      json = JSON.parse(r.stdout);
    } catch {
      json = undefined;
    }
    if (r.status === 0 && json?.slug) return { outcome: "built", seconds };
    const err = json?.error;
    const code = err?.code ?? (r.error ? `spawn:${r.error.code ?? r.error.message}` : `exit ${r.status}`);
    const message = (err?.message ?? r.stderr.slice(-400)).split("\n")[0].slice(0, 200);
    return { outcome: FAILED_CODES.has(code) || !err ? "failed" : "refused", code, message, seconds };
  } finally {
    rmSync(data, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  }
}

function markdown(rows, started, finished) {
  const heroku = rows.filter((r) => r.expect === "build");
  const builtOfHeroku = heroku.filter((r) => r.outcome === "built").length;
  const lines = [];
  const pct = (a, b) => (b === 0 ? "n/a" : `${((100 * a) / b).toFixed(1)} %`);
  lines.push(
    `Fixtures: ${rows.length}; built ${rows.filter((r) => r.outcome === "built").length}, refused ${rows.filter((r) => r.outcome === "refused").length}, failed ${rows.filter((r) => r.outcome === "failed").length}.`,
    `Of the ${heroku.length} fixtures Heroku's tests build: ${builtOfHeroku} built by kiln (${pct(builtOfHeroku, heroku.length)}).`,
    `Of the ${rows.filter((r) => r.expect === "fail").length} Heroku expects to fail: ${rows.filter((r) => r.expect === "fail" && r.outcome !== "built").length} not built by kiln either.`,
    `Wall time: ${((finished - started) / 1000 / 60).toFixed(1)} min (concurrency 1).`,
    "",
    "| reason (kiln error code, first line) | fixtures | of which Heroku builds |",
    "|---|---|---|",
  );
  const reasons = new Map();
  for (const r of rows.filter((x) => x.outcome !== "built")) {
    const key = `${r.outcome}: \`${r.code}\` ${r.message
      .replace(/\|/g, "\\|")
      .replace(/\d+\.\d+\.\d+/g, "X.Y.Z")
      .slice(0, 110)}`;
    const e = reasons.get(key) ?? { n: 0, heroku: 0, names: [] };
    e.n++;
    if (r.expect === "build") e.heroku++;
    e.names.push(r.fixture);
    reasons.set(key, e);
  }
  for (const [k, e] of [...reasons].sort((a, b) => b[1].n - a[1].n))
    lines.push(
      `| ${k} (${e.names.slice(0, 6).join(", ")}${e.names.length > 6 ? ", …" : ""}) | ${e.n} | ${e.heroku} |`,
    );
  lines.push("", "| fixture | Heroku expects | kiln | code | seconds |", "|---|---|---|---|---|");
  for (const r of rows)
    lines.push(
      `| ${r.fixture} | ${r.expect ?? "untested"} | ${r.outcome} | ${r.code ?? ""} | ${r.seconds.toFixed(1)} |`,
    );
  return `${lines.join("\n")}\n`;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const fixturesDir = join(opts.checkout, "test", "fixtures");
  if (!existsSync(fixturesDir))
    throw new Error(`${fixturesDir} does not exist: pass a checkout of the buildpack`);
  if (!existsSync(join(root, "dist", "main.js"))) throw new Error("run `npm run build` first");
  const expect = herokuExpectations(opts.checkout);
  const names = readdirSync(fixturesDir)
    .filter((n) => statSync(join(fixturesDir, n)).isDirectory())
    .filter((n) => !opts.only || opts.only.has(n))
    .sort();
  const rows = [];
  const started = Date.now();
  for (const [i, fixture] of names.entries()) {
    const r = buildOne(join(fixturesDir, fixture), opts.timeout);
    const row = { fixture, expect: expect.get(fixture)?.verdict, ...r };
    rows.push(row);
    process.stderr.write(
      `[${i + 1}/${names.length}] ${fixture}: ${r.outcome}${r.code ? ` (${r.code})` : ""} ${r.seconds.toFixed(1)}s\n`,
    );
    if (opts.out) writeFileSync(opts.out, `${JSON.stringify(rows, null, 2)}\n`);
  }
  const md = markdown(rows, started, Date.now());
  if (opts.markdown) writeFileSync(opts.markdown, md);
  process.stdout.write(md);
}

if (import.meta.filename === process.argv[1]) await main();
