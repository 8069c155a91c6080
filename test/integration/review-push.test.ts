/**
 * A tar bomb by git push (review s3, M1): a pack of a few KB whose tree names one large blob of
 * zeros many times. The pack passes receive.maxInputSize and `git archive | gzip` passes the
 * compressed bound, while the tar is many times the unpacked bound. Real git client, kiln's smart
 * HTTP over a real socket, the real receive-pack and hook. The control shows, on the same objects,
 * that the compressed bound alone (kiln before the fix) lets the tar through; kiln refuses the push
 * from git's tree before archiving anything, and before anything at all when the queue is full.
 */
import { mkdirSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGzip } from "node:zlib";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "../../src/serve/controlPlane.js";
import { testContext } from "../helpers.js";

const MiB = 1024 * 1024;
const MAX_UNPACKED = 4 * MiB;
const MAX_ENTRIES = 500;
/** The compressed bound (also receive.maxInputSize): the bomb's pack and its tar.gz fit under it. */
const MAX_SOURCE = 1 * MiB;

const work = mkdtempSync(join(tmpdir(), "kiln-review-push-"));
const home = join(work, "home");
mkdirSync(home);
const gitEnv = {
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: home,
  XDG_CONFIG_HOME: join(home, ".config"),
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_TERMINAL_PROMPT: "0",
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@example.com",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@example.com",
};
const git = (cwd: string, args: string[], input?: string) =>
  execa("git", args, { cwd, env: gitEnv, extendEnv: false, reject: false, all: true, input });

/** A repository whose main is one commit: `count` names for one blob of `blobBytes` zeros. */
async function bomb(name: string, count: number, blobBytes: number): Promise<string> {
  const dir = join(work, name);
  mkdirSync(dir);
  await git(dir, ["init", "-q", "-b", "main"]);
  const blob = (await git(dir, ["hash-object", "-w", "--stdin"], "\0".repeat(blobBytes))).stdout.trim();
  const lines = Array.from(
    { length: count },
    (_, i) => `100644 blob ${blob}\tf${String(i).padStart(5, "0")}\n`,
  );
  const tree = (await git(dir, ["mktree"], lines.join(""))).stdout.trim();
  const commit = (await git(dir, ["commit-tree", tree, "-m", "bomb"])).stdout.trim();
  await git(dir, ["update-ref", "refs/heads/main", commit]);
  return dir;
}

/** What kiln before the fix bounded: the gzip of git archive's tar; and the tar's own size. */
async function preFixPipeline(dir: string): Promise<{ tar: number; gz: number }> {
  const archive = execa("git", ["archive", "--format=tar", "main"], {
    cwd: dir,
    env: gitEnv,
    extendEnv: false,
    buffer: false,
  });
  let tar = 0;
  let gz = 0;
  const zip = createGzip();
  archive.stdout?.on("data", (d: Buffer) => (tar += d.length));
  zip.on("data", (d: Buffer) => (gz += d.length));
  archive.stdout?.pipe(zip);
  await Promise.all([archive, new Promise((r) => zip.on("end", r))]);
  return { tar, gz };
}

