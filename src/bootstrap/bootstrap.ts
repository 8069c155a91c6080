/**
 * `kiln bootstrap`: kiln builds itself with itself, then hosts itself (Flynn's "inception").
 *
 *   1. Nix (nix/bootstrap): stage0 is the hand compile (tsc, no buildpack); stage1 is kiln's source
 *      built as an app by the nodejs buildpack with stage0's tools.
 *   2. This process becomes the platform's dyno manager (control plane with dynos, the router) on
 *      DATA_DIR. The app `kiln` gets release v1 = stage1 and a web dyno on the *build* stack that
 *      alone is granted: the Nix store read-only, a private nix-daemon's socket, its own state
 *      directory, and the dyno manager's API socket (where it hands over the releases it builds).
 *      Its API is the platform's front door, at kiln's usual API address.
 *   3. Through that dyno's own API: kiln's source → stage2 (tools from stage1). The hosted control
 *      plane hands the release over; the kiln app rolls to stage2 with zero downtime (the old dyno
 *      serves until the new one answers).
 *   4. Through stage2's API: stage3, built without releasing; the slugs are compared (the fixed
 *      point: stage2 = stage3), a report is printed and written as JSON.
 *   5. The self-built platform stays up (unless the caller stops it).
 *
 * A failure anywhere ends it all: the dynos, relays, front door and nix-daemon it started are
 * stopped, DATA_DIR/bootstrap-report.json names the failing stage and its cause, and the error
 * (a BootstrapError) says the same. No wait is unbounded: each stage says what it waits for, and
 * one silent for longer than KILN_BOOTSTRAP_SILENCE_SECONDS fails (./watch.ts).
 */
