/**
 * Network on a tenant's behalf (issue 12, item 4): a lock's `resolved` URL and a `source_blob` URL
 * may not aim the host at its own loopback services. Each attack is first shown to reach a real
 * local server where nothing stops it (Nix's fetcher with the origin allowed, plain fetch), then
 * refused by kiln before any request is made.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePackageLock, planDependencies } from "../../src/buildpacks/nodejs.js";
import { buildApp, npmRegistry } from "../../src/builds/build.js";
import { toNix } from "../../src/nix/escape.js";
import { type ControlPlane, startControlPlane } from "../../src/serve/controlPlane.js";
import { isPublicAddress } from "../../src/source/remoteFetch.js";
import { projectDir, testContext } from "../helpers.js";
import { tempDir } from "../tmp.js";

/** A loopback HTTP server counting its requests (the "host service" an attacker aims at). */
async function loopbackServer(handler?: (url: string, res: import("node:http").ServerResponse) => void) {
  const hits: string[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(req.url ?? "");
    if (handler) handler(req.url ?? "", res);
    else res.end(`internal admin page ${randomBytes(4).toString("hex")}`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { hits, port, origin: `http://127.0.0.1:${port}`, close: () => server.close() };
}

const INTEGRITY = `sha512-${randomBytes(64).toString("base64")}`;

function evilApp(resolved: string): string {
  const dir = tempDir("kiln-trust-deps-");
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify({ name: "evil", version: "1.0.0", dependencies: { probe: "1.0.0" } }),
  );
  writeFileSync(
    join(dir, "package-lock.json"),
    JSON.stringify({
      name: "evil",
      version: "1.0.0",
      lockfileVersion: 3,
      requires: true,
      packages: {
        "": { name: "evil", version: "1.0.0", dependencies: { probe: "1.0.0" } },
        "node_modules/probe": { version: "1.0.0", resolved, integrity: INTEGRITY },
      },
    }),
  );
  return dir;
}

describe("dependency tarballs come from the registry's origin alone", () => {
  let svc: Awaited<ReturnType<typeof loopbackServer>>;
  beforeAll(async () => {
    svc = await loopbackServer();
  });
  afterAll(() => svc.close());

  const nixPlan = (dir: string, registry: string, allow: string[]) =>
    testContext().nix.eval({
      expr: `(import ${toNix(join(projectDir, "nix", "build", "node-deps.nix"))} { source = ${toNix(dir)}; registry = ${toNix(registry)}; busybox = "unused"; allow = ${toNix(allow)}; }).plan`,
    }) as Promise<{ name: string; url: string; integrity: string }[]>;

  it("TypeScript and Nix both refuse a loopback `resolved`, naming the entry, and agree when it is allowed", async () => {
    const registry = await npmRegistry();
    for (const resolved of [
      `${svc.origin}/probe.tgz`,
      "http://169.254.169.254/latest/meta-data",
      `${registry.replace(/\/$/, "")}:8443/probe.tgz`,
      `${registry.replace(/^https:/, "http:")}probe.tgz`,
    ]) {
      const dir = evilApp(resolved);
      const lock = parsePackageLock(readFileSync(join(dir, "package-lock.json"), "utf8"));
      expect(() => planDependencies(lock, registry)).toThrow(
        /node_modules\/probe: its resolved URL is not on the registry's origin/,
      );
      await expect(nixPlan(dir, registry, [])).rejects.toThrow(
        /node_modules\/probe: its resolved URL is not on the registry's origin/,
      );
    }
    // Allowed by the operator: the same plan on both sides.
    const dir = evilApp(`${svc.origin}/probe.tgz`);
    const lock = parsePackageLock(readFileSync(join(dir, "package-lock.json"), "utf8"));
    const ts = planDependencies(lock, registry, { allow: [svc.origin] }).tarballs;
    expect(ts.map((t) => t.url)).toEqual([`${svc.origin}/probe.tgz`]);
    expect(await nixPlan(dir, registry, [svc.origin])).toEqual(
      ts.map(({ name, url, integrity }) => ({ name, url, integrity })),
    );
    // The registry's own origin, spelled with its default port and capitals, is the registry.
    const same = evilApp(
      `${registry.replace(/^https:\/\/([^/]+)\//, (_m, h: string) => `HTTPS://${h.toUpperCase()}:443/`)}probe/-/probe-1.0.0.tgz`,
    );
    const sameLock = parsePackageLock(readFileSync(join(same, "package-lock.json"), "utf8"));
    expect(planDependencies(sameLock, registry).tarballs).toHaveLength(1);
  });

  it("a build with a loopback `resolved` reaches the host service when allowed (control), and is refused before building otherwise", async () => {
    const dataDir = tempDir("kiln-trust-depsbuild-");
    const dir = evilApp(`${svc.origin}/probe.tgz`);
    // Control: with the origin allowed, Nix's fetcher really makes the request on the host network.
    const before = svc.hits.length;
    const allowed = await buildApp(testContext({ dataDir, fetchAllow: [svc.origin] }), { appDir: dir }).catch(
      (e: unknown) => e,
    );
    // The body is not the pinned tarball: Nix fetched it, then refused its hash.
    expect(allowed).toMatchObject({ message: expect.stringMatching(/hash mismatch/) });
    expect(svc.hits.length).toBeGreaterThan(before);
    // kiln as configured by default: refused with the entry named, and no request made.
    const hits = svc.hits.length;
    const refused = await buildApp(testContext({ dataDir }), { appDir: dir }).catch((e: unknown) => e);
    expect(refused).toMatchObject({
      code: "unsupported_dependencies",
      message: expect.stringMatching(/node_modules\/probe: its resolved URL is not on the registry's origin/),
    });
    expect(svc.hits.length).toBe(hits);
  });
});

describe("source_blob URLs: https to public addresses only, redirects checked, no port oracle", () => {
  const dataDir = tempDir("kiln-trust-blob-");
  let cp: ControlPlane;
  let token = "";
  let secret: Awaited<ReturnType<typeof loopbackServer>>;
  let allowedBlobs: Awaited<ReturnType<typeof loopbackServer>>;
  let tarball: Buffer;

  beforeAll(async () => {
    tarball = execFileSync("tar", [
      "czf",
      "-",
      "-C",
      join(projectDir, "test", "fixtures", "apps", "procfile-shell"),
      ".",
    ]);
    secret = await loopbackServer();
    allowedBlobs = await loopbackServer((url, res) => {
      if (url === "/redirect") {
        res.writeHead(302, { location: `${secret.origin}/via-redirect` });
        res.end();
      } else res.end(tarball);
    });
    cp = await startControlPlane(testContext({ dataDir, fetchAllow: [allowedBlobs.origin] }), {
      host: "127.0.0.1",
      port: 0,
      dynos: false,
    });
    token = cp.adminToken ?? "";
    await fetch(`${cp.url}/v1/apps`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "blob" }),
    });
  });
  afterAll(async () => {
    await cp?.close();
    secret.close();
    allowedBlobs.close();
  });

  const post = async (url: string, checksum?: string) => {
    const r = await fetch(`${cp.url}/v1/apps/blob/builds?release=false`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ source_blob: { url, ...(checksum ? { checksum } : {}) } }),
    });
    return { status: r.status, body: (await r.json()) as { error?: { code: string; message: string } } };
  };

  it("loopback, private and link-local addresses are refused before connecting (control: plain fetch reaches them)", async () => {
    // Control: what the server used to do (fetch, following redirects) reads the loopback service.
    const plain = await fetch(`${secret.origin}/admin`, { redirect: "follow" });
    expect(await plain.text()).toMatch(/^internal admin page/);
    const hits = secret.hits.length;
    for (const url of [
      `${secret.origin}/admin`,
      `https://127.0.0.1:${secret.port}/admin`,
      `https://localhost:${secret.port}/admin`,
      `https://[::1]:${secret.port}/admin`,
      `https://[::ffff:127.0.0.1]:${secret.port}/admin`,
      "https://169.254.169.254/latest/meta-data",
      "https://10.0.0.1/x.tgz",
      "https://192.168.1.1/x.tgz",
    ]) {
      const r = await post(url);
      expect(r.status, url).toBe(422);
      expect(r.body.error?.code, url).toBe("source_url_refused");
    }
    expect(secret.hits.length).toBe(hits);
    expect(isPublicAddress("8.8.8.8")).toBe(true);
    expect(isPublicAddress("100.64.0.1")).toBe(false);
  });

  it("an allowed origin works; a redirect from it to a loopback service is refused at the hop", async () => {
    const sha = createHash("sha256").update(tarball).digest("hex");
    const ok = await post(`${allowedBlobs.origin}/src.tar.gz`, `sha256:${sha}`);
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    const hits = secret.hits.length;
    const r = await post(`${allowedBlobs.origin}/redirect`);
    expect(r.status).toBe(422);
    expect(r.body.error?.code).toBe("source_url_refused");
    expect(secret.hits.length).toBe(hits);
  });

  it("an open port and a closed one give the same answer", async () => {
    // Both allowed (so kiln really connects): one port with a server, one without.
    const closedPort = await new Promise<number>((res) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => res(p));
      });
    });
    const cp2 = await startControlPlane(
      testContext({
        dataDir: tempDir("kiln-trust-blob2-"),
        fetchAllow: [`http://127.0.0.1:${closedPort}`],
      }),
      { host: "127.0.0.1", port: 0, dynos: false },
    );
    try {
      const auth = { authorization: `Bearer ${cp2.adminToken}`, "content-type": "application/json" };
      await fetch(`${cp2.url}/v1/apps`, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ name: "blob" }),
      });
      const ask = async (port: number) => {
        const r = await fetch(`${cp2.url}/v1/apps/blob/builds`, {
          method: "POST",
          headers: auth,
          body: JSON.stringify({ source_blob: { url: `http://127.0.0.1:${port}/x.tgz` } }),
        });
        const body = (await r.json()) as { error: { code: string; message: string } };
        return {
          status: r.status,
          code: body.error.code,
          message: body.error.message.replace(String(port), "PORT"),
        };
      };
      // Not allowed, open or closed: refused alike, without connecting.
      expect(await ask(secret.port)).toEqual(await ask(closedPort + 1));
      // Allowed but closed: "cannot download", with no errno or reason.
      const closed = await ask(closedPort);
      expect(closed.code).toBe("source_unreachable");
      expect(closed.message).toBe("cannot download the source from http://127.0.0.1:PORT/x.tgz");
    } finally {
      await cp2.close();
    }
  });
});
