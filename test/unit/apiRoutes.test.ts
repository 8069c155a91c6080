/**
 * The API as built by buildApi (no socket): every JSON route declares the schema its body is
 * checked against, a body that breaks it never leaves, and the token scope covers what it should.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApi } from "../../src/api/server.js";
import * as wire from "../../src/api/wire.js";
import { createBuildLogs } from "../../src/builds/buildLog.js";
import { createBuildQueue } from "../../src/builds/queue.js";
import { createLogger } from "../../src/log/logger.js";
import { type Db, openStore } from "../../src/store/db.js";
import { createToken } from "../../src/store/tokens.js";

// Routes that answer text (Prometheus, a build's output, logs, a one-off run's output).
const TEXT_ROUTES = new Set([
  "GET /metrics",
  "GET /v1/apps/:app/builds/:id/output",
  "GET /v1/apps/:app/logs",
  "POST /v1/apps/:app/dynos",
  // git's own protocol, and a provenance bundle (JSON Lines of DSSE envelopes, as written).
  "GET /git/:repo/info/refs",
  "POST /git/:repo/git-receive-pack",
  "POST /git/:repo/git-upload-pack",
  "GET /v1/apps/:app/builds/:id/provenance",
  // A build's OCI image: an oci-archive (tar).
  "GET /v1/apps/:app/builds/:id/image",
]);

describe("buildApi", () => {
  const dir = mkdtempSync(join(tmpdir(), "kiln-api-routes-"));
  let db: Db;
  let api: FastifyInstance;
  const routes: { route: string; response: unknown }[] = [];
  let token = "";

  beforeAll(async () => {
    db = openStore(join(dir, "kiln.sqlite"));
    token = createToken(db, { name: "admin", admin: true }).token;
    api = buildApi({
      db,
      log: createLogger("silent"),
      dataDir: dir,
      queue: createBuildQueue({
        concurrency: 1,
        maxQueued: 1,
        timeoutMs: 1000,
        run: async () => {},
        onSuperseded: () => {},
      }),
      logs: createBuildLogs(dir),
      maxSourceBytes: 1024,
    });
    api.addHook("onRoute", (r) => {
      for (const m of [r.method].flat())
        if (m !== "HEAD") routes.push({ route: `${m} ${r.url}`, response: r.schema?.response });
    });
    // A route whose handler breaks its own response schema (a kiln bug).
    await api.register(async (s) => {
      s.get("/broken", { schema: { response: { 200: wire.health } } }, async () => ({ ok: false }) as never);
    });
    await api.ready();
  });
  afterAll(async () => {
    await api.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("gives every JSON route a response schema", () => {
    expect(routes.length).toBeGreaterThan(25);
    const missing = routes.filter(
      (r) => !r.response && !TEXT_ROUTES.has(r.route) && r.route !== "GET /broken",
    );
    expect(missing.map((r) => r.route)).toEqual([]);
  });

  it("answers a body that breaks its schema with a 500, never the body", async () => {
    const r = await api.inject({ url: "/broken" });
    expect(r.statusCode).toBe(500);
    expect(r.json().error.code).toBe("internal");
  });

  it("needs the token on the resource routes only", async () => {
    expect((await api.inject({ url: "/healthz" })).json()).toEqual({ ok: true });
    expect((await api.inject({ url: "/v1/apps" })).statusCode).toBe(401);
    const ok = await api.inject({ url: "/v1/apps", headers: { authorization: `Bearer ${token}` } });
    expect(ok.statusCode).toBe(200);
    expect(wire.app.array().parse(ok.json())).toEqual([]);
  });
});
