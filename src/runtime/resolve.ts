/**
 * An app's runtime: its Node release and its package manager's (npm always, as on Heroku, plus
 * yarn or pnpm when the app uses one), resolved from package.json against the pinned inventories.
 * What comes out goes into the build spec (nix/build/runtime.nix fetches and unpacks each one,
 * shared by every app that uses it) and into the manifest, so a rebuild is bit-for-bit.
 */
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { exists } from "../util/fs.js";
import { type Inventory, readInventory } from "./inventory.js";
import { type NodeResolution, resolveNode } from "./nodeVersion.js";
import {
  MANAGER_NAMES,
  type ManagerName,
  parsePackageManagerField,
  resolveTool,
  type ToolInventories,
  type ToolPin,
  verifyCorepackHash,
} from "./packageManager.js";

export interface RuntimePackageJson {
  engines?: Record<string, unknown> | undefined;
  packageManager?: unknown;
}

export interface RuntimePlan {
  node: NodeResolution & { package: string };
  /** npm, for every app (`npm start`, lifecycle scripts). */
  npm: ToolPin;
  /** The app's package manager: `npm` itself, or yarn or pnpm. */
  pm: ToolPin;
  /** Warnings worth a line in the build output. */
  notes: string[];
}

/** The lock files that say which manager an app uses (pm's detection refines this). */
export const LOCK_FILES: Record<string, ManagerName> = {
  "package-lock.json": "npm",
  "npm-shrinkwrap.json": "npm",
  "yarn.lock": "yarn",
  "pnpm-lock.yaml": "pnpm",
};

/** The manager named by the lock files in `dir` (npm when there is none). */
export async function inferManager(dir: string): Promise<ManagerName> {
  const found = new Set<ManagerName>();
  for (const [file, m] of Object.entries(LOCK_FILES)) if (await exists(join(dir, file))) found.add(m);
  if (found.size > 1) {
    throw new KilnError({
      code: "lockfile_conflict",
      message: `the app has lock files of more than one package manager (${[...found].join(", ")})`,
      hint: "keep the one your package manager writes and delete the others, as Heroku requires",
    });
  }
  return [...found][0] ?? "npm";
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

export async function readRuntimeInventories(
  projectDir: string,
): Promise<{ node: Inventory; tools: ToolInventories }> {
  const [node, npm, yarn, berry, pnpm] = await Promise.all([
    readInventory(projectDir, "node"),
    readInventory(projectDir, "npm"),
    readInventory(projectDir, "yarn"),
    readInventory(projectDir, "yarn-berry"),
    readInventory(projectDir, "pnpm"),
  ]);
  return { node, tools: { npm, yarn, "yarn-berry": berry, pnpm } };
}

export interface ResolveRuntimeOptions {
  pkg: RuntimePackageJson;
  manager: ManagerName;
  /** The app's config vars (NODEJS_ALLOW_WIDE_RANGE, as on Heroku). */
  env?: Record<string, string>;
}

/** Pure: the plan from package.json and the inventories. */
export function planRuntime(
  invs: { node: Inventory; tools: ToolInventories },
  opts: ResolveRuntimeOptions,
): RuntimePlan {
  const engines = opts.pkg.engines ?? {};
  const field = str(opts.pkg.packageManager);
  if (opts.pkg.packageManager !== undefined && field === undefined) {
    throw new KilnError({
      code: "package_manager_invalid",
      message: `package.json "packageManager" is not a string`,
      hint: 'write it as corepack does, e.g. "pnpm@9.12.0"',
    });
  }
  if (field) {
    const { name } = parsePackageManagerField(field);
    if (!(MANAGER_NAMES as readonly string[]).includes(name)) {
      throw new KilnError({
        code: "package_manager_unsupported",
        message: `"packageManager": "${field}": kiln builds with npm, yarn or pnpm, not ${name}`,
        hint: "use one of them, or remove the field",
      });
    }
    if (name !== opts.manager) {
      throw new KilnError({
        code: "package_manager_conflict",
        message: `"packageManager": "${field}" names ${name}, but the app's lock file is ${opts.manager}'s`,
        hint: `make them agree: change packageManager to ${opts.manager}, or replace the lock file with ${name}'s`,
      });
    }
  }
  const node = resolveNode(invs.node, {
    range: str(engines.node),
    iojs: engines.iojs === undefined ? undefined : String(engines.iojs),
    allowWideRange: opts.env?.NODEJS_ALLOW_WIDE_RANGE === "true",
  });
  const notes: string[] = [];
  const req = {
    manager: opts.manager,
    packageManager: field,
    engines: { npm: str(engines.npm), yarn: str(engines.yarn), pnpm: str(engines.pnpm) },
    node: node.version,
  };
  const npm = resolveTool(invs.tools, "npm", req, notes);
  const pm = opts.manager === "npm" ? npm : resolveTool(invs.tools, opts.manager, req, notes);
  return { node: { ...node, package: invs.node.package }, npm, pm, notes };
}

/** The plan for an app, its inventories read from `projectDir`. */
export async function resolveRuntime(projectDir: string, opts: ResolveRuntimeOptions): Promise<RuntimePlan> {
  return planRuntime(await readRuntimeInventories(projectDir), opts);
}

/** A corepack hash that needs the tool's bytes, checked against `tarball` (a verified download). */
export async function verifyRuntimeHashes(
  plan: RuntimePlan,
  tarballOf: (pin: ToolPin) => Promise<string>,
  field: string,
): Promise<void> {
  for (const pin of new Set([plan.npm, plan.pm]))
    if (pin.corepackHash) await verifyCorepackHash(pin, await tarballOf(pin), field);
}

/** The plan as the build spec carries it (nix/build/runtime.nix): store names, integrity, paths. */
export function runtimeSpec(plan: RuntimePlan, registry: string) {
  const tool = (p: ToolPin) => ({
    name: p.name,
    package: p.package,
    version: p.version,
    integrity: p.integrity,
    path: p.path,
  });
  return {
    registry: registry.endsWith("/") ? registry : `${registry}/`,
    node: {
      package: plan.node.package,
      version: plan.node.version,
      integrity: plan.node.entry.integrity,
      path: plan.node.entry.path,
    },
    npm: tool(plan.npm),
    pm: tool(plan.pm),
  };
}
export type RuntimeSpec = ReturnType<typeof runtimeSpec>;
