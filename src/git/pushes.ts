/**
 * What a push does, on the server: kiln's pre-receive hook (hookScript.ts) connects here over
 * loopback with the push's one-time secret, and the server decides. A push to the app's deploy
 * branch becomes a build, from the pushed commit still in git's quarantine, through the same checks
 * as an upload (size while it is written, then the untrusted-archive inspection, then the quotas);
 * the build runs in the server's queue, its log streams back to the pusher, and the hook is told to
 * accept only once the build succeeded and its release exists. Any other branch is accepted and
 * not deployed.
 *
 * One deploying push per app at a time, held until that push's receive-pack has exited (so the
 * branch has moved, or not, before the next one looks at it): a second push waits its turn and
 * says so, then is refused if the branch moved under it, as git would refuse it.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { isAbsolute, join, relative, resolve } from "node:path";
import { pipeline, Transform } from "node:stream";
import { createGzip } from "node:zlib";
import { inspectUntrustedTarGz, type UntrustedLimits } from "../archive/untrusted.js";
import { SHIPPED_BUILDPACKS } from "../buildpacks/registry.js";
import type { BuildLogs } from "../builds/buildLog.js";
import type { BuildQueue } from "../builds/queue.js";
import { isKilnError, KilnError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import { spawnProcess } from "../process/run.js";
import { receiveUpload } from "../source/upload.js";
import { type App, DEFAULT_DEPLOY_BRANCHES, getApp } from "../store/apps.js";
import { createBuild, endBuild, getBuild, listBuilds } from "../store/builds.js";
import type { Db } from "../store/db.js";
import { releaseOfBuild } from "../store/releases.js";
import type { TokenInfo } from "../store/tokens.js";
import type { HookRequest } from "./hookScript.js";
import { gitEnv, refValue, setHead, ZERO_COMMIT } from "./repos.js";

/** A line reaches the pusher at least this often while it waits (proxies drop quiet connections). */
export const KEEPALIVE_MS = 20_000;

/**
 * Who may do what, as the API decides it (src/api/tenancy.ts), handed in by the API that mounts
 * git, so that git depends on the API's rules without importing the API.
 */
export interface Access {
  /** The app when the caller may `need` it; else the API's error for it (404 as if missing). */
  appFor(caller: TokenInfo, nameOrId: string, need: "read" | "write"): App;
  /** Throws when a new build by the caller would pass a quota. */
  assertBuildQuota(caller: TokenInfo, app: App): void;
}

export interface PushDeps {
  db: Db;
  log: Logger;
  queue: BuildQueue;
  logs: BuildLogs;
  dataDir: string;
  maxSourceBytes: number;
  /** What a pushed tree may unpack to; measured from git's tree before it is archived. */
  unpacked: Pick<UntrustedLimits, "maxBytes" | "maxEntries">;
  access: Access;
}

/** One receive-pack run: who pushes to which app, and when its process is gone. */
export interface Push {
  app: App;
  caller: TokenInfo;
  repo: string;
  /** Settles when the push's receive-pack has exited (the refs are final). */
  done: Promise<void>;
}

export interface PushServer {
  /** Registers a push; the returned environment goes to its receive-pack (and so to the hook). */
  open(push: Push): Record<string, string>;
  close(): Promise<void>;
}

interface Update {
  old: string;
  new: string;
  ref: string;
}

type Say = (text: string) => void;

/** An object id as git prints it (SHA-1 or SHA-256): all that is ever passed to git as a commit. */
const OBJECT_ID = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

/** Per tar entry past its content: a header, a possible pax/long-name header, padding to 512. */
const TAR_ENTRY_OVERHEAD = 2048;

/** A push refused: the lines the pusher reads, then git's "[remote rejected]". */
const refusal = (message: string, hint?: string) =>
  new KilnError({ code: "push_rejected", message, ...(hint ? { hint } : {}) });

/**
 * The push options kiln takes (`git push -o buildpack=NAME`, repeatable, or NAME,NAME: the
 * buildpacks in order, instead of the app's .buildpacks or detection). Only shipped buildpacks by
 * name: a path would be resolved on the server's host, outside the pushed tree. Anything else is
 * refused, so a typo never deploys as if it were not there.
 */
export function parsePushOptions(options: readonly string[]): { buildpacks: string[] } {
  const buildpacks: string[] = [];
  for (const o of options) {
    const eq = o.indexOf("=");
    const key = eq === -1 ? o : o.slice(0, eq);
    if (key !== "buildpack" || eq === -1) {
      throw refusal(
        `kiln takes no push option "${o.length > 60 ? `${o.slice(0, 60)}…` : o}"`,
        "the one push option is -o buildpack=NAME (repeatable)",
      );
    }
    for (const name of o.slice(eq + 1).split(",")) {
      if (!(SHIPPED_BUILDPACKS as readonly string[]).includes(name)) {
        throw refusal(
          `-o buildpack= names no shipped buildpack ("${name.length > 60 ? `${name.slice(0, 60)}…` : name}")`,
          `shipped: ${SHIPPED_BUILDPACKS.join(", ")}; a buildpack of your own goes in the app, named in its .buildpacks`,
        );
      }
      if (!buildpacks.includes(name)) buildpacks.push(name);
    }
  }
  return { buildpacks };
}

