/**
 * `kiln build`: an app directory in, a slug and a release out.
 *
 *   snapshot the source → store        (content-addressed: path, mtimes, umask don't matter)
 *   choose buildpacks                  (named by the app/caller, else the first shipped one that detects)
 *   check the inputs                   (lock file, Procfile, engines: fail before building)
 *   plan dependencies                  (one fixed-output derivation per pinned tarball)
 *   nix build nix/build                (dependencies derivation, then the slug derivation)
 *   record the manifest, root the slug against garbage collection
 */
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { detectBuildpack, detectBuildpackInNix } from "../buildpacks/detect.js";
import { readExtraFetches } from "../buildpacks/extraFetches.js";
import { parsePackageJson } from "../buildpacks/nodejs.js";
import { planNodeApp } from "../buildpacks/nodePlan.js";
import {
  appBuildpackList,
  resolveBuildpackRef,
  SHIPPED_BUILDPACKS,
  type StoredBuildpack,
  storeBuildpack,
} from "../buildpacks/registry.js";
import type { Config } from "../config/config.js";
import { bug, KilnError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import { NIX_CONSTANTS } from "../nix/constants.js";
import type { BuildOptions, Nix } from "../nix/driver.js";
import { importExpr, selectExpr } from "../nix/escape.js";
import { derivationName } from "../nix/events.js";
import { run } from "../process/run.js";
import { writeBuildProvenance } from "../provenance/provenance.js";
import { prepareRuntime, runtimeManifest } from "../runtime/prepare.js";
import { type RuntimePlan, runtimeSpec } from "../runtime/resolve.js";
import { parseProcfile } from "../sandboxtools/procfile.js";
import { readSeedLock } from "../seed/lock.js";
import {
  type BuildSpec,
  buildFileSchema,
  buildSpecSchema,
  type Manifest,
  manifestSchema,
  type ReleaseFile,
  releaseFileSchema,
} from "../slug/records.js";
import { snapshotDir } from "../source/snapshot.js";
import { buildStacks } from "../stacks/stacks.js";
import { readTextBeneath } from "../util/beneath.js";
import { hashFile, writeFileAtomic } from "../util/fs.js";
import { explainBuildFailure, recentLines } from "./offlineHint.js";
import { storeTools } from "./tools.js";

/** Every slug entry's mtime (1980-01-01), as for stacks: nix/constants.json. */
export const SLUG_SOURCE_DATE_EPOCH = NIX_CONSTANTS.sourceDateEpoch;
export const DEFAULT_SLUG_MAX_BYTES = 500 * 1024 * 1024;

export interface BuildDeps {
  config: Config;
  nix: Nix;
  log: Logger;
}

export type BuildPhase = "detect" | "dependencies" | "compile" | "release" | "pack" | "error";

export interface BuildRequest {
  appDir: string;
  app?: string;
  /** Buildpack names or paths; else the app's .buildpacks file; else detection. */
  buildpacks?: string[];
  /**
   * Who handed kiln the source: the operator's own directory (default; its .buildpacks may name any
   * path), or a tenant's upload, whose .buildpacks may name shipped buildpacks or paths inside it.
   */
  sourceFrom?: "operator" | "tenant";
  /** The git commit the source is (git push): recorded in the manifest. */
  commit?: string;
  env?: Record<string, string>;
  slugMaxBytes?: number;
  /** Live build output, one line at a time, with its phase. */
  onLog?: (phase: BuildPhase, line: string) => void;
  onProgress?: BuildOptions["onProgress"];
  onStep?: (message: string) => void;
  signal?: AbortSignal;
}

export interface BuildResult {
  app: string;
  /** The spec file the derivations were made from (for rebuild checks). */
  specFile: string;
  slug: { path: string; sha256: string; bytes: number };
  release: ReleaseFile;
  manifest: Manifest;
  manifestPath: string;
  /** The signed provenance (an in-toto bundle of DSSE envelopes) beside the manifest. */
  provenance: string;
  outPath: string;
  drvPath: string;
  seconds: number;
  /** True when nothing was built: the same inputs were built before, so Nix had the slug. */
  cached: boolean;
}

const APP_NAME = /^[a-z][a-z0-9-]{0,62}$/;

export function appNameFrom(explicit: string | undefined, pkgName: string | undefined, dir: string): string {
  if (explicit !== undefined) {
    if (!APP_NAME.test(explicit)) {
      throw new KilnError({
        code: "invalid_app_name",
        message: `"${explicit}" is not a valid app name`,
        hint: "use lowercase letters, digits and dashes, starting with a letter (at most 63 characters)",
      });
    }
    return explicit;
  }
  const guess = (pkgName ?? basename(resolve(dir)))
    .toLowerCase()
    .replace(/^@[^/]*\//, "")
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .replace(/-+$/, "")
    .slice(0, 63);
  return guess || "app";
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What a build is made from, checked and in the store, before anything is built. */
export interface PreparedBuild {
  app: string;
  spec: BuildSpec;
  specFile: string;
  source: { path: string; narHash: string };
  sourceStats: { files: number; bytes: number };
  buildpacks: StoredBuildpack[];
  stackPath: string;
  tools: { path: string; narHash: string };
  seedLock: Awaited<ReturnType<typeof readSeedLock>>;
  lockfile: Manifest["lockfile"];
  /** The app's Node and package manager (nodejs buildpack only). */
  runtime?: RuntimePlan;
}

export async function buildApp(deps: BuildDeps, req: BuildRequest): Promise<BuildResult> {
  const started = Date.now();
  return withBuildTmp(deps.config, async (tmp) => {
    const prepared = await prepareBuild(deps, req, tmp);
    return realiseBuild(deps, req, prepared, started);
  });
}

/** Runs `fn` with a scratch directory under the data dir, removed afterwards whatever happens. */
export async function withBuildTmp<T>(config: Config, fn: (tmp: string) => Promise<T>): Promise<T> {
  const work = join(config.dataDir, "tmp");
  await mkdir(work, { recursive: true });
  const tmp = await mkdtemp(join(work, `build-${process.pid}-`)); // the pid: see builds/sweep.ts
  try {
    return await fn(tmp);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Everything before Nix builds: the source into the store, the stacks, the buildpacks, the inputs
 * checked, the spec written. `tmp` is scratch space that the caller removes.
 */
export async function prepareBuild(deps: BuildDeps, req: BuildRequest, tmp: string): Promise<PreparedBuild> {
  const { config, nix } = deps;
  const step = req.onStep ?? (() => {});
  assertEnvNames(req.env ?? {});
  const appDir = resolve(req.appDir);
  // Looked up in parallel with the rest (npm takes a few hundred ms to start); used only for URLs.
  const registry = npmRegistry();
  registry.catch(() => {});

  step("snapshotting the source");
  const { snapshot, srcStats, pkg, app, source } = await snapshotSource(nix, req, appDir, tmp);
  step("building the stacks (if needed)");
  const [stack] = await buildStacks(deps, ["build"], {
    ...(req.onProgress ? { onProgress: req.onProgress } : {}),
  });
  if (!stack) bug("no build stack");
  const stored = await chooseBuildpacks(deps, {
    req,
    appDir,
    snapshot,
    sourcePath: source.path,
    stackPath: stack.storePath,
    tmp,
  });
  const seedLock = await readSeedLock(config.projectDir);
  await checkProcfile(snapshot);
  const node = await planNode(deps, { req, snapshot, pkg, stored, registry, tmp });
  const fetches = await readExtraFetches(snapshot, {
    registry: await registry.catch(() => undefined),
    allow: config.fetchAllow,
  });
  const tools = await storeTools(nix, config.projectDir, tmp, {
    name: config.toolsName,
    cacheFile: join(config.dataDir, "tools.json"),
  });
  const spec: BuildSpec = buildSpecSchema.parse({
    app,
    source: source.path,
    sourceHash: source.narHash,
    sourceDateEpoch: SLUG_SOURCE_DATE_EPOCH,
    slugMaxBytes: req.slugMaxBytes ?? DEFAULT_SLUG_MAX_BYTES,
    env: Object.fromEntries(Object.entries(req.env ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))),
    buildpacks: stored.map((b) => ({ name: b.name, version: b.version, path: b.path })),
    tools: tools.path,
    dependencies: node.dependencies,
    ...(node.runtime ? { runtime: runtimeSpec(node.runtime, await registry) } : {}),
    ...(fetches.length > 0 ? { fetches } : {}),
  });
  return {
    app,
    spec,
    specFile: await writeSpecFile(config, spec),
    source,
    sourceStats: { files: srcStats.files, bytes: srcStats.bytes },
    buildpacks: stored,
    stackPath: stack.storePath,
    tools,
    seedLock,
    lockfile: node.lockfile,
    ...(node.runtime ? { runtime: node.runtime } : {}),
  };
}

function assertEnvNames(env: Record<string, string>): void {
  for (const k of Object.keys(env)) {
    if (!ENV_NAME.test(k))
      throw new KilnError({
        code: "invalid_env",
        message: `"${k}" is not a valid config var name`,
        hint: "use letters, digits and _, not starting with a digit",
      });
  }
}

/** The source, content-addressed in the store, and the app's name (from --app or package.json). */
async function snapshotSource(nix: Nix, req: BuildRequest, appDir: string, tmp: string) {
  const snapshot = join(tmp, "kiln-source");
  const srcStats = await snapshotDir(appDir, snapshot);
  const pkgText = await readTextBeneath(snapshot, "package.json");
  const pkg = pkgText === undefined ? undefined : parsePackageJson(pkgText);
  const app = appNameFrom(req.app, pkg?.name, appDir);
  const source = await nix.addPath(snapshot);
  return { snapshot, srcStats, pkg, app, source };
}

/** The caller's buildpacks, else the app's .buildpacks, else the first shipped one that detects. */
async function chooseBuildpacks(
  deps: BuildDeps,
  o: {
    req: BuildRequest;
    appDir: string;
    snapshot: string;
    sourcePath: string;
    stackPath: string;
    tmp: string;
  },
): Promise<StoredBuildpack[]> {
  const { config, nix } = deps;
  const { req, appDir, snapshot, tmp } = o;
  const fromCaller = req.buildpacks && req.buildpacks.length > 0 ? req.buildpacks : undefined;
  const fromApp = fromCaller ? undefined : await appBuildpackList(snapshot);
  const stored: StoredBuildpack[] = [];
  if (fromCaller) {
    for (const ref of fromCaller)
      stored.push(await storeBuildpack(nix, await resolveBuildpackRef(config, ref, process.cwd()), tmp));
    return stored;
  }
  if (fromApp) {
    // An uploaded source's .buildpacks is the tenant's: shipped buildpacks or paths inside the app.
    for (const { ref, line } of fromApp) {
      const scope = req.sourceFrom === "tenant" ? { kind: "app" as const, root: snapshot, line } : appDir;
      stored.push(await storeBuildpack(nix, await resolveBuildpackRef(config, ref, scope), tmp));
    }
    return stored;
  }
  const tried: string[] = [];
  for (const name of SHIPPED_BUILDPACKS) {
    const bp = await storeBuildpack(nix, await resolveBuildpackRef(config, name, appDir), tmp);
    const d =
      config.detectIn === "nix"
        ? await detectBuildpackInNix(nix, config.projectDir, bp.path, o.sourcePath)
        : await detectBuildpack(nix.realPath(o.stackPath), nix.realPath(bp.path), nix.realPath(o.sourcePath));
    if (d.detected) return [bp];
    tried.push(name);
  }
  throw new KilnError({
    code: "no_buildpack",
    message: `no buildpack detects the app in ${appDir} (tried ${tried.join(", ")})`,
    hint: "nodejs needs package.json, static needs index.html or static.json, procfile needs a Procfile; or name a buildpack with --buildpack",
  });
}

/** A malformed Procfile fails here, before anything is built. */
async function checkProcfile(snapshot: string): Promise<void> {
  const procfileText = await readTextBeneath(snapshot, "Procfile");
  if (procfileText === undefined) return;
  const p = parseProcfile(procfileText);
  if (p.errors.length > 0) {
    throw new KilnError({
      code: "invalid_procfile",
      // Line and reason, never the line's text: what kiln read from a tenant's tree is not echoed.
      message: `the Procfile is malformed:\n${p.errors.map((e) => `  line ${e.line}: ${e.reason}`).join("\n")}`,
      hint: "each line is `name: command`, e.g. `web: node server.js`",
    });
  }
}

/** For the nodejs buildpack: the lock, the dependency plan and the app's Node and package manager. */
async function planNode(
  deps: BuildDeps,
  o: {
    req: BuildRequest;
    snapshot: string;
    pkg: ReturnType<typeof parsePackageJson> | undefined;
    stored: StoredBuildpack[];
    registry: Promise<string>;
    tmp: string;
  },
): Promise<{
  dependencies: BuildSpec["dependencies"];
  lockfile: Manifest["lockfile"];
  runtime?: RuntimePlan;
}> {
  const { config, nix } = deps;
  const { req, snapshot, pkg, tmp } = o;
  const step = req.onStep ?? (() => {});
  const nodeIndex = o.stored.findIndex((b) => b.shipped && b.name === "nodejs");
  if (nodeIndex === -1) return { dependencies: null, lockfile: null };
  if (!pkg)
    throw new KilnError({
      code: "invalid_app",
      message: "the nodejs buildpack needs a package.json",
      hint: "add one (npm init)",
    });
  // The lock chosen and checked (exactly one; refusals name the entries), its tarballs pinned;
  // for locks other than npm's plain package-lock.json, the plan and the dependency phase's
  // input are made here and handed to Nix in the spec.
  const reg = await o.registry;
  const plan = await planNodeApp(snapshot, pkg, {
    registry: reg,
    allow: config.fetchAllow,
    integrityCacheFile: join(config.dataDir, "registry-integrity.json"),
    work: tmp,
  });
  // The app's Node and package manager (the lock's), from the pinned inventories (src/runtime),
  // which check engines.node too.
  const runtime = await prepareRuntime({
    projectDir: config.projectDir,
    cacheDir: join(config.dataDir, "cache", "runtime"),
    pkg,
    manager: plan?.kind ?? "npm",
    env: req.env ?? {},
    ...(req.onLog ? { onLine: (line: string) => req.onLog?.("detect", line) } : {}),
  });
  if (!plan) return { dependencies: null, lockfile: null, runtime };
  step(`planning ${plan.tarballs.length} dependency tarballs (${plan.kind}, ${plan.lockFile})`);
  return {
    lockfile: { file: plan.lockFile, sha256: createHash("sha256").update(plan.lockText).digest("hex") },
    dependencies: {
      buildpackIndex: nodeIndex,
      registry: reg.endsWith("/") ? reg : `${reg}/`,
      allow: config.fetchAllow,
      ...(plan.planner === "kiln"
        ? {
            plan: {
              manager: plan.kind,
              input: (await nix.addPath(plan.inputDir)).path,
              tarballs: plan.tarballs,
            },
          }
        : {}),
    },
    runtime,
  };
}

/** The spec under DATA_DIR/specs, named by its content's hash. */
async function writeSpecFile(config: Config, spec: BuildSpec): Promise<string> {
  const specText = `${JSON.stringify(spec, null, 2)}\n`;
  const specDir = join(config.dataDir, "specs");
  await mkdir(specDir, { recursive: true });
  const specFile = join(specDir, `${createHash("sha256").update(specText).digest("hex").slice(0, 32)}.json`);
  await writeFileAtomic(specFile, specText);
  return specFile;
}

/** Nix builds the spec; the manifest is recorded and the slug rooted. */
async function realiseBuild(
  deps: BuildDeps,
  req: BuildRequest,
  p: PreparedBuild,
  started: number,
): Promise<BuildResult> {
  const { config, nix } = deps;
  const step = req.onStep ?? (() => {});
  const { app, specFile, source, buildpacks: stored, seedLock, lockfile, tools } = p;
  const srcStats = p.sourceStats;
  const expr = buildExpr(config, specFile, "slug");

  step("building");
  let built = false;
  // Each phase's recent output, read for an attempted download if the build fails.
  const recent = recentLines();
  const building = nix.build([{ expr }], {
    ...(req.onProgress ? { onProgress: req.onProgress } : {}),
    ...(req.signal ? { signal: req.signal } : {}),
    onLogLine: (drvPath, line) => {
      built = true;
      recent.add(drvPath, line);
      if (!req.onLog) return;
      if (derivationName(drvPath).startsWith("kiln-deps-")) return req.onLog("dependencies", line);
      const m = /^(detect|compile|release|pack|error) *\| ?(.*)$/.exec(line);
      if (m) req.onLog(m[1] as BuildPhase, m[2] ?? "");
      else req.onLog("compile", line);
    },
  });
  const [result] = await building.catch((err: unknown) => {
    throw explainBuildFailure(err, recent);
  });
  const outPath = result?.outputs.out;
  if (!result || !outPath) bug("nix build gave no slug output");

  const outDir = nix.realPath(outPath);
  const buildFile = buildFileSchema.parse(JSON.parse(await readFile(join(outDir, "build.json"), "utf8")));
  // The slug's hash is the host's own, of the registered (now immutable) store path: what the build
  // reports is at most a cross-check, and a mismatch means something changed the slug after it was
  // packed, so the build fails.
  const slugFile = join(outDir, "slug.tgz");
  const [slugSha256, slugStat] = await Promise.all([hashFile(slugFile, "sha256"), stat(slugFile)]);
  if (slugSha256 !== buildFile.slug.sha256 || slugStat.size !== buildFile.slug.bytes) {
    throw new KilnError({
      code: "slug_tampered",
      message: `the slug the build left (sha256 ${slugSha256}, ${slugStat.size} bytes) is not the one it packed (sha256 ${buildFile.slug.sha256}): something changed it after packing`,
      hint: "a process the build started kept running and rewrote its output; make the buildpack wait for what it starts",
    });
  }
  const release = releaseFileSchema.parse(JSON.parse(await readFile(join(outDir, "release.json"), "utf8")));
  const [stackInfo, toolsInfo] = await nix.pathInfo([p.stackPath, tools.path]);
  const manifest = manifestSchema.parse({
    manifestVersion: 1,
    app,
    buildpacks: stored.map((b, i) => ({
      name: b.name,
      version: b.version,
      narHash: b.narHash,
      detected: buildFile.buildpacks[i]?.detected ?? "",
    })),
    stack: { name: "stack-build", path: p.stackPath, narHash: stackInfo?.narHash },
    seed: { path: seedLock.storePath, narHash: seedLock.narHash },
    tools: { path: tools.path, narHash: toolsInfo?.narHash },
    source: {
      narHash: source.narHash,
      files: srcStats.files,
      bytes: srcStats.bytes,
      ...(req.commit ? { commit: req.commit } : {}),
    },
    lockfile,
    ...(p.runtime ? { runtime: runtimeManifest(p.runtime) } : {}),
    slug: { path: join(outPath, "slug.tgz"), ...buildFile.slug, sha256: slugSha256, bytes: slugStat.size },
    derivation: result.drvPath,
    processTypes: release.processTypes,
    configVars: release.configVars,
    specFile,
  });
  const manifestDir = join(config.dataDir, "builds", app);
  await mkdir(manifestDir, { recursive: true });
  const manifestPath = join(manifestDir, `${slugSha256}.json`);
  await writeFileAtomic(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  const provenance = await writeBuildProvenance(deps, {
    manifest,
    manifestPath,
    spec: p.spec,
    seedLock,
    startedOn: new Date(started),
  });
  await nix.addRoot(outPath, `slug-${app}`);
  // kiln check rebuilds a build from its source: keep the newest one's.
  await nix.addRoot(source.path, `source-${app}`);
  return {
    app,
    specFile,
    // The file on this machine (in a chroot store it is not at its store path).
    slug: { path: slugFile, sha256: slugSha256, bytes: slugStat.size },
    release,
    manifest,
    manifestPath,
    provenance,
    outPath,
    drvPath: result.drvPath,
    seconds: (Date.now() - started) / 1000,
    cached: !built,
  };
}

/** The Nix expression for a build's derivations (`attr`: slug or dependencies). */
export function buildExpr(config: Config, specFile: string, attr: "slug" | "dependencies"): string {
  return selectExpr(importExpr(join(config.projectDir, "nix", "build"), { specFile }), attr);
}

let registryCache: string | undefined;

/** The npm registry, from npm's own configuration (kiln names none). */
export async function npmRegistry(): Promise<string> {
  if (registryCache) return registryCache;
  const r = await run("npm", ["config", "get", "registry"]);
  const url = r.stdout.trim();
  if (!/^https?:\/\//.test(url))
    throw new KilnError({
      code: "npm_registry_unknown",
      message: `npm config get registry gave "${url}"`,
      hint: "set one: npm config set registry URL",
    });
  registryCache = url;
  return url;
}
