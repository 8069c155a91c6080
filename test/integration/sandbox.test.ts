import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toNix } from "../../src/nix/escape.js";
import { readSeedLock } from "../../src/seed/lock.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { projectDir, testContext } from "../helpers.js";

describe("kiln's Nix settings", () => {
  const t = testContext();
  const server = createServer((_req, res) => res.end("reached"));
  let port = 0;

  beforeAll(async () => {
    await ensureSeed(t);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("build in the sandbox even though /etc/nix/nix.conf says sandbox = false: no network", async () => {
    const lock = await readSeedLock(projectDir);
    const busybox = join(lock.storePath, "deb/busybox-static/bin/busybox");
    // Outside the sandbox the same command reaches the server, so the failure below is the sandbox.
    const host = await execa(busybox, ["nc", "127.0.0.1", String(port)], {
      input: "GET / HTTP/1.0\r\n\r\n",
      reject: false,
    });
    expect(host.stdout).toContain("reached");

    const script = `echo GET / HTTP/1.0 | nc 127.0.0.1 ${port} > $out || { echo "no network in the sandbox"; exit 7; }`;
    const expr = `import ${toNix(join(projectDir, "test/fixtures/nix/try-network.nix"))} ${toNix({
      narHash: lock.narHash,
      script,
      nonce: `${process.pid}-${Date.now()}`,
    })}`;
    await expect(t.nix.build([{ expr }])).rejects.toMatchObject({
      code: "nix_build_failed",
      exitCode: 7,
      logTail: expect.arrayContaining(["no network in the sandbox"]),
    });
  });

  it("toNix round-trips hostile strings through the real evaluator", async () => {
    const value = {
      'a"b': ['${builtins.abort "x"}', "\\${x}", "''${y}", "line\nbreak\ttab\r", "$", "\\"],
      n: [-3, 0, 42],
      ok: true,
      nothing: null,
    };
    const back = await t.nix.eval({ expr: toNix(value) });
    expect(back).toEqual(value);
  });
});