export function deployBranchesOf(app: App): readonly string[] {
  return app.deployBranch ? [app.deployBranch] : DEFAULT_DEPLOY_BRANCHES;
}

export async function startPushServer(deps: PushDeps): Promise<PushServer> {
  const sources = join(deps.dataDir, "sources");
  mkdirSync(sources, { recursive: true });
  const pushes = new Map<string, Push>();
  const locks = new Map<string, { commit: string; released: Promise<void> }>();
  const hooks = new Set<Socket>();

  /** Waits for the app's deploying push (saying so), then holds the app until `push` is done. */
  const takeTurn = async (push: Push, commit: string, say: Say) => {
    for (;;) {
      const held = locks.get(push.app.id);
      if (!held) break;
      say(`-----> Waiting for the push of ${held.commit.slice(0, 7)} to ${push.app.name} to finish`);
      await held.released;
    }
    const entry = {
      commit,
      released: push.done.then(() => {
        if (locks.get(push.app.id) === entry) locks.delete(push.app.id);
      }),
    };
    locks.set(push.app.id, entry);
  };

  /** git's environment for reading the pushed objects, still in git's quarantine. */
  const objectsEnv = (push: Push, quarantine: string | null) => {
    const objects = join(push.repo, "objects");
    let objectDir = objects;
    if (quarantine) {
      // Set by git for kiln's own hook; still, only a quarantine inside this repository is read.
      const rel = relative(objects, resolve(quarantine));
      if (!rel || rel.startsWith("..") || isAbsolute(rel) || rel.includes("/"))
        throw refusal("the push's quarantine is not inside the app's repository");
      objectDir = resolve(quarantine);
    }
    return gitEnv({ GIT_OBJECT_DIRECTORY: objectDir, GIT_ALTERNATE_OBJECT_DIRECTORIES: objects });
  };

  const tooBig = (what: string) =>
    refusal(
      `the pushed tree ${what}`,
      "keep large files (assets, data, dependencies) out of the deployed branch; the server's bounds are KILN_MAX_UNPACKED_SOURCE_BYTES and KILN_MAX_SOURCE_ENTRIES",
    );

  /**
   * The commit's tree as `git archive` would write it, from `git ls-tree` (object sizes only: no
   * blob is read), refused past the bounds. A pack of a few KB can name one large blob thousands
   * of times, so the pack's size says nothing of the tar's; git is stopped once a bound is passed.
   */
  const measureTree = async (push: Push, commit: string, env: Record<string, string>) => {
    const { maxBytes, maxEntries } = deps.unpacked;
    const git = spawnProcess("git", ["--git-dir", push.repo, "ls-tree", "-r", "-t", "-l", "-z", commit], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
      cwd: push.repo,
    });
    let bytes = 0;
    let entries = 0;
    let held = "";
    let over: KilnError | undefined;
    git.child.stdout?.setEncoding("utf8");
    git.child.stdout?.on("data", (d: string) => {
      if (over) return;
      held += d;
      const records = held.split("\0");
      held = records.pop() ?? "";
      for (const r of records) {
        // <mode> <type> <object> <size or -><TAB><path>
        const size = Number(r.slice(0, r.indexOf("\t")).split(" ")[3]);
        entries++;
        if (Number.isFinite(size)) bytes += size;
        if (entries > maxEntries) over = tooBig(`has more than ${maxEntries} entries`);
        else if (bytes > maxBytes)
          over = tooBig(`unpacks to more than ${Math.round(maxBytes / 1048576)} MiB`);
        if (over) {
          git.child.kill("SIGKILL");
          return;
        }
      }
    });
    const end = await git.exited;
    if (over) throw over;
    if (end.exitCode !== 0) throw refusal(`git ls-tree of ${commit} failed (exit ${end.exitCode})`);
    return { bytes, entries };
  };

  /** The pushed commit as a tar.gz in the sources directory, read from git's quarantine. */
  const archive = async (
    push: Push,
    commit: string,
    quarantine: string | null,
  ): Promise<{ file: string; sha256: string }> => {
    const env = objectsEnv(push, quarantine);
    const tree = await measureTree(push, commit, env);
    // What git archive writes may still differ from the tree (export-subst): its stdout is counted
    // too, as it is produced, and git stopped past what the measured tree allows.
    const maxTar = tree.bytes + (tree.entries + 2) * TAR_ENTRY_OVERHEAD + 1024 * 1024;
    const file = join(sources, `${randomUUID()}.tar.gz`);
    const git = spawnProcess("git", ["--git-dir", push.repo, "archive", "--format=tar", commit], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
      cwd: push.repo,
    });
    let stderr = "";
    git.child.stderr?.on("data", (d: Buffer) => {
      if (stderr.length < 4000) stderr += d.toString("utf8");
    });
    const stdout = git.child.stdout;
    if (!stdout) throw new Error("git archive has no stdout");
    let tarBytes = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, next) {
        tarBytes += chunk.length;
        if (tarBytes > maxTar) next(tooBig(`archives to more than ${maxTar} bytes of tar`));
        else next(null, chunk);
      },
    });
    const gz = createGzip();
    // pipeline, not pipe: the counter's refusal must reach the gzip stream that receiveUpload reads.
    pipeline(stdout, counted, gz, (err) => {
      if (err) gz.destroy(err);
    });
    try {
      const { sha256 } = await receiveUpload(gz, {
        file,
        maxBytes: deps.maxSourceBytes,
      });
      const end = await git.exited;
      if (end.exitCode !== 0)
        throw refusal(`git archive of ${commit} failed: ${stderr.trim() || `exit ${end.exitCode}`}`);
      return { file, sha256 };
    } catch (err) {
      git.child.kill("SIGKILL");
      await rm(file, { force: true });
      throw err;
    }
  };

  /** `say`, plus a line of its own whenever nothing was said for KEEPALIVE_MS; stop() ends that. */
  const withKeepalive = (say: Say, started: number) => {
    let last = Date.now();
    const tell: Say = (t) => {
      last = Date.now();
      say(t);
    };
    const timer = setInterval(() => {
      if (Date.now() - last >= KEEPALIVE_MS)
        tell(`-----> still working (${Math.round((Date.now() - started) / 1000)} s)`);
    }, 1000);
    return { tell, stop: () => clearInterval(timer) };
  };

  const deploy = async (push: Push, u: Update, branch: string, req: HookRequest, say: Say): Promise<void> => {
    const started = Date.now();
    const ka = withKeepalive(say, started);
    try {
      await deployWith(push, u, branch, req, ka.tell, started);
    } finally {
      ka.stop();
    }
  };

  const deployWith = async (
    push: Push,
    u: Update,
    branch: string,
    req: HookRequest,
    tell: Say,
    started: number,
  ): Promise<void> => {
    const { db } = deps;
    if (!OBJECT_ID.test(u.new) || !OBJECT_ID.test(u.old))
      throw refusal("the hook sent a malformed object id");
    await takeTurn(push, u.new, tell);
    // The app may have gone, or its deploy branch changed, while this push waited.
    const app = getApp(db, push.app.id);
    const now = (await refValue(push.repo, u.ref)) ?? ZERO_COMMIT;
    if (now !== u.old) {
      throw refusal(
        `${branch} moved to ${now.slice(0, 7)} while this push waited`,
        `fetch it (git pull kiln ${branch}), then push again; or force the push (git push --force)`,
      );
    }
    const { buildpacks } = parsePushOptions(req.pushOptions);
    // Before git reads anything: a tenant at a quota, or a full queue, costs the server nothing.
    const assertRoom = () => {
      deps.access.assertBuildQuota(push.caller, app);
      if (deps.queue.isFull()) throw refusal("the build queue is full", "push again in a minute");
    };
    assertRoom();
    tell(
      `-----> Building ${app.name} from ${branch} (${u.new.slice(0, 7)})${buildpacks.length ? ` with ${buildpacks.join(", ")} (-o buildpack)` : ""}`,
    );
    const { file, sha256 } = await archive(push, u.new, req.quarantine);
    let buildId: string;
    try {
      await inspectUntrustedTarGz(file, deps.unpacked);
      // Again: other builds may have been queued while this one was archived.
      assertRoom();
      const build = createBuild(db, {
        appId: app.id,
        sourceSha256: sha256,
        sourcePath: file,
        logPath: deps.logs.path,
        release: true,
        userId: push.caller.userId,
        commit: u.new,
        buildpacks,
      });
      buildId = build.id;
      try {
        deps.queue.submit({ buildId: build.id, appId: app.id });
      } catch (err) {
        endBuild(db, build.id, "failed", "the build queue was full");
        throw err;
      }
    } catch (err) {
      await rm(file, { force: true });
      throw err;
    }
    // Another build of the app (a kiln deploy) may be running: this one starts after it.
    let waitingSaid = false;
    while (getBuild(db, buildId).status === "pending") {
      if (!waitingSaid) {
        const running = listBuilds(db, app.id).find((b) => b.status === "building" && b.id !== buildId);
        if (running) tell(`-----> Waiting for build ${running.id.slice(0, 8)} of ${app.name} to finish`);
        waitingSaid = !!running;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    let held = "";
    await deps.logs.follow(
      buildId,
      (text) => {
        held += text;
        const lines = held.split("\n");
        held = lines.pop() ?? "";
        for (const l of lines) tell(l);
      },
      new AbortController().signal,
    );
    if (held) tell(held);
    const b = getBuild(db, buildId);
    const release = b.status === "succeeded" ? releaseOfBuild(db, app.id, b.id) : undefined;
    if (!release) {
      // The cause is the reason's first line (the log above has the rest), then kiln's hint for it.
      const cause = (b.failureReason ?? "no reason recorded").split("\n")[0];
      const where = `${branch} did not move; the whole log: /v1/apps/${app.name}/builds/${b.id}/output`;
      throw refusal(
        `the build ${b.status === "succeeded" ? "made no release" : `${b.status}: ${cause}`}`,
        b.failureHint ? `${b.failureHint}\n${where}` : `fix it, commit and push again (${where})`,
      );
    }
    await setHead(push.repo, branch);
    tell(
      `-----> Released v${release.version} (${u.new.slice(0, 7)}) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  };

  const handle = async (req: HookRequest, say: Say): Promise<number> => {
    const push = pushes.get(req.secret);
    if (!push) {
      say("kiln: this push is not known to the server");
      return 1;
    }
    pushes.delete(req.secret); // one hook run per push
    const app = getApp(deps.db, push.app.id);
    const branches = deployBranchesOf(app);
    const updates: Update[] = req.updates
      .split("\n")
      .filter(Boolean)
      .map((l) => {
        const [old = "", neu = "", ref = ""] = l.split(" ");
        return { old, new: neu, ref };
      });
    const deploys: { u: Update; branch: string }[] = [];
    for (const u of updates) {
      const branch = u.ref.startsWith("refs/heads/") ? u.ref.slice("refs/heads/".length) : undefined;
      if (branch && branches.includes(branch)) {
        if (u.new === ZERO_COMMIT) {
          say(`kiln: deleting ${branch} leaves ${app.name}'s release as it is (nothing deployed)`);
          continue;
        }
        deploys.push({ u, branch });
      } else {
        say(
          `kiln: ${u.ref} accepted, not deployed: only ${branches.join(" or ")} deploys ${app.name} (kiln git:branch BRANCH -a ${app.name} changes that)`,
        );
      }
    }
    if (deploys.length > 1) {
      say(
        `kiln: push one deploy branch at a time (${deploys.map((d) => d.branch).join(" and ")} were pushed together)`,
      );
      return 1;
    }
    const d = deploys[0];
    if (!d) return 0;
    try {
      await deploy(push, d.u, d.branch, req, say);
      return 0;
    } catch (err) {
      if (!isKilnError(err)) deps.log.error({ err, app: app.name }, "push failed");
      const message = isKilnError(err) ? err.message : `internal error: ${(err as Error).message}`;
      say(`-----> Push rejected: ${message}`);
      if (isKilnError(err) && err.hint) for (const l of err.hint.split("\n")) say(`       ${l}`);
      return 1;
    }
  };

  const server: Server = createServer((sock) => {
    hooks.add(sock);
    sock.on("close", () => hooks.delete(sock));
    sock.on("error", () => {});
    sock.setEncoding("utf8");
    let held = "";
    const onData = (d: string) => {
      held += d;
      if (held.length > 1024 * 1024) return sock.destroy();
      const nl = held.indexOf("\n");
      if (nl === -1) return;
      sock.off("data", onData);
      let req: HookRequest;
      try {
        req = JSON.parse(held.slice(0, nl)) as HookRequest;
        if (typeof req.secret !== "string" || typeof req.updates !== "string") throw new Error("malformed");
      } catch {
        return sock.destroy();
      }
      // The pusher may be gone (and the hook with it): the build goes on; the lines go nowhere.
      const say: Say = (text) => {
        if (!sock.destroyed) sock.write(`${JSON.stringify({ say: text })}\n`);
      };
      void handle(req, say)
        .catch(() => 1)
        .then((code) => {
          if (!sock.destroyed) sock.end(`${JSON.stringify({ exit: code })}\n`);
        });
    };
    sock.on("data", onData);
  });
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => ok());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;

  return {
    open(push) {
      const secret = randomBytes(32).toString("hex");
      pushes.set(secret, push);
      void push.done.then(() => pushes.delete(secret));
      return { KILN_PUSH_PORT: String(port), KILN_PUSH_SECRET: secret };
    },
    async close() {
      for (const s of hooks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
