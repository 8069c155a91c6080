/**
 * Dynos on the real run stack, in real bubblewrap, with real cgroups: serving, signals, restarts,
 * boot timeouts, one-off runs, outbound access, crash recovery, and the escape suite (an app whose
 * endpoints each attempt one attack from inside; every one must fail here, and a control run in a
 * weak sandbox shows the attacks themselves work).
 */
import { spawn } from "node:child_process";
import { chmodSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../src/builds/build.js";
import { detectCgroups } from "../../src/dyno/cgroups.js";
import type { AppLog } from "../../src/dyno/logs.js";
import { openAppLog, readLogTail } from "../../src/dyno/logs.js";
import {
  type DynoRuntime,
  type LaunchOptions,
  launchDyno,
  prepareDynoRuntime,
} from "../../src/dyno/runtime.js";
import { readDynoRecords } from "../../src/dyno/state.js";
import type { Supervised } from "../../src/dyno/supervisor.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { type RunnableSlug, resolveSlug, unpackSlug } from "../../src/slug/runnable.js";
import { stackExecArgs } from "../../src/stacks/sandbox.js";
import { processesOf } from "../dynoHelpers.js";
import { httpGet, kiln, NODE_WEB_GREETING, projectDir, testContext } from "../helpers.js";
import { freePort } from "../slugRunner.js";
import { tempDir } from "../tmp.js";

const fixture = (name: string) => join(projectDir, "test", "fixtures", "apps", name);

/** GET over a dyno's relay socket, as the router will. */
const get = (socket: string, path: string) => httpGet({ socketPath: socket, path, host: "dyno" });

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function hostAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  throw new Error("this host has no non-loopback IPv4 address");
}