import { chmod, chown, lchown, mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { listTree, writeTarGzOf } from "../archive/tar.js";
import type { Config } from "../config/config.js";
import { logLineSchema } from "../dyno/logs.js";
import { assertReachable } from "../dyno/sandbox.js";
import { appUid } from "../dyno/uids.js";
import { bug, KilnError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { BuildOptions, Nix } from "../nix/driver.js";
import { importExpr, type NixValue, selectExpr } from "../nix/escape.js";
import { releaseSlug } from "../release/release.js";
import { createRouter } from "../router/router.js";
import { type ControlPlane, startControlPlane } from "../serve/controlPlane.js";
import { readBuildFile, readReleaseFile } from "../slug/output.js";
import { manifestSchema } from "../slug/records.js";
import { buildStacks } from "../stacks/stacks.js";
import { createApp, getApp, patchConfig } from "../store/apps.js";
import { scaleFormation } from "../store/formation.js";
import { currentRelease } from "../store/releases.js";
import { absent, writeFileAtomic } from "../util/fs.js";
import { createHostedApi, type HostedBuild } from "./hostedApi.js";
import { injectedAt, injectedSource, injectedUpload, injectedWebCommand, parseInjected } from "./inject.js";
import { startNixDaemon } from "./nixDaemon.js";
import { type BootstrapStage, createStageWatch } from "./watch.js";

export const KILN_APP = "kiln";
/** The hosted control plane's size: builds are orchestrated (and sources unpacked) in it. */
const KILN_DYNO_SIZE = "standard-2x";
export const BOOTSTRAP_REPORT = "bootstrap-report.json";

export interface BootstrapOptions {
  /** kiln's source tree to build (a checkout, or the flake's source in the store). */
  source: string;
  /** The front door: the hosted kiln API (127.0.0.1:PORT). */
  apiPort: number;
  routerPort: number;
  domain: string;
  /** npm's registry, for tarballs not yet in the store. */
  registry: string;
  /** Progress for people: one line per step. */
  say: (line: string) => void;
  /** A build's output line, with the stage it belongs to. */
  onLog?: (stage: string, line: string) => void;
  onProgress?: BuildOptions["onProgress"];
  signal?: AbortSignal;
}

export interface StageReport {
  path: string;
  sha256?: string;
  bytes?: number;
  seconds: number;
  builtBy: string;
  /** NAR hash of the tools that built it (recorded by the building kiln). */
  tools?: string;
  build?: string;
}

type StageName = "stage0" | "stage1" | "stage2" | "stage3";

/** Where and why a bootstrap ended early. */
export interface BootstrapFailure {
  stage: BootstrapStage;
  waitingFor: string;
  code: string;
  message: string;
  hint?: string;
  /** Stopped by Ctrl-C / SIGTERM rather than by a failure. */
  interrupted: boolean;
}

export interface PlatformReport {
  api: string;
  manager: string;
  router: string;
  kilnRelease: number;
  adminTokenFile: string;
}

export interface BootstrapReport {
  /** fixed-point and no-fixed-point: it ran to the end; failed: see `failed`. */
  outcome: "fixed-point" | "no-fixed-point";
  failed: null;
  fixedPoint: boolean;
  stage1MatchesStage2: boolean;
  /** stage2's recorded tools are exactly the tools assembled from stage1. */
  stage2BuiltByStage1: boolean;
  stages: Record<StageName, StageReport>;
  /** Differing files (path, sizes, hashes, first differing bytes) when a comparison failed. */
  differences: string[];
  /** api: the hosted control plane (the front door); manager: the dyno manager's own API. */
  platform: PlatformReport;
  seconds: number;
  finishedAt: string;
}

/** What DATA_DIR/bootstrap-report.json says of a bootstrap that ended early. */
export interface BootstrapFailureReport {
  outcome: "failed";
  failed: BootstrapFailure;
  /** The stages that were finished before it. */
  stages: Partial<Record<StageName, StageReport>>;
  platform?: Partial<PlatformReport>;
  seconds: number;
  finishedAt: string;
}

/** A bootstrap that ended early; everything it started is stopped, the report is written. */
export class BootstrapError extends KilnError {
  readonly failure: BootstrapFailure;
  readonly reportFile: string;
  constructor(failure: BootstrapFailure, reportFile: string, cause: unknown) {
    super({
      code: failure.interrupted
        ? "interrupted"
        : failure.code === "bootstrap_stalled"
          ? failure.code
          : "bootstrap_failed",
      message: `the bootstrap failed at ${failure.stage} (waiting for ${failure.waitingFor}): ${failure.message}`,
      hint: `${failure.hint ? `${failure.hint}; ` : ""}everything it started is stopped; the report: ${reportFile}`,
      cause,
    });
    this.failure = failure;
    this.reportFile = reportFile;
  }
}

export interface Bootstrapped {
  report: BootstrapReport;
  reportFile: string;
  close(): Promise<void>;
}

interface Deps {
  config: Config;
  log: Logger;
  nix: Nix;
}

/** How long stopping one part of the platform may take before the rest is stopped anyway. */
const STOP_BOUND_MS = 60_000;

export async function bootstrap(deps: Deps, opts: BootstrapOptions): Promise<Bootstrapped> {
  const started = Date.now();
  const { config, log } = deps;
  const reportFile = join(config.dataDir, BOOTSTRAP_REPORT);
  const watch = createStageWatch(config.bootstrapSilenceSeconds * 1000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, watch.signal]) : watch.signal;
  const inject = parseInjected(config.testFailStage);
  // Started parts, stopped in reverse order (each bounded, each whatever the others do).
  const parts: { what: string; stop: () => Promise<void> }[] = [];
  const close = async () => {
    watch.stop();
    for (const p of parts.splice(0).reverse()) {
      const t0 = Date.now();
      await bounded(p.stop(), STOP_BOUND_MS).then(
        (done) => {
          if (!done) log.error({ part: p.what }, `still stopping after ${STOP_BOUND_MS / 1000} s; going on`);
          else log.debug({ part: p.what, ms: Date.now() - t0 }, "stopped");
        },
        (err) => log.error({ part: p.what, err }, "could not stop it cleanly"),
      );
    }
  };
  const done: Partial<Record<StageName, StageReport>> = {};
  const platform: Partial<PlatformReport> = {};
  try {
    await rm(reportFile, { force: true }).catch(() => undefined);
    const report = await run(deps, { ...opts, signal }, { watch, inject, parts, done, platform, started });
    watch.stop();
    await writeFileAtomic(reportFile, `${JSON.stringify(report, null, 2)}\n`);
    return { report, reportFile, close };
  } catch (err) {
    // The reason the signal gives (the silence bound, Ctrl-C) is the cause; what it broke is not.
    const interrupted = !!opts.signal?.aborted;
    const cause = watch.signal.aborted ? watch.signal.reason : interrupted ? opts.signal?.reason : err;
    const failure: BootstrapFailure = {
      stage: watch.stage,
      waitingFor: watch.waitingFor,
      code: interrupted ? "interrupted" : cause instanceof KilnError ? cause.code : "internal",
      message: cause instanceof Error ? cause.message : String(cause),
      ...(cause instanceof KilnError && cause.hint ? { hint: cause.hint } : {}),
      interrupted,
    };
    opts.say(`${failure.stage} failed: stopping everything the bootstrap started`);
    await close();
    const report: BootstrapFailureReport = {
      outcome: "failed",
      failed: failure,
      stages: done,
      ...(Object.keys(platform).length > 0 ? { platform } : {}),
      seconds: (Date.now() - started) / 1000,
      finishedAt: new Date().toISOString(),
    };
    await mkdir(config.dataDir, { recursive: true })
      .then(() => writeFileAtomic(reportFile, `${JSON.stringify(report, null, 2)}\n`))
      .catch((e) => log.error({ err: e, reportFile }, "could not write the bootstrap report"));
    throw new BootstrapError(failure, reportFile, err);
  }
}

interface RunState {
  watch: ReturnType<typeof createStageWatch>;
  inject: ReturnType<typeof parseInjected>;
  parts: { what: string; stop: () => Promise<void> }[];
  done: Partial<Record<StageName, StageReport>>;
  platform: Partial<PlatformReport>;
  started: number;
}

/** What every stage works with: the run's state, its progress line and its Nix stage builder. */
interface Ctx {
  deps: Deps;
  opts: BootstrapOptions & { signal: AbortSignal };
  st: RunState;
  say: (line: string) => void;
  /** Builds an attribute of nix/bootstrap's stages (with the source in the store). */
  buildAttr: (attr: string, stage: string, args?: NixValue[]) => Promise<{ out: string; seconds: number }>;
}

async function run(deps: Deps, opts: BootstrapOptions & { signal: AbortSignal }, st: RunState) {
  const { nix } = deps;
  const { watch, inject, signal } = { ...st, signal: opts.signal };
  const say = (line: string) => {
    watch.progress();
    opts.say(line);
  };
  await preflight(opts.source);
  // The source is taken once, into the store: every stage (and the uploads) use that same copy,
  // whatever happens to the checkout meanwhile.
  watch.enter("stage0", "Nix to take kiln's source into the store");
  const sourcePath = (await nix.eval(
    {
      expr: `toString ${selectExpr(importExpr(join(opts.source, "nix", "bootstrap"), { src: opts.source }), "source")}`,
    },
    { signal },
  )) as string;
  // A test-only failure in a Nix stage is a derivation nix/bootstrap swaps in (its `fail`).
  const nixFail = inject && ["stage0", "stage1", "compare"].includes(inject.stage) ? inject.spec : null;
  const stagesExpr = importExpr(join(sourcePath, "nix", "bootstrap"), {
    src: sourcePath,
    registry: opts.registry,
    ...(nixFail ? { fail: nixFail } : {}),
  });
  const buildAttr = async (attr: string, stage: string, args: NixValue[] = []) => {
    const t0 = Date.now();
    const [r] = await nix.build([{ expr: selectExpr(stagesExpr, attr, args) }], {
      onProgress: (p) => {
        watch.progress();
        opts.onProgress?.(p);
      },
      signal,
      onLogLine: (_drv, line) => {
        watch.progress();
        opts.onLog?.(stage, line);
      },
    });
    const out = r?.outputs.out;
    if (!out) bug(`nix gave no output for ${attr}`);
    return { out, seconds: (Date.now() - t0) / 1000 };
  };

  const ctx: Ctx = { deps, opts, st, say, buildAttr };
  const nixStages = await buildNixStages(ctx);
  const platform = await startPlatform(ctx);
  const v1 = await releaseStage1(ctx, platform, nixStages.stage1Slug);
  const { hosted, app } = v1;
  const source = uploads(ctx, sourcePath);
  const stage2 = await buildStage2(ctx, { platform, hosted, appId: app.id, source });
  const stage3 = await buildStage3(ctx, { platform, hosted, source });
  await source.done();
  const differences: string[] = [];
  const compare = comparer(ctx, differences);
  const slug1 = { name: "stage1", path: nixStages.stage1Slug.path, sha256: nixStages.stage1Slug.sha256 };
  const slug2 = { name: "stage2", path: slugPathOf(stage2.build), sha256: stage2.build.slug_sha256 };
  const slug3 = { name: "stage3", path: slugPathOf(stage3.build), sha256: stage3.build.slug_sha256 };
  const fixedPoint = await compare(slug2, slug3);
  const stage1MatchesStage2 = await compare(slug1, slug2);
  const stages = st.done as Record<StageName, StageReport>;
  const { cp, apiUrl } = platform;
  return {
    outcome: fixedPoint ? "fixed-point" : "no-fixed-point",
    failed: null,
    fixedPoint,
    stage1MatchesStage2,
    stage2BuiltByStage1: !!stage2.tools && stage2.tools === nixStages.stage1ToolsNarHash,
    stages,
    differences,
    platform: {
      api: apiUrl,
      manager: cp.url,
      router: cp.routerUrl ?? "",
      kilnRelease: stage2.version,
      adminTokenFile: cp.adminTokenFile,
    },
    seconds: (Date.now() - st.started) / 1000,
    finishedAt: new Date().toISOString(),
  } satisfies BootstrapReport;
}

/** Refusals before anything starts: the platform's dynos need root; the source must be kiln's. */
async function preflight(source: string): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new KilnError({
      code: "needs_root",
      message: "kiln bootstrap runs the platform, whose dynos need root",
      hint: "run it with sudo (or as root)",
    });
  }
  await stat(join(source, "nix", "bootstrap", "default.nix")).catch(() => {
    throw new KilnError({
      code: "invalid_source",
      message: `${source} is not a kiln source tree (no nix/bootstrap/default.nix)`,
      hint: "give kiln's checkout with --source (the default is the kiln this command runs from)",
    });
  });
}

