/**
 * git push to kiln, end to end: the real git client against kiln's smart HTTP over a real socket,
 * the real receive-pack and kiln's pre-receive hook, real builds in the Nix sandbox. One server and
 * two real builds (a first push, then a one-line change pushed by a client that hangs up while a
 * second push waits its turn); everything else is refused before a build starts, or is no build.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "../../src/serve/controlPlane.js";
import { kiln, projectDir, testContext } from "../helpers.js";
import { until } from "../serveProcess.js";

const work = mkdtempSync(join(tmpdir(), "kiln-gitpush-"));
const home = join(work, "home");
mkdirSync(home);
/** git as a user runs it, but with nothing of this machine's config and never a prompt. */
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
const git = (cwd: string, ...args: string[]) =>
  execa("git", args, { cwd, env: gitEnv, extendEnv: false, reject: false, all: true });

/** A checkout of the node-web fixture (an express app), committed on main. */
async function checkout(name: string): Promise<string> {
  const dir = join(work, name);
  cpSync(join(projectDir, "test", "fixtures", "apps", "node-web"), dir, { recursive: true });
  await git(dir, "init", "-q", "-b", "main");
  await git(dir, "add", "-A");
  await git(dir, "commit", "-qm", "the express app");
  return dir;
}

/** A raw request (the path sent as written, no dot-segment clean-up). */
function raw(port: number, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((ok, fail) => {
    const req = request({ port, path, headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => ok({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", fail);
    req.end();
  });
}

describe("git push", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-gitpush-data-"));
  let cp: ControlPlane;
  let admin = "";
  let port = 0;
  let alice = "";
  let bob = "";
  let carol = "";
  const base = () => `http://127.0.0.1:${port}`;
  const url = (token: string, app: string) => `http://kiln:${token}@127.0.0.1:${port}/git/${app}.git`;
  const api = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base()}${path}`, {
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
  const userToken = async (name: string) => {
    expect((await api(admin, "POST", "/v1/users", { name })).status).toBe(201);
    return (await api(admin, "POST", "/v1/tokens", { name, user: name })).json.token as string;
  };
  const remoteMain = async (app: string) => {
    const r = await git(work, "ls-remote", url(alice, app), "refs/heads/main");
    return r.stdout.split("\t")[0] ?? "";
  };
  const head = async (dir: string) => (await git(dir, "rev-parse", "HEAD")).stdout.trim();

  beforeAll(async () => {
    cp = await startControlPlane(testContext({ dataDir }), { host: "127.0.0.1", port: 0, dynos: false });
    admin = cp.adminToken ?? "";
    port = Number(new URL(cp.url).port);
    alice = await userToken("alice");
    bob = await userToken("bob");
    carol = await userToken("carol");
    expect((await api(alice, "POST", "/v1/apps", { name: "web" })).status).toBe(201);
    expect((await api(alice, "POST", "/v1/apps/web/collaborators", { user: "carol" })).status).toBe(201);
  });
  afterAll(async () => {
    await cp?.close();
  });

  let app = "";
  let first = "";

  it("kiln git:remote sets a remote and a credential helper (no token in .git/config); the push builds, streams remote: lines and releases; a clone gives the deployed tree", async () => {
    app = await checkout("app");
    first = await head(app);
    // The CLI's own client config holds the token; the credential helper hands it to git.
    mkdirSync(join(home, ".config", "kiln"), { recursive: true });
    writeFileSync(
      join(home, ".config", "kiln", "client.json"),
      JSON.stringify({ server: base(), token: alice }),
    );
    const env = { ...gitEnv, KILN_DATA_DIR: join(work, "cli-data") };
    const remote = await execa("node", [join(projectDir, "bin", "kiln.js"), "git:remote", "-a", "web"], {
      cwd: app,
      env,
      extendEnv: false,
      reject: false,
      all: true,
    });
    expect(remote.exitCode, remote.all).toBe(0);
    expect(remote.stdout).toContain(`${base()}/git/web.git`);
    expect(readFileSync(join(app, ".git", "config"), "utf8")).not.toContain(alice);

    const push = await git(app, "push", "kiln", "main");
    expect(push.exitCode, push.all).toBe(0);
    expect(push.all).toMatch(/^remote: -----> Building web from main/m);
    // The build's own log, relayed as it is written (a cached build prints less, but this much).
    expect(push.all).toMatch(/^remote: -----> Unpacking the source/m);
    expect(push.all).toMatch(/^remote: -----> Built in .* release v1\s*$/m);
    expect(push.all).toMatch(new RegExp(`^remote: -----> Released v1 \\(${first.slice(0, 7)}\\)`, "m"));
    expect(await remoteMain("web")).toBe(first);

    // The commit is on the build and the release, and kiln releases shows it.
    const releases = await api(alice, "GET", "/v1/apps/web/releases");
    expect(releases.json[0]).toMatchObject({
      version: 1,
      commit: first,
      description: `Deploy ${first.slice(0, 7)}`,
    });
    const builds = await api(alice, "GET", "/v1/apps/web/builds");
    expect(builds.json[0]).toMatchObject({ status: "succeeded", commit: first });
    const cli = await kiln(["releases", "-a", "web", "--server", base(), "--token", alice]);
    expect(cli.stdout).toContain(first.slice(0, 7));

    const clone = join(work, "clone");
    const c = await git(work, "clone", "-q", url(alice, "web"), clone);
    expect(c.exitCode, c.all).toBe(0);
    expect(await head(clone)).toBe(first);
    expect(readFileSync(join(clone, "server.js"), "utf8")).toBe(readFileSync(join(app, "server.js"), "utf8"));
  });

  it("a failing build rejects the push with kiln's reason, and the branch does not move", async () => {
    const broken = join(work, "broken");
    await git(work, "clone", "-q", url(alice, "web"), broken);
    // The lock no longer matches package.json: kiln refuses to build it (before npm runs).
    const pkg = JSON.parse(readFileSync(join(broken, "package.json"), "utf8"));
    pkg.dependencies = { "left-pad": "1.3.0" };
    writeFileSync(join(broken, "package.json"), JSON.stringify(pkg));
    await git(broken, "commit", "-qam", "a dependency without its lock");
    const push = await git(broken, "push", "origin", "main");
    expect(push.exitCode).not.toBe(0);
    // kiln's cause (the reason's first line), then its hint, just before git's verdict.
    expect(push.all).toMatch(
      /^remote: -----> Push rejected: the build failed: .*out of sync.*\s*\nremote: {8}run `npm install` to update the lock, and commit both/m,
    );
    expect(push.all).toContain("! [remote rejected] main -> main");
    expect(await remoteMain("web")).toBe(first);
    const builds = await api(alice, "GET", "/v1/apps/web/builds");
    expect(builds.json[0]).toMatchObject({ status: "failed", commit: await head(broken) });
  });

  it("a push to another branch is accepted and not deployed, and says why", async () => {
    await git(app, "checkout", "-qb", "feature");
    writeFileSync(join(app, "NOTES"), "not deployed\n");
    await git(app, "add", "NOTES");
    await git(app, "commit", "-qm", "notes");
    const push = await git(app, "push", "kiln", "feature");
    expect(push.exitCode, push.all).toBe(0);
    expect(push.all).toMatch(
      /^remote: kiln: refs\/heads\/feature accepted, not deployed: only main or master deploys web/m,
    );
    expect(push.all).not.toContain("Building");
    expect((await api(alice, "GET", "/v1/apps/web/releases")).json).toHaveLength(1);
    await git(app, "checkout", "-q", "main");
  });

  it("asks for credentials (401, Basic realm) and shows another user's app as missing (404); a collaborator may push", async () => {
    const none = await raw(port, "/git/web.git/info/refs?service=git-receive-pack");
    expect(none.status).toBe(401);
    expect(none.headers["www-authenticate"]).toBe('Basic realm="kiln"');
    const noCreds = await git(work, "ls-remote", `${base()}/git/web.git`);
    expect(noCreds.exitCode).not.toBe(0);
    // Bearer works too (http.extraHeader), as Basic does.
    const bearer = await raw(port, "/git/web.git/info/refs?service=git-upload-pack", {
      authorization: `Bearer ${alice}`,
    });
    expect(bearer.status).toBe(200);
    expect(bearer.body.startsWith("001e# service=git-upload-pack\n0000")).toBe(true);
    // Bob: not the owner, not a collaborator: the app does not exist for him, word for word the API's 404.
    const bobs = await raw(port, "/git/web.git/info/refs?service=git-upload-pack", {
      authorization: `Basic ${Buffer.from(`bob:${bob}`).toString("base64")}`,
    });
    const missing = await raw(port, "/git/nope.git/info/refs?service=git-upload-pack", {
      authorization: `Basic ${Buffer.from(`bob:${bob}`).toString("base64")}`,
    });
    expect(bobs.status).toBe(404);
    expect(bobs.body.replace("web", "nope")).toBe(missing.body);
    const bobClone = await git(work, "clone", "-q", url(bob, "web"), join(work, "bob"));
    expect(bobClone.exitCode).not.toBe(0);
    expect(bobClone.all).toMatch(/not found/);
    const bobPush = await git(app, "push", url(bob, "web"), "feature:bobs");
    expect(bobPush.exitCode).not.toBe(0);
    // Carol collaborates: she may push (a branch that does not deploy: no build needed to prove it).
    const carolPush = await git(app, "push", url(carol, "web"), "feature:carols");
    expect(carolPush.exitCode, carolPush.all).toBe(0);
    const refs = await git(work, "ls-remote", url(alice, "web"));
    expect(refs.stdout).toContain("refs/heads/carols");
    expect(refs.stdout).not.toContain("refs/heads/bobs");
  });

  it("git's own auth exemption opens no API route (a path that climbs out of /git/)", async () => {
    // Control: the API itself wants a token.
    expect((await raw(port, "/v1/apps")).status).toBe(401);
    for (const path of ["/git/../v1/apps", "/git/x/../../v1/apps", "/git/%2e%2e/v1/apps"]) {
      const r = await raw(port, path);
      expect(r.status, path).not.toBe(200);
      expect(r.body, path).not.toContain('"name":"web"');
    }
  });

  it("a pusher that hangs up mid-build: the build goes on and the branch follows it; a push meanwhile waits its turn, says so, and is refused since the branch moved", async () => {
    writeFileSync(
      join(app, "server.js"),
      `${readFileSync(join(app, "server.js"), "utf8")}// one line more\n`,
    );
    await git(app, "commit", "-qam", "one line more");
    const second = await head(app);
    // The first pusher: its git (and git-remote-http) killed once its build is under way.
    const pusher = execa("git", ["push", "kiln", "main"], {
      cwd: app,
      env: gitEnv,
      extendEnv: false,
      reject: false,
      all: true,
      detached: true,
    });
    let seen = "";
    pusher.all?.on("data", (d: Buffer) => (seen += d.toString()));
    await until("the first push's build to start", () => seen.includes("-----> Building web"), 300_000);

    // A second push from another checkout, while the first one builds.
    const other = join(work, "other");
    await git(work, "clone", "-q", url(alice, "web"), other);
    writeFileSync(join(other, "OTHER"), "x\n");
    await git(other, "add", "OTHER");
    await git(other, "commit", "-qm", "another change");
    const waiting = git(other, "push", "origin", "main");
    let waitingSeen = "";
    waiting.all?.on("data", (d: Buffer) => (waitingSeen += d.toString()));
    await until(
      "the second push to say it waits",
      () => waitingSeen.includes("Waiting for the push of"),
      120_000,
    );
    expect(waitingSeen).toContain(`Waiting for the push of ${second.slice(0, 7)} to web to finish`);

    process.kill(-(pusher.pid as number), "SIGKILL");
    await pusher;
    expect(seen).not.toContain("Released");

    // The server owns the build: it finishes, releases, and the branch moves after the fact.
    await until("the branch to follow the build", async () => (await remoteMain("web")) === second, 600_000);
    const releases = await api(alice, "GET", "/v1/apps/web/releases");
    expect(releases.json[0]).toMatchObject({ version: 2, commit: second });

    const late = await waiting;
    expect(late.exitCode).not.toBe(0);
    expect(late.all).toMatch(new RegExp(`main moved to ${second.slice(0, 7)} while this push waited`));
    expect(late.all).toContain("! [remote rejected] main -> main");
    expect(await remoteMain("web")).toBe(second);
  });

  it("-o buildpack=NAME picks shipped buildpacks; a host path, an unknown name or option is refused before any build", async () => {
    const opts = join(work, "opts");
    await git(work, "clone", "-q", url(alice, "web"), opts);
    writeFileSync(join(opts, "Procfile"), "web: node server.js\n");
    await git(opts, "add", "Procfile");
    await git(opts, "commit", "-qm", "a Procfile");
    const commit = await head(opts);
    const before = (await api(alice, "GET", "/v1/apps/web/builds")).json.length;
    const was = await remoteMain("web");
    // The pusher controls the option's text: a host path would be resolved on the server.
    for (const [option, said] of [
      ["buildpack=/work", /-o buildpack= names no shipped buildpack \("\/work"\)/],
      ["buildpack=nodejs,../x", /-o buildpack= names no shipped buildpack \("\.\.\/x"\)/],
      ["skip-build", /kiln takes no push option "skip-build"/],
    ] as const) {
      const r = await git(opts, "push", "-o", option, "origin", "main");
      expect(r.exitCode, r.all).not.toBe(0);
      expect(r.all).toMatch(said);
      expect(r.all).toMatch(/^remote: {8}.*(shipped: nodejs, static, procfile|-o buildpack=NAME)/m);
      expect(r.all).toContain("! [remote rejected] main -> main");
    }
    expect((await api(alice, "GET", "/v1/apps/web/builds")).json).toHaveLength(before);
    expect(await remoteMain("web")).toBe(was);
    // procfile alone (detection would pick nodejs): the manifest names it, and the commit.
    const ok = await git(opts, "push", "-o", "buildpack=procfile", "origin", "main");
    expect(ok.exitCode, ok.all).toBe(0);
    expect(ok.all).toContain("with procfile (-o buildpack)");
    const build = (await api(alice, "GET", "/v1/apps/web/builds")).json[0];
    expect(build).toMatchObject({ status: "succeeded", commit });
    const manifest = JSON.parse(
      readFileSync(join(dataDir, "builds", "web", `${build.slug_sha256}.json`), "utf8"),
    );
    expect(manifest.source.commit).toBe(commit);
    expect(manifest.buildpacks.map((b: { name: string }) => b.name)).toEqual(["procfile"]);
    expect(await remoteMain("web")).toBe(commit);
  });

  it("a deleted app's repository is not the next app of that name's", async () => {
    expect((await api(alice, "DELETE", "/v1/apps/web")).status).toBe(200);
    expect((await api(bob, "POST", "/v1/apps", { name: "web" })).status).toBe(201);
    const r = await git(work, "ls-remote", url(bob, "web"));
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout.trim()).toBe("");
  });

  it("the deploy branch is settable per app (API and CLI) and only it deploys", async () => {
    const set = await kiln(["git:branch", "production", "-a", "web", "--server", base(), "--token", bob]);
    expect(set.exitCode, set.all).toBe(0);
    expect(set.stdout).toContain("web deploys pushes to production");
    expect((await api(bob, "GET", "/v1/apps/web")).json.deploy_branch).toBe("production");
    const bad = await api(bob, "PATCH", "/v1/apps/web/git", { deploy_branch: "no..dots" });
    expect(bad.status).toBe(422);
    const push = await git(app, "push", url(bob, "web"), "main");
    expect(push.exitCode, push.all).toBe(0);
    expect(push.all).toContain("only production deploys web");
  });
});
