/**
 * Tenancy through the API, over a real socket, on a real SQLite file: users own tokens, apps have an
 * owner and collaborators, everyone else's apps are 404 (as if missing), the platform's apps are the
 * admin's alone, and quotas bound a tenant's dynos and builds. Each attack is also tried the way
 * that must work (by the owner, or by the admin), so a refusal cannot come from a broken request.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane } from "../../src/serve/controlPlane.js";
import { getApp } from "../../src/store/apps.js";
import { createBuild, startBuild } from "../../src/store/builds.js";
import { openStore, STORE_FILE } from "../../src/store/db.js";
import { MIGRATIONS } from "../../src/store/migrations.js";
import { listTokens, verifyToken } from "../../src/store/tokens.js";
import { listUsers } from "../../src/store/users.js";
import { kiln, projectDir, testContext } from "../helpers.js";
import { tempDir } from "../tmp.js";

const source = execFileSync("tar", [
  "czf",
  "-",
  "-C",
  join(projectDir, "test", "fixtures", "apps", "procfile-shell"),
  ".",
]);

// biome-ignore lint/suspicious/noExplicitAny: the JSON bodies of many routes, read field by field
type Reply = { status: number; json: any };

/** A client of one server: `as(token).get(path)` and so on, over HTTP. */
function clientOf(url: string) {
  const call = async (token: string, method: string, path: string, body?: unknown): Promise<Reply> => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(Buffer.isBuffer(body)
          ? { "content-type": "application/gzip" }
          : body !== undefined
            ? { "content-type": "application/json" }
            : {}),
      },
      ...(body === undefined
        ? {}
        : { body: Buffer.isBuffer(body) ? new Uint8Array(body) : JSON.stringify(body) }),
    });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.status, json };
  };
  return (token: string) => ({
    token,
    get: (path: string) => call(token, "GET", path),
    post: (path: string, body?: unknown) => call(token, "POST", path, body ?? {}),
    patch: (path: string, body: unknown) => call(token, "PATCH", path, body),
    delete: (path: string) => call(token, "DELETE", path),
    deploy: (app: string, query = "") => call(token, "POST", `/v1/apps/${app}/builds${query}`, source),
  });
}

async function startServer(opts: { quotas?: Record<string, number>; concurrency?: number } = {}) {
  const dataDir = tempDir("kiln-tenancy-");
  const cp = await startControlPlane(
    testContext({
      dataDir,
      ...(opts.quotas
        ? { quotas: { appDynos: 10, userDynos: 20, appBuilds: 2, userBuilds: 4, ...opts.quotas } }
        : {}),
    }),
    {
      host: "127.0.0.1",
      port: 0,
      dynos: false,
      ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
    },
  );
  const as = clientOf(cp.url);
  const admin = as(cp.adminToken ?? "");
  /** A new user (made by the admin) and a token of theirs. */
  const tenant = async (name: string) => {
    expect((await admin.post("/v1/users", { name })).status).toBe(201);
    const t = await admin.post("/v1/tokens", { name: `${name}-laptop`, user: name });
    expect(t.status).toBe(201);
    return as(t.json.token as string);
  };
  return { cp, dataDir, as, admin, tenant };
}

/** The body with the asked-for name in its message put back to `name`. */
const missing = (r: Reply, asked: string, name: string) =>
  r.json?.error
    ? { error: { ...r.json.error, message: r.json.error.message.replace(`"${asked}"`, `"${name}"`) } }
    : r.json;