/** stage0 (the hand compile) and stage1 (kiln built by stage0's tools), in Nix; stage1's tools. */
async function buildNixStages({ deps, st, say, buildAttr }: Ctx) {
  const { nix } = deps;
  const { watch } = st;
  say("stage0: the hand compile (kiln's locked dependencies, then tsc), in the Nix sandbox");
  watch.enter("stage0", "the Nix build of stage0 (the hand compile)");
  const s0 = await buildAttr("stage0", "stage0");
  st.done.stage0 = { path: s0.out, seconds: s0.seconds, builtBy: "tsc (the hand compile)" };
  say(`stage0: ${s0.out} (${s0.seconds.toFixed(1)} s)`);
  say("stage1: kiln built by the nodejs buildpack with stage0's tools, in the Nix sandbox");
  watch.enter("stage1", "the Nix build of stage1 (kiln built by stage0's tools)");
  const s1 = await buildAttr("stage1", "stage1");
  const stage1Slug = await slugInfo(nix, s1.out);
  st.done.stage1 = {
    path: stage1Slug.path,
    sha256: stage1Slug.sha256,
    bytes: stage1Slug.bytes,
    seconds: s1.seconds,
    builtBy: "stage0",
  };
  say(
    `stage1: slug ${stage1Slug.sha256.slice(0, 12)} (${mib(stage1Slug.bytes)}, ${s1.seconds.toFixed(1)} s)`,
  );
  watch.enter("stage1", "the Nix build of stage1's tools");
  const stage1Tools = await buildAttr("stage1Tools", "stage1");
  const [stage1ToolsInfo] = await nix.pathInfo([stage1Tools.out]);
  return { stage1Slug, stage1ToolsNarHash: stage1ToolsInfo?.narHash };
}

