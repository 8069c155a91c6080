/**
 * End to end, as a user: `kiln serve` as its own process, the client commands against it, the app
 * reached through the router; config, scale and rollback roll the dynos without dropping requests;
 * then kill -9 of the server in the middle of a build, a restart, and the records and dynos checked.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getApp } from "../../src/store/apps.js";
import { getBuild } from "../../src/store/builds.js";
import { openStore, STORE_FILE } from "../../src/store/db.js";
import { listDynoRows } from "../../src/store/dynos.js";
import { httpGet, kiln, kilnBin, NODE_WEB_GREETING, projectDir } from "../helpers.js";
import { freePort } from "../slugRunner.js";
import { tempDir } from "../tmp.js";

const fixture = (name: string) => join(projectDir, "test", "fixtures", "apps", name);

describe("the platform end to end", () => {
  const dataDir = tempDir("kiln-platform-");
  chmodSync(dataDir, 0o711);
  let apiPort = 0;
  let routerPort = 0;
  // source_blob URLs must be public https unless the operator allows the origin (KILN_FETCH_ALLOW).
  let blobPort = 0;
  let server: ChildProcess | undefined;
  let serverLog = "";
  const env = () => ({ KILN_DATA_DIR: dataDir, KILN_SERVER: `http://127.0.0.1:${apiPort}` });
  const k = (...args: string[]) => kiln(args, { env: env() });

  const startServer = async () => {
    server = spawn(
      process.execPath,
      [kilnBin, "serve", "--port", String(apiPort), "--router-port", String(routerPort)],
      {
        env: { ...process.env, KILN_DATA_DIR: dataDir, KILN_FETCH_ALLOW: `http://127.0.0.1:${blobPort}` },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    server.stderr?.on("data", (d) => (serverLog += d));
    const deadline = Date.now() + 60_000;
    while (!serverLog.includes("kiln API on")) {
      if (Date.now() > deadline || server.exitCode !== null)
        throw new Error(`kiln serve did not start:\n${serverLog}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const token = () => readFileSync(join(dataDir, "admin-token"), "utf8").trim();
  const api = async (path: string) =>
    (
      await fetch(`http://127.0.0.1:${apiPort}${path}`, { headers: { authorization: `Bearer ${token()}` } })
    ).json();
  /** A request as a browser would send it to http://APP.localhost:PORT/ (fetch cannot set Host). */
  const viaRouter = (path: string, host = "shop.localhost") => httpGet({ port: routerPort, path, host });
  const until = async (what: string, fn: () => Promise<boolean>, ms = 60_000) => {
    const deadline = Date.now() + ms;
    while (!(await fn().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${serverLog}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  /** GETs through the router until stopped; every answer must be a 200. */
  const hammer = () => {
    let stop = false;
    const statuses: number[] = [];
    const done = (async () => {
      while (!stop) statuses.push((await viaRouter("/").catch(() => ({ status: 0 }))).status);
    })();
    return {
      async end() {
        stop = true;
        await done;
        return statuses;
      },
    };
  };

  beforeAll(async () => {
    apiPort = await freePort();
    routerPort = await freePort();
    blobPort = await freePort();
    await startServer();
  });
  afterAll(async () => {
    server?.kill("SIGTERM");
    await new Promise((r) => server?.once("exit", r));
  });

  it("creates an app and deploys the Node web fixture, served through the router", async () => {
    const created = await k("apps:create", "shop");
    expect(created.exitCode).toBe(0);
    const deployed = await k("deploy", fixture("node-web"), "-a", "shop");
    expect(deployed.all).toMatch(/released shop v1/);
    expect(deployed.all).toContain(`http://shop.localhost:${routerPort}/`);
    expect(deployed.exitCode).toBe(0);
    expect(await viaRouter("/")).toEqual({ status: 200, body: NODE_WEB_GREETING });
    expect((await viaRouter("/", "nope.localhost")).status).toBe(404);
  });

  it("sets a config var: a new release the app sees, rolled out without a failed request", async () => {
    const load = hammer();
    expect((await k("config:set", "GREETING=hi there", "-a", "shop")).exitCode).toBe(0);
    await until(
      "the new release to serve",
      async () => (await viaRouter("/env/GREETING")).body === "hi there\n",
    );
    const statuses = await load.end();
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect((await k("releases", "-a", "shop")).stdout).toMatch(/^v2 .*Set GREETING$/m);
  });

  it("scales to two web dynos and round-robins between them", async () => {
    expect((await k("ps:scale", "web=2", "-a", "shop")).exitCode).toBe(0);
    await until("two web dynos up", async () => {
      const dynos = (await api("/v1/apps/shop/dynos")) as { state: string }[];
      return dynos.filter((d) => d.state === "up").length === 2;
    });
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add((await viaRouter("/env/DYNO")).body.trim());
    expect([...seen].sort()).toEqual(["web.1", "web.2"]);
  });

  it("rolls back to v1 (a new release, without the config var)", async () => {
    expect((await k("rollback", "v1", "-a", "shop")).exitCode).toBe(0);
    await until("the rollback to serve", async () => (await viaRouter("/env/GREETING")).body === "\n");
    expect((await k("releases", "-a", "shop")).stdout).toMatch(/^v3 .*Rollback to v1$/m);
  });

  it("streams the app's logs and runs one-off commands over the API", async () => {
    const logs = await k("logs", "shop", "-n", "200");
    expect(logs.exitCode).toBe(0);
    expect(logs.stdout).toMatch(/ kiln\[web\.1\]: State changed from starting to up$/m);
    expect(logs.stdout).toMatch(/ app\[web\.2\]: listening on 5000$/m);
    const run = await k("run", "shop", "--", 'echo "one-off as $DYNO"; exit 3');
    expect(run.stdout).toMatch(/^one-off as run\.\d{4}$/m);
    expect(run.stdout).toMatch(/kiln: exited with code 3$/);
    expect(run.exitCode).toBe(3);
  });

  it("reports the dynos in /metrics", async () => {
    const res = await fetch(`http://127.0.0.1:${apiPort}/metrics`, {
      headers: { authorization: `Bearer ${token()}` },
    });
    expect(await res.text()).toMatch(/^kiln_dynos\{state="up"\} 2$/m);
  });

  it("builds from a source_blob URL, checking its checksum", async () => {
    const tarball = execFileSync("tar", ["czf", "-", "-C", fixture("procfile-shell"), "."]);
    const sha = createHash("sha256").update(tarball).digest("hex");
    const blobs = createHttpServer((_req, res) => res.end(tarball));
    await new Promise<void>((r) => blobs.listen(blobPort, "127.0.0.1", () => r()));
    const url = `http://127.0.0.1:${(blobs.address() as AddressInfo).port}/src.tar.gz`;
    try {
      await k("apps:create", "blob");
      const post = (checksum: string) =>
        fetch(`http://127.0.0.1:${apiPort}/v1/apps/blob/builds`, {
          method: "POST",
          headers: { authorization: `Bearer ${token()}`, "content-type": "application/json" },
          body: JSON.stringify({ source_blob: { url, checksum } }),
        });
      const wrong = await post(`sha256:${"0".repeat(64)}`);
      expect(wrong.status).toBe(422);
      expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe(
        "source_checksum_mismatch",
      );
      const ok = await post(`sha256:${sha}`);
      expect(ok.status).toBe(201);
      const { id } = (await ok.json()) as { id: string };
      await until(
        "the blob build",
        async () => ((await api(`/v1/apps/blob/builds/${id}`)) as { status: string }).status === "succeeded",
      );
    } finally {
      blobs.close();
    }
  });

  it("lists the app's dynos with kiln ps -a", async () => {
    const ps = await k("ps", "-a", "shop");
    expect(ps.exitCode).toBe(0);
    expect(ps.stdout).toMatch(/^web\.1: up since .* \(v3, 0 restarts\)$/m);
    expect(ps.stdout).toMatch(/^web\.2: up since /m);
  });

  it("kiln dev rebuilds and rolls the app when a file changes", async () => {
    const src = tempDir("kiln-dev-src-");
    cpSync(fixture("node-web"), src, { recursive: true });
    await k("apps:create", "devapp");
    const dev = spawn(process.execPath, [kilnBin, "dev", src, "-a", "devapp"], {
      env: { ...process.env, ...env() },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let out = "";
    dev.stderr?.on("data", (d) => (out += d));
    const get = (path: string) => viaRouter(path, "devapp.localhost");
    try {
      await until("the first release to serve", async () => (await get("/")).status === 200, 120_000);
      const server = join(src, "server.js");
      writeFileSync(server, readFileSync(server, "utf8").replace("hello from node-web", "hello again"));
      await until(
        "the change to be live",
        async () => (await get("/")).body.startsWith("hello again"),
        120_000,
      );
      expect(out).toMatch(/file\(s\) changed: rebuilding/);
      await until("kiln dev to report v2", async () => /devapp v2 is live/.test(out));
    } finally {
      dev.kill("SIGINT");
      await new Promise((r) => dev.once("exit", r));
    }
  });

  it("survives kill -9 mid-build: the build is recorded as interrupted and the dynos come back", async () => {
    // A source Nix has not built yet, so the build is still running when the server dies.
    const src = tempDir("kiln-platform-src-");
    cpSync(fixture("node-web"), src, { recursive: true });
    writeFileSync(join(src, "version.txt"), `${Date.now()}\n`);
    const deploy = spawn(process.execPath, [kilnBin, "deploy", src, "-a", "shop"], {
      env: { ...process.env, ...env() },
      stdio: "ignore",
    });
    let buildId = "";
    await until("the build to be running", async () => {
      const builds = (await api("/v1/apps/shop/builds")) as { id: string; status: string }[];
      const b = builds.find((x) => x.status === "building");
      buildId = b?.id ?? "";
      return !!b;
    });
    // What the build has on disk right now: its source, its unpack dir and (soon) its work dir.
    const deadPid = server?.pid as number;
    const leftovers = () => ({
      tmp: readdirSync(join(dataDir, "tmp")).filter(
        (n) => n.startsWith(`upload-${deadPid}-`) || n.startsWith(`build-${deadPid}-`),
      ),
      partials: readdirSync(join(dataDir, "sources")).filter((n) => n.endsWith(".partial")),
      torn: readdirSync(join(dataDir, "builds", "shop")).filter((n) => n.includes(".tmp-")),
    });
    await until("the build's work dir", async () => leftovers().tmp.length >= 2);
    const source = (await api(`/v1/apps/shop/builds/${buildId}`)) as { id: string };
    expect(source.id).toBe(buildId);
    server?.kill("SIGKILL");
    await new Promise((r) => server?.once("exit", r));
    deploy.kill("SIGKILL");
    // A torn upload and a torn atomic write, as a kill mid-write leaves them.
    writeFileSync(join(dataDir, "sources", "torn.tar.gz.partial"), "half");
    writeFileSync(join(dataDir, "builds", "shop", `x.json.tmp-${deadPid}-1`), "{");
    const db0 = openStore(join(dataDir, STORE_FILE));
    const sourcePath = getBuild(db0, buildId).sourcePath;
    db0.close();
    expect(existsSync(sourcePath)).toBe(true);
    expect(leftovers()).toMatchObject({
      partials: ["torn.tar.gz.partial"],
      torn: [`x.json.tmp-${deadPid}-1`],
    });
    serverLog = "";
    await startServer();
    expect(serverLog).toContain("marked 1 interrupted build(s) failed");
    // The interrupted build cannot be retried: its files are gone, its record stays.
    expect(leftovers()).toEqual({ tmp: [], partials: [], torn: [] });
    expect(existsSync(sourcePath)).toBe(false);
    expect(serverLog).toMatch(
      /removed what interrupted builds left: 1 source\(s\), 1 torn upload\(s\), \d+ work dir\(s\), 1 torn file\(s\)/,
    );
    const b = (await api(`/v1/apps/shop/builds/${buildId}`)) as { status: string; failure_reason: string };
    expect(b).toMatchObject({ status: "failed", failure_reason: "interrupted" });
    // Every release and the formation survived; the dynos are started again from them.
    expect(((await api("/v1/apps/shop/releases")) as unknown[]).length).toBe(3);
    await until("the web dynos back", async () => (await viaRouter("/")).status === 200);
    await until("both web dynos back", async () => {
      const dynos = (await api("/v1/apps/shop/dynos")) as { state: string }[];
      return dynos.filter((d) => d.state === "up").length === 2;
    });
    // The records in the state file say the same: the dead server's rows were cleared.
    const db = openStore(join(dataDir, STORE_FILE));
    try {
      const shop = getApp(db, "shop");
      await until(
        "the dyno records",
        async () => listDynoRows(db, shop.id).filter((d) => d.state === "up").length === 2,
      );
      expect(
        listDynoRows(db, shop.id)
          .map((d) => d.name)
          .sort(),
      ).toEqual(["web.1", "web.2"]);
    } finally {
      db.close();
    }
  });
});