describe("git push: a tar bomb is refused from git's tree, before it is archived", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-review-push-data-"));
  const fullDir = mkdtempSync(join(tmpdir(), "kiln-review-push-full-"));
  let cp: ControlPlane;
  let full: ControlPlane;
  let alice = "";
  const limits = { maxUnpackedSourceBytes: MAX_UNPACKED, maxSourceEntries: MAX_ENTRIES };

  const api = async (plane: ControlPlane, token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${plane.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    // biome-ignore lint/suspicious/noExplicitAny: JSON bodies read field by field
    return { status: res.status, json: (await res.json()) as any };
  };
  /** A tenant (not the admin, who has no quotas) and an app of theirs on `plane`. */
  const tenant = async (plane: ControlPlane, app: string) => {
    const admin = plane.adminToken ?? "";
    expect((await api(plane, admin, "POST", "/v1/users", { name: "alice" })).status).toBe(201);
    const token = (await api(plane, admin, "POST", "/v1/tokens", { name: "alice", user: "alice" })).json
      .token as string;
    expect((await api(plane, token, "POST", "/v1/apps", { name: app })).status).toBe(201);
    return token;
  };
  const push = (plane: ControlPlane, token: string, dir: string, app: string) => {
    const url = new URL(plane.url);
    return git(dir, ["push", `http://kiln:${token}@${url.host}/git/${app}.git`, "main"]);
  };
  /** Nothing recorded: no build, no source left, and the branch did not move. */
  const nothingRecorded = async (plane: ControlPlane, token: string, app: string, data: string) => {
    expect((await api(plane, token, "GET", `/v1/apps/${app}/builds`)).json).toEqual([]);
    expect(readdirSync(join(data, "sources"))).toEqual([]);
    const url = new URL(plane.url);
    const refs = await git(work, ["ls-remote", `http://kiln:${token}@${url.host}/git/${app}.git`]);
    expect(refs.exitCode, refs.all).toBe(0);
    expect(refs.stdout.trim()).toBe("");
  };

  beforeAll(async () => {
    cp = await startControlPlane(testContext({ dataDir, ...limits }), {
      host: "127.0.0.1",
      port: 0,
      dynos: false,
      maxSourceBytes: MAX_SOURCE,
    });
    // The queue takes nothing: every deploying push finds it full.
    full = await startControlPlane(testContext({ dataDir: fullDir, ...limits }), {
      host: "127.0.0.1",
      port: 0,
      dynos: false,
      maxSourceBytes: MAX_SOURCE,
      maxQueued: 0,
    });
    alice = await tenant(cp, "bomb");
  });
  afterAll(async () => {
    await cp?.close();
    await full?.close();
  });

  it("bytes: 64 names for 1 MiB of zeros (a pack of a few KB, 64 MiB of tar) is refused with kiln's cause and hint; nothing is recorded", async () => {
    const dir = await bomb("bytes", 64, MiB);
    // Control: the bound kiln had (gzip output ≤ maxSourceBytes) lets 16× the unpacked bound through.
    const pre = await preFixPipeline(dir);
    expect(pre.tar).toBeGreaterThan(16 * MAX_UNPACKED);
    expect(pre.gz).toBeLessThan(MAX_SOURCE);

    const r = await push(cp, alice, dir, "bomb");
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/^remote: -----> Push rejected: the pushed tree unpacks to more than 4 MiB\s*$/m);
    expect(r.all).toMatch(/^remote: {8}keep large files .*KILN_MAX_UNPACKED_SOURCE_BYTES/m);
    expect(r.all).toContain("! [remote rejected] main -> main");
    await nothingRecorded(cp, alice, "bomb", dataDir);
  });

  it("entries: 600 names for the empty blob is refused past the entry bound; nothing is recorded", async () => {
    const dir = await bomb("entries", MAX_ENTRIES + 100, 0);
    const r = await push(cp, alice, dir, "bomb");
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/^remote: -----> Push rejected: the pushed tree has more than 500 entries\s*$/m);
    await nothingRecorded(cp, alice, "bomb", dataDir);
  });

  it("a full queue refuses the push before git's tree is read (the bomb's own refusal never comes)", async () => {
    const token = await tenant(full, "bomb");
    const r = await push(full, token, await bomb("full", 64, MiB), "bomb");
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/^remote: -----> Push rejected: the build queue is full\s*$/m);
    expect(r.all).toMatch(/^remote: {8}push again in a minute/m);
    expect(r.all).not.toContain("pushed tree");
    await nothingRecorded(full, token, "bomb", fullDir);
  });

  it("control: a tree within the bounds (3 names for 1 MiB) is archived and built (and fails: nothing detects it)", async () => {
    const r = await push(cp, alice, await bomb("within", 3, MiB), "bomb");
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/^remote: -----> Building bomb from main/m);
    expect(r.all).toMatch(/^remote: -----> Unpacking the source/m);
    expect(r.all).toMatch(/^remote: -----> Push rejected: the build failed: /m);
    const builds = (await api(cp, alice, "GET", "/v1/apps/bomb/builds")).json;
    expect(builds).toHaveLength(1);
    expect(builds[0]).toMatchObject({ status: "failed" });
  });
});
