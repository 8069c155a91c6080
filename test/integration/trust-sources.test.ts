/**
 * The host trusts nothing an upload hands it (issue 12, items 1, 5 and 7): a symlink chain that
 * lexical checks pass but the kernel resolves out of the tree, a .buildpacks naming a host path,
 * and a gzip bomb. Each attack is first shown to work where nothing stops it (plain tar, plain
 * gunzip), then refused by kiln through its real API over a socket, leaking nothing.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../src/builds/build.js";
import { type ControlPlane, startControlPlane } from "../../src/serve/controlPlane.js";
import { kilnBin, projectDir, testContext } from "../helpers.js";
import { tempDir } from "../tmp.js";

/** `u -> .`, `up1 -> u/..`, … `upN -> up(N-1)/..`: each looks like `.` to normalize(), each climbs. */
function writeChain(dir: string, depth: number): string {
  symlinkSync(".", join(dir, "u"));
  symlinkSync("u/..", join(dir, "up1"));
  for (let i = 2; i <= depth; i++) symlinkSync(`up${i - 1}/..`, join(dir, `up${i}`));
  return `up${depth}`;
}

function tarOf(dir: string): Buffer {
  return execFileSync("tar", ["czf", "-", "-C", dir, "."]);
}

/** A directory holding a secret no tenant may read, and the chain app pointing its files at it. */
function plantSecretAndChain() {
  const secretDir = tempDir("kiln-trust-secret-");
  const secret = `TOPSECRET-${randomBytes(12).toString("hex")}`;
  writeFileSync(join(secretDir, "secret"), `${secret}\n`, { mode: 0o600 });
  const app = tempDir("kiln-trust-app-");
  // Deep enough to reach / from wherever it is unpacked (`..` at / stays at /).
  const top = writeChain(app, 24);
  const target = `${top}${secretDir}/secret`;
  for (const f of [".buildpacks", "Procfile", "package.json", "package-lock.json"])
    symlinkSync(target, join(app, f));
  return { secret, secretDir, app };
}

describe("uploaded sources: links resolved for real, .buildpacks kept to the app", () => {
  const dataDir = tempDir("kiln-trust-");
  const t = testContext({ dataDir });
  let cp: ControlPlane;
  let token = "";
  const auth = () => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    cp = await startControlPlane(t, { host: "127.0.0.1", port: 0, dynos: false });
    token = cp.adminToken ?? "";
    const r = await fetch(`${cp.url}/v1/apps`, {
      method: "POST",
      headers: { ...auth(), "content-type": "application/json" },
      body: JSON.stringify({ name: "chain" }),
    });
    expect(r.status).toBe(201);
  });
  afterAll(async () => {
    await cp?.close();
  });

  async function upload(body: Buffer) {
    const r = await fetch(`${cp.url}/v1/apps/chain/builds`, {
      method: "POST",
      headers: { ...auth(), "content-type": "application/gzip" },
      body: new Uint8Array(body),
    });
    return { status: r.status, text: await r.text() };
  }

  it("a symlink chain that climbs out is refused (422) and nothing it points at is read", async () => {
    const { secret, app } = plantSecretAndChain();
    const archive = tarOf(app);
    // Control: unpacked by plain tar, the chain really reaches the secret.
    const plain = tempDir("kiln-trust-plain-");
    execFileSync("tar", ["xzf", "-", "-C", plain], { input: archive });
    expect(readFileSync(join(plain, ".buildpacks"), "utf8")).toContain(secret);
    // And every link in it passes a lexical check (the old rule): normalised, none leaves the tree.
    const { normalize, dirname } = await import("node:path");
    for (const name of readdirSync(plain)) {
      const target = execFileSync("readlink", [join(plain, name)], { encoding: "utf8" }).trim();
      const lexical = normalize(`${dirname(name)}/${target}`);
      expect(lexical.startsWith("..") || target.startsWith("/")).toBe(false);
    }

    const r = await upload(archive);
    expect(r.status).toBe(422);
    expect(JSON.parse(r.text).error.code).toBe("source_unsafe_link");
    expect(r.text).toMatch(/resolves outside the app/);
    expect(r.text).not.toContain(secret);
    const builds = await fetch(`${cp.url}/v1/apps/chain/builds`, { headers: auth() });
    expect(await builds.json()).toEqual([]);
    // Nothing of it stays on the server.
    expect(readdirSync(join(dataDir, "sources")).filter((f) => !f.startsWith("."))).toEqual([]);
  });

  it("the same chain in a local `kiln build DIR` is refused when the source is snapshotted", async () => {
    const { secret, app } = plantSecretAndChain();
    const err = await buildApp(t, { appDir: app }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "source_unsafe_link" });
    expect(String((err as Error).message)).not.toContain(secret);
  });

  it("a link in the middle of a path that stays inside is still fine", async () => {
    const app = tempDir("kiln-trust-ok-");
    mkdirSync(join(app, "public"));
    writeFileSync(join(app, "public", "index.html"), "<h1>hi</h1>\n");
    symlinkSync("public", join(app, "www"));
    symlinkSync("www/../public/index.html", join(app, "index.html"));
    const r = await upload(tarOf(app));
    expect(r.status, r.text).toBe(201);
  });

  it(".buildpacks naming a host path is refused (the operator's -b PATH is not)", async () => {
    const app = tempDir("kiln-trust-bp-");
    writeFileSync(join(app, "index.html"), "<h1>hi</h1>\n");
    const hostBuildpack = join(projectDir, "test", "fixtures", "buildpacks", "greeting");
    writeFileSync(join(app, ".buildpacks"), `${hostBuildpack}\n`);
    const r = await upload(tarOf(app));
    expect(r.status).toBe(201);
    const build = JSON.parse(r.text) as { id: string };
    // The build fails before anything runs: the log names the line, not the path.
    let status = "";
    let log = "";
    for (let i = 0; i < 600 && !["failed", "succeeded"].includes(status); i++) {
      await new Promise((res) => setTimeout(res, 200));
      const b = (await (
        await fetch(`${cp.url}/v1/apps/chain/builds/${build.id}`, { headers: auth() })
      ).json()) as {
        status: string;
      };
      status = b.status;
    }
    log = await (
      await fetch(`${cp.url}/v1/apps/chain/builds/${build.id}/output`, { headers: auth() })
    ).text();
    expect(status).toBe("failed");
    expect(log).toMatch(/\.buildpacks line 1 names a path that is not a directory inside the app/);
    expect(log).not.toContain(hostBuildpack);
    // Control: the same directory given by the operator is a buildpack kiln accepts.
    const { resolveBuildpackRef } = await import("../../src/buildpacks/registry.js");
    expect((await resolveBuildpackRef(t.config, hostBuildpack, process.cwd())).dir).toBe(hostBuildpack);
  });
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((res) => s.listen(0, "127.0.0.1", res));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

