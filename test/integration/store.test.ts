/** kiln's state in a real SQLite file: schema, constraints, releases, tokens, crash safety. */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createApp, deleteApp, getApp, getConfig, listApps, patchConfig } from "../../src/store/apps.js";
import {
  createBuild,
  endBuild,
  failInterruptedBuilds,
  getBuild,
  pendingBuilds,
  startBuild,
  succeedBuild,
} from "../../src/store/builds.js";
import {
  createCheck,
  failInterruptedChecks,
  finishCheck,
  getCheck,
  listChecks,
} from "../../src/store/checks.js";
import { migrate, openStore, STORE_FILE } from "../../src/store/db.js";
import { getFormation, scaleFormation } from "../../src/store/formation.js";
import { MIGRATIONS } from "../../src/store/migrations.js";
import { createRelease, currentRelease, listReleases, rollback } from "../../src/store/releases.js";
import { createSession, deleteSession, findSession } from "../../src/store/sessions.js";
import { addToken, createToken, hasAdminToken, revokeToken, verifyToken } from "../../src/store/tokens.js";
import { createUser } from "../../src/store/users.js";
import { projectDir } from "../helpers.js";
import { tempDir } from "../tmp.js";

const fresh = () => {
  const file = join(tempDir("kiln-store-"), STORE_FILE);
  return { file, db: openStore(file) };
};

const release = (appId: string, description: string, config: Record<string, string> = {}) => ({
  appId,
  buildId: null,
  slugSha256: "a".repeat(64),
  slugPath: "/nix/store/x-slug/slug.tgz",
  processTypes: { web: "npm start" },
  config,
  description,
});

