// Heroku on Heroku: kiln builds itself with itself until the output stops changing, and the
// platform it ends with is an app on itself. Real Nix, real bwrap dynos, real SQLite; the state in
// a temporary directory. After `npm run setup` (whose main job is this bootstrap) the Nix stages
// are cached, so this exercises the platform part: stage2 and stage3 through the hosted API.
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { nixSettingArgs } from "../../src/nix/settings.js";
import { leftovers, runBootstrap } from "../bootstrapRun.js";
import { httpGet, kiln, kilnBin, NODE_WEB_GREETING, projectDir } from "../helpers.js";
import { freePort } from "../slugRunner.js";
import { tempDir } from "../tmp.js";

const NIX = nixSettingArgs();
// The data directory of a run that unpacked kiln's slug (later runs share that cache, nothing else).
let warm: string | undefined;

describe("kiln bootstrap", () => {
  let proc: ChildProcess | undefined;
  afterAll(() => {
    proc?.kill("SIGKILL");
  });

  it("reaches the fixed point through its own API, runs as stage2 built by stage1, and the self-built platform builds and serves an app", async () => {
    const dataDir = tempDir("kiln-bootstrap-");
    chmodSync(dataDir, 0o711); // the app uids pass through it to their slugs and state
    const runDir = tempDir("kiln-bootstrap-run-");
    warm = dataDir;
    const apiPort = await freePort();
    const routerPort = await freePort();
    const env = { ...process.env, KILN_DATA_DIR: dataDir, KILN_RUN_DIR: runDir, KILN_LOG_LEVEL: "warn" };
    proc = spawn(
      "node",
      [kilnBin, "bootstrap", "--api-port", String(apiPort), "--router-port", String(routerPort)],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    proc.stdout?.on("data", (c: Buffer) => (out += c));
    proc.stderr?.on("data", (c: Buffer) => (out += c));
    const exited = new Promise<number | null>((r) => proc?.once("exit", (code) => r(code)));
    const ready = await Promise.race([
      (async () => {
        while (!out.includes("Ctrl-C stops it")) await new Promise((r) => setTimeout(r, 500));
        return true;
      })(),
      exited.then(() => false),
    ]);
    if (!ready) throw new Error(`kiln bootstrap ended early:\n${out.slice(-4000)}`);

    const report = JSON.parse(readFileSync(join(dataDir, "bootstrap-report.json"), "utf8"));
    expect(report.fixedPoint).toBe(true);
    expect(report.differences).toEqual([]);
    expect(report.stages.stage2.sha256).toBe(report.stages.stage3.sha256);
    expect(report.stage2BuiltByStage1).toBe(true);
    expect(out).toContain("fixed point: yes");

    // The platform's own records: the app kiln runs stage2, whose release names the tools that
    // built it (stage1's), handed over by the hosted control plane.
    const db = new Database(join(dataDir, "kiln.sqlite"), { readonly: true });
    const releases = db
      .prepare(
        "SELECT r.version, r.slug_sha256, r.description FROM releases r JOIN apps a ON a.id = r.app_id WHERE a.name = 'kiln' ORDER BY r.version",
      )
      .all() as { version: number; slug_sha256: string; description: string }[];
    db.close();
    expect(releases[0]?.description).toMatch(/^stage1: kiln built by stage0/);
    const current = releases.at(-1);
    expect(current?.slug_sha256).toBe(report.stages.stage2.sha256);
    expect(current?.description).toContain(`built with tools ${report.stages.stage2.tools}`);

    // An app deployed to the self-built platform: built by it, run by it, routed by it.
    const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    const client = { env: { KILN_SERVER: `http://127.0.0.1:${apiPort}`, KILN_TOKEN: token, HOME: dataDir } };
    const created = await kiln(["apps:create", "hello"], client);
    expect(created.exitCode, created.all).toBe(0);
    const deploy = await kiln(
      ["deploy", join(projectDir, "test", "fixtures", "apps", "node-web"), "-a", "hello"],
      client,
    );
    expect(deploy.all).toContain("Released on the platform as v1");
    expect(deploy.exitCode).toBe(0);
    let res = { status: 0, body: "" };
    for (let i = 0; i < 240 && res.status !== 200; i++) {
      res = await httpGet({ port: routerPort, path: "/", host: "hello.localhost" }).catch(() => res);
      if (res.status !== 200) await new Promise((r) => setTimeout(r, 250));
    }
    expect(res).toEqual({ status: 200, body: NODE_WEB_GREETING });

    // Scaling and config changes made through the hosted API reach the dyno manager too.
    const scaled = await kiln(["ps:scale", "web=2", "-a", "hello"], client);
    expect(scaled.exitCode, scaled.all).toBe(0);
    const configured = await kiln(["config:set", "GREETING=hi", "-a", "hello"], client);
    expect(configured.exitCode, configured.all).toBe(0);
    const host = new Database(join(dataDir, "kiln.sqlite"), { readonly: true });
    const hello = host.prepare("SELECT id FROM apps WHERE name = 'hello'").get() as { id: string };
    expect(
      host.prepare("SELECT quantity FROM formation WHERE app_id = ? AND type = 'web'").get(hello.id),
    ).toEqual({
      quantity: 2,
    });
    const last = host
      .prepare("SELECT config_json FROM releases WHERE app_id = ? ORDER BY version DESC LIMIT 1")
      .get(hello.id) as { config_json: string };
    host.close();
    expect(JSON.parse(last.config_json)).toMatchObject({ GREETING: "hi" });

    proc.kill("SIGINT");
    expect(await exited).toBe(0);
    proc = undefined;
  });

  it(
    "a slug packer that writes the time into the slug breaks the fixed point, and the check names the file",
    async () => {
      const r = await execa(
        "nix",
        [
          ...NIX,
          "build",
          "--no-link",
          "-L",
          "--impure",
          "--expr",
          `(import ${projectDir}/nix/bootstrap { src = ${projectDir}; nondeterministic = true; }).fixed-point`,
        ],
        { reject: false },
      );
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toContain("the stage2 slug");
      expect(r.stderr).toMatch(
        /differs: \.\/\.kiln-build-time\s+stage2: 25 bytes [0-9a-f]{64}\s+stage3: 25 bytes/,
      );
      expect(r.stderr).toMatch(/\.kiln-build-time: .* differ: char \d+/);
      // Two real builds of kiln (stage2 and stage3; stage1 is the cached one): a loaded machine
      // needs more than the project's 15 minutes.
    },
    30 * 60_000,
  );
});

// A bootstrap that fails must end, whatever fails: a failure injected at each stage (the test-only
// KILN_TEST_FAIL_STAGE, made of real parts: a failing or silent derivation, a crashing hosted
// kiln, an upload the API refuses, a source whose build fails) ends the process with status 3,
// the report names the stage, and nothing it started is left: no process it started, none naming
// its directories, none in its process group or its dynos' cgroups, no port taken. Warm after
// setup (stage0 … stage3 are cached), each fails as early as its stage allows.
const BOUND_MS = 8 * 60_000;
// A kiln tree to bootstrap instead of this checkout (one whose stages are already built), for
// working on the bootstrap without rebuilding every stage after each edit.
const SOURCE = process.env.KILN_TEST_BOOTSTRAP_SOURCE;
const FAILURES: { stage: string; cause: RegExp; exit?: false; silence?: number }[] = [
  { stage: "stage0", cause: /injected failure \(KILN_TEST_FAIL_STAGE=stage0\)/ },
  // A Nix build that goes silent: the silence bound ends it (and the build).
  {
    stage: "stage1:hang",
    silence: 20,
    cause: /stage1 showed no progress for 20 s while waiting for the Nix build of stage1/,
  },
  // The hosted control plane crashes at start.
  { stage: "platform", cause: /crashed[\s\S]*injected failure \(KILN_TEST_FAIL_STAGE=platform\)/ },
  { stage: "upload", cause: /refused to take a build \(HTTP 4\d\d\)/ },
  // A hosted build (in the private nix-daemon, through stage1's API) that goes silent.
  {
    stage: "stage2:hang",
    silence: 30,
    cause: /stage2 showed no progress for 30 s while waiting for the hosted build \S+ \(stage2/,
  },
  // Without --exit: the platform is fully up (running stage2) when stage3 fails; it ends too.
  { stage: "stage3", cause: /the hosted build \S+ failed/, exit: false },
  { stage: "compare", cause: /injected failure \(KILN_TEST_FAIL_STAGE=compare\)/ },
];

describe("kiln bootstrap: a failure ends it", () => {
  it("the leftover check sees a process left behind, and the bound sees a hang (control)", async () => {
    const left = await runBootstrap({
      command: "sh",
      args: () => ["-c", "sleep 300 & sleep 1; exit 3"],
      boundMs: BOUND_MS,
    });
    expect(left.exitCode).toBe(3);
    const found = await leftovers(left);
    expect(found.join("\n")).toMatch(/still running: \d+ sleep 300/);
    expect(found.join("\n")).toMatch(/process group/);
    expect(found.join("\n")).toMatch(/names its directories: \d+ sleep 300/);
    process.kill(-left.pid, "SIGKILL");
    const hung = await runBootstrap({ command: "sleep", args: () => ["300"], boundMs: 1000 });
    expect(hung.hung).toBe(true);
  });

  it.each(FAILURES)(
    "at $stage: exits 3, the report names the stage and its cause, nothing is left",
    async (f) => {
      const r = await runBootstrap({
        command: "node",
        args: ({ apiPort, routerPort }) => [
          kilnBin,
          "bootstrap",
          ...(SOURCE ? ["--source", SOURCE] : []),
          ...(f.exit === false ? [] : ["--exit"]),
          "--api-port",
          String(apiPort),
          "--router-port",
          String(routerPort),
        ],
        env: {
          KILN_TEST_FAIL_STAGE: f.stage,
          ...(f.silence ? { KILN_BOOTSTRAP_SILENCE_SECONDS: String(f.silence) } : {}),
        },
        boundMs: BOUND_MS,
        slugsFrom: warm,
      });
      warm = r.dataDir;
      const tail = r.output.slice(-4000);
      expect(r.hung, tail).toBe(false);
      expect(r.exitCode, tail).toBe(3);
      const report = r.report();
      expect(report.outcome, tail).toBe("failed");
      expect(report.failed?.stage).toBe(f.stage.split(":")[0]);
      expect(report.failed?.message).toMatch(f.cause);
      expect(r.output).toContain(`the bootstrap failed at ${f.stage.split(":")[0]}`);
      // It did start processes (Nix at least), and none of them is left.
      expect(r.seen.length).toBeGreaterThan(1);
      expect(await leftovers(r)).toEqual([]);
    },
    BOUND_MS + 60_000,
  );
});
