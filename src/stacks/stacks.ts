/**
 * The stack images: building them (from nix/default.nix), describing them, exporting them as
 * deterministic tarballs.
 */
import { rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeDeterministicTarGz } from "../archive/tar.js";
import type { Config } from "../config/config.js";
import { bug, KilnError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import { NIX_CONSTANTS } from "../nix/constants.js";
import type { BuildOptions, Nix, Target } from "../nix/driver.js";
import type { ValidPathInfo } from "../nix/pathInfo.js";
import { hashFile } from "../util/fs.js";

export const STACK_NAMES = ["run", "build"] as const;
export type StackName = (typeof STACK_NAMES)[number];

/** Every stack tarball's entries carry this mtime (1980-01-01, the zip epoch many tools accept). */
export const STACK_SOURCE_DATE_EPOCH = NIX_CONSTANTS.sourceDateEpoch;

export interface StackDeps {
  config: Config;
  nix: Nix;
  log: Logger;
}

export function parseStackName(name: string): StackName {
  const n = name.replace(/^stack-/, "");
  if ((STACK_NAMES as readonly string[]).includes(n)) return n as StackName;
  throw new KilnError({
    code: "unknown_stack",
    message: `there is no stack called "${name}"`,
    hint: `the stacks are: ${STACK_NAMES.join(", ")}`,
  });
}

export function stackTarget(config: Config, name: StackName): Target {
  return { file: join(config.projectDir, "nix", "default.nix"), attr: `stack-${name}` };
}

export interface BuiltStack {
  name: StackName;
  storePath: string;
  drvPath: string;
}

/** Builds the stacks (a no-op when they are in the store) and roots them against garbage collection. */
export async function buildStacks(
  deps: StackDeps,
  names: StackName[],
  opts: BuildOptions = {},
): Promise<BuiltStack[]> {
  const results = await deps.nix.build(
    names.map((n) => stackTarget(deps.config, n)),
    opts,
  );
  const out: BuiltStack[] = [];
  // `nix build --json` lists results in its own order, not the order asked; match by output name.
  for (const name of names) {
    const r = results.find((x) => x.outputs.out?.endsWith(`-kiln-stack-${name}`));
    const storePath = r?.outputs.out;
    if (!r || !storePath) bug(`nix build returned no output for stack-${name}`);
    await deps.nix.addRoot(storePath, `stack-${name}`);
    out.push({ name, storePath, drvPath: r.drvPath });
  }
  return out;
}

/** Rebuilds a stack that is already built and fails if the bytes differ (Nix's --check). */
export async function checkStack(deps: StackDeps, name: StackName, opts: BuildOptions = {}): Promise<void> {
  await deps.nix.check(stackTarget(deps.config, name), opts);
}

export async function stackInfo(deps: StackDeps, stack: BuiltStack): Promise<ValidPathInfo> {
  const [info] = await deps.nix.pathInfo([stack.storePath], { closureSize: true });
  if (!info) bug(`${stack.storePath} is not valid after building it`);
  return info;
}

/** Writes the stack as a deterministic tar.gz and returns its sha256. */
export async function exportStack(
  deps: StackDeps,
  name: StackName,
  file: string,
  opts: BuildOptions = {},
): Promise<{ sha256: string; storePath: string }> {
  const [stack] = await buildStacks(deps, [name], opts);
  if (!stack) bug("no stack built");
  // Written beside the target and renamed when complete: an interrupted export leaves no half file.
  const partial = `${file}.partial`;
  try {
    await writeDeterministicTarGz(deps.nix.realPath(stack.storePath), partial, {
      mtime: STACK_SOURCE_DATE_EPOCH,
      gzipLevel: 6,
    });
    await rename(partial, file);
  } finally {
    await rm(partial, { force: true });
  }
  return { sha256: await hashFile(file, "sha256"), storePath: stack.storePath };
}
