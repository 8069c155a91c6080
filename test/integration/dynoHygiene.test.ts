/**
 * What a dyno inherits from the host, and how its crashes are told (issue 12): no descriptor kiln
 * inherited, a /dev/shm capped like /tmp and a read-only /dev, and an app that exits at once is
 * reported by its exit code, every crash counted and announced.
 */
import { spawn } from "node:child_process";
import { chmodSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../src/builds/build.js";
import { dynoSize } from "../../src/config/dynoSizes.js";
import { openAppLog } from "../../src/dyno/logs.js";
import { type DynoRuntime, launchDyno, prepareDynoRuntime } from "../../src/dyno/runtime.js";
import type { Supervised } from "../../src/dyno/supervisor.js";
import { run } from "../../src/process/run.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { type RunnableSlug, resolveSlug, unpackSlug } from "../../src/slug/runnable.js";
import { stackExecArgs } from "../../src/stacks/sandbox.js";
import { kilnBin, projectDir, testContext } from "../helpers.js";
import { tempDir } from "../tmp.js";

async function until<T>(what: string, fn: () => T | undefined, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("what a dyno gets from the host", () => {
  const dataDir = tempDir("kiln-dynohygiene-");
  chmodSync(dataDir, 0o711);
  const t = testContext({ dataDir });
  let rt: DynoRuntime;
  let slug: RunnableSlug;
  const running: Supervised[] = [];

  beforeAll(async () => {
    await ensureSeed(t);
    rt = await prepareDynoRuntime(t);
    const r = await buildApp(t, { appDir: join(projectDir, "test", "fixtures", "apps", "procfile-shell") });
    slug = await resolveSlug({ nix: t.nix, dataDir }, r.manifestPath);
  });
  afterAll(async () => {
    await Promise.all(running.map((d) => d.stop()));
  });

  /** A one-off dyno's output lines. */
  const oneOff = async (command: string) => {
    const log = await openAppLog(dataDir, slug.app);
    const d = await launchDyno(rt, { slug, command, restart: false, log });
    running.push(d);
    await d.done;
    const name = d.record().name;
    return log
      .recent()
      .filter((l) => l.src === `app[${name}]`)
      .map((l) => l.line);
  };

  it("gets none of the descriptors kiln inherited without close-on-exec", async () => {
    const secretFile = join(dataDir, "inherited-fd");
    writeFileSync(secretFile, "kiln's parent left this open\n");
    // kiln's parent leaves fd 200 open without close-on-exec (as a shell's `200<file` does).
    const child = spawn(
      "bash",
      [
        "-c",
        'exec 200<"$0"; exec node "$1" run "$2" -- "ls /proc/self/fd; sleep 1"',
        secretFile,
        kilnBin,
        slug.app,
      ],
      { env: { ...process.env, KILN_DATA_DIR: dataDir }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    (child.stdout as Readable).on("data", (d) => (out += d));
    (child.stderr as Readable).on("data", (d) => (out += d));
    // Control: kiln itself really holds it (and Node passes such a descriptor to every child).
    const held = await until("kiln to hold fd 200", () => {
      try {
        return readlinkSync(`/proc/${child.pid}/fd/200`);
      } catch {
        return undefined;
      }
    });
    expect(held).toBe(secretFile);
    const code = await new Promise((r) => child.once("exit", r));
    expect({ code, out }).toMatchObject({ code: 0 });
    const fds = out.split(/\s+/).filter((w) => /^\d+$/.test(w));
    // 0-2 are the terminal's; 3 is ls's own listing of /proc/self/fd.
    expect(fds).toEqual(["0", "1", "2", "3"]);
  });

  it("has a /dev/shm capped like /tmp, and a read-only /dev", async () => {
    const script = "df -k /dev/shm /tmp; touch /dev/x 2>/dev/null && echo dev-writable || echo dev-read-only";
    const lines = await oneOff(script);
    const kb = (mount: string) => Number(lines.find((l) => l.endsWith(` ${mount}`))?.split(/\s+/)[1]);
    const tmpKb = dynoSize("standard-1x").tmpBytes / 1024;
    expect({ shm: kb("/dev/shm"), tmp: kb("/tmp") }).toEqual({ shm: tmpKb, tmp: tmpKb });
    expect(lines).toContain("dev-read-only");

    // Control: bwrap's own /dev (what dynos had) gives /dev/shm no size of its own, and /dev is writable.
    const slugDir = await unpackSlug(dataDir, slug);
    const control = await run(
      "bwrap",
      stackExecArgs(rt.stackDir, ["sh", "-c", script], { roBinds: [{ src: slugDir, dest: "/app" }] }),
      { reject: false },
    );
    const controlShm = Number(
      control.stdout
        .split("\n")
        .find((l) => l.endsWith(" /dev/shm") || l.endsWith(" /dev"))
        ?.split(/\s+/)[1],
    );
    expect(controlShm).toBeGreaterThan(tmpKb);
    expect(control.stdout).toContain("dev-writable");
  });

  it("reports an app that exits at once by its exit code, and counts and announces every crash", async () => {
    const log = await openAppLog(dataDir, slug.app);
    const d = await launchDyno(rt, {
      slug,
      type: "web",
      name: "web.1",
      command: "exit 3",
      restart: { initialDelayMs: 100, maxDelayMs: 200, stableMs: 60_000 },
      log,
    });
    running.push(d);
    await until("three restarts", () => (d.record().restarts >= 3 ? true : undefined));
    await d.stop();
    const lines = log
      .recent()
      .filter((l) => l.src === "kiln[web.1]")
      .map((l) => l.line);
    expect(lines.filter((l) => l.includes("relay did not start"))).toEqual([]);
    expect(lines.filter((l) => l === "Process exited with code 3").length).toBeGreaterThanOrEqual(3);
    expect(
      lines.filter((l) => /^Restarting in [\d.]+ s \(crash \d+ in a row\)$/.test(l)).length,
    ).toBeGreaterThanOrEqual(3);
    expect(d.record().restarts).toBeGreaterThanOrEqual(3);
    expect(d.record().lastExit?.code).toBe(3);
  });

  it("counts and announces every restart of a dyno that cannot even start", async () => {
    const log = await openAppLog(dataDir, slug.app);
    // A stack that is not there: every start fails before the sandbox exists.
    const broken = { ...rt, grants: { [slug.app]: { stackDir: join(dataDir, "no-such-stack"), binds: [] } } };
    const d = await launchDyno(broken, {
      slug,
      type: "worker",
      restart: { initialDelayMs: 100, maxDelayMs: 200, stableMs: 60_000 },
      log,
    });
    running.push(d);
    await until("three restarts", () => (d.record().restarts >= 3 ? true : undefined), 30_000);
    await d.stop();
    const lines = log
      .recent()
      .filter((l) => l.src === "kiln[worker.1]")
      .map((l) => l.line);
    expect(lines.filter((l) => l.startsWith("Failed to start: ")).length).toBeGreaterThanOrEqual(3);
    expect(
      lines.filter((l) => /^Restarting in [\d.]+ s \(crash \d+ in a row\)$/.test(l)).length,
    ).toBeGreaterThanOrEqual(3);
    expect(d.record().lastExit?.reason).toMatch(/^failed to start: /);
  });
});