type Platform = Awaited<ReturnType<typeof startPlatform>>;

/**
 * The platform: a private nix-daemon, the dyno manager here (control plane with dynos, the router)
 * granting the app `kiln` what it needs, and the front door at kiln's usual API address.
 */
async function startPlatform({ deps, opts, st, say }: Ctx) {
  const { config, nix } = deps;
  const { watch, parts } = st;
  const { signal } = opts;
  watch.enter("platform", "the hosted control plane's state directories");
  const hostedDir = join(config.dataDir, "hosted");
  const kilnState = join(hostedDir, KILN_APP);
  const daemonDir = join(hostedDir, "nix-daemon");
  await mkdir(kilnState, { recursive: true });
  await mkdir(daemonDir, { recursive: true });
  await chmod(hostedDir, 0o711);
  await chmod(daemonDir, 0o755);
  const uid = await appUid(config.dataDir, KILN_APP);
  // The whole tree, not just its top: an app's uid can change (the host-wide uid registry moves an
  // app off a uid another kiln holds), and a state dir left with the old owner is read-only to it.
  await chownTree(kilnState, uid);
  await chmod(kilnState, 0o700);
  // Its own uid owns it; every directory above must let that uid through.
  await assertReachable(hostedDir);
  say("starting a nix-daemon for the hosted control plane (its only way to build)");
  watch.enter("platform", "the private nix-daemon to start");
  const daemon = await startNixDaemon({ dir: daemonDir, log: deps.log });
  parts.push({ what: "the nix-daemon", stop: () => daemon.stop() });
  watch.enter("platform", "the Nix build of the build stack");
  const [buildStack] = await buildStacks(deps, ["build"], { signal, onProgress: () => watch.progress() });
  if (!buildStack) bug("no build stack");

  watch.enter("platform", "the dyno manager to start");
  const cp = await startControlPlane(deps, {
    host: "127.0.0.1",
    port: 0,
    routerPort: opts.routerPort,
    domain: opts.domain,
    ...(config.adminToken ? { adminToken: config.adminToken } : {}),
    socket: { path: join(kilnState, "platform.sock"), uid },
    grants: {
      [KILN_APP]: {
        stackDir: nix.realPath(buildStack.storePath),
        binds: [
          { src: "/nix/store", dest: "/nix/store" },
          { src: daemonDir, dest: "/nix/var/nix/daemon-socket" },
          { src: kilnState, dest: "/kiln", writable: true },
        ],
      },
    },
  });
  parts.push({
    what: "the dyno manager",
    stop: async () => {
      // Dynos first (they hold connections to it), then every connection, then the servers: an
      // idle keep-alive connection must not hold the close up.
      await cp.formation?.stopAll();
      cp.api.server.closeAllConnections();
      await cp.close();
    },
  });
  Object.assign(st.platform, {
    manager: cp.url,
    router: cp.routerUrl ?? "",
    adminTokenFile: cp.adminTokenFile,
  });
  const token = config.adminToken ?? (await readFile(cp.adminTokenFile, "utf8")).trim();
  const fm = cp.formation;
  if (!fm) bug("the platform runs no dynos");
  watch.enter("platform", `the front door to listen on 127.0.0.1:${opts.apiPort}`);
  const frontDoor = await createRouter({
    domain: opts.domain,
    log: deps.log,
    webSockets: (app) => fm.webSockets(app),
    appExists: () => true,
    fixedApp: KILN_APP,
    // Build logs stream for minutes, with silences while compilers run.
    idleTimeoutMs: 16 * 60_000,
  });
  parts.push({
    what: "the front door",
    stop: async () => {
      frontDoor.server.closeAllConnections();
      await frontDoor.close();
    },
  });
  const apiUrl = await frontDoor.listen({ host: "127.0.0.1", port: opts.apiPort });
  st.platform.api = apiUrl;
  return { cp, apiUrl, token, kilnState };
}

