/**
 * The HTTP API: through fastify's inject() for the resources, and over a real socket for a build
 * from upload to release with its output streamed; then a restart that recovers the records.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "../../src/serve/controlPlane.js";
import { createApp } from "../../src/store/apps.js";
import { createBuild, getBuild, startBuild } from "../../src/store/builds.js";
import { openStore, STORE_FILE } from "../../src/store/db.js";
import { craftTarGz, projectDir, testContext } from "../helpers.js";
import { tempDir } from "../tmp.js";

const fixture = (name: string) => join(projectDir, "test", "fixtures", "apps", name);

function tarOf(dir: string): Buffer {
  return execFileSync("tar", ["czf", "-", "-C", dir, "."]);
}

describe("the HTTP API", () => {
  const dataDir = tempDir("kiln-api-");
  const t = testContext({ dataDir });
  let cp: ControlPlane;
  let token = "";
  const auth = () => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    cp = await startControlPlane(t, { host: "127.0.0.1", port: 0, maxSourceBytes: 5 * 1024 * 1024 });
    token = cp.adminToken ?? "";
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("creates the admin token once, keeps only its hash, and guards every route but /healthz", async () => {
    expect(token).toMatch(/^kiln_/);
    expect(readFileSync(cp.adminTokenFile, "utf8").trim()).toBe(token);
    expect((await cp.api.inject({ url: "/healthz" })).statusCode).toBe(200);
    const denied = await cp.api.inject({ url: "/v1/apps" });
    expect(denied.statusCode).toBe(401);
    expect(denied.json().error.code).toBe("unauthorized");
    expect(
      (await cp.api.inject({ url: "/v1/apps", headers: { authorization: "Bearer nope" } })).statusCode,
    ).toBe(401);
    expect((await cp.api.inject({ url: "/metrics" })).statusCode).toBe(401);
  });

  it("lets an admin make users and their tokens, list and revoke them; others may not", async () => {
    expect(
      (await cp.api.inject({ method: "POST", url: "/v1/users", headers: auth(), payload: { name: "ci" } }))
        .statusCode,
    ).toBe(201);
    const made = await cp.api.inject({
      method: "POST",
      url: "/v1/tokens",
      headers: auth(),
      payload: { name: "ci", user: "ci" },
    });
    expect(made.statusCode).toBe(201);
    const ci = made.json() as { id: string; token: string; admin: boolean; user: string };
    expect(ci).toMatchObject({ admin: false, user: "ci" });
    const asCi = { authorization: `Bearer ${ci.token}` };
    expect((await cp.api.inject({ url: "/v1/apps", headers: asCi })).statusCode).toBe(200);
    expect((await cp.api.inject({ url: "/v1/users", headers: asCi })).statusCode).toBe(403);
    // A user sees its own tokens only; the admin sees all.
    const own = (await cp.api.inject({ url: "/v1/tokens", headers: asCi })).json() as { name: string }[];
    expect(own.map((t) => t.name)).toEqual(["ci"]);
    const list = (await cp.api.inject({ url: "/v1/tokens", headers: auth() })).json() as { name: string }[];
    expect(list.map((t) => t.name)).toEqual(["admin", "ci"]);
    expect(
      (await cp.api.inject({ method: "DELETE", url: `/v1/tokens/${ci.id}`, headers: auth() })).statusCode,
    ).toBe(200);
    expect((await cp.api.inject({ url: "/v1/apps", headers: asCi })).statusCode).toBe(401);
  });

  it("creates, lists, shows and deletes apps, with 409, 404 and 422 where due", async () => {
    const created = await cp.api.inject({
      method: "POST",
      url: "/v1/apps",
      headers: auth(),
      payload: { name: "scratch" },
    });
    expect(created.statusCode).toBe(201);
    expect(
      (
        await cp.api.inject({
          method: "POST",
          url: "/v1/apps",
          headers: auth(),
          payload: { name: "scratch" },
        })
      ).statusCode,
    ).toBe(409);
    const bad = await cp.api.inject({
      method: "POST",
      url: "/v1/apps",
      headers: auth(),
      payload: { nme: "x" },
    });
    expect(bad.statusCode).toBe(422);
    expect(bad.json().error).toMatchObject({ code: "invalid_body", field: "name" });
    const badName = await cp.api.inject({
      method: "POST",
      url: "/v1/apps",
      headers: auth(),
      payload: { name: "Not OK" },
    });
    expect(badName.statusCode).toBe(422);
    expect(
      (await cp.api.inject({ url: "/v1/apps", headers: auth() })).json().map((a: { name: string }) => a.name),
    ).toContain("scratch");
    expect((await cp.api.inject({ url: "/v1/apps/nope", headers: auth() })).statusCode).toBe(404);
    expect(
      (await cp.api.inject({ method: "DELETE", url: "/v1/apps/scratch", headers: auth() })).statusCode,
    ).toBe(200);
    expect((await cp.api.inject({ url: "/v1/apps/scratch", headers: auth() })).statusCode).toBe(404);
  });

  it("refuses a wrong content type (415) and an oversize upload (413) before reading it", async () => {
    await cp.api.inject({ method: "POST", url: "/v1/apps", headers: auth(), payload: { name: "big" } });
    const text = await cp.api.inject({
      method: "POST",
      url: "/v1/apps/big/builds",
      headers: { ...auth(), "content-type": "text/plain" },
      payload: "hello",
    });
    expect(text.statusCode).toBe(415);
    const big = await cp.api.inject({
      method: "POST",
      url: "/v1/apps/big/builds",
      headers: { ...auth(), "content-type": "application/gzip" },
      payload: Buffer.alloc(6 * 1024 * 1024),
    });
    expect(big.statusCode).toBe(413);
    expect(big.json().error.code).toBe("payload_too_large");
    expect((await cp.api.inject({ url: "/v1/apps/big/builds", headers: auth() })).json()).toEqual([]);
  });

  it("answers malformed, mistyped and hostile input with 4xx and records nothing", async () => {
    await cp.api.inject({ method: "POST", url: "/v1/apps", headers: auth(), payload: { name: "hostile" } });
    const json = { ...auth(), "content-type": "application/json" };
    expect(
      (await cp.api.inject({ method: "POST", url: "/v1/apps", headers: json, payload: "{not json" }))
        .statusCode,
    ).toBe(400);
    expect(
      (await cp.api.inject({ method: "POST", url: "/v1/apps", headers: json, payload: { name: 7 } }))
        .statusCode,
    ).toBe(422);
    expect(
      (await cp.api.inject({ method: "POST", url: "/v1/apps", headers: auth(), payload: { name: "../etc" } }))
        .statusCode,
    ).toBe(422);
    expect((await cp.api.inject({ url: "/v1/apps/..%2F..%2Fetc", headers: auth() })).statusCode).toBe(404);
    const big = await cp.api.inject({
      method: "POST",
      url: "/v1/apps",
      headers: json,
      payload: JSON.stringify({ name: "x".repeat(2 << 20) }),
    });
    expect(big.statusCode).toBe(413);
    const sources = join(dataDir, "sources");
    const before = readdirSync(sources).length;
    for (const entries of [
      [{ name: "../evil", type: "file" as const, data: "x" }],
      [{ name: "dev", type: "chr" as const }],
      [
        { name: "up", type: "symlink" as const, target: "/tmp" },
        { name: "up/evil", type: "file" as const, data: "x" },
      ],
    ]) {
      const r = await cp.api.inject({
        method: "POST",
        url: "/v1/apps/hostile/builds",
        headers: { ...auth(), "content-type": "application/gzip" },
        payload: readFileSync(craftTarGz(entries)),
      });
      expect(r.statusCode).toBe(422);
      expect(r.json().error.code).toBe("source_unsafe_entry");
    }
    expect((await cp.api.inject({ url: "/v1/apps/hostile/builds", headers: auth() })).json()).toEqual([]);
    expect(readdirSync(sources).length).toBe(before);
  });

  it("builds an uploaded source over a real socket, streams its output, and cuts a release", async () => {
    await cp.api.inject({ method: "POST", url: "/v1/apps", headers: auth(), payload: { name: "web" } });
    const res = await fetch(`${cp.url}/v1/apps/web/builds`, {
      method: "POST",
      headers: { ...auth(), "content-type": "application/gzip" },
      body: new Blob([new Uint8Array(tarOf(fixture("node-web")))]),
    });
    expect(res.status).toBe(201);
    const build = (await res.json()) as { id: string; output_stream_url: string; status: string };
    expect(["pending", "building"]).toContain(build.status);
    const out = await (await fetch(`${cp.url}${build.output_stream_url}`, { headers: auth() })).text();
    expect(out).toMatch(/^-----> Unpacking the source/m);
    // (The build's own lines appear only when Nix builds; an earlier identical build is reused.)
    expect(out).toMatch(/^-----> building$/m);
    expect(out).toMatch(/-----> Built in [\d.]+ s: slug [0-9a-f]{12}, release v1/);
    const done = (await (
      await fetch(`${cp.url}/v1/apps/web/builds/${build.id}`, { headers: auth() })
    ).json()) as {
      status: string;
      slug_sha256: string;
    };
    expect(done.status).toBe("succeeded");
    // The uploaded source is not kept once its build is over (removed just after the log ends).
    for (let i = 0; i < 50 && readdirSync(join(dataDir, "sources")).length > 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(readdirSync(join(dataDir, "sources"))).toEqual([]);
    // The output replays after the fact, whole.
    expect(await (await fetch(`${cp.url}${build.output_stream_url}`, { headers: auth() })).text()).toBe(out);

    const releases = (await cp.api.inject({ url: "/v1/apps/web/releases", headers: auth() })).json();
    expect(releases).toHaveLength(1);
    expect(releases[0]).toMatchObject({
      version: 1,
      slug_sha256: done.slug_sha256,
      process_types: { web: "npm start" },
    });
  });

  it("makes a release for a config change and for a rollback", async () => {
    const set = await cp.api.inject({
      method: "PATCH",
      url: "/v1/apps/web/config-vars",
      headers: auth(),
      payload: { GREETING: "hi", OTHER: "x" },
    });
    expect(set.json()).toEqual({ GREETING: "hi", OTHER: "x" });
    await cp.api.inject({
      method: "PATCH",
      url: "/v1/apps/web/config-vars",
      headers: auth(),
      payload: { OTHER: null },
    });
    const back = await cp.api.inject({
      method: "POST",
      url: "/v1/apps/web/releases",
      headers: auth(),
      payload: { rollback: 1 },
    });
    expect(back.statusCode).toBe(201);
    const list = (await cp.api.inject({ url: "/v1/apps/web/releases", headers: auth() })).json() as {
      version: number;
      description: string;
      config_vars: Record<string, string>;
    }[];
    expect(list.map((r) => [r.version, r.description, r.config_vars])).toEqual([
      [4, "Rollback to v1", {}],
      [3, "Unset OTHER", { GREETING: "hi" }],
      [2, "Set GREETING, OTHER", { GREETING: "hi", OTHER: "x" }],
      [1, expect.stringMatching(/^Deploy /), {}],
    ]);
    const bad = await cp.api.inject({
      method: "PATCH",
      url: "/v1/apps/web/config-vars",
      headers: auth(),
      payload: { A: 1 },
    });
    expect(bad.statusCode).toBe(422);
  });

  it("scales the formation and validates it", async () => {
    const r = await cp.api.inject({
      method: "PATCH",
      url: "/v1/apps/web/formation",
      headers: auth(),
      payload: { updates: [{ type: "web", quantity: 2 }] },
    });
    expect(r.json()).toEqual([{ type: "web", quantity: 2, size: "standard-1x" }]);
    const bad = await cp.api.inject({
      method: "PATCH",
      url: "/v1/apps/web/formation",
      headers: auth(),
      payload: { updates: [{ type: "web", quantity: -1 }] },
    });
    expect(bad.statusCode).toBe(422);
  });

  it("reports metrics in Prometheus' format", async () => {
    const m = (await cp.api.inject({ url: "/metrics", headers: auth() })).body;
    expect(m).toMatch(/^kiln_builds\{status="succeeded"\} 1$/m);
    expect(m).toMatch(/^kiln_build_duration_seconds_count 1$/m);
    expect(m).toMatch(/^kiln_build_queue_depth 0$/m);
  });

  it("after a crash, marks running builds failed (interrupted) and runs the queued ones", async () => {
    const dir = tempDir("kiln-api-crash-");
    // The state a kill -9 leaves: one build was running, one was queued.
    const db = openStore(join(dir, STORE_FILE));
    const app = createApp(db, "crashy");
    const src = join(dir, "src.tar.gz");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(src, tarOf(fixture("procfile-shell")));
    const running = createBuild(db, {
      appId: app.id,
      sourceSha256: "0".repeat(64),
      sourcePath: src,
      logPath: (id) => id,
    });
    startBuild(db, running.id);
    const queued = createBuild(db, {
      appId: app.id,
      sourceSha256: "0".repeat(64),
      sourcePath: src,
      logPath: (id) => id,
    });
    db.close();
    const again = await startControlPlane(testContext({ dataDir: dir }), { host: "127.0.0.1", port: 0 });
    try {
      expect(again.recovered).toEqual({ interrupted: [running.id], requeued: 1 });
      expect(getBuild(again.db, running.id)).toMatchObject({
        status: "failed",
        failureReason: "interrupted",
      });
      const deadline = Date.now() + 120_000;
      while (["pending", "building"].includes(getBuild(again.db, queued.id).status) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 200));
      expect(getBuild(again.db, queued.id).status).toBe("succeeded");
    } finally {
      await again.close();
    }
  });
});