describe("tenancy", () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  let alice: ReturnType<ReturnType<typeof clientOf>>;
  let bob: ReturnType<ReturnType<typeof clientOf>>;
  beforeAll(async () => {
    s = await startServer();
    alice = await s.tenant("alice");
    bob = await s.tenant("bob");
  });
  afterAll(async () => {
    await s?.cp.close();
  });

  it("hides another user's app: every route answers 404 exactly like a missing app, lists omit it, nothing changes", async () => {
    expect((await alice.post("/v1/apps", { name: "alice-shop" })).json).toMatchObject({
      name: "alice-shop",
      owner: "alice",
      platform: false,
    });
    expect((await alice.patch("/v1/apps/alice-shop/config-vars", { SECRET: "s3cret" })).status).toBe(200);
    expect(
      (await alice.patch("/v1/apps/alice-shop/formation", { updates: [{ type: "web", quantity: 1 }] }))
        .status,
    ).toBe(200);
    const id = (await alice.get("/v1/apps/alice-shop")).json.id as string;

    // Bob's list does not have it; the admin's does.
    expect((await bob.get("/v1/apps")).json).toEqual([]);
    expect((await s.admin.get("/v1/apps")).json.map((a: { name: string }) => a.name)).toContain("alice-shop");

    const absent = await bob.get("/v1/apps/no-such-app");
    expect(absent.status).toBe(404);
    const attempts: [string, () => Promise<Reply>][] = [
      ["show", () => bob.get("/v1/apps/alice-shop")],
      ["show by id", () => bob.get(`/v1/apps/${id}`)],
      ["read config", () => bob.get("/v1/apps/alice-shop/config-vars")],
      ["set config", () => bob.patch("/v1/apps/alice-shop/config-vars", { SECRET: "mine" })],
      [
        "scale",
        () => bob.patch("/v1/apps/alice-shop/formation", { updates: [{ type: "web", quantity: 5 }] }),
      ],
      ["deploy", () => bob.deploy("alice-shop")],
      ["list builds", () => bob.get("/v1/apps/alice-shop/builds")],
      ["list releases", () => bob.get("/v1/apps/alice-shop/releases")],
      ["roll back", () => bob.post("/v1/apps/alice-shop/releases", { rollback: 1 })],
      ["read logs", () => bob.get("/v1/apps/alice-shop/logs")],
      ["restart", () => bob.delete("/v1/apps/alice-shop/dynos")],
      ["run", () => bob.post("/v1/apps/alice-shop/dynos", { command: "env" })],
      ["list collaborators", () => bob.get("/v1/apps/alice-shop/collaborators")],
      ["join", () => bob.post("/v1/apps/alice-shop/collaborators", { user: "bob" })],
      ["delete", () => bob.delete("/v1/apps/alice-shop")],
    ];
    for (const [what, attempt] of attempts) {
      const r = await attempt();
      expect({ what, status: r.status }).toEqual({ what, status: 404 });
      const asked = what === "show by id" ? id : "alice-shop";
      expect({ what, body: missing(r, asked, "no-such-app") }).toEqual({ what, body: absent.json });
    }

    // Nothing changed, and every one of those requests works for the owner.
    expect((await alice.get("/v1/apps/alice-shop/config-vars")).json).toEqual({ SECRET: "s3cret" });
    expect((await alice.get("/v1/apps/alice-shop/formation")).json).toEqual([
      { type: "web", quantity: 1, size: "standard-1x" },
    ]);
    expect((await alice.get("/v1/apps/alice-shop/builds")).json).toEqual([]);
    expect((await alice.get("/v1/apps/alice-shop/collaborators")).json).toEqual([
      { user: "alice", role: "owner", created_at: expect.any(String) },
    ]);
    expect((await alice.get("/v1/apps/alice-shop")).json.role).toBe("owner");
    expect((await alice.patch("/v1/apps/alice-shop/config-vars", { SECRET: null })).status).toBe(200);
    expect((await alice.get("/v1/apps/alice-shop/logs")).status).toBe(200);
    expect((await alice.get("/v1/apps")).json.map((a: { name: string }) => a.name)).toEqual(["alice-shop"]);
    expect((await alice.delete("/v1/apps/alice-shop")).status).toBe(200);
  });

  it("keeps the platform's apps (kiln and its add-ons, and any the admin marks) the admin's alone", async () => {
    // A tenant cannot take the names, whether or not the app exists yet.
    for (const name of ["kiln", "kiln-postgres", "kiln-scheduler"]) {
      const r = await bob.post("/v1/apps", { name });
      expect({ name, status: r.status, code: r.json.error?.code }).toEqual({
        name,
        status: 403,
        code: "forbidden",
      });
    }
    expect((await s.admin.get("/v1/apps/kiln")).status).toBe(404);
    // The admin makes `kiln`, as the bootstrap does, with the platform's secrets in its config.
    expect((await s.admin.post("/v1/apps", { name: "kiln" })).json).toMatchObject({
      platform: true,
      owner: "admin",
    });
    expect((await s.admin.patch("/v1/apps/kiln/config-vars", { KILN_ADMIN_TOKEN: "secret" })).status).toBe(
      200,
    );
    expect((await bob.post("/v1/apps", { name: "kiln" })).status).toBe(403);
    const absent = await bob.get("/v1/apps/no-such-app");
    for (const [what, attempt] of [
      ["show", () => bob.get("/v1/apps/kiln")],
      ["read config", () => bob.get("/v1/apps/kiln/config-vars")],
      ["deploy", () => bob.deploy("kiln")],
      ["set config", () => bob.patch("/v1/apps/kiln/config-vars", { KILN_ADMIN_TOKEN: "mine" })],
      ["scale", () => bob.patch("/v1/apps/kiln/formation", { updates: [{ type: "web", quantity: 0 }] })],
      ["roll back", () => bob.post("/v1/apps/kiln/releases", { rollback: 1 })],
      ["delete", () => bob.delete("/v1/apps/kiln")],
    ] as [string, () => Promise<Reply>][]) {
      const r = await attempt();
      expect({ what, status: r.status, body: missing(r, "kiln", "no-such-app") }).toEqual({
        what,
        status: 404,
        body: absent.json,
      });
    }
    expect((await bob.get("/v1/apps")).json).toEqual([]);
    expect((await s.admin.get("/v1/apps/kiln/config-vars")).json).toEqual({ KILN_ADMIN_TOKEN: "secret" });
    expect((await s.admin.get("/v1/apps/kiln/builds")).json).toEqual([]);

    // An app the admin marks as the platform's: even its owner loses it; only admins may mark.
    expect((await bob.post("/v1/apps", { name: "bob-metrics" })).status).toBe(201);
    expect((await bob.patch("/v1/apps/bob-metrics", { platform: true })).status).toBe(403);
    expect((await bob.post("/v1/apps", { name: "bob-other", platform: true })).status).toBe(403);
    expect((await s.admin.patch("/v1/apps/bob-metrics", { platform: true })).json).toMatchObject({
      platform: true,
    });
    expect((await bob.deploy("bob-metrics")).status).toBe(404);
    expect((await bob.patch("/v1/apps/bob-metrics/config-vars", { A: "b" })).status).toBe(404);
    expect((await bob.delete("/v1/apps/bob-metrics")).status).toBe(404);
    expect((await bob.get("/v1/apps")).json).toEqual([]);
    // A platform app has no collaborators, and the reserved names cannot be unmarked.
    expect((await s.admin.post("/v1/apps/kiln/collaborators", { user: "bob" })).status).toBe(422);
    expect((await s.admin.patch("/v1/apps/kiln", { platform: false })).status).toBe(422);
    expect((await s.admin.patch("/v1/apps/bob-metrics", { platform: false })).status).toBe(200);
    expect((await bob.get("/v1/apps/bob-metrics")).json.role).toBe("owner");
    expect((await bob.delete("/v1/apps/bob-metrics")).status).toBe(200);
  });

  it("lets a collaborator deploy, configure and scale, but not delete the app or change who collaborates", async () => {
    const carol = await s.tenant("carol");
    expect((await alice.post("/v1/apps", { name: "team" })).status).toBe(201);
    // Only the owner (or an admin) shares the app; sharing names an existing user.
    expect((await alice.post("/v1/apps/team/collaborators", { user: "nobody" })).status).toBe(404);
    expect((await alice.post("/v1/apps/team/collaborators", { user: "bob" })).json).toEqual([
      { user: "alice", role: "owner", created_at: expect.any(String) },
      { user: "bob", role: "collaborator", created_at: expect.any(String) },
    ]);
    expect((await alice.post("/v1/apps/team/collaborators", { user: "bob" })).status).toBe(409);
    expect((await bob.get("/v1/apps")).json.map((a: { name: string }) => a.name)).toEqual(["team"]);
    expect((await bob.get("/v1/apps/team")).json).toMatchObject({ owner: "alice", role: "collaborator" });

    // Deploy: a real build, through to a release.
    const build = await bob.deploy("team");
    expect(build.status).toBe(201);
    const output = await fetch(`${s.cp.url}${build.json.output_stream_url}`, {
      headers: { authorization: `Bearer ${bob.token}` },
    });
    expect(await output.text()).toMatch(/release v1/);
    expect((await bob.get(`/v1/apps/team/builds/${build.json.id}`)).json.status).toBe("succeeded");
    expect((await bob.get("/v1/apps/team/releases")).json).toHaveLength(1);
    expect((await bob.patch("/v1/apps/team/config-vars", { FROM: "bob" })).status).toBe(200);
    expect(
      (await bob.patch("/v1/apps/team/formation", { updates: [{ type: "web", quantity: 2 }] })).status,
    ).toBe(200);
    expect((await bob.post("/v1/apps/team/releases", { rollback: 1 })).status).toBe(201);
    expect(
      (await alice.get("/v1/apps/team/releases")).json.map((r: { version: number }) => r.version),
    ).toEqual([3, 2, 1]);

    // But not delete it, nor add or remove anyone else.
    const del = await bob.delete("/v1/apps/team");
    expect(del.status).toBe(403);
    expect(del.json.error.hint).toMatch(/alice/);
    expect((await bob.post("/v1/apps/team/collaborators", { user: "carol" })).status).toBe(403);
    expect((await bob.delete("/v1/apps/team/collaborators/alice")).status).toBe(403);
    expect((await carol.get("/v1/apps/team")).status).toBe(404);
    expect((await alice.get("/v1/apps/team")).status).toBe(200);
    expect(
      (await alice.get("/v1/apps/team/collaborators")).json.map((c: { user: string }) => c.user),
    ).toEqual(["alice", "bob"]);
    // The owner cannot be removed; a collaborator may leave, and then the app is gone for them.
    expect((await alice.delete("/v1/apps/team/collaborators/alice")).status).toBe(409);
    expect((await bob.delete("/v1/apps/team/collaborators/bob")).status).toBe(200);
    expect((await bob.get("/v1/apps/team")).status).toBe(404);
    expect((await bob.deploy("team")).status).toBe(404);
    // The owner does what the collaborator could not.
    expect((await alice.post("/v1/apps/team/collaborators", { user: "carol" })).status).toBe(201);
    expect((await alice.delete("/v1/apps/team/collaborators/carol")).status).toBe(200);
    expect((await alice.delete("/v1/apps/team")).status).toBe(200);
  });

  it("cancels an app's builds in flight when it is deleted, so the queue keeps running", async () => {
    // One build slot: gone-1 builds, gone-2 waits; both apps are deleted at once.
    const own = await startServer({ concurrency: 1 });
    try {
      for (const a of ["gone-1", "gone-2"]) {
        expect((await own.admin.post("/v1/apps", { name: a })).status).toBe(201);
        expect((await own.admin.deploy(a)).status).toBe(201);
      }
      for (const a of ["gone-1", "gone-2"])
        expect((await own.admin.delete(`/v1/apps/${a}`)).status).toBe(200);
      // Left in the queue, gone-2's build would hold the one slot for good and this one never run.
      expect((await own.admin.post("/v1/apps", { name: "after" })).status).toBe(201);
      const b = await own.admin.deploy("after");
      const output = await fetch(`${own.cp.url}${b.json.output_stream_url}`, {
        headers: { authorization: `Bearer ${own.admin.token}` },
      });
      expect(await output.text()).toMatch(/release v1/);
      expect((await own.admin.get(`/v1/apps/after/builds/${b.json.id}`)).json.status).toBe("succeeded");
    } finally {
      await own.cp.close();
    }
  });

  it("drives users, tokens and access from the CLI", async () => {
    const home = tempDir("kiln-tenancy-cli-");
    const k = (token: string, ...args: string[]) =>
      kiln(args, {
        env: { KILN_SERVER: s.cp.url, KILN_TOKEN: token, KILN_DATA_DIR: home, XDG_CONFIG_HOME: home },
      });
    const admin = s.admin.token;
    expect((await k(admin, "users:create", "dora")).stdout).toMatch(/created dora/);
    const made = await k(admin, "tokens:create", "laptop", "--user", "dora");
    expect(made.exitCode).toBe(0);
    const dora = made.stdout.trim();
    expect((await k(dora, "whoami")).stdout).toMatch(/^dora, token laptop/);
    expect((await k(dora, "users")).exitCode).not.toBe(0);
    expect((await k(dora, "apps:create", "dora-app")).exitCode).toBe(0);
    expect((await k(dora, "access:add", "bob", "-a", "dora-app")).exitCode).toBe(0);
    expect((await k(dora, "access", "-a", "dora-app")).stdout.trim().split("\n")).toEqual([
      "dora  owner",
      "bob  collaborator",
    ]);
    expect((await k(bob.token, "apps")).stdout).toMatch(/dora-app/);
    expect((await k(bob.token, "apps:destroy", "dora-app", "--confirm", "dora-app")).exitCode).not.toBe(0);
    expect((await k(dora, "access:remove", "bob", "-a", "dora-app")).exitCode).toBe(0);
    const hidden = await k(bob.token, "config", "-a", "dora-app");
    expect(hidden.exitCode).not.toBe(0);
    expect(hidden.all).toMatch(/no app called "dora-app"/);
    expect((await k(dora, "tokens")).stdout).toMatch(/dora {2}laptop/);
    expect((await k(dora, "apps:destroy", "dora-app", "--confirm", "dora-app")).exitCode).toBe(0);
  });

  it("lets users manage their own tokens only, and only admins manage users", async () => {
    const mine = await bob.get("/v1/tokens");
    expect(mine.status).toBe(200);
    expect(new Set(mine.json.map((t: { user: string }) => t.user))).toEqual(new Set(["bob"]));
    expect((await bob.get("/v1/account")).json).toMatchObject({ name: "bob", admin: false });
    expect((await bob.get("/v1/users")).status).toBe(403);
    expect((await bob.post("/v1/users", { name: "mallory" })).status).toBe(403);
    expect((await bob.post("/v1/users", { name: "mallory", admin: true })).status).toBe(403);
    expect((await bob.post("/v1/tokens", { name: "x", user: "alice" })).status).toBe(403);
    expect((await bob.post("/v1/tokens", { name: "x", user: "admin" })).status).toBe(403);
    // Someone else's token is as unknown as a missing one, and keeps working.
    const alices = (await alice.get("/v1/tokens")).json as { id: string }[];
    expect((await bob.delete(`/v1/tokens/${alices[0]?.id}`)).status).toBe(404);
    expect((await alice.get("/v1/apps")).status).toBe(200);
    // Their own: made, used, revoked.
    const spare = await bob.post("/v1/tokens", { name: "spare" });
    expect(spare.json).toMatchObject({ user: "bob", admin: false });
    expect((await s.as(spare.json.token).get("/v1/account")).json.name).toBe("bob");
    expect((await bob.delete(`/v1/tokens/${spare.json.id}`)).status).toBe(200);
    expect((await s.as(spare.json.token).get("/v1/apps")).status).toBe(401);
    // The admin: users listed, an admin user made, whose tokens are admin tokens.
    expect((await s.admin.get("/v1/users")).json.map((u: { name: string }) => u.name)).toEqual(
      expect.arrayContaining(["admin", "alice", "bob"]),
    );
    expect((await s.admin.post("/v1/users", { name: "alice" })).status).toBe(409);
    expect((await s.admin.post("/v1/users", { name: "Not OK" })).status).toBe(422);
    expect((await s.admin.post("/v1/users", { name: "ops", admin: true })).status).toBe(201);
    const ops = await s.admin.post("/v1/tokens", { name: "ops", user: "ops" });
    expect(ops.json.admin).toBe(true);
    expect((await s.as(ops.json.token).get("/v1/users")).status).toBe(200);
  });
});

