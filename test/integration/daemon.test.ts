import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toNix } from "../../src/nix/escape.js";
import { readSeedLock } from "../../src/seed/lock.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { buildStacks } from "../../src/stacks/stacks.js";
import { projectDir, testContext } from "../helpers.js";
import { tempDir } from "../tmp.js";

// A private nix-daemon on its own socket, started with the machine's /etc/nix/nix.conf as it is
// (Debian's says sandbox = false). kiln talks to it as a client, as it does on hosts where Nix is
// multi-user, and its builds must still be sandboxed.
describe("kiln through nix-daemon", () => {
  let daemon: ChildProcess;
  let dir: string;
  let socket: string;
  const server = createServer((_req, res) => res.end("reached"));
  let port = 0;

  beforeAll(async () => {
    await ensureSeed(testContext());
    dir = tempDir("kiln-daemon-");
    socket = join(dir, "socket");
    daemon = spawn("nix-daemon", [], {
      env: { ...process.env, NIX_DAEMON_SOCKET_PATH: socket },
      stdio: "ignore",
    });
    for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(socket)).toBe(true);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    daemon?.kill();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  it("sees the seed and the stacks built in the local store", async () => {
    const t = testContext({ nixStore: `unix://${socket}` });
    const lock = await readSeedLock(projectDir);
    expect(await t.nix.isValid(lock.storePath)).toBe(true);
    const [run] = await buildStacks(t, ["run"]);
    const [local] = await buildStacks(testContext(), ["run"]);
    expect(run?.storePath).toBe(local?.storePath);
  });

  it("builds in the sandbox even though the daemon's nix.conf says sandbox = false", async () => {
    const t = testContext({ nixStore: `unix://${socket}` });
    const lock = await readSeedLock(projectDir);
    const expr = `import ${toNix(join(projectDir, "test/fixtures/nix/try-network.nix"))} ${toNix({
      narHash: lock.narHash,
      script: `echo GET / HTTP/1.0 | nc 127.0.0.1 ${port} > $out || { echo "no network in the sandbox"; exit 7; }`,
      nonce: `daemon-${process.pid}-${Date.now()}`,
    })}`;
    await expect(t.nix.build([{ expr }])).rejects.toMatchObject({ code: "nix_build_failed", exitCode: 7 });
  });
});
