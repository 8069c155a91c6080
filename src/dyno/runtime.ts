/**
 * Everything a dyno needs from the host, prepared once per kiln process: the run stack (built if
 * missing), the compiled seccomp filter, the cgroup hierarchies, a clean slate after any crash;
 * and `launchDyno`, which turns a slug + process type into a supervised dyno.
 */
import { randomInt } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { dynoSize } from "../config/dynoSizes.js";
import { bug, KilnError } from "../errors.js";
import { type RunnableSlug, unpackSlug } from "../slug/runnable.js";
import { buildStacks, type StackDeps } from "../stacks/stacks.js";
import { type CgroupHost, detectCgroups } from "./cgroups.js";
import { instanceId } from "./instance.js";
import type { AppLog } from "./logs.js";
import { type ReconcileReport, reconcileDynos } from "./reconcile.js";
import { type DynoGrant, dynoEnv } from "./sandbox.js";
import { compiledSeccomp } from "./seccomp.js";
import { type RestartPolicy, type Supervised, type SuperviseOptions, superviseDyno } from "./supervisor.js";
import type { TestPause } from "./testPause.js";
import { appUid } from "./uids.js";

export interface DynoRuntime {
  dataDir: string;
  runDir: string;
  /** This kiln's name for its cgroups and run directories (instance.ts). */
  instance: string;
  stackDir: string;
  seccompFile: string;
  cgroups: CgroupHost;
  reconciled: ReconcileReport;
  /** Per app name: what that app alone is granted beyond the lockdown (kiln's own app). */
  grants?: Record<string, DynoGrant>;
  /**
   * kiln's own hard limit on open files: a dyno cannot be given more (raising it needs
   * CAP_SYS_RESOURCE, which root in a container often lacks), so bigger sizes are capped to it.
   */
  maxOpenFiles: number;
  /** Test-only: see testPause.ts. */
  testPause?: TestPause;
}

/** This process's hard RLIMIT_NOFILE, from /proc/self/limits. */
async function hardOpenFilesLimit(): Promise<number> {
  const text = await readFile("/proc/self/limits", "utf8").catch(() => "");
  const m = /^Max open files\s+\S+\s+(\S+)/m.exec(text);
  const n = Number(m?.[1]);
  return Number.isFinite(n) && n > 0 ? n : Number.POSITIVE_INFINITY;
}

/** The port a web process listens on inside its dyno (each dyno has its own network namespace). */
export const DYNO_PORT = 5000;

export async function prepareDynoRuntime(deps: StackDeps & { signal?: AbortSignal }): Promise<DynoRuntime> {
  if (process.getuid?.() !== 0) {
    throw new KilnError({
      code: "needs_root",
      message: "running dynos needs root",
      hint: "kiln gives every app its own unprivileged uid and cgroups, which only root can set up; run it with sudo",
    });
  }
  const [stack] = await buildStacks(deps, ["run"], deps.signal ? { signal: deps.signal } : {});
  if (!stack) bug("no run stack was built");
  const cgroups = await detectCgroups();
  const { dataDir, runDir, projectDir } = deps.config;
  return {
    dataDir,
    runDir,
    instance: instanceId(dataDir),
    stackDir: deps.nix.realPath(stack.storePath),
    seccompFile: await compiledSeccomp({ dataDir, projectDir }),
    cgroups,
    reconciled: await reconcileDynos({ dataDir, runDir, cgroups }),
    maxOpenFiles: await hardOpenFilesLimit(),
    ...(deps.config.testDynoPause
      ? { testPause: { step: deps.config.testDynoPause, marker: join(dataDir, "test-pause.json") } }
      : {}),
  };
}

export interface LaunchOptions {
  slug: RunnableSlug;
  /** A process type from the release, or undefined with `command` for a one-off dyno. */
  type?: string;
  /** The command to run instead of the process type's (one-off dynos; `web` with a custom command). */
  command?: string;
  /** `web.1` etc.; default: TYPE.1, or run.NNNN for one-off dynos. */
  name?: string;
  configVars?: Record<string, string>;
  /** The release this dyno runs (in its environment as KILN_RELEASE_VERSION). */
  releaseVersion?: number;
  size?: string;
  log: AppLog;
  restart: RestartPolicy | false;
  bootTimeoutMs?: number;
  stopTimeoutMs?: number;
  attach?: boolean;
  /** Outbound network access for the dyno (off by default). */
  outbound?: boolean;
  url?: string;
  onRecord?: SuperviseOptions["onRecord"];
}

export async function launchDyno(rt: DynoRuntime, opts: LaunchOptions): Promise<Supervised> {
  const { slug } = opts;
  const type = opts.type ?? "run";
  const command = opts.command ?? slug.processTypes[type];
  if (command === undefined) {
    const types = Object.keys(slug.processTypes);
    throw new KilnError({
      code: "unknown_process_type",
      message: `${slug.app} has no "${type}" process type`,
      hint: types.length
        ? `its process types: ${types.join(", ")}; or run a command: kiln run ${slug.app} -- CMD`
        : "its release has no process types: add a Procfile, or run a command: kiln run APP -- CMD",
    });
  }
  const sizeName = opts.size ?? "standard-1x";
  const sized = dynoSize(sizeName);
  const size = { ...sized, openFiles: Math.min(sized.openFiles, rt.maxOpenFiles) };
  const name = opts.name ?? (opts.command !== undefined ? `run.${randomInt(1000, 10000)}` : `${type}.1`);
  // Web processes get $PORT and a relay; one-off dynos are reached through the terminal only.
  const port = type === "web" ? DYNO_PORT : undefined;
  const slugDir = await unpackSlug(rt.dataDir, slug);
  const uid = await appUid(rt.dataDir, slug.app);
  const grant = rt.grants?.[slug.app];
  return superviseDyno({
    dyno: {
      app: slug.app,
      name,
      command,
      slugDir,
      stackDir: grant?.stackDir ?? rt.stackDir,
      ...(grant ? { grant } : {}),
      uid,
      size,
      env: dynoEnv({
        dyno: name,
        port,
        slugSha256: slug.sha256,
        ...(opts.releaseVersion !== undefined ? { releaseVersion: opts.releaseVersion } : {}),
        releaseVars: slug.configVars,
        configVars: opts.configVars ?? {},
      }),
      ...(port !== undefined ? { port } : {}),
      ...(opts.attach ? { attach: true } : {}),
      ...(opts.outbound ? { outbound: true } : {}),
      seccompFile: rt.seccompFile,
      cgroups: rt.cgroups,
      runDir: rt.runDir,
      instance: rt.instance,
      ...(rt.testPause ? { testPause: rt.testPause } : {}),
    },
    type,
    sizeName,
    slugSha256: slug.sha256,
    dataDir: rt.dataDir,
    log: opts.log,
    restart: opts.restart,
    ...(opts.bootTimeoutMs !== undefined ? { bootTimeoutMs: opts.bootTimeoutMs } : {}),
    ...(opts.stopTimeoutMs !== undefined ? { stopTimeoutMs: opts.stopTimeoutMs } : {}),
    ...(opts.url ? { url: opts.url } : {}),
    ...(opts.onRecord ? { onRecord: opts.onRecord } : {}),
  });
}