/** Inception: stage1 is the app `kiln`'s first release; its web dyno is up and its API answers. */
async function releaseStage1(
  { deps, opts, st, say }: Ctx,
  { cp, apiUrl, token }: Platform,
  stage1Slug: Awaited<ReturnType<typeof slugInfo>>,
) {
  const { config } = deps;
  const { watch, inject } = st;
  const { signal } = opts;
  const db = cp.db;
  const app = (() => {
    try {
      return getApp(db, KILN_APP);
    } catch {
      return createApp(db, KILN_APP);
    }
  })();
  patchConfig(
    db,
    app.id,
    {
      KILN_DATA_DIR: "/kiln",
      KILN_RUN_DIR: "/tmp/kiln-run",
      KILN_NIX_STORE: "daemon",
      KILN_DETECT_IN: "nix",
      KILN_PLATFORM_URL: "unix:/kiln/platform.sock",
      KILN_PLATFORM_TOKEN: token,
      KILN_ADMIN_TOKEN: token,
      XDG_CACHE_HOME: "/tmp/cache",
      npm_config_registry: opts.registry,
    },
    () => undefined,
  );
  const release1 = await stage1Slug.releaseFile();
  const platformFail = injectedAt(inject, "platform");
  const v1 = releaseSlug(db, {
    appId: app.id,
    buildId: null,
    slugSha256: stage1Slug.sha256,
    slugPath: stage1Slug.path,
    processTypes: platformFail
      ? { ...release1.processTypes, web: injectedWebCommand(platformFail, config.dataDir) }
      : release1.processTypes,
    defaults: release1.configVars,
    description: "stage1: kiln built by stage0 (nix/bootstrap)",
  });
  scaleFormation(db, app.id, [{ type: "web", quantity: 1, size: KILN_DYNO_SIZE }]);
  say(`platform: the app ${KILN_APP} runs stage1 (release v${v1.version}) on the build stack`);
  watch.enter("platform", `the app ${KILN_APP}'s web dyno to run stage1 (release v${v1.version})`);
  cp.reconcile(KILN_APP);
  await waitForRelease(cp, v1.version, say, signal);
  st.platform.kilnRelease = v1.version;
  const hosted = createHostedApi({ url: apiUrl, token, signal, onProgress: () => watch.progress() });
  watch.enter("platform", `the hosted control plane to answer at ${apiUrl}`);
  await hosted.waitHealthy(120_000);
  say(`platform: the hosted control plane answers at ${apiUrl}`);
  await hosted.ensureApp(KILN_APP);
  return { hosted, app, version: v1.version };
}

