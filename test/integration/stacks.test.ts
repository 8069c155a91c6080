import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { listTarGz } from "../../src/archive/tar.js";
import { readSeedLock } from "../../src/seed/lock.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { stackExec } from "../../src/stacks/sandbox.js";
import {
  type BuiltStack,
  buildStacks,
  checkStack,
  exportStack,
  STACK_SOURCE_DATE_EPOCH,
} from "../../src/stacks/stacks.js";
import { projectDir, testContext } from "../helpers.js";
import { tempDir } from "../tmp.js";

describe("the stacks", () => {
  const t = testContext();
  let run: BuiltStack;
  let build: BuiltStack;

  beforeAll(async () => {
    await ensureSeed(t);
    const built = await buildStacks(t, ["run", "build"]);
    run = built.find((s) => s.name === "run") as BuiltStack;
    build = built.find((s) => s.name === "build") as BuiltStack;
  });

  it("build in the sandbox and rebuild byte-identical (nix --rebuild)", async () => {
    expect(run.storePath).toMatch(/-kiln-stack-run$/);
    expect(build.storePath).toMatch(/-kiln-stack-build$/);
    await checkStack(t, "run");
    await checkStack(t, "build");
  });

  it("path-info answers in the order asked (Nix itself sorts by path)", async () => {
    for (const order of [
      [run.storePath, build.storePath],
      [build.storePath, run.storePath],
    ]) {
      expect((await t.nix.pathInfo(order)).map((i) => i.path)).toEqual(order);
    }
  });

  it("refer to nothing outside themselves", async () => {
    const [r, b] = await t.nix.pathInfo([run.storePath, build.storePath]);
    expect(r?.references).toEqual([]);
    expect(b?.references).toEqual([]);
  });

  it("stack-run: busybox, the app user, CA bundle, time zones, no compiler", async () => {
    const r = await stackExec(run.storePath, [
      "sh",
      "-c",
      "echo shell-ok; grep '^app:x:1000:' /etc/passwd; test -s /etc/ssl/certs/ca-certificates.crt && echo ca-ok; " +
        "TZ=Europe/Paris date -d @0 +%H; command -v gcc || echo no-gcc; command -v node || echo no-node; ls -d /app /tmp",
    ]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split("\n")).toEqual(
      expect.arrayContaining([
        "shell-ok",
        "app:x:1000:1000:kiln app:/app:/bin/sh",
        "ca-ok",
        "01",
        "no-gcc",
        "no-node",
        "/app",
        "/tmp",
      ]),
    );
  });

  it("stack-run runs a vendored Node (the seed's, bound at /app): glibc and libstdc++ work", async () => {
    const lock = await readSeedLock(projectDir);
    const r = await stackExec(
      run.storePath,
      ["/app/bin/node", "-e", "console.log(process.version, require('tls').rootCertificates.length > 0)"],
      {
        roBinds: [{ src: join(lock.storePath, "node"), dest: "/app" }],
      },
    );
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe(`v${lock.node.version} true`);
  });

  it("stack-build: node-gyp compiles a C++ addon offline and Node loads it", async () => {
    const app = tempDir("kiln-addon-");
    await writeFile(
      join(app, "addon.cc"),
      `#include <node_api.h>
#include <string>
static napi_value Hello(napi_env env, napi_callback_info) {
  std::string s = std::string("addon:") + std::to_string(6 * 7);
  napi_value out;
  napi_create_string_utf8(env, s.c_str(), s.size(), &out);
  return out;
}
static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "hello", NAPI_AUTO_LENGTH, Hello, nullptr, &fn);
  napi_set_named_property(env, exports, "hello", fn);
  return exports;
}
NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
`,
    );
    await writeFile(
      join(app, "binding.gyp"),
      JSON.stringify({ targets: [{ target_name: "addon", sources: ["addon.cc"] }] }),
    );
    await writeFile(
      join(app, "package.json"),
      JSON.stringify({ name: "addon", version: "1.0.0", scripts: { install: "node-gyp rebuild" } }),
    );
    try {
      const r = await stackExec(
        build.storePath,
        [
          "sh",
          "-c",
          "npm run install >/tmp/gyp.log 2>&1 || { cat /tmp/gyp.log; exit 1; }; node -e 'console.log(require(\"./build/Release/addon.node\").hello())'",
        ],
        { binds: [{ src: app, dest: "/app" }], cwd: "/app", env: { npm_config_cache: "/tmp/npm-cache" } },
      );
      expect(r.stdout.trim()).toBe("addon:42");
      expect(r.exitCode).toBe(0);
    } finally {
      await rm(app, { recursive: true, force: true });
    }
  });

  it("stack-build has python3, make, binutils and bwrap; Node is the pinned 22", async () => {
    const lock = await readSeedLock(projectDir);
    const r = await stackExec(build.storePath, [
      "sh",
      "-c",
      "python3 -c 'import sys, json; print(sys.version_info[0])' && make --version | head -1 && ld --version | head -1 && bwrap --version && node --version && npm --version",
    ]);
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe("3");
    expect(lines[1]).toMatch(/^GNU Make/);
    expect(lines[2]).toMatch(/^GNU ld/);
    expect(lines[3]).toMatch(/^bubblewrap/);
    expect(lines[4]).toBe(`v${lock.node.version}`);
    expect(lines[5]).toBe(lock.npm.version);
  });

  it("export to the same deterministic tarball every time", async () => {
    const dir = tempDir("kiln-stack-export-");
    try {
      const a = await exportStack(t, "run", join(dir, "a.tar.gz"));
      const b = await exportStack(t, "run", join(dir, "b.tar.gz"));
      expect(a.sha256).toBe(b.sha256);
      expect(
        Buffer.compare(await readFile(join(dir, "a.tar.gz")), await readFile(join(dir, "b.tar.gz"))),
      ).toBe(0);
      const entries = await listTarGz(join(dir, "a.tar.gz"));
      const names = entries.map((e) => e.path);
      expect(names).toEqual([...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
      expect(names).toContain("usr/bin/busybox");
      for (const e of entries) {
        expect(e.uid).toBe(0);
        if (e.type === "File") expect(e.mtime).toBe(STACK_SOURCE_DATE_EPOCH);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("GC roots", () => {
  it("root each built stack under the data directory, visible to the collector", async () => {
    const t = testContext();
    const [run] = await buildStacks(t, ["run"]);
    const roots = await t.nix.listRoots();
    expect(roots).toContainEqual({ name: "stack-run", target: run?.storePath });
    const { execa } = await import("execa");
    const r = await execa("nix-store", ["--gc", "--print-roots"]);
    expect(r.stdout).toContain(`${join(t.config.dataDir, "gcroots", "stack-run")} -> ${run?.storePath}`);
  });
});
