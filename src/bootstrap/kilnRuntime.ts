/**
 * kiln's own Node and npm: what `kiln build` resolves from kiln's package.json (engines) against
 * nix/inventory, pinned in nix/bootstrap/runtime.json. Pure Nix (the flake's stages, `kiln
 * bootstrap`'s stage1) cannot run the resolver, so it reads this file; the hosted platform builds
 * stage2 and stage3 through the resolver. Both must get the same runtime, or stage1's slug differs
 * from stage2's. test/unit/kilnRuntime.test.ts keeps the file current; `kiln inventory update`
 * rewrites it with the inventories.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { resolveRuntime, runtimeSpec } from "../runtime/resolve.js";
import { writeFileAtomic } from "../util/fs.js";

export const KILN_RUNTIME_FILE = join("nix", "bootstrap", "runtime.json");

/** The runtime spec of kiln's build, without the registry (Nix adds the run's own). */
export async function kilnRuntimeSpec(projectDir: string) {
  const pkg = JSON.parse(await readFile(join(projectDir, "package.json"), "utf8"));
  const plan = await resolveRuntime(projectDir, { pkg, manager: "npm", env: {} });
  const { registry: _registry, ...spec } = runtimeSpec(plan, "/");
  return spec;
}

/** nix/bootstrap/runtime.json's text for today's package.json and inventories. */
export async function kilnRuntimeText(projectDir: string): Promise<string> {
  return `${JSON.stringify(await kilnRuntimeSpec(projectDir), null, 2)}\n`;
}

/** Rewrites nix/bootstrap/runtime.json when it differs; its path when it did. */
export async function writeKilnRuntime(projectDir: string): Promise<string | undefined> {
  const file = join(projectDir, KILN_RUNTIME_FILE);
  const text = await kilnRuntimeText(projectDir);
  const before = await readFile(file, "utf8").catch(() => "");
  if (before === text) return undefined;
  await writeFileAtomic(file, text);
  return file;
}