/**
 * The sources uploaded to the hosted builds: kiln's own, packed once for stage2 and stage3, or a
 * test's injected one; each removed however the bootstrap ends.
 */
function uploads({ deps, st }: Ctx, sourcePath: string) {
  const { config } = deps;
  const { inject, parts } = st;
  let tarball: string | undefined;
  const kilnSource = async (): Promise<string> => {
    if (tarball) return tarball;
    const file = await tarSource(config, sourcePath);
    parts.push({
      what: "the source tarball",
      stop: () => rm(dirname(file), { recursive: true, force: true }),
    });
    tarball = file;
    return file;
  };
  const injectedApp = async (inj: NonNullable<typeof inject>) => {
    const file = await injectedSource(inj, join(config.dataDir, "tmp"), config.dataDir);
    parts.push({
      what: "the injected source",
      stop: () => rm(dirname(file), { recursive: true, force: true }),
    });
    return file;
  };
  return {
    async stage2(): Promise<string | ReturnType<typeof injectedUpload>> {
      const uploadFail = injectedAt(inject, "upload");
      const stage2Fail = injectedAt(inject, "stage2");
      if (uploadFail) return injectedUpload(uploadFail);
      return stage2Fail ? injectedApp(stage2Fail) : kilnSource();
    },
    async stage3(): Promise<string> {
      const stage3Fail = injectedAt(inject, "stage3");
      return stage3Fail ? injectedApp(stage3Fail) : kilnSource();
    },
    async done(): Promise<void> {
      if (tarball) await rm(dirname(tarball), { recursive: true, force: true });
    },
  };
}

