/**
 * An app's runtime: its Node release and its package manager's (npm always, as on Heroku, plus
 * yarn or pnpm when the app uses one), resolved from package.json against the pinned inventories.
 * What comes out goes into the build spec (nix/build/runtime.nix fetches and unpacks each one,
 * shared by every app that uses it) and into the manifest, so a rebuild is bit-for-bit.
 */
import { KilnError } from "../errors.js";
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
  /** Which yarn wrote yarn.lock (src/buildpacks/lockfiles.ts tells them apart): its yarn is chosen. */
  yarnLock?: "classic" | "berry";
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
    ...(opts.yarnLock ? { yarnLock: opts.yarnLock } : {}),
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
