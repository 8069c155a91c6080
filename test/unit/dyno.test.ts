import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { oneOffCommand } from "../../src/cli/dynoCommands.js";
import { dynoSize } from "../../src/config/dynoSizes.js";
import { createDynoCgroup, detectCgroups } from "../../src/dyno/cgroups.js";
import { followLog, openAppLog, readLogTail } from "../../src/dyno/logs.js";
import { dynoBwrapOptions, dynoEnv, dynoLauncher } from "../../src/dyno/sandbox.js";
import { compiledSeccomp, dynoSeccompPolicy } from "../../src/dyno/seccomp.js";
import { backoffDelay, DEFAULT_RESTART } from "../../src/dyno/supervisor.js";
import { projectDir } from "../helpers.js";
import { tempDir } from "../tmp.js";

const size = dynoSize("standard-1x");

describe("the dyno lockdown's bwrap options", () => {
  const opts = dynoBwrapOptions({
    uid: 400001,
    hostname: "web.1",
    size,
    stackDir: "/nix/store/x-stack-run",
    slugDir: "/var/lib/kiln/slugs/abc/app",
  });
  const joined = opts.join(" ");

  it("unshares every namespace, drops every capability and further user namespaces", () => {
    for (const flag of [
      "--unshare-all",
      "--unshare-user",
      "--disable-userns",
      "--assert-userns-disabled",
      "--new-session",
      "--die-with-parent",
    ])
      expect(opts).toContain(flag);
    expect(joined).toContain("--cap-drop ALL");
    expect(opts).not.toContain("--share-net");
    expect(joined).toContain("--uid 400001 --gid 400001");
  });

  it("binds only the stack (at /) and the slug (at /app), both read-only, plus a capped /tmp", () => {
    expect(opts.filter((o) => /^--(ro-)?bind|^--dev-bind/.test(o))).toEqual(["--ro-bind", "--ro-bind"]);
    expect(joined).toContain("--ro-bind /nix/store/x-stack-run / ");
    expect(joined).toContain("--ro-bind /var/lib/kiln/slugs/abc/app /app");
    expect(joined).toContain(`--size ${size.tmpBytes} --tmpfs /tmp`);
    expect(joined).not.toContain("/sys");
    expect(joined).toMatch(/--seccomp \d+/);
  });

  it("keeps the environment off every command line", () => {
    const env = dynoEnv({ dyno: "web.1", port: 5000, releaseVars: {}, configVars: { API_TOKEN: "s3cret" } });
    expect(env.API_TOKEN).toBe("s3cret");
    const launcher = dynoLauncher({
      uid: 400001,
      size,
      command: "node server.js",
      cgroupDirs: [],
      keepFds: 7,
    });
    expect([...launcher.args, ...opts].join(" ")).not.toContain("s3cret");
    expect(launcher.args).toContain("--no-new-privs");
    expect(launcher.args).toContain("--core=0:0");
  });

  it("layers the environment: Heroku's variables, the release's, the user's, and $PORT last", () => {
    const env = dynoEnv({
      dyno: "web.1",
      port: 5000,
      releaseVars: { NODE_ENV: "production", A: "release" },
      configVars: { A: "user", PORT: "1" },
    });
    expect(env).toMatchObject({
      HOME: "/app",
      DYNO: "web.1",
      NODE_ENV: "production",
      A: "user",
      PORT: "5000",
    });
  });
});

describe("the seccomp policy", () => {
  const policy = dynoSeccompPolicy();
  const denied = new Set(policy.rules.map((r) => r.syscall));

  it("covers Flatpak's blocklist and the container-runtime extras", () => {
    for (const s of [
      "ptrace",
      "mount",
      "umount2",
      "pivot_root",
      "chroot",
      "keyctl",
      "add_key",
      "request_key",
      "unshare",
      "setns",
      "clone",
      "clone3",
      "perf_event_open",
      "personality",
      "ioctl",
      "socket",
      "bpf",
      "kexec_load",
      "init_module",
      "open_by_handle_at",
      "io_uring_setup",
      "userfaultfd",
      "fsopen",
      "move_mount",
    ])
      expect(denied.has(s), s).toBe(true);
  });

  it("masks ioctl's request to 32 bits, so TIOCSTI with high bits set is caught too", () => {
    const tiocsti = policy.rules.find((r) => r.syscall === "ioctl" && r.args?.[0]?.value === String(0x5412));
    expect(tiocsti?.args?.[0]).toMatchObject({ index: 1, op: "MASKED_EQ", mask: String(0xffffffff) });
  });

  it("compiles with libseccomp into a BPF program, cached by its hash", async () => {
    const dataDir = tempDir("kiln-seccomp-");
    const file = await compiledSeccomp({ dataDir, projectDir });
    const bytes = (await stat(file)).size;
    // Classic BPF: 8 bytes per instruction; a policy this size is well over 100 instructions.
    expect(bytes % 8).toBe(0);
    expect(bytes / 8).toBeGreaterThan(100);
    expect(await compiledSeccomp({ dataDir, projectDir })).toBe(file);
  });

  it("says what to install when a rule names a syscall libseccomp does not know", async () => {
    const dataDir = tempDir("kiln-seccomp-");
    await expect(
      compiledSeccomp({
        dataDir,
        projectDir,
        policy: { extraArches: [], rules: [{ syscall: "no_such_call", errno: "EPERM" }] },
      }),
    ).rejects.toThrow(/cannot add rule for no_such_call/);
  });
});