/** stage2 through stage1's API, released to the app `kiln`, which rolls to it. */
async function buildStage2(
  { deps, opts, st, say }: Ctx,
  o: { platform: Platform; hosted: HostedApi; appId: string; source: ReturnType<typeof uploads> },
) {
  const { cp, apiUrl, kilnState } = o.platform;
  const { watch } = st;
  const { hosted } = o;
  watch.enter("upload", "kiln's source to be packed for the upload");
  const source2 = await o.source.stage2();
  say("stage2: kiln's source uploaded to stage1's API");
  watch.enter("upload", `stage1's API at ${apiUrl} to take kiln's source`);
  const t2 = Date.now();
  const started2 = await hosted.upload(KILN_APP, source2, { release: true });
  watch.enter("stage2", `the hosted build ${started2.id} (stage2, through stage1's API)`);
  const b2 = await hosted.follow(KILN_APP, started2, (l) => opts.onLog?.("stage2", l));
  const s2seconds = (Date.now() - t2) / 1000;
  say(
    `stage2: slug ${b2.slug_sha256?.slice(0, 12)} (${s2seconds.toFixed(1)} s); rolling the app ${KILN_APP} to it`,
  );
  const v2 = currentRelease(cp.db, o.appId);
  if (!v2 || v2.slugSha256 !== b2.slug_sha256)
    throw new KilnError({
      code: "bootstrap_failed",
      message: "the hosted control plane built stage2 but did not hand its release to the platform",
      hint: `see the build log: kiln logs ${KILN_APP}`,
    });
  watch.enter("stage2", `the app ${KILN_APP} to roll to stage2 (release v${v2.version})`);
  await waitForRelease(cp, v2.version, say, opts.signal);
  st.platform.kilnRelease = v2.version;
  watch.enter("stage2", `stage2's API to answer at ${apiUrl}`);
  await hosted.waitHealthy(120_000);
  say(`platform: the app ${KILN_APP} now runs stage2 (release v${v2.version}: ${v2.description})`);
  const tools = await recordedTools(kilnState, b2);
  st.done.stage2 = {
    ...(await stageOf(deps.nix, b2, s2seconds)),
    builtBy: "stage1 (through its API)",
    ...(tools ? { tools } : {}),
  };
  return { build: b2, version: v2.version, tools };
}

/** stage3 through stage2's API, kept aside (not released). */
async function buildStage3(
  { deps, opts, st, say }: Ctx,
  o: { platform: Platform; hosted: HostedApi; source: ReturnType<typeof uploads> },
) {
  const { apiUrl, kilnState } = o.platform;
  const { watch } = st;
  const { hosted } = o;
  say("stage3: kiln's source uploaded to stage2's API (built, not released)");
  watch.enter("stage3", `stage2's API at ${apiUrl} to take kiln's source`);
  const t3 = Date.now();
  const started3 = await hosted.upload(KILN_APP, await o.source.stage3(), { release: false });
  watch.enter("stage3", `the hosted build ${started3.id} (stage3, through stage2's API)`);
  const b3 = await hosted.follow(KILN_APP, started3, (l) => opts.onLog?.("stage3", l));
  const s3seconds = (Date.now() - t3) / 1000;
  const tools = await recordedTools(kilnState, b3);
  st.done.stage3 = {
    ...(await stageOf(deps.nix, b3, s3seconds)),
    builtBy: "stage2 (through its API)",
    ...(tools ? { tools } : {}),
  };
  return { build: b3 };
}

type HostedApi = ReturnType<typeof createHostedApi>;

type Slug = { name: string; path: string; sha256: string | null };

/**
 * Two slugs compared: equal sha256 is the verdict; only differing slugs go through nix/bootstrap's
 * file-by-file comparison (always, when a test injects a failure there), whose report lines are
 * added to `differences`.
 */
function comparer({ deps, opts, st, buildAttr }: Ctx, differences: string[]) {
  const { watch, inject } = st;
  return async (a: Slug, b: Slug): Promise<boolean> => {
    watch.enter("compare", `the comparison of the ${a.name} and ${b.name} slugs`);
    if (a.sha256 && a.sha256 === b.sha256 && !injectedAt(inject, "compare")) {
      opts.onLog?.("compare", `the ${a.name} and ${b.name} slugs are byte-identical (sha256 ${a.sha256})`);
      return true;
    }
    const r = await buildAttr("compareOutputs", "compare", [
      a.name,
      dirname(a.path),
      b.name,
      dirname(b.path),
    ]);
    const out = deps.nix.realPath(r.out);
    const same = (await readFile(join(out, "verdict"), "utf8")).trim() === "same";
    if (!same) differences.push(...(await readFile(join(out, "report.txt"), "utf8")).trimEnd().split("\n"));
    return same;
  };
}

