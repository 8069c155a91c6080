/**
 * The runtime step of `kiln build`: the app's Node and package manager chosen from package.json,
 * corepack hashes that need the tool's bytes checked, and the choice said in the build output
 * ("engines.node 20.x → 20.19.5"). What it returns goes into the spec and the manifest.
 */

import type { PackageManagerKind } from "../buildpacks/lockfiles.js";
import { fetchNpmTarball } from "../seed/npm.js";
import { type RuntimePackageJson, type RuntimePlan, resolveRuntime, verifyRuntimeHashes } from "./resolve.js";

export interface PrepareRuntimeOptions {
  projectDir: string;
  /** Where tools' tarballs are kept when a corepack hash needs their bytes. */
  cacheDir: string;
  pkg: RuntimePackageJson;
  /** The package manager the app's one lock file belongs to (src/buildpacks/lockfiles.ts). */
  manager: PackageManagerKind;
  env: Record<string, string>;
  /** A line of build output. */
  onLine?: (line: string) => void;
}

export async function prepareRuntime(opts: PrepareRuntimeOptions): Promise<RuntimePlan> {
  const plan = await resolveRuntime(opts.projectDir, {
    pkg: opts.pkg,
    manager: opts.manager === "berry" ? "yarn" : opts.manager,
    ...(opts.manager === "berry"
      ? { yarnLock: "berry" as const }
      : opts.manager === "yarn"
        ? { yarnLock: "classic" as const }
        : {}),
    env: opts.env,
  });
  const field = typeof opts.pkg.packageManager === "string" ? opts.pkg.packageManager : "";
  await verifyRuntimeHashes(
    plan,
    (pin) =>
      fetchNpmTarball({ name: pin.package, version: pin.version, integrity: pin.integrity }, opts.cacheDir),
    field,
  );
  const say = opts.onLine ?? (() => {});
  say(
    `-----> Node.js ${plan.node.version}${plan.node.lts ? ` (LTS ${plan.node.lts})` : ""}: ${plan.node.reason}`,
  );
  say(`-----> npm ${plan.npm.version}: ${plan.npm.reason}`);
  if (plan.pm !== plan.npm) say(`-----> ${plan.pm.name} ${plan.pm.version}: ${plan.pm.reason}`);
  for (const n of plan.notes) say(`       ${n}`);
  return plan;
}

/** What the manifest records of the runtime: each release, its integrity, and why it was chosen. */
export function runtimeManifest(plan: RuntimePlan) {
  const tool = (t: RuntimePlan["npm"]) => ({
    name: t.name,
    package: t.package,
    version: t.version,
    integrity: t.integrity,
    reason: t.reason,
  });
  return {
    node: {
      package: plan.node.package,
      version: plan.node.version,
      integrity: plan.node.entry.integrity,
      reason: plan.node.reason,
      ...(plan.node.lts ? { lts: plan.node.lts } : {}),
    },
    npm: tool(plan.npm),
    pm: tool(plan.pm),
  };
}