describe("quotas", () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    // No build ever starts (concurrency 0): whatever is accepted stays in flight, queued.
    s = await startServer({
      quotas: { appDynos: 3, userDynos: 4, appBuilds: 1, userBuilds: 2 },
      concurrency: 0,
    });
  });
  afterAll(async () => {
    await s?.cp.close();
  });

  it("refuses a scale past the app's or the owner's dyno quota (422, naming it) and changes nothing", async () => {
    const dave = await s.tenant("dave");
    await dave.post("/v1/apps", { name: "d1" });
    await dave.post("/v1/apps", { name: "d2" });
    const scale = (app: string, quantity: number, as = dave) =>
      as.patch(`/v1/apps/${app}/formation`, { updates: [{ type: "web", quantity }] });
    expect((await scale("d1", 3)).status).toBe(200);
    const overApp = await scale("d1", 4);
    expect(overApp.status).toBe(422);
    expect(overApp.json.error).toMatchObject({ code: "quota_exceeded" });
    expect(overApp.json.error.message).toMatch(/app_dynos/);
    expect(overApp.json.error.hint).toMatch(/KILN_QUOTA_APP_DYNOS/);
    // Two process types count together.
    const worker = await dave.patch("/v1/apps/d1/formation", { updates: [{ type: "worker", quantity: 1 }] });
    expect(worker.status).toBe(422);
    expect((await dave.get("/v1/apps/d1/formation")).json).toEqual([
      { type: "web", quantity: 3, size: "standard-1x" },
    ]);
    const overUser = await scale("d2", 2);
    expect(overUser.status).toBe(422);
    expect(overUser.json.error.message).toMatch(/user_dynos/);
    expect(overUser.json.error.hint).toMatch(/KILN_QUOTA_USER_DYNOS/);
    expect((await dave.get("/v1/apps/d2/formation")).json).toEqual([]);
    expect((await scale("d2", 1)).status).toBe(200);
    // A collaborator's scale counts against the owner.
    const erin = await s.tenant("erin");
    await dave.post("/v1/apps/d2/collaborators", { user: "erin" });
    expect((await scale("d2", 2, erin)).status).toBe(422);
    // The admin has no quota; scaling down is always allowed.
    expect((await scale("d2", 3, s.admin)).status).toBe(200);
    expect((await scale("d1", 1)).status).toBe(200);
    // Four dynos now (1 + 3): a new app's first release (one web dyno) would pass the quota.
    await dave.post("/v1/apps", { name: "d3" });
    const first = await dave.deploy("d3");
    expect(first.status).toBe(422);
    expect(first.json.error.message).toMatch(/user_dynos/);
    expect((await dave.get("/v1/apps/d3/builds")).json).toEqual([]);
  });

  it("refuses a build past the user's or the app's builds-in-flight quota (429, naming it) and records nothing", async () => {
    const frank = await s.tenant("frank");
    for (const a of ["f1", "f2", "f3"]) expect((await frank.post("/v1/apps", { name: a })).status).toBe(201);
    const sources = join(s.dataDir, "sources");
    expect((await frank.deploy("f1", "?release=false")).status).toBe(201);
    expect((await frank.deploy("f2", "?release=false")).status).toBe(201);
    const before = readdirSync(sources).length;
    const third = await frank.deploy("f3", "?release=false");
    expect(third.status).toBe(429);
    expect(third.json.error).toMatchObject({ code: "build_quota_exceeded" });
    expect(third.json.error.message).toMatch(/user_builds/);
    expect(third.json.error.hint).toMatch(/KILN_QUOTA_USER_BUILDS/);
    expect((await frank.get("/v1/apps/f3/builds")).json).toEqual([]);
    expect(readdirSync(sources).length).toBe(before);
    // A newer source for an app with a queued build replaces it: that fits.
    expect((await frank.deploy("f1", "?release=false")).status).toBe(201);
    expect((await frank.get("/v1/apps/f1/builds")).json.map((b: { status: string }) => b.status)).toEqual([
      "pending",
      "cancelled",
    ]);
    // Another user is not held up by frank's builds; the admin has no quota.
    const gina = await s.tenant("gina");
    await gina.post("/v1/apps", { name: "g1" });
    // The app quota (1): with a build of g1 running, another is refused.
    const g1 = getApp(s.cp.db, "g1");
    const running = createBuild(s.cp.db, {
      appId: g1.id,
      sourceSha256: "0".repeat(64),
      sourcePath: "/nonexistent",
      logPath: (id) => join(s.dataDir, id),
    });
    startBuild(s.cp.db, running.id);
    const overApp = await gina.deploy("g1", "?release=false");
    expect(overApp.status).toBe(429);
    expect(overApp.json.error.message).toMatch(/app_builds/);
    expect((await gina.get("/v1/apps/g1/builds")).json).toHaveLength(1);
    expect((await gina.deploy("g1", "?release=false")).status).toBe(429);
    expect((await s.admin.deploy("f3", "?release=false")).status).toBe(201);
  });
});