/** Whether `p` settled within `ms` (its rejection passes through); the timer keeps no one alive. */
async function bounded(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((r) => {
    timer = setTimeout(() => r(false), ms);
    timer.unref();
  });
  try {
    return await Promise.race([p.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

const slugPathOf = (b: HostedBuild): string => {
  if (!b.slug_path) bug(`build ${b.id} has no slug`);
  return b.slug_path;
};

async function stageOf(nix: Nix, b: HostedBuild, seconds: number): Promise<Omit<StageReport, "builtBy">> {
  const path = slugPathOf(b);
  const st = await stat(nix.realPath(path));
  return { path, sha256: b.slug_sha256 ?? "", bytes: st.size, seconds, build: b.id };
}

/** A slug derivation's output: slug.tgz (with its sha256 from build.json) and release.json. */
async function slugInfo(nix: Nix, out: string) {
  const dir = nix.realPath(out);
  const build = await readBuildFile(dir);
  return {
    path: join(out, "slug.tgz"),
    sha256: build.slug.sha256,
    bytes: build.slug.bytes,
    releaseFile: () => readReleaseFile(dir),
  };
}

/** The tools a hosted build recorded in its manifest (the hosted kiln's state is ours to read). */
async function recordedTools(kilnState: string, b: HostedBuild): Promise<string | undefined> {
  if (!b.slug_sha256) return undefined;
  const text = await readFile(join(kilnState, "builds", KILN_APP, `${b.slug_sha256}.json`), "utf8").catch(
    absent(undefined),
  );
  return text === undefined ? undefined : manifestSchema.safeParse(JSON.parse(text)).data?.tools.narHash;
}

/** kiln's source as the upload `kiln deploy` would make of it: every file of the tree. */
async function tarSource(config: Config, sourcePath: string): Promise<string> {
  await mkdir(join(config.dataDir, "tmp"), { recursive: true });
  const tmp = await mkdtemp(join(config.dataDir, "tmp", "bootstrap-"));
  const file = join(tmp, "kiln-source.tar.gz");
  await writeTarGzOf(sourcePath, await listTree(sourcePath), file);
  return file;
}

/** Until every dyno of the app `kiln` runs `version` and its web dyno is up (a roll has finished). */
async function waitForRelease(
  cp: ControlPlane,
  version: number,
  say: (l: string) => void,
  signal: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + 180_000;
  let last = "";
  while (Date.now() < deadline) {
    const dynos = cp.formation?.dynos(KILN_APP) ?? [];
    const states = dynos
      .map((d) => `${d.name} v${d.releaseVersion} ${d.supervised.record().state}`)
      .join(", ");
    if (states !== last) say(`platform: ${states || "no dynos yet"}`);
    last = states;
    if (
      dynos.length > 0 &&
      dynos.every((d) => d.releaseVersion === version && d.supervised.record().state === "up")
    )
      return;
    const crashed = dynos.find(
      (d) => d.releaseVersion === version && d.supervised.record().state === "crashed",
    );
    if (crashed) {
      const log = join(dirname(cp.adminTokenFile), "logs", `${KILN_APP}.log`);
      const tail = (await readFile(log, "utf8").catch(absent("")))
        .trimEnd()
        .split("\n")
        .slice(-8)
        .map((l) => {
          try {
            return `  ${logLineSchema.parse(JSON.parse(l)).line}`;
          } catch {
            return `  ${l}`; // a line the log did not write whole (cut by the crash): as it is
          }
        });
      throw new KilnError({
        code: "bootstrap_failed",
        message: `the hosted control plane (release v${version}) crashed: ${crashed.supervised.record().lastExit?.reason ?? "it did not start"}; its last lines:\n${tail.join("\n")}`,
        hint: `the whole log: ${log}`,
      });
    }
    await sleep(250, undefined, { signal }).catch(() => signal.throwIfAborted());
  }
  throw new KilnError({
    code: "bootstrap_failed",
    message: `the app ${KILN_APP} did not come up on release v${version} within 180 s`,
    hint: `its log: kiln logs ${KILN_APP}`,
  });
}

/** chown -hR: every entry below `dir` (links themselves, never their targets) and `dir` itself. */
async function chownTree(dir: string, uid: number): Promise<void> {
  for (const entry of await readdir(dir, { recursive: true })) await lchown(join(dir, entry), uid, uid);
  await chown(dir, uid, uid);
}
