/**
 * A Node app's dependency plan, whichever package manager: the lock chosen (lockfiles.ts), its
 * tarballs pinned, and the dependency phase's input written: only manifests (package.json without
 * scripts, the root's and each workspace's), the lock (rewritten for offline use where the manager
 * needs it) and the settings files that change what is installed, never app code. So an app-code
 * change never rebuilds the dependency tree.
 *
 * A plain npm package-lock.json v2/v3 without workspaces is planned by nix/build/node-deps.nix
 * (kiln's own flake evaluates it purely) and only checked here; every other lock is planned here
 * and handed to Nix in the build spec (nix/build/planned-deps.nix).
 */
import { lstat, mkdir, readdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import picomatch from "picomatch";
import YAML from "yaml";
import { bug, KilnError } from "../errors.js";
import { readBeneath, readTextBeneath } from "../util/beneath.js";
import { berryRegistryEntries, isBerryLock, parseBerryLock } from "./berryLock.js";
import {
  checkPackageManagerField,
  chooseLockFile,
  LOCK_FILES,
  type LockFileName,
  lockMissingError,
  type PackageManagerKind,
} from "./lockfiles.js";
import { lockDrift, type PackageJson, parsePackageLock, planDependencies } from "./nodejs.js";
import { npmWorkspaceDirs, parseAnyNpmLock, planNpmLock } from "./npmPlan.js";
import { finishPins, pinContext, pinEntry, type Tarball } from "./pin.js";
import { parsePnpmLock, planPnpmLock } from "./pnpmLock.js";
import { registryIntegrities } from "./registryIntegrity.js";
import { type WorkspaceManifest, workspaceOrder } from "./workspaceOrder.js";
import { planYarnLock } from "./yarnLock.js";

const LOCK_MAX_BYTES = 64 * 1024 * 1024;

/** In the dependency input: the workspace directories, dependencies first (lib/pm.sh reads it). */
export const WORKSPACE_LIST = ".kiln-workspaces";

/** A workspace directory: relative, inside the app, no `.`/`..`/empty segments or odd characters. */
export function assertWorkspaceDir(ws: string): void {
  const parts = ws.split("/");
  if (
    ws.length > 1024 ||
    ws.startsWith("/") ||
    parts.some((p) => p === "" || p === "." || p === "..") ||
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
    /[\\\x00-\x1f]/.test(ws)
  ) {
    throw new KilnError({
      code: "invalid_workspace",
      message: `the lock file names a workspace ${JSON.stringify(ws.slice(0, 200))}, which is not a directory inside the app`,
      hint: "workspaces are directories inside the app (e.g. packages/api): regenerate the lock with your package manager",
    });
  }
}

export type NodePlan =
  | {
      kind: PackageManagerKind;
      lockFile: LockFileName;
      lockText: string;
      planner: "nix";
      tarballs: Tarball[];
    }
  | {
      kind: PackageManagerKind;
      lockFile: LockFileName;
      lockText: string;
      planner: "kiln";
      tarballs: Tarball[];
      /** The input directory written (to be added to the store). */
      inputDir: string;
      workspaces: string[];
    };

export interface PlanOptions {
  registry: string;
  allow?: readonly string[];
  /** Where the registry integrities of berry's tarballs are kept. */
  integrityCacheFile: string;
  /** Scratch directory for the input tree. */
  work: string;
}

/** Workspace patterns from package.json (`workspaces`, as an array or `{packages}`). */
function workspacePatterns(pkg: PackageJson): string[] {
  const w = (pkg as { workspaces?: unknown }).workspaces;
  const list = Array.isArray(w)
    ? w
    : w && typeof w === "object"
      ? (w as { packages?: unknown }).packages
      : [];
  return Array.isArray(list) ? list.filter((x): x is string => typeof x === "string") : [];
}

/** The app's directories (below the root) that match the workspace patterns and have a package.json. */
async function findWorkspaces(root: string, patterns: string[]): Promise<string[]> {
  const pos = patterns
    .filter((p) => !p.startsWith("!"))
    .map((p) => p.replace(/^\.\//, "").replace(/\/+$/, ""));
  const neg = patterns
    .filter((p) => p.startsWith("!"))
    .map((p) => p.slice(1).replace(/^\.\//, "").replace(/\/+$/, ""));
  if (pos.length === 0) return [];
  const isMatch = picomatch(pos, { ignore: neg.length ? neg : undefined, dot: false });
  const out: string[] = [];
  const walk = async (rel: string, depth: number) => {
    if (depth > 8) return;
    for (const e of (await readdir(join(root, rel), { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      if (!e.isDirectory() || e.name === "node_modules" || e.name === ".git") continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (isMatch(r) && (await lstat(join(root, r, "package.json")).catch(() => undefined))?.isFile())
        out.push(r);
      await walk(r, depth + 1);
    }
  };
  await walk("", 0);
  return out;
}

const NPMRC_DROP =
  /^\s*(registry|@[^:]+:registry|\/\/|_auth|_authToken|_password|username|email|always-auth|cafile|ca|cert|key|proxy|https-proxy|noproxy|strict-ssl|store-dir|cache|offline|prefer-offline|prefer-online)\b/i;

/** .npmrc / .yarnrc (classic) without registry, credential, proxy and cache settings: the sandbox has its own. */
function filterRcLines(text: string): string {
  return text
    .split(/\r?\n/)
    .filter((l) => !NPMRC_DROP.test(l.replace(/^"/, "")))
    .join("\n");
}

const YARNRC_YML_DROP = [
  "npmRegistryServer",
  "npmScopes",
  "npmRegistries",
  "npmAuthToken",
  "npmAuthIdent",
  "npmAlwaysAuth",
  "npmPublishRegistry",
  "httpProxy",
  "httpsProxy",
  "caFilePath",
  "httpsCaFilePath",
  "httpsCertFilePath",
  "httpsKeyFilePath",
  "networkSettings",
  "unsafeHttpWhitelist",
  "enableNetwork",
  "enableGlobalCache",
  "cacheFolder",
  "globalFolder",
  "enableOfflineMode",
];

function stripScripts(text: string, file: string): string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new KilnError({
      code: "invalid_app",
      message: `${file} is not valid JSON`,
      hint: `fix ${file} (npm pkg fix can help)`,
    });
  }
  if (!v || typeof v !== "object" || Array.isArray(v))
    throw new KilnError({
      code: "invalid_app",
      message: `${file} is not a JSON object`,
      hint: `fix ${file}`,
    });
  const { scripts: _scripts, ...rest } = v as Record<string, unknown>;
  return `${JSON.stringify(rest, null, 2)}\n`;
}

/** Every regular file under `rel` in the snapshot (links and odd files skipped), relative paths. */
async function filesUnder(root: string, rel: string): Promise<string[]> {
  const st = await lstat(join(root, rel)).catch(() => undefined);
  if (!st?.isDirectory()) return [];
  const out: string[] = [];
  for (const e of (await readdir(join(root, rel), { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : 1,
  )) {
    const r = `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...(await filesUnder(root, r)));
    else if (e.isFile()) out.push(r);
  }
  return out;
}

async function present(root: string): Promise<LockFileName[]> {
  const out: LockFileName[] = [];
  for (const f of LOCK_FILES) if ((await lstat(join(root, f)).catch(() => undefined))?.isFile()) out.push(f);
  return out;
}

const hasDeps = (pkg: PackageJson) =>
  (["dependencies", "devDependencies", "optionalDependencies"] as const).some(
    (f) => Object.keys(pkg[f] ?? {}).length > 0,
  );

/**
 * Chooses, checks and plans an app's dependencies; undefined when it has no lock and no
 * dependencies (nothing to install).
 */
export async function planNodeApp(
  root: string,
  pkg: PackageJson,
  opts: PlanOptions,
): Promise<NodePlan | undefined> {
  const lockFile = chooseLockFile(await present(root));
  if (!lockFile) {
    if (hasDeps(pkg) || workspacePatterns(pkg).length > 0) throw lockMissingError();
    return undefined;
  }
  const lockText = (await readTextBeneath(root, lockFile, { maxBytes: LOCK_MAX_BYTES })) ?? "";
  const kind: PackageManagerKind =
    lockFile === "pnpm-lock.yaml"
      ? "pnpm"
      : lockFile === "yarn.lock"
        ? isBerryLock(lockText)
          ? "berry"
          : "yarn"
        : "npm";
  checkPackageManagerField(kind, lockFile, (pkg as { packageManager?: string }).packageManager);
  const { registry } = opts;
  const allow = opts.allow ?? [];

  let tarballs: Tarball[];
  let lockForInput = lockText;
  let workspaces: string[] = [];
  if (kind === "npm") {
    const any = parseAnyNpmLock(lockText, lockFile);
    const lockWorkspaces = any.lockfileVersion >= 2 ? npmWorkspaceDirs(any) : [];
    workspaces = [
      ...new Set([...lockWorkspaces, ...(await findWorkspaces(root, workspacePatterns(pkg)))]),
    ].sort();
    if (any.lockfileVersion >= 2) {
      const lock = parsePackageLock(lockText);
      const drift = lockDrift(pkg, lock);
      if (drift.length > 0) {
        throw new KilnError({
          code: "lockfile_out_of_sync",
          message: `package.json and ${lockFile} are out of sync:\n${drift.map((d) => `  ${d}`).join("\n")}`,
          hint: "run `npm install` to update the lock, and commit both",
        });
      }
      if (lockFile === "package-lock.json" && workspaces.length === 0) {
        // node-deps.nix plans this one (also in pure flake evaluation); checked here for errors.
        return {
          kind,
          lockFile,
          lockText,
          planner: "nix",
          tarballs: planDependencies(lock, registry, { allow }).tarballs,
        };
      }
    } else if (any.lockfileVersion !== 1) {
      throw new KilnError({
        code: "lockfile_unsupported",
        message: `${lockFile} has lockfileVersion ${any.lockfileVersion}; kiln reads 1, 2 and 3`,
        hint: "regenerate it: npm install --package-lock-only",
      });
    }
    const planned = planNpmLock(any, { file: lockFile, registry, allow });
    tarballs = planned.tarballs;
    lockForInput = `${JSON.stringify(planned.offlineLock, null, 2)}\n`;
  } else if (kind === "yarn") {
    workspaces = await findWorkspaces(root, workspacePatterns(pkg));
    const planned = planYarnLock(lockText, { registry, allow });
    tarballs = planned.tarballs;
    lockForInput = planned.offlineLock;
  } else if (kind === "pnpm") {
    const lock = parsePnpmLock(lockText);
    const wsText = await readTextBeneath(root, "pnpm-workspace.yaml");
    const wsPatterns = wsText ? ((YAML.parse(wsText) as { packages?: string[] } | null)?.packages ?? []) : [];
    workspaces = [
      ...new Set([...lock.importers.filter((i) => i !== "."), ...(await findWorkspaces(root, wsPatterns))]),
    ].sort();
    const planned = planPnpmLock(lock, { registry, allow });
    tarballs = planned.tarballs;
    lockForInput = planned.offlineLock;
  } else {
    const lock = parseBerryLock(lockText);
    workspaces = await findWorkspaces(root, workspacePatterns(pkg));
    const zeroInstall = (await filesUnder(root, ".yarn/cache")).some((f) => f.endsWith(".zip"));
    const { fetch, problems } = berryRegistryEntries(lock);
    const ctx = pinContext(registry, allow);
    ctx.problems.push(...problems);
    if (!zeroInstall) {
      const integrities = await registryIntegrities(
        fetch.map((e) => ({ name: e.name, version: e.version ?? "" })),
        { registry, cacheFile: opts.integrityCacheFile },
      );
      for (const e of fetch) {
        pinEntry(ctx, {
          where: e.key,
          name: e.name,
          version: e.version,
          resolved: e.archiveUrl,
          integrity: integrities.get(`${e.name}@${e.version}`),
        });
      }
    }
    tarballs = finishPins(ctx, "yarn.lock");
  }

  // Workspace directories come from the tenant's lock (npm's `packages` keys, pnpm's importers):
  // each must be a plain path inside the app, or its package.json would be written outside the
  // input directory (`l/../../etc`: read beneath the app through a link, joined lexically here).
  for (const ws of workspaces) assertWorkspaceDir(ws);

  // The dependency phase's input: manifests, the lock, the settings that matter.
  const inputDir = join(opts.work, "kiln-deps-input");
  await mkdir(inputDir, { recursive: true });
  const put = async (rel: string, data: string | Buffer) => {
    const target = resolve(inputDir, rel);
    if (!target.startsWith(`${inputDir}${sep}`))
      bug(`dependency input path ${JSON.stringify(rel)} leaves its directory`);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, data);
  };
  const pkgText = (await readTextBeneath(root, "package.json")) ?? "{}";
  await put("package.json", stripScripts(pkgText, "package.json"));
  // npm 12 reads no npm-shrinkwrap.json (its format is package-lock.json's), every npm since 5 reads
  // package-lock.json: the install gets the shrinkwrap under that name.
  await put(lockFile === "npm-shrinkwrap.json" ? "package-lock.json" : lockFile, lockForInput);
  const manifests: WorkspaceManifest[] = [];
  for (const ws of workspaces) {
    const t = await readTextBeneath(root, `${ws}/package.json`);
    if (t === undefined) continue;
    await put(`${ws}/package.json`, stripScripts(t, `${ws}/package.json`));
    manifests.push({ dir: ws, pkg: JSON.parse(t) });
  }
  // bin/compile runs the workspaces' own install scripts (left out above) in this order, as the
  // manager's install would: only directories checked above, each one a line.
  if (manifests.length > 0) await put(WORKSPACE_LIST, `${workspaceOrder(manifests).join("\n")}\n`);
  for (const rc of [".npmrc", ".yarnrc"]) {
    const t = await readTextBeneath(root, rc);
    if (t !== undefined) await put(rc, filterRcLines(t));
  }
  const yml = await readTextBeneath(root, ".yarnrc.yml");
  if (yml !== undefined) {
    const doc = (YAML.parse(yml) ?? {}) as Record<string, unknown>;
    for (const k of YARNRC_YML_DROP) delete doc[k];
    await put(".yarnrc.yml", YAML.stringify(doc));
  }
  for (const f of ["pnpm-workspace.yaml", ".pnpmfile.cjs"]) {
    const b = await readBeneath(root, f);
    if (b !== undefined) await put(f, b);
  }
  // yarn's own release (yarnPath), plugins and patches; pnpm's patches; berry's committed cache.
  const dirs = [".yarn/releases", ".yarn/plugins", ".yarn/patches", "patches"];
  if (kind === "berry") dirs.push(".yarn/cache");
  for (const d of dirs) {
    for (const f of await filesUnder(root, d)) {
      const b = await readBeneath(root, f, { maxBytes: LOCK_MAX_BYTES });
      if (b !== undefined) await put(f, b);
    }
  }
  return { kind, lockFile, lockText, planner: "kiln", tarballs, inputDir, workspaces };
}
