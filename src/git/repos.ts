/**
 * The apps' bare repositories (DATA_DIR/repos/APP.git) and the git processes kiln runs on them.
 * Everything that decides what git does is kiln's: the repository's config is written by kiln alone
 * (a push carries objects and refs, never config), hooks come from kiln's own directory
 * (core.hooksPath on the command line), and git never reads the host's or the server's user's
 * config (GIT_CONFIG_NOSYSTEM, GIT_CONFIG_GLOBAL=/dev/null) nor kiln's environment (no tokens).
 */
import { existsSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { run, spawnProcess } from "../process/run.js";
import type { App } from "../store/apps.js";

export const ZERO_COMMIT = "0000000000000000000000000000000000000000";

export interface GitRepos {
  root: string;
  /** The directory kiln's hooks run from (core.hooksPath). */
  hooksDir: string;
  dirOf(app: { name: string }): string;
  /** The app's repository, made empty at first use; one left by a deleted app of that name goes. */
  ensure(app: App): Promise<string>;
}

/** The environment every git process kiln starts gets: nothing of kiln's own, no user config. */
export function gitEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: "/nonexistent",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_TERMINAL_PROMPT: "0",
    LANG: "C.UTF-8",
    ...extra,
  };
}

export function createGitRepos(dataDir: string): GitRepos {
  const root = join(dataDir, "repos");
  const hooksDir = join(dataDir, "git", "hooks");
  const dirOf = (app: { name: string }) => join(root, `${app.name}.git`);
  // First pushes of one app at once must not both init: one promise per repository.
  const making = new Map<string, Promise<string>>();
  const make = async (app: App): Promise<string> => {
    const dir = dirOf(app);
    const config = join(dir, "config");
    if (existsSync(config)) {
      // An app's name can be taken again after it is deleted: its repository is not the new app's.
      const owner = await run("git", ["--git-dir", dir, "config", "--get", "kiln.appid"], {
        env: gitEnv(),
        extendEnv: false,
        reject: false,
      });
      if (owner.stdout.trim() === app.id) return dir;
      const aside = `${dir}.stale-${process.pid}-${Date.now()}`;
      await rename(dir, aside);
      await rm(aside, { recursive: true, force: true });
    }
    await mkdir(root, { recursive: true, mode: 0o700 });
    const tmp = `${dir}.init-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    const git = (...args: string[]) => run("git", args, { env: gitEnv(), extendEnv: false });
    await git("init", "--quiet", "--bare", "--initial-branch", "main", tmp);
    await git("--git-dir", tmp, "config", "kiln.appid", app.id);
    // Hooks from the template (samples) are not run (hooksPath), but nothing of the template is kept.
    await rm(join(tmp, "hooks"), { recursive: true, force: true });
    await rename(tmp, dir);
    return dir;
  };
  return {
    root,
    hooksDir,
    dirOf,
    ensure(app) {
      const key = app.name;
      const pending = making.get(key);
      if (pending) return pending;
      const p = make(app).finally(() => making.delete(key));
      making.set(key, p);
      return p;
    },
  };
}

/** `git -c …` settings every receive-pack and upload-pack runs with (whatever the repo's config says). */
export function serviceConfig(opts: { hooksDir: string; maxInputBytes: number }): string[] {
  return [
    `core.hooksPath=${opts.hooksDir}`,
    // A tenant's pack is untrusted input: every object is checked, and its size is bounded.
    "receive.fsckObjects=true",
    `receive.maxInputSize=${opts.maxInputBytes}`,
    "receive.advertisePushOptions=true",
    "receive.keepAlive=5",
    "uploadpack.allowFilter=true",
  ].flatMap((c) => ["-c", c]);
}

export type GitService = "git-receive-pack" | "git-upload-pack";

/** Starts `git receive-pack|upload-pack --stateless-rpc` on a repository (stdin/stdout are pipes). */
export function spawnService(opts: {
  service: GitService;
  repo: string;
  advertise: boolean;
  config: string[];
  env?: Record<string, string>;
}) {
  const args = [
    ...opts.config,
    opts.service.slice("git-".length),
    "--stateless-rpc",
    ...(opts.advertise ? ["--advertise-refs"] : []),
    opts.repo,
  ];
  return spawnProcess("git", args, {
    env: gitEnv(opts.env),
    stdio: ["pipe", "pipe", "pipe"],
    cwd: opts.repo,
  });
}

/** Where the repository's branch points now (undefined: it does not exist). */
export async function refValue(repo: string, ref: string): Promise<string | undefined> {
  const r = await run("git", ["--git-dir", repo, "rev-parse", "--verify", "--quiet", `${ref}^{commit}`], {
    env: gitEnv(),
    extendEnv: false,
    reject: false,
  });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

/** The branch a clone checks out: the one that deployed last. */
export async function setHead(repo: string, branch: string): Promise<void> {
  await run("git", ["--git-dir", repo, "symbolic-ref", "HEAD", `refs/heads/${branch}`], {
    env: gitEnv(),
    extendEnv: false,
  });
}