describe("the state file", () => {
  it("opens in WAL mode with foreign keys on and every migration applied", () => {
    const { db } = fresh();
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(db.pragma("synchronous", { simple: true })).toBe(2); // FULL
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    expect(migrate(db)).toBe(MIGRATIONS.length); // idempotent
    const tables = (
      db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
        name: string;
      }[]
    ).map((t) => t.name);
    expect(tables).toEqual([
      "apps",
      "builds",
      "checks",
      "collaborators",
      "config_vars",
      "dynos",
      "formation",
      "releases",
      "sessions",
      "tokens",
      "users",
    ]);
  });

  it("refuses a file from a newer kiln instead of changing it", () => {
    const { db, file } = fresh();
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => openStore(file)).toThrow(/newer than this kiln knows/);
  });

  it("keeps app names unique (409-style conflict) and cascades deletes", () => {
    const { db } = fresh();
    const app = createApp(db, "web-app");
    expect(() => createApp(db, "web-app")).toThrow(/already exists/);
    expect(() => createApp(db, "Bad_Name")).toThrow(/not a valid app name/);
    createRelease(db, release(app.id, "v1"));
    patchConfig(db, app.id, { A: "1" }, () => undefined);
    scaleFormation(db, app.id, [{ type: "web", quantity: 2 }]);
    expect(getApp(db, "web-app").id).toBe(app.id);
    deleteApp(db, "web-app");
    expect(listApps(db)).toEqual([]);
    for (const t of ["releases", "config_vars", "formation"])
      expect(db.prepare(`SELECT COUNT(*) AS n FROM ${t}`).get()).toEqual({ n: 0 });
    expect(() => getApp(db, "web-app")).toThrow(/no app called "web-app"/);
  });

  it("numbers releases per app; a config change and a rollback each make a new one", () => {
    const { db } = fresh();
    const a = createApp(db, "a");
    const b = createApp(db, "b");
    createRelease(db, release(a.id, "Deploy 1"));
    createRelease(db, release(b.id, "Deploy 1"));
    const { config, result } = patchConfig(db, a.id, { GREETING: "hi", UNUSED: null }, (cfg) => {
      const cur = currentRelease(db, a.id);
      return createRelease(db, {
        ...release(a.id, "Set GREETING"),
        config: cfg,
        slugSha256: cur?.slugSha256 ?? null,
      });
    });
    expect(config).toEqual({ GREETING: "hi" });
    expect(result.version).toBe(2);
    patchConfig(db, a.id, { GREETING: null }, (cfg) =>
      createRelease(db, { ...release(a.id, "Unset GREETING"), config: cfg }),
    );
    expect(getConfig(db, a.id)).toEqual({});
    const back = rollback(db, a.id, 2);
    expect(back).toMatchObject({ version: 4, description: "Rollback to v2", config: { GREETING: "hi" } });
    expect(listReleases(db, a.id).map((r) => r.version)).toEqual([4, 3, 2, 1]);
    expect(listReleases(db, b.id).map((r) => r.version)).toEqual([1]);
    expect(() => rollback(db, a.id, 9)).toThrow(/no release v9/);
    expect(() => patchConfig(db, a.id, { "1BAD": "x" }, () => undefined)).toThrow(
      /not a valid config var name/,
    );
  });

  it("moves builds only forward, and after a crash fails the running ones while keeping the queued", () => {
    const { db } = fresh();
    const app = createApp(db, "a");
    const mk = () =>
      createBuild(db, {
        appId: app.id,
        sourceSha256: "b".repeat(64),
        sourcePath: "/x",
        logPath: (id) => `/logs/${id}`,
      });
    const running = mk();
    const queued = mk();
    const done = mk();
    expect(startBuild(db, running.id)).toBe(true);
    expect(startBuild(db, running.id)).toBe(false);
    startBuild(db, done.id);
    succeedBuild(db, done.id, { slugSha256: "c".repeat(64), slugPath: "/s", manifestPath: "/m" });
    expect(endBuild(db, done.id, "failed", "late")).toBe(false);
    expect(failInterruptedBuilds(db)).toEqual([running.id]);
    expect(getBuild(db, running.id)).toMatchObject({ status: "failed", failureReason: "interrupted" });
    expect(pendingBuilds(db).map((b) => b.id)).toEqual([queued.id]);
    expect(getBuild(db, done.id).status).toBe("succeeded");
    expect(getBuild(db, queued.id).logPath).toBe(`/logs/${queued.id}`);
  });

  it("records checks of a build: running to one verdict, interrupted ones as errors, gone with the build", () => {
    const { db } = fresh();
    const app = createApp(db, "a");
    const b = createBuild(db, {
      appId: app.id,
      sourceSha256: "b".repeat(64),
      sourcePath: "/x",
      logPath: (id) => id,
    });
    const one = createCheck(db, { buildId: b.id, builds: 1, variations: ["tz", "time"] });
    const two = createCheck(db, { buildId: b.id, builds: 2, variations: [] });
    expect(one).toMatchObject({ status: "running", builds: 1, variations: ["tz", "time"], reportPath: null });
    finishCheck(db, one.id, "not_reproducible", "/r.json");
    finishCheck(db, one.id, "reproducible", "/other.json"); // a verdict is final
    expect(getCheck(db, one.id)).toMatchObject({ status: "not_reproducible", reportPath: "/r.json" });
    expect(failInterruptedChecks(db)).toBe(1);
    expect(getCheck(db, two.id)).toMatchObject({ status: "error", error: "interrupted: the server stopped" });
    expect(listChecks(db, b.id).map((c) => c.id)).toEqual([one.id, two.id]);
    expect(() => getCheck(db, "nope")).toThrow(/no check nope/);
    deleteApp(db, app.id);
    expect(listChecks(db, b.id)).toEqual([]);
  });

  it("validates scaling", () => {
    const { db } = fresh();
    const app = createApp(db, "a");
    expect(
      scaleFormation(db, app.id, [
        { type: "web", quantity: 2 },
        { type: "worker", quantity: 1, size: "basic" },
      ]),
    ).toEqual([
      { type: "web", quantity: 2, size: "standard-1x" },
      { type: "worker", quantity: 1, size: "basic" },
    ]);
    scaleFormation(db, app.id, [{ type: "web", quantity: 0 }]);
    expect(getFormation(db, app.id)[0]).toEqual({ type: "web", quantity: 0, size: "standard-1x" });
    expect(() => scaleFormation(db, app.id, [{ type: "web", quantity: -1 }])).toThrow(/whole number from 0/);
    expect(() => scaleFormation(db, app.id, [{ type: "web", quantity: 1, size: "huge" }])).toThrow(
      /unknown dyno size/,
    );
  });

  it("stores only a hash of each token", () => {
    const { db, file } = fresh();
    expect(hasAdminToken(db)).toBe(false);
    const { token } = createToken(db, { name: "admin", admin: true });
    expect(verifyToken(db, token)).toMatchObject({ name: "admin", admin: true });
    expect(verifyToken(db, `${token}x`)).toBeUndefined();
    expect(hasAdminToken(db)).toBe(true);
    const configured = "c".repeat(32);
    const ci = createUser(db, { name: "ci" });
    addToken(db, { name: "ci", userId: ci.id, token: configured });
    expect(verifyToken(db, configured)).toMatchObject({ name: "ci", user: "ci", admin: false });
    expect(() => addToken(db, { name: "short", admin: true, token: "short" })).toThrow(
      /at least 24 characters/,
    );
    db.pragma("wal_checkpoint(TRUNCATE)");
    db.close();
    expect(readFileSync(file).includes(Buffer.from(token))).toBe(false);
  });

  it("keeps only a hash of each dashboard session; an expired, deleted or revoked-token session opens nothing", () => {
    const { db, file } = fresh();
    const alice = createUser(db, { name: "alice" });
    const { info } = createToken(db, { name: "laptop", userId: alice.id });
    const { secret, session } = createSession(db, { tokenId: info.id, ttlMs: 60_000 });
    expect(findSession(db, secret)?.token).toMatchObject({ id: info.id, user: "alice", admin: false });
    expect(findSession(db, `${secret}x`)).toBeUndefined();
    const expired = createSession(db, { tokenId: info.id, ttlMs: -1 });
    expect(findSession(db, expired.secret)).toBeUndefined();
    deleteSession(db, session.id);
    expect(findSession(db, secret)).toBeUndefined();
    const again = createSession(db, { tokenId: info.id, ttlMs: 60_000 });
    expect(revokeToken(db, info.id)).toBe(true);
    expect(findSession(db, again.secret)).toBeUndefined();
    db.pragma("wal_checkpoint(TRUNCATE)");
    db.close();
    expect(readFileSync(file).includes(Buffer.from(again.secret))).toBe(false);
  });

  it("loses nothing it acknowledged when the process is killed with SIGKILL mid-write", async () => {
    const file = join(tempDir("kiln-store-"), STORE_FILE);
    // A writer that acknowledges each committed release on stdout, as the API acknowledges requests.
    const script = `
      const { openStore } = await import(${JSON.stringify(join(projectDir, "dist/store/db.js"))});
      const { createApp } = await import(${JSON.stringify(join(projectDir, "dist/store/apps.js"))});
      const { createRelease } = await import(${JSON.stringify(join(projectDir, "dist/store/releases.js"))});
      const db = openStore(${JSON.stringify(file)});
      const app = createApp(db, "crashy");
      for (let i = 0; ; i++) {
        const r = createRelease(db, { appId: app.id, buildId: null, slugSha256: null, slugPath: null,
          processTypes: {}, config: { N: String(i), PAD: "x".repeat(2000) }, description: "r" + i });
        process.stdout.write("ack " + r.version + "\\n");
      }`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let acked = 0;
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (d: string) => {
        for (const m of d.matchAll(/ack (\d+)/g)) acked = Math.max(acked, Number(m[1]));
        if (acked >= 150) {
          child.kill("SIGKILL");
          resolve();
        }
      });
    });
    await new Promise((r) => child.once("exit", r));
    const db = openStore(file);
    const app = getApp(db, "crashy");
    const versions = listReleases(db, app.id).map((r) => r.version);
    expect(versions.length).toBeGreaterThanOrEqual(acked);
    // No gaps, no half-written row: every acknowledged version is there, whole.
    expect(new Set(versions)).toEqual(new Set(Array.from({ length: versions.length }, (_, i) => i + 1)));
    expect(currentRelease(db, app.id)?.config.PAD).toBe("x".repeat(2000));
    expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
  });
});