describe("dynos", () => {
  // The machine's Nix store (builds are cached there), but a data directory of the test's own.
  const dataDir = tempDir("kiln-dynos-");
  chmodSync(dataDir, 0o711);
  const t = testContext({ dataDir });
  let rt: DynoRuntime;
  const slugs = new Map<string, RunnableSlug>();
  const running: Supervised[] = [];

  const launch = async (opts: Omit<LaunchOptions, "log"> & { log?: AppLog }): Promise<Supervised> => {
    const d = await launchDyno(rt, {
      log: opts.log ?? (await openAppLog(rt.dataDir, opts.slug.app)),
      ...opts,
    });
    running.push(d);
    return d;
  };
  const upSocket = async (d: Supervised) =>
    until("the dyno to be up", () => (d.record().state === "up" ? d.current()?.relay?.socket : undefined));
  const logText = async (app: string) =>
    (await readLogTail(rt.dataDir, app, 100000)).map((l) => `${l.src}: ${l.line}`).join("\n");

  beforeAll(async () => {
    await ensureSeed(t);
    rt = await prepareDynoRuntime(t);
    for (const name of ["node-web", "static-site", "escape-attempts", "crasher"]) {
      const r = await buildApp(t, { appDir: fixture(name) });
      slugs.set(name, await resolveSlug({ nix: t.nix, dataDir: t.config.dataDir }, r.manifestPath));
    }
  });

  afterAll(async () => {
    await Promise.all(running.map((d) => d.stop()));
  });

  const slug = (name: string) => slugs.get(name) as RunnableSlug;

  it("serves the Node web fixture over its relay, with every limit enforced and reported", async () => {
    const d = await launch({ slug: slug("node-web"), type: "web", restart: false });
    const socket = await upSocket(d);
    expect(await get(socket, "/")).toEqual({ status: 200, body: NODE_WEB_GREETING });
    const rec = (await readDynoRecords(rt.dataDir)).find((r) => r.id === d.record().id);
    expect(rec?.state).toBe("up");
    const cgroups = await detectCgroups();
    for (const l of rec?.limits ?? []) {
      const available = l.name in cgroups.controllers || !["memory", "pids", "cpu"].includes(l.name);
      expect({ limit: l.name, enforced: l.enforced }).toEqual({ limit: l.name, enforced: available });
    }
    expect(rec?.limits.map((l) => l.name).sort()).toEqual([
      "core-dumps",
      "cpu",
      "memory",
      "open-files",
      "pids",
      "shm",
      "tmp",
    ]);
    await d.stop();
    expect((await readDynoRecords(rt.dataDir)).some((r) => r.id === d.record().id)).toBe(false);
    const left = await processesOf(d.record().uid);
    const detail = await Promise.all(
      left.map((p) => readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "?")),
    );
    expect({ left, detail }).toEqual({ left: [], detail: [] });
  });

  it("serves the static fixture", async () => {
    const d = await launch({ slug: slug("static-site"), type: "web", restart: false });
    const socket = await upSocket(d);
    const r = await get(socket, "/about");
    expect(r.status).toBe(200);
    expect(r.body).toContain("<h1>About this static site</h1>");
    await d.stop();
  });

  it("delivers SIGTERM to the app on stop, and the app's clean exit is the reason", async () => {
    const d = await launch({ slug: slug("escape-attempts"), type: "web", restart: false });
    await upSocket(d);
    await d.stop();
    const exit = await d.done;
    expect(exit?.reason).toBe("exited with code 0");
    expect(await logText("escape-attempts")).toContain("app[web.1]: escape-attempts: got SIGTERM");
  });

  it("restarts a crashing process with doubling delays, and says why it ended", async () => {
    const log = await openAppLog(rt.dataDir, "crasher");
    const d = await launch({
      slug: slug("crasher"),
      type: "worker",
      log,
      restart: { initialDelayMs: 200, maxDelayMs: 800, stableMs: 60_000 },
    });
    await until("four crashes", () => d.record().restarts >= 4 || undefined, 60_000);
    await d.stop();
    const lines = log.recent();
    const announced = lines
      .map((l) => /^Restarting in ([\d.]+) s \(crash (\d+) in a row\)$/.exec(l.line))
      .filter((m): m is RegExpExecArray => !!m)
      .map((m) => [Number(m[1]), Number(m[2])]);
    expect(announced.slice(0, 4)).toEqual([
      [0.2, 1],
      [0.4, 2],
      [0.8, 3],
      [0.8, 4],
    ]);
    // Each restart really waited at least the announced delay (a lower bound: no flaky upper one).
    const starts = lines.filter((l) => l.line.startsWith("Starting process")).map((l) => Date.parse(l.t));
    const exits = lines.filter((l) => l.line === "Process exited with code 3").map((l) => Date.parse(l.t));
    for (let i = 0; i < 3; i++) {
      const waited = (starts[i + 1] ?? 0) - (exits[i] ?? 0);
      expect(waited).toBeGreaterThanOrEqual((announced[i]?.[0] ?? 0) * 1000 - 5);
    }
    expect(d.record().lastExit?.code).toBe(3);
    expect(lines.some((l) => /^crasher: up as 4\d{5}$/.test(l.line))).toBe(true);
  });

  it("kills a web process that does not bind $PORT within the boot timeout (R10)", async () => {
    const d = await launch({ slug: slug("crasher"), type: "web", restart: false, bootTimeoutMs: 1000 });
    const exit = await d.done;
    expect(exit?.signal).toBe("SIGKILL");
    expect(await logText("crasher")).toContain(
      "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 1 seconds of launch",
    );
  });

  it("runs one-off commands to completion, never restarting them, with config vars as environment", async () => {
    const log = await openAppLog(rt.dataDir, "node-web");
    const d = await launch({
      slug: slug("node-web"),
      command: 'echo "greeting=$GREETING home=$HOME dyno=$DYNO"; node -e "process.exit(7)"',
      configVars: { GREETING: "hi there" },
      restart: false,
      log,
    });
    const exit = await d.done;
    expect(exit?.code).toBe(7);
    expect(log.recent().map((l) => l.line)).toContain(`greeting=hi there home=/app dyno=${d.record().name}`);
    expect(d.record().restarts).toBe(0);
  });

  describe("the escape suite", () => {
    let attacker: Supervised;
    let socket = "";
    let victim: Supervised;
    let victimSocket = "";
    let hostServer: Server;
    let hostPort = 0;
    const secret = `s3cret-${process.pid}`;

    beforeAll(async () => {
      // A "host service" on every address (like kiln's API would be), and a second app's dyno.
      hostPort = await freePort();
      hostServer = createServer((c) => {
        c.on("error", () => {}); // attackers hang up rudely
        c.end("host service\n");
      });
      await new Promise<void>((r) => hostServer.listen(hostPort, "0.0.0.0", () => r()));
      victim = await launch({ slug: slug("node-web"), type: "web", restart: false });
      victimSocket = await upSocket(victim);
      attacker = await launch({
        slug: slug("escape-attempts"),
        type: "web",
        size: "basic",
        restart: false,
        configVars: { API_TOKEN: secret },
      });
      socket = await upSocket(attacker);
    });

    afterAll(async () => {
      await attacker?.stop();
      await victim?.stop();
      hostServer?.close();
    });

    const attack = async (name: string, params: Record<string, string | number> = {}) => {
      const q = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])).toString();
      const r = await get(socket, `/attack/${name}${q ? `?${q}` : ""}`);
      expect(r.status).toBe(200);
      return JSON.parse(r.body) as { name: string; succeeded: boolean; detail: string; errno?: string };
    };

    // name, params, and what stops it (the README's security section lists the same).
    const attacks: [string, () => Record<string, string | number>][] = [
      ["read-file", () => ({ path: "/etc/shadow" })],
      ["read-file", () => ({ path: join(rt.dataDir, "dynos", "uids.json") })],
      ["read-file", () => ({ path: join(rt.dataDir, "slugs", slug("node-web").sha256, "app", "server.js") })],
      ["list-dir", () => ({ path: rt.dataDir })],
      ["write-file", () => ({ path: "/app/x" })],
      ["write-file", () => ({ path: "/nix/store/x" })],
      ["write-file", () => ({ path: "/usr/x" })],
      ["connect-tcp", () => ({ host: "127.0.0.1", port: hostPort })],
      ["connect-tcp", () => ({ host: hostAddress(), port: hostPort })],
      ["connect-unix", () => ({ path: victimSocket })],
      ["socket-family", () => ({ family: 17, type: 3 })], // AF_PACKET
      ["socket-family", () => ({ family: 40, type: 1 })], // AF_VSOCK
      ["socket-family", () => ({ family: 38, type: 5 })], // AF_ALG
      ["socket-family", () => ({ family: 31, type: 3 })], // AF_BLUETOOTH
      ["ptrace-sibling", () => ({})],
      ["ptrace-parent", () => ({})],
      ["process-vm-readv", () => ({})],
      ["mount", () => ({})],
      ["fsopen", () => ({})],
      ["chroot", () => ({})],
      ["pivot-root", () => ({})],
      ["unshare-user", () => ({})],
      ["userns-mount", () => ({})],
      ["setns", () => ({})],
      ["clone-newns", () => ({})],
      ["clone3", () => ({})],
      ["keyctl", () => ({})],
      ["add-key", () => ({})],
      ["tiocsti", () => ({})],
      ["tiocsti-highbits", () => ({})],
      ["tioclinux", () => ({})],
      ["setuid-root", () => ({})],
      ["setuid-binary", () => ({})],
      ["mknod", () => ({})],
      ["proc-cmdline", () => ({ secret })],
      ["proc-sys-write", () => ({ value: "evil" })],
      ["sys-leak", () => ({})],
      ["dev-list", () => ({})],
      ["read-dev-mem", () => ({})],
      ["capabilities", () => ({})],
      ["perf-event-open", () => ({})],
      ["personality", () => ({})],
      ["bpf", () => ({})],
      ["userfaultfd", () => ({})],
      ["io-uring-setup", () => ({})],
      ["open-by-handle-at", () => ({})],
      ["name-to-handle-at", () => ({})],
      ["init-module", () => ({})],
      ["dmesg", () => ({})],
      ["net-interfaces", () => ({})],
      ["fork-bomb", () => ({ max: 5000 })],
      ["tmp-fill", () => ({ mb: 1024 })],
      ["fd-exhaust", () => ({ max: 100000 })],
      ["cpu-hog", () => ({ ms: 3000 })],
    ];

    it.each(attacks.map(([name, params], i) => ({ i, name, params })))(
      "attack $i: $name fails",
      async ({ name, params }) => {
        const r = await attack(name, params());
        expect({ name, succeeded: r.succeeded, detail: r.detail }).toEqual({
          name,
          succeeded: false,
          detail: r.detail,
        });
      },
    );

    it("has at least 25 distinct attacks", () => {
      expect(new Set(attacks.map(([n]) => n)).size).toBeGreaterThanOrEqual(25);
    });

    it("keeps a memory bomb inside the dyno: the OOM killer takes the bomb, not the host", async () => {
      const r = await attack("memory-bomb", { mb: 2048 });
      expect(r.succeeded).toBe(false);
      expect(r.detail).toMatch(/killed by SIGKILL/);
      expect((await get(socket, "/")).body).toBe("ok");
    });

    it("never puts config vars on a host command line", async () => {
      const d = attacker.current();
      for (const pid of [d?.pid, d?.initPid]) {
        const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8");
        expect(cmdline).not.toContain(secret);
      }
    });

    it("kills a daemonised orphan when the dyno stops", async () => {
      const tag = `orphan-${process.pid}`;
      const r = await attack("daemonize", { tag });
      expect(r.succeeded).toBe(true);
      const tagged = async () => {
        const out: number[] = [];
        for (const pid of await processesOf(attacker.record().uid)) {
          if ((await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).includes(tag)) out.push(pid);
        }
        return out;
      };
      expect((await tagged()).length).toBeGreaterThan(0);
      await attacker.stop();
      expect(await tagged()).toEqual([]);
    });

    it("control: the same attacks succeed in a weak sandbox (root, no seccomp, host network)", async () => {
      const slugDir = await unpackSlug(rt.dataDir, slug("escape-attempts"));
      const port = await freePort();
      const args = stackExecArgs(
        rt.stackDir,
        ["sh", "-c", ". /app/.profile.d/nodejs.sh; exec node server.js"],
        {
          shareNet: true,
          roBinds: [{ src: slugDir, dest: "/app" }],
          env: { HOME: "/app", PORT: String(port) },
          cwd: "/app",
        },
      );
      const child = spawn("bwrap", args, { stdio: "ignore" });
      try {
        const base = `http://127.0.0.1:${port}`;
        await until("the control server", () =>
          fetch(`${base}/`).then(
            (r) => r.ok || undefined,
            () => undefined,
          ),
        );
        const control = async (name: string, q = "") =>
          ((await (await fetch(`${base}/attack/${name}${q}`)).json()) as { succeeded: boolean }).succeeded;
        for (const name of [
          "ptrace-sibling",
          "keyctl",
          "unshare-user",
          "mount",
          "clone3",
          "personality",
          "tiocsti",
          "process-vm-readv",
        ])
          expect({ name, succeeded: await control(name) }).toEqual({ name, succeeded: true });
        expect(await control("connect-tcp", `?host=127.0.0.1&port=${hostPort}`)).toBe(true);
        expect(await control("fork-bomb", "?max=400")).toBe(true);
      } finally {
        child.kill("SIGKILL");
      }
    });
  });

  it("outbound access is off by default and opt-in, and never reaches the host's loopback", async () => {
    const port = await freePort();
    const server = createServer((c) => {
      c.on("error", () => {});
      c.end("outside\n");
    });
    await new Promise<void>((r) => server.listen(port, "0.0.0.0", () => r()));
    try {
      const d = await launch({ slug: slug("escape-attempts"), type: "web", restart: false, outbound: true });
      const socket = await upSocket(d);
      const connect = async (host: string) =>
        JSON.parse((await get(socket, `/attack/connect-tcp?host=${host}&port=${port}`)).body) as {
          succeeded: boolean;
        };
      expect((await connect(hostAddress())).succeeded).toBe(true);
      // slirp4netns' alias for the host's loopback, cut off by --disable-host-loopback.
      expect((await connect("10.0.2.2")).succeeded).toBe(false);
      await d.stop();
    } finally {
      server.close();
    }
  });

  it("kill -9 of kiln leaves no dyno behind, and the next kiln cleans up its records and cgroups", async () => {
    const env = { KILN_DATA_DIR: rt.dataDir };
    const child = spawn("node", [join(projectDir, "bin", "kiln.js"), "run", slug("node-web").app, "-q"], {
      env: { ...process.env, ...env },
      stdio: "ignore",
    });
    const rec = await until("the dyno record", async () =>
      (await readDynoRecords(rt.dataDir)).find((r) => r.supervisor.pid === child.pid && r.state === "up"),
    );
    expect(rec.cgroupDirs.length).toBeGreaterThan(0);
    child.kill("SIGKILL");
    await until(
      "the dyno to die with its kiln",
      async () => ((await processesOf(rec.uid)).length === 0 ? true : undefined),
      10_000,
    );
    const ps = await kiln(["ps", "--reconcile", "--json"], { env });
    expect(ps.exitCode).toBe(0);
    expect((JSON.parse(ps.stdout) as { dynos: unknown[] }).dynos).toEqual([]);
    const { exists } = await import("../../src/util/fs.js");
    for (const dir of rec.cgroupDirs) expect(await exists(dir)).toBe(false);
    expect(await logText(rec.app)).toContain(
      `kiln[${rec.name}]: Lost: its supervisor (pid ${child.pid}) is gone; cleaned up`,
    );
  });

  it("rejects bad input with a hint and starts nothing", async () => {
    const env = { KILN_DATA_DIR: rt.dataDir };
    const unknown = await kiln(["run", "no-such-app"], { env });
    expect(unknown.exitCode).toBe(1);
    expect(unknown.all).toMatch(/no build, app or slug called "no-such-app"/);
    expect(unknown.all).toMatch(/hint: built apps here: .*node-web/);
    const badSize = await kiln(["run", "node-web", "--size", "huge"], { env });
    expect(badSize.exitCode).toBe(2);
    expect(badSize.all).toMatch(/Allowed choices are basic, standard-1x/);
    const badType = await kiln(["run", "node-web", "--process", "worker"], { env });
    expect(badType.exitCode).toBe(1);
    expect(badType.all).toMatch(/node-web has no "worker" process type/);
    expect(await readDynoRecords(rt.dataDir)).toEqual([]);
  });
});
