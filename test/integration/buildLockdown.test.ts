/**
 * Builds are dynos: each attack a dyno is denied, tried from inside a real `kiln build` (the real
 * Nix sandbox, bwrap and kernel), by the `attacks` test buildpack's probe (compiled in the build
 * with the build stack's gcc). Every row is first shown to WORK with the lockdown off
 * (KILN_BUILD_LOCKDOWN=off, a test-only switch), then shown blocked with it on.
 */
import { cp, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { instanceTag } from "../../src/builds/limits.js";
import { detectCgroups } from "../../src/dyno/cgroups.js";
import { processStartTime } from "../../src/dyno/procfs.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { startControlPlane } from "../../src/serve/controlPlane.js";
import { buildStacks } from "../../src/stacks/stacks.js";
import { kilnBin, projectDir, testContext } from "../helpers.js";
import { tempDir } from "../tmp.js";

/** The server's build log of a build through the API (waits for it to end). */
async function apiBuildLog(url: string, token: string, app: string, dir: string): Promise<string> {
  const auth = { authorization: `Bearer ${token}` };
  const tar = (await execa("tar", ["czf", "-", "-C", dir, "."], { encoding: "buffer" })).stdout;
  const res = await fetch(`${url}/v1/apps/${app}/builds`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/gzip" },
    body: new Blob([new Uint8Array(tar)]),
  });
  expect(res.status).toBe(201);
  const build = (await res.json()) as { output_stream_url: string };
  return (await fetch(`${url}${build.output_stream_url}`, { headers: auth })).text();
}

const ATTACKS = [
  "vsock",
  "io_uring",
  "perf_event_open",
  "keyctl",
  "userfaultfd",
  "userns",
  "ptrace",
  "memory",
  "forkbomb",
  "tmp",
];
const buildpack = join(projectDir, "test", "fixtures", "buildpacks", "attacks");
// standard-2x: 1 GiB of memory (the probe asks for 3), 512 processes (it forks 2000), a 512 MiB /tmp
// (it writes 2 GiB): a size set per server, as an operator would.
const SIZE = "standard-2x";

async function attackApp(attacks: string[]): Promise<{ dir: string; nonce: string }> {
  const dir = tempDir("kiln-attacks-");
  await cp(join(projectDir, "test", "fixtures", "apps", "build-attacks"), dir, { recursive: true });
  const nonce = `${process.pid}${Date.now()}`;
  await writeFile(join(dir, "nonce"), `${nonce}\n`);
  await writeFile(join(dir, "attacks.txt"), `${attacks.join("\n")}\n`);
  return { dir, nonce };
}

function kilnBuild(dir: string, env: Record<string, string>) {
  return execa("node", [kilnBin, "build", "--app", "build-attacks", "-b", buildpack, dir], {
    reject: false,
    all: true,
    env,
  });
}

/** `probe NAME: works` / `probe NAME: blocked (why)` lines of a build's output. */
function outcomes(output: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of output.matchAll(/probe (\S+): (works|blocked.*)$/gm)) out[m[1] as string] = m[2] as string;
  return out;
}

