#!/usr/bin/env node
// git push against kiln deploy, in one run, on one `kiln serve --no-dynos` (a throwaway data
// directory, the machine's Nix store):
//
//   first push   `git push` of the express fixture (node-web) to an app that has no repository yet
//                (the whole history goes up, the repository is made)
//                vs  `kiln deploy` of the same tree to another new app (a tar.gz upload)
//   one-line     one more line in server.js, committed and pushed (git sends only the new objects)
//                vs  `kiln deploy` of the same changed tree
//
// Both are timed from the command's start to its end (the build and the release included: a push
// ends once "Released vN" is printed). Every measured tree is new to Nix (a nonce in it), so each
// really builds the app, and a warm-up deploy first puts the shared dependencies in the store: what
// differs between the two is only how the source gets to the build. The order of the two alternates
// between rounds (load drifts). Options: --runs N (default 2), --json.
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const kilnBin = join(root, "bin", "kiln.js");
const args = process.argv.slice(2);
const runs = Number(args[args.indexOf("--runs") + 1] ?? 2) || 2;
const json = args.includes("--json");

const work = mkdtempSync(join(tmpdir(), "kiln-bench-git-"));
const data = join(work, "data");
const home = join(work, "home");
const gitEnv = {
  PATH: process.env.PATH,
  HOME: home,
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_TERMINAL_PROMPT: "0",
  GIT_AUTHOR_NAME: "bench",
  GIT_AUTHOR_EMAIL: "bench@example.com",
  GIT_COMMITTER_NAME: "bench",
  GIT_COMMITTER_EMAIL: "bench@example.com",
};

function sh(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { encoding: "utf8", maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0)
    throw new Error(`${cmd} ${argv.join(" ")} failed (exit ${r.status}):\n${(r.stderr ?? "").slice(-3000)}`);
  return r;
}

function timed(cmd, argv, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = sh(cmd, argv, opts);
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, out: `${r.stdout}${r.stderr}` };
}

const freePort = () =>
  new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const port = await freePort();
const server = spawn(process.execPath, [kilnBin, "serve", "--no-dynos", "--port", String(port)], {
  env: { ...process.env, KILN_DATA_DIR: data, KILN_RUN_DIR: join(work, "run"), KILN_LOG_LEVEL: "error" },
  stdio: ["ignore", "ignore", "pipe"],
});
let serverLog = "";
server.stderr.on("data", (d) => (serverLog += d));
const serverUrl = `http://127.0.0.1:${port}`;
try {
  for (let i = 0; !serverLog.includes("kiln API on"); i++) {
    if (server.exitCode !== null || i > 600) throw new Error(`kiln serve did not start:\n${serverLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const token = readFileSync(join(data, "admin-token"), "utf8").trim();
  const kiln = (...a) => sh(process.execPath, [kilnBin, ...a, "--server", serverUrl, "--token", token]);
  const deploy = (dir, app) =>
    timed(process.execPath, [
      kilnBin,
      "-q",
      "deploy",
      dir,
      "-a",
      app,
      "--server",
      serverUrl,
      "--token",
      token,
    ]);
  const git = (dir, ...a) => sh("git", a, { cwd: dir, env: gitEnv });
  const push = (dir) => {
    const r = timed("git", ["push", "kiln", "main"], { cwd: dir, env: gitEnv });
    if (!/Released v\d+/.test(r.out)) throw new Error(`the push did not release:\n${r.out.slice(-3000)}`);
    return r;
  };
  /** A fresh copy of the fixture with a nonce (a tree Nix has never built). */
  const tree = (name, nonce) => {
    const dir = join(work, name);
    cpSync(join(root, "test", "fixtures", "apps", "node-web"), dir, { recursive: true });
    writeFileSync(join(dir, "BENCH_NONCE"), `${nonce}\n`);
    return dir;
  };
  const oneLine = (dir, nonce) =>
    writeFileSync(join(dir, "server.js"), `${readFileSync(join(dir, "server.js"), "utf8")}// ${nonce}\n`);

  // Warm-up: the dependencies (same lock file in every tree) into the store.
  kiln("apps:create", "warmup");
  deploy(tree("warmup", `warmup-${Date.now()}`), "warmup");

  const rows = [];
  for (let round = 0; round < runs; round++) {
    const nonce = `${Date.now()}-${round}`;
    const pushApp = `push${round}`;
    const deployApp = `deploy${round}`;
    kiln("apps:create", pushApp);
    kiln("apps:create", deployApp);
    const repo = tree(`push-${round}`, `${nonce}-push`);
    git(repo, "init", "-q", "-b", "main");
    git(repo, "add", "-A");
    git(repo, "commit", "-qm", "the express app");
    git(repo, "remote", "add", "kiln", `http://kiln:${token}@127.0.0.1:${port}/git/${pushApp}.git`);
    const plain = tree(`deploy-${round}`, `${nonce}-deploy`);
    const both = (a, b) => (round % 2 === 0 ? [a(), b()] : [b(), a()].reverse());
    const [pushFirst, deployFirst] = both(
      () => push(repo).seconds,
      () => deploy(plain, deployApp).seconds,
    );
    oneLine(repo, `${nonce}-push-2`);
    git(repo, "commit", "-qam", "one line more");
    oneLine(plain, `${nonce}-deploy-2`);
    const [pushChange, deployChange] = both(
      () => push(repo).seconds,
      () => deploy(plain, deployApp).seconds,
    );
    rows.push({ round, pushFirst, deployFirst, pushChange, deployChange });
    if (!json)
      process.stderr.write(
        `round ${round + 1}/${runs}: first push ${pushFirst.toFixed(1)} s vs deploy ${deployFirst.toFixed(1)} s; one-line push ${pushChange.toFixed(1)} s vs deploy ${deployChange.toFixed(1)} s\n`,
      );
  }
  const m = (k) => median(rows.map((r) => r[k]));
  const result = {
    runs,
    firstPush: { push: m("pushFirst"), deploy: m("deployFirst"), ratio: m("pushFirst") / m("deployFirst") },
    oneLine: { push: m("pushChange"), deploy: m("deployChange"), ratio: m("pushChange") / m("deployChange") },
    rows,
  };
  if (json) console.log(JSON.stringify(result, null, 2));
  else {
    const pct = (r) => `${r >= 1 ? "+" : ""}${((r - 1) * 100).toFixed(1)} %`;
    console.log(`git push vs kiln deploy, node-web (express), median of ${runs}:`);
    console.log(
      `  first push (cold repository)  ${result.firstPush.push.toFixed(1)} s vs ${result.firstPush.deploy.toFixed(1)} s  ratio ${result.firstPush.ratio.toFixed(3)} (${pct(result.firstPush.ratio)})`,
    );
    console.log(
      `  one-line change               ${result.oneLine.push.toFixed(1)} s vs ${result.oneLine.deploy.toFixed(1)} s  ratio ${result.oneLine.ratio.toFixed(3)} (${pct(result.oneLine.ratio)})`,
    );
    console.log("  goal: the push adds at most 10 % (ratio <= 1.10)");
  }
} finally {
  server.kill("SIGTERM");
  await new Promise((r) => (server.exitCode !== null ? r() : server.once("exit", r)));
  rmSync(work, { recursive: true, force: true });
}