/** ~4 MB of gzip that inflates to 4 GiB: a tar header, then 64 gzip members of 64 MiB of zeros. */
function gzipBomb(): Buffer {
  const header = Buffer.alloc(512);
  header.write("package.json", 0);
  header.write("0000644\0", 100);
  header.write("0000000\0", 108);
  header.write("0000000\0", 116);
  header.write("00000000002\0", 124);
  header.write("00000000000\0", 136);
  header.write("        ", 148);
  header.write("0", 156);
  header.write("ustar\x0000", 257);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  const first = gzipSync(Buffer.concat([header, Buffer.from("{}"), Buffer.alloc(510)]));
  const zeros = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
  return Buffer.concat([first, ...Array.from({ length: 64 }, () => zeros)]);
}

describe("a gzip bomb through a spawned `kiln serve`", () => {
  const dataDir = tempDir("kiln-trust-bomb-");
  const token = `kiln_${randomBytes(16).toString("hex")}`;
  let child: ReturnType<typeof spawn> | undefined;
  let url = "";

  beforeAll(async () => {
    const port = await freePort();
    child = spawn(
      "node",
      [
        kilnBin,
        "--data-dir",
        dataDir,
        "serve",
        "--no-dynos",
        "--port",
        String(port),
        "--max-source-mb",
        "50",
      ],
      { env: { ...process.env, KILN_ADMIN_TOKEN: token }, stdio: ["ignore", "pipe", "pipe"] },
    );
    url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 300; i++) {
      const up = await fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (up) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const r = await fetch(`${url}/v1/apps`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "bomb" }),
    });
    expect(r.status).toBe(201);
  });
  afterAll(() => {
    child?.kill("SIGTERM");
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("is refused with a 422 while inflating, and the server's peak memory stays bounded", async () => {
    const bomb = gzipBomb();
    expect(bomb.length).toBeLessThan(8 * 1024 * 1024);
    // Control: it really inflates to 4 GiB (counted as a stream here, never held).
    const { createGunzip } = await import("node:zlib");
    const { Readable } = await import("node:stream");
    let inflated = 0;
    for await (const c of Readable.from([bomb]).pipe(createGunzip()) as AsyncIterable<Buffer>)
      inflated += c.length;
    expect(inflated).toBeGreaterThan(4 * 1024 ** 3);

    const r = await fetch(`${url}/v1/apps/bomb/builds`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/gzip" },
      body: new Uint8Array(bomb),
    });
    const text = await r.text();
    expect(r.status, text).toBe(422);
    expect(JSON.parse(text).error.message).toMatch(/gzip bomb|while inflating/);
    const status = readFileSync(`/proc/${child?.pid}/status`, "utf8");
    const hwmKiB = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
    // A Node server with fastify and SQLite peaks near 100 MiB; inflating the bomb would be GiBs.
    console.info(`kiln serve peak RSS (VmHWM) after the bomb: ${Math.round(hwmKiB / 1024)} MiB`);
    expect(hwmKiB).toBeGreaterThan(0);
    expect(hwmKiB).toBeLessThan(400 * 1024);
  });
});