/** Host pids of processes whose command line names the probe binary of this nonce. */
async function probePids(nonce: string): Promise<number[]> {
  const pids: number[] = [];
  for (const e of await readdir("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const cmd = await readFile(`/proc/${e}/cmdline`, "utf8").catch(() => "");
    if (cmd.split("\0")[0]?.endsWith(`kiln-probe-${nonce}`)) pids.push(Number(e));
  }
  return pids;
}

async function waitFor(what: string, cond: () => Promise<boolean>, seconds: number): Promise<void> {
  for (let i = 0; i < seconds * 2; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function buildCgroups(): Promise<string[]> {
  const host = await detectCgroups();
  const pids = host.controllers.pids;
  if (!pids) return [];
  const base = join(pids.mount, "kiln-builds");
  return (await readdir(base, { withFileTypes: true }).catch(() => []))
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
}

describe("builds run under a dyno's lockdown", () => {
  const t = testContext();
  const tag = instanceTag(t.config.dataDir);

  beforeAll(async () => {
    await ensureSeed(t);
    await buildStacks(t, ["build"]);
  });

  it("every attack works with the lockdown off (the control)", async () => {
    const app = await attackApp(ATTACKS);
    const r = await kilnBuild(app.dir, { KILN_BUILD_LOCKDOWN: "off" });
    expect(r.all).toContain("probe done");
    expect(r.exitCode).toBe(0);
    expect(r.all).toMatch(/lockdown +OFF/);
    const got = outcomes(r.all ?? "");
    for (const a of ATTACKS) expect(got[a], a).toBe("works");
    await rm(app.dir, { recursive: true, force: true });
  });

  it("a real kiln build blocks each one, and its log lists the limits", async () => {
    const app = await attackApp(ATTACKS);
    const r = await kilnBuild(app.dir, { KILN_BUILD_SIZE: SIZE });
    expect(r.all).toContain("probe done");
    expect(r.exitCode).toBe(0);
    const got = outcomes(r.all ?? "");
    for (const a of ATTACKS) expect(got[a], a).toMatch(/^blocked/);
    // The seccomp filter's own answers (the dyno's errnos), not some other refusal.
    expect(got.vsock).toBe("blocked (Address family not supported by protocol)");
    for (const a of ["io_uring", "perf_event_open", "keyctl", "userfaultfd", "userns"])
      expect(got[a], a).toBe("blocked (Operation not permitted)");
    expect(got.memory).toBe("blocked (killed by signal 9)");
    expect(got.forkbomb).toMatch(/^blocked \(\d+ processes, then Resource temporarily unavailable\)$/);
    expect(got.tmp).toMatch(/^blocked \(\d+ MiB written, then No space left on device\)$/);
    // One line per limit, with what enforces it.
    expect(r.all).toContain(`Build limits (size ${SIZE})`);
    expect(r.all).toMatch(/memory +1024 MiB, no swap +cgroup v[12] memory/);
    expect(r.all).toMatch(/pids +512 +cgroup v[12] pids/);
    expect(r.all).toMatch(/\/tmp +512 MiB +tmpfs size/);
    expect(r.all).toMatch(/seccomp +kiln's dyno filter/);
    await rm(app.dir, { recursive: true, force: true });
  });

  it("the build size: the server's (kiln serve), or the app's KILN_BUILD_SIZE config var", async () => {
    const dataDir = tempDir("kiln-build-size-");
    const cp = await startControlPlane(testContext({ dataDir, buildSize: SIZE }), {
      host: "127.0.0.1",
      port: 0,
      dynos: false,
    });
    try {
      const token = cp.adminToken ?? "";
      const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
      await fetch(`${cp.url}/v1/apps`, { method: "POST", headers: auth, body: '{"name":"sized"}' });
      const app = join(projectDir, "test", "fixtures", "apps", "node-web");
      const server = await apiBuildLog(cp.url, token, "sized", app);
      expect(server).toContain(`Build limits (size ${SIZE})`);
      expect(server).toMatch(/pids +512 +cgroup v[12] pids/);
      expect(server).toMatch(/-----> Built in/);
      await fetch(`${cp.url}/v1/apps/sized/config-vars`, {
        method: "PATCH",
        headers: auth,
        body: JSON.stringify({ KILN_BUILD_SIZE: "basic" }),
      });
      const own = await apiBuildLog(cp.url, token, "sized", app);
      expect(own).toContain("Build limits (size basic)");
      expect(own).toMatch(/memory +512 MiB, no swap +cgroup v[12] memory/);
      expect(own).toMatch(/pids +256 +cgroup v[12] pids/);
      await fetch(`${cp.url}/v1/apps/sized/config-vars`, {
        method: "PATCH",
        headers: auth,
        body: JSON.stringify({ KILN_BUILD_SIZE: "enormous" }),
      });
      expect(await apiBuildLog(cp.url, token, "sized", app)).toMatch(
        /Build failed: unknown dyno size "enormous"/,
      );
    } finally {
      await cp.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("nothing of a build outlives kiln, its wall-clock limit, or a dead kiln's cgroup", async () => {
    // The control: with the default limit (15 min), an endless sleep runs on past 20 s.
    const first = await attackApp(["sleep"]);
    const before = new Set(await buildCgroups());
    const run1 = kilnBuild(first.dir, { KILN_BUILD_SIZE: SIZE });
    run1.catch(() => {});
    await waitFor("the probe to sleep", async () => (await probePids(first.nonce)).length > 0, 300);
    await new Promise((r) => setTimeout(r, 20_000));
    expect((await probePids(first.nonce)).length).toBeGreaterThan(0);
    const leftBehind = (await buildCgroups()).filter((n) => !before.has(n) && n.startsWith(tag));
    expect(leftBehind).toHaveLength(1);
    // kill -9 of kiln: nix build gets its parent-death signal and takes the build with it.
    run1.kill("SIGKILL");
    await run1;
    await waitFor("the build to die with kiln", async () => (await probePids(first.nonce)).length === 0, 60);
    expect(await buildCgroups()).toContain(leftBehind[0]);

    // Decoys the next kiln's sweep must leave alone: another instance's cgroup of a dead kiln, and
    // this instance's cgroup of a live one (this test process).
    const host = await detectCgroups();
    const pidsMount = host.controllers.pids?.mount ?? "";
    const otherInstance = join(pidsMount, "kiln-builds", `0123456789ab-999999-1-decoy`);
    const liveOwner = join(
      pidsMount,
      "kiln-builds",
      `${tag}-${process.pid}-${await processStartTime(process.pid)}-decoy`,
    );
    await mkdir(otherInstance, { recursive: true });
    await mkdir(liveOwner, { recursive: true });

    // The limit itself: 15 s, then every process of the build is gone and the build failed.
    const second = await attackApp(["sleep"]);
    const r = await kilnBuild(second.dir, { KILN_BUILD_SIZE: SIZE, KILN_BUILD_TIMEOUT: "15" });
    expect(r.all).toContain("probe sleep: sleeping");
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/timed out after 15 seconds/);
    expect(await probePids(second.nonce)).toEqual([]);
    const after = await buildCgroups();
    // The dead kiln's cgroup was swept at this kiln's first build; this build's own is gone too.
    expect(after).not.toContain(leftBehind[0]);
    expect(after.filter((n) => !before.has(n) && n.startsWith(tag) && !n.endsWith("-decoy"))).toEqual([]);
    expect(after).toContain("0123456789ab-999999-1-decoy");
    expect(after).toContain(liveOwner.split("/").pop());
    await execa("rmdir", [otherInstance, liveOwner], { reject: false });
    await rm(first.dir, { recursive: true, force: true });
    await rm(second.dir, { recursive: true, force: true });
  });
});
