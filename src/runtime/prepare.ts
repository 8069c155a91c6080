/**
 * The runtime step of `kiln build`: the app's Node and package manager chosen from package.json,
 * corepack hashes that need the tool's bytes checked, and the choice said in the build output
 * ("engines.node 20.x → 20.19.5"). What it returns goes into the spec and the manifest.
 */
import { fetchNpmTarball } from "../seed/npm.js";
import {
  inferManager,
  type RuntimePackageJson,
  type RuntimePlan,
  resolveRuntime,
  verifyRuntimeHashes,
} from "./resolve.js";

export interface PrepareRuntimeOptions {
  projectDir: string;
  /** Where tools' tarballs are kept when a corepack hash needs their bytes. */
  cacheDir: string;
  pkg: RuntimePackageJson;
  /** The app's source (its lock files say which package manager it uses). */
  sourceDir: string;
  env: Record<string, string>;
  /** A line of build output. */
  onLine?: (line: string) => void;
}

export async function prepareRuntime(opts: PrepareRuntimeOptions): Promise<RuntimePlan> {
  const manager = await inferManager(opts.sourceDir);
  const plan = await resolveRuntime(opts.projectDir, { pkg: opts.pkg, manager, env: opts.env });
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