describe("migration 4", () => {
  it("keeps every record of a state file made by the old schema: the admin owns the apps, each token gets a user", () => {
    const file = join(tempDir("kiln-migrate-"), STORE_FILE);
    // The state file as kiln wrote it before tenancy: schema version 3, written with its own SQL.
    const old = new Database(file);
    old.pragma("foreign_keys = ON");
    for (const step of MIGRATIONS.slice(0, 3)) old.exec(step);
    old.pragma("user_version = 3");
    const now = "2026-01-01T00:00:00.000Z";
    const ins = (sql: string, ...args: unknown[]) => old.prepare(sql).run(...args);
    ins(
      "INSERT INTO apps (id, name, created_at) VALUES (?, ?, ?)",
      "00000000-0000-4000-8000-000000000001",
      "shop",
      now,
    );
    ins(
      "INSERT INTO apps (id, name, created_at) VALUES (?, ?, ?)",
      "00000000-0000-4000-8000-000000000002",
      "kiln",
      now,
    );
    ins(
      "INSERT INTO config_vars (app_id, key, value) VALUES (?, 'A', 'b')",
      "00000000-0000-4000-8000-000000000001",
    );
    ins(
      `INSERT INTO builds (id, app_id, status, created_at, source_sha256, source_path, log_path)
       VALUES ('b1', '00000000-0000-4000-8000-000000000001', 'succeeded', ?, ?, '/x', '/y')`,
      now,
      "0".repeat(64),
    );
    ins(
      `INSERT INTO releases (id, app_id, version, build_id, process_types_json, config_json, description, created_at)
       VALUES ('r1', '00000000-0000-4000-8000-000000000001', 1, 'b1', '{}', '{}', 'Deploy', ?)`,
      now,
    );
    ins(
      "INSERT INTO formation (app_id, type, quantity, size) VALUES ('00000000-0000-4000-8000-000000000001', 'web', 2, 'basic')",
    );
    const hash = (t: string) => createHash("sha256").update(t).digest("hex");
    const tokens = { admin: "a".repeat(40), ci: "c".repeat(40), ci2: "d".repeat(40) };
    ins(
      "INSERT INTO tokens (id, name, hash, admin, created_at) VALUES ('10000000-0000-4000-8000-000000000001', 'admin', ?, 1, ?)",
      hash(tokens.admin),
      now,
    );
    ins(
      "INSERT INTO tokens (id, name, hash, admin, created_at) VALUES ('20000000-0000-4000-8000-000000000002', 'ci', ?, 0, ?)",
      hash(tokens.ci),
      now,
    );
    ins(
      "INSERT INTO tokens (id, name, hash, admin, created_at) VALUES ('30000000-0000-4000-8000-000000000003', 'ci', ?, 0, ?)",
      hash(tokens.ci2),
      now,
    );
    const count = (db: Database.Database, table: string) =>
      (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
    const tables = ["apps", "config_vars", "builds", "releases", "formation", "tokens"];
    const before = Object.fromEntries(tables.map((t) => [t, count(old, t)]));
    old.close();

    const db = openStore(file);
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    expect(Object.fromEntries(tables.map((t) => [t, count(db, t)]))).toEqual(before);
    expect(db.pragma("foreign_key_check")).toEqual([]);
    const users = listUsers(db);
    expect(users.map((u) => [u.name, u.admin])).toEqual([
      ["ci-20000000", false],
      ["ci-30000000", false],
      ["admin", true],
    ]);
    const adminUser = users.find((u) => u.admin);
    expect(getApp(db, "shop")).toMatchObject({ ownerId: adminUser?.id, platform: false });
    expect(getApp(db, "kiln").ownerId).toBe(adminUser?.id);
    expect(verifyToken(db, tokens.admin)).toMatchObject({ user: "admin", admin: true });
    expect(verifyToken(db, tokens.ci)).toMatchObject({ name: "ci", user: "ci-20000000", admin: false });
    expect(verifyToken(db, tokens.ci2)).toMatchObject({ user: "ci-30000000", admin: false });
    expect(
      listTokens(db)
        .map((t) => t.id)
        .sort(),
    ).toEqual([
      "10000000-0000-4000-8000-000000000001",
      "20000000-0000-4000-8000-000000000002",
      "30000000-0000-4000-8000-000000000003",
    ]);
    expect(db.prepare("SELECT key, value FROM config_vars").all()).toEqual([{ key: "A", value: "b" }]);
    expect(db.prepare("SELECT quantity, size FROM formation").all()).toEqual([
      { quantity: 2, size: "basic" },
    ]);
    // An app without an owner cannot be written any more.
    expect(() =>
      db.prepare("INSERT INTO apps (id, name, created_at) VALUES ('x', 'orphan', ?)").run(now),
    ).toThrow(/an app needs an owner/);
    db.close();
  });
});