describe("restart backoff", () => {
  it("starts at 10 s and doubles to a 5 min cap, as CrashLoopBackOff", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(DEFAULT_RESTART, n) / 1000)).toEqual([
      10, 20, 40, 80, 160, 300, 300, 300,
    ]);
  });
});

describe("cgroups", () => {
  it("finds v1 controllers per hierarchy and v2 controllers in the unified tree", async () => {
    const dir = tempDir("kiln-cg-");
    await writeFile(join(dir, "cgroup.controllers"), "cpuset cpu io memory pids\n");
    const mountinfo = join(dir, "mountinfo");
    await writeFile(
      mountinfo,
      [
        "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
        "31 25 0:27 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids",
        `32 25 0:28 / ${dir} rw,relatime - cgroup2 cgroup2 rw`,
        "",
      ].join("\n"),
    );
    const host = await detectCgroups(mountinfo);
    expect(host.controllers).toEqual({
      memory: { version: 1, mount: "/sys/fs/cgroup/memory" },
      pids: { version: 1, mount: "/sys/fs/cgroup/pids" },
      cpu: { version: 2, mount: dir },
    });
    expect(host.missing).toEqual({});
  });

  it("writes v2 limits and enables the controllers down the tree (on a plain directory: this host has no v2 controllers)", async () => {
    const root = tempDir("kiln-cg2-");
    const host = {
      controllers: {
        memory: { version: 2 as const, mount: root },
        pids: { version: 2 as const, mount: root },
        cpu: { version: 2 as const, mount: root },
      },
      missing: {},
    };
    await mkdir(join(root, "kiln", "d1"), { recursive: true });
    await writeFile(join(root, "kiln", "d1", "memory.swap.max"), "max");
    const cg = await createDynoCgroup(host, "d1", size);
    const read = (f: string) => readFile(join(root, "kiln", "d1", f), "utf8");
    expect(await read("memory.max")).toBe(String(size.memoryBytes));
    expect(await read("memory.swap.max")).toBe("0");
    expect(await read("pids.max")).toBe(String(size.pids));
    expect(await read("cpu.max")).toBe("100000 100000");
    expect(await readFile(join(root, "cgroup.subtree_control"), "utf8")).toBe("+memory +pids +cpu");
    expect(await readFile(join(root, "kiln", "cgroup.subtree_control"), "utf8")).toBe("+memory +pids +cpu");
    expect(cg.limits.map((l) => [l.name, l.enforced, l.by])).toEqual([
      ["memory", true, "cgroup v2 memory"],
      ["pids", true, "cgroup v2 pids"],
      ["cpu", true, "cgroup v2 cpu"],
    ]);
  });

  it("reports a missing controller as not enforced, with the reason", async () => {
    const cg = await createDynoCgroup(
      { controllers: {}, missing: { memory: "no memory controller here" } },
      "d2",
      size,
    );
    expect(cg.limits.find((l) => l.name === "memory")).toMatchObject({
      enforced: false,
      by: "no memory controller here",
    });
  });
});

describe("app logs", () => {
  it("keeps a bounded buffer in memory and on disk, rotating the file", async () => {
    const dataDir = tempDir("kiln-logs-");
    const log = await openAppLog(dataDir, "a", { maxLines: 5, maxFileBytes: 2000 });
    for (let i = 0; i < 100; i++) log.write("app[web.1]", `line ${i}`);
    expect(log.recent().map((l) => l.line)).toEqual(["line 95", "line 96", "line 97", "line 98", "line 99"]);
    expect((await stat(log.file)).size).toBeLessThan(2200);
    const tail = await readLogTail(dataDir, "a", 3);
    expect(tail.map((l) => `${l.src} ${l.line}`)).toEqual([
      "app[web.1] line 97",
      "app[web.1] line 98",
      "app[web.1] line 99",
    ]);
  });

  it("follows new lines, across a rotation", async () => {
    const dataDir = tempDir("kiln-logs-");
    const log = await openAppLog(dataDir, "a", { maxFileBytes: 300 });
    log.write("kiln[web.1]", "before");
    const seen: string[] = [];
    const stop = new AbortController();
    const following = followLog(dataDir, "a", (l) => seen.push(l.line), stop.signal);
    await new Promise((r) => setTimeout(r, 150));
    for (let i = 0; i < 12; i++) {
      log.write("app[web.1]", `new ${i}`);
      await new Promise((r) => setTimeout(r, 120));
    }
    stop.abort();
    await following;
    expect(seen).not.toContain("before");
    expect(seen.at(-1)).toBe("new 11");
  });
});

describe("one-off commands", () => {
  it("takes one argument as a shell command line and several as words", () => {
    expect(oneOffCommand(["echo $HOME && ls"])).toBe("echo $HOME && ls");
    expect(oneOffCommand(["node", "-e", "console.log('hi there')"])).toBe(
      `node -e 'console.log('\\''hi there'\\'')'`,
    );
  });
});
