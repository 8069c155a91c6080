/**
 * Buildpacks: the ones kiln ships (buildpacks/ in the checkout, tried in order when an app names
 * none) and third-party ones given by path. Each goes into the store content-addressed; its version
 * is its VERSION file (or "unversioned") plus that NAR hash.
 */
import { readFile, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import type { Config } from "../config/config.js";
import { KilnError } from "../errors.js";
import type { Nix } from "../nix/driver.js";
import { snapshotDir } from "../source/snapshot.js";

/** Detection order when an app names no buildpack (Heroku's: the first that detects wins). */
export const SHIPPED_BUILDPACKS = ["nodejs", "static", "procfile"] as const;

export interface BuildpackRef {
  name: string;
  dir: string;
  shipped: boolean;
}

export interface StoredBuildpack extends BuildpackRef {
  path: string;
  narHash: string;
  version: string;
}

/** A shipped buildpack's name, or a path to a buildpack directory (absolute, ./ or ../). */
export async function resolveBuildpackRef(config: Config, ref: string, cwd: string): Promise<BuildpackRef> {
  const isPath = ref.includes("/") || ref.startsWith(".");
  if (!isPath) {
    if (!(SHIPPED_BUILDPACKS as readonly string[]).includes(ref)) {
      throw new KilnError({
        code: "unknown_buildpack",
        message: `there is no shipped buildpack called "${ref}"`,
        hint: `shipped: ${SHIPPED_BUILDPACKS.join(", ")}; or give a path to a buildpack directory (./my-buildpack)`,
      });
    }
    return { name: ref, dir: join(config.projectDir, "buildpacks", ref), shipped: true };
  }
  const dir = resolve(cwd, ref);
  for (const prog of ["detect", "compile", "release"]) {
    const st = await stat(join(dir, "bin", prog)).catch(() => undefined);
    if (!st?.isFile() || (st.mode & 0o111) === 0) {
      throw new KilnError({
        code: "invalid_buildpack",
        message: `${ref} is not a buildpack: ${join(dir, "bin", prog)} is missing or not executable`,
        hint: "a buildpack has executable bin/detect, bin/compile and bin/release",
      });
    }
  }
  return { name: basename(dir).replace(/[^A-Za-z0-9._-]/g, "_"), dir, shipped: false };
}

/** Copies the buildpack (without .git) into `work` and adds it to the store. */
export async function storeBuildpack(nix: Nix, ref: BuildpackRef, work: string): Promise<StoredBuildpack> {
  const copy = join(work, `kiln-buildpack-${ref.name}`);
  await snapshotDir(ref.dir, copy);
  const { path, narHash } = await nix.addPath(copy);
  const declared = await readFile(join(ref.dir, "VERSION"), "utf8").then(
    (t) => t.trim().split("\n")[0] ?? "",
    () => "",
  );
  return { ...ref, path, narHash, version: `${declared || "unversioned"}+${narHash.slice(7, 19)}` };
}

/** Buildpacks an app names for itself: one per line in `.buildpacks` (names or paths relative to the app). */
export async function appBuildpackList(appDir: string): Promise<string[] | undefined> {
  const text = await readFile(join(appDir, ".buildpacks"), "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  const list = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  if (list.length === 0) {
    throw new KilnError({
      code: "invalid_app",
      message: ".buildpacks is empty",
      hint: "list one buildpack per line, or delete the file to detect one",
    });
  }
  return list;
}
