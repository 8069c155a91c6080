/**
 * Buildpacks: the ones kiln ships (buildpacks/ in the checkout, tried in order when an app names
 * none) and third-party ones given by path. Each goes into the store content-addressed; its version
 * is its VERSION file (or "unversioned") plus that NAR hash.
 */
import { stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import type { Config } from "../config/config.js";
import { KilnError } from "../errors.js";
import type { Nix } from "../nix/driver.js";
import { snapshotDir } from "../source/snapshot.js";
import { fsLookup, readTextBeneath, resolveBeneath } from "../util/beneath.js";
import { absent } from "../util/fs.js";

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

/**
 * Where a buildpack ref may point: the operator's own `-b PATH` (and `kiln build DIR`'s .buildpacks)
 * anywhere on the host; an uploaded source's .buildpacks only at shipped buildpacks or at a
 * directory inside the app itself (resolved beneath it), never at a host path.
 */
export type BuildpackRefScope = { kind: "host"; cwd: string } | { kind: "app"; root: string; line: number };

/** A shipped buildpack's name, or a path to a buildpack directory (absolute, ./ or ../). */
export async function resolveBuildpackRef(
  config: Config,
  ref: string,
  scope: string | BuildpackRefScope,
): Promise<BuildpackRef> {
  const where: BuildpackRefScope = typeof scope === "string" ? { kind: "host", cwd: scope } : scope;
  const isPath = ref.includes("/") || ref.startsWith(".");
  if (!isPath && where.kind === "app" && !(SHIPPED_BUILDPACKS as readonly string[]).includes(ref)) {
    // Named by line, not quoted: the text came from the tenant's tree.
    throw new KilnError({
      code: "unknown_buildpack",
      message: `.buildpacks line ${where.line} names no shipped buildpack`,
      hint: `shipped: ${SHIPPED_BUILDPACKS.join(", ")}; or a buildpack directory inside the app (./buildpacks/x)`,
    });
  }
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
  let dir: string;
  if (where.kind === "host") dir = resolve(where.cwd, ref);
  else {
    const res = ref.startsWith("/") ? undefined : await resolveBeneath(fsLookup(where.root), ref);
    if (!res?.ok || res.kind !== "dir") {
      throw new KilnError({
        code: "unsafe_buildpack",
        message: `.buildpacks line ${where.line} names a path that is not a directory inside the app`,
        hint: "an uploaded app may name shipped buildpacks (nodejs, static, procfile) or a buildpack directory inside the app; the operator can add others with kiln build -b PATH",
      });
    }
    dir = join(where.root, res.path);
  }
  for (const prog of ["detect", "compile", "release"]) {
    const st = await stat(join(dir, "bin", prog)).catch(absent(undefined));
    if (!st?.isFile() || (st.mode & 0o111) === 0) {
      throw new KilnError({
        code: "invalid_buildpack",
        message:
          where.kind === "host"
            ? `${ref} is not a buildpack: ${join(dir, "bin", prog)} is missing or not executable`
            : `.buildpacks line ${where.line} is not a buildpack: its bin/${prog} is missing or not executable`,
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
  // Read from the stored copy, whose links were checked against the buildpack's root.
  const declared =
    ((await readTextBeneath(copy, "VERSION", { maxBytes: 4096 })) ?? "").trim().split("\n")[0] ?? "";
  return { ...ref, path, narHash, version: `${declared || "unversioned"}+${narHash.slice(7, 19)}` };
}

/** Buildpacks an app names for itself: one per line in `.buildpacks` (names or paths relative to the app). */
export async function appBuildpackList(appDir: string): Promise<{ ref: string; line: number }[] | undefined> {
  const text = await readTextBeneath(appDir, ".buildpacks", { maxBytes: 64 * 1024 });
  if (text === undefined) return undefined;
  const list = text
    .split(/\r?\n/)
    .map((l, i) => ({ ref: l.trim(), line: i + 1 }))
    .filter((l) => l.ref && !l.ref.startsWith("#"));
  if (list.length === 0) {
    throw new KilnError({
      code: "invalid_app",
      message: ".buildpacks is empty",
      hint: "list one buildpack per line, or delete the file to detect one",
    });
  }
  return list;
}
