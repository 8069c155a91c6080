/**
 * Debian packages for the seed, through apt's own configuration (its sources and mirrors; kiln names
 * no archive): resolve a dependency closure to exact versions and hashes, download pinned versions,
 * verify each .deb against its pinned sha256.
 */
import { mkdir, mkdtemp, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { run } from "../process/run.js";
import { exists, hashFile } from "../util/fs.js";
import { type Paragraph, parseDependsField, parseParagraphs } from "./deb822.js";
import type { DebPin } from "./lock.js";

const APT_OPTS = ["-o", "APT::Sandbox::User=root", "-q"];

/** Candidate versions of real packages (virtual ones come back missing). */
export async function aptShowCandidates(names: string[]): Promise<Map<string, Paragraph>> {
  const found = new Map<string, Paragraph>();
  if (names.length === 0) return found;
  const r = await run("apt-cache", ["show", "--no-all-versions", ...names], { reject: false });
  for (const p of parseParagraphs(r.stdout)) {
    if (p.Package && !found.has(p.Package)) found.set(p.Package, p);
  }
  return found;
}

/** Whether this exact version is still known to apt (i.e. can still be downloaded). */
export async function aptShowVersion(name: string, version: string): Promise<Paragraph | undefined> {
  const r = await run("apt-cache", ["show", `${name}=${version}`], { reject: false });
  return parseParagraphs(r.stdout).find((p) => p.Package === name && p.Version === version);
}

export function pinFromParagraph(p: Paragraph): DebPin {
  const need = (k: string) => {
    const v = p[k];
    if (!v)
      throw new KilnError({
        code: "apt_bad_metadata",
        message: `apt-cache gave no ${k} for ${p.Package ?? "?"}`,
      });
    return v;
  };
  return {
    name: need("Package"),
    version: need("Version"),
    architecture: need("Architecture"),
    sha256: need("SHA256"),
    size: Number(need("Size")),
    filename: need("Filename"),
  };
}

/**
 * The dependency closure (Depends + Pre-Depends) of `roots`, candidate versions, skipping `exclude`.
 * For alternatives (`a | b`) the first real, non-excluded package wins, unless one is already taken.
 */
export async function resolveClosure(roots: string[], exclude: string[]): Promise<Map<string, Paragraph>> {
  const excluded = new Set(exclude);
  const taken = new Map<string, Paragraph>();
  const known = new Map<string, Paragraph | null>();
  const lookup = async (names: string[]) => {
    const unknown = [...new Set(names)].filter((n) => !known.has(n));
    const got = await aptShowCandidates(unknown);
    for (const n of unknown) known.set(n, got.get(n) ?? null);
  };
  await lookup(roots);
  const missing = roots.filter((r) => !known.get(r));
  if (missing.length > 0) {
    throw new KilnError({
      code: "apt_package_unknown",
      message: `apt does not know these packages: ${missing.join(", ")}`,
      hint: "run `apt-get update` (as root), or fix nix/seed.spec.json",
    });
  }
  let frontier = [...roots];
  while (frontier.length > 0) {
    const next: string[][] = [];
    for (const name of frontier) {
      if (taken.has(name)) continue;
      const p = known.get(name);
      if (!p) continue;
      taken.set(name, p);
      for (const group of [...parseDependsField(p["Pre-Depends"]), ...parseDependsField(p.Depends)]) {
        next.push(group.filter((n) => !excluded.has(n)));
      }
    }
    await lookup(next.flat());
    frontier = [];
    for (const group of next) {
      if (group.length === 0 || group.some((n) => taken.has(n))) continue;
      const pick = group.find((n) => known.get(n));
      if (pick) frontier.push(pick);
    }
  }
  return taken;
}

export const sha256File = (file: string) => hashFile(file, "sha256");

/**
 * Puts the pinned .deb into `cacheDir/<sha256>.deb` (downloading it with `apt-get download` when it
 * is not cached yet) and returns its path. Fails when the version is gone or the bytes differ.
 */
export async function fetchDeb(pin: DebPin, cacheDir: string): Promise<string> {
  await mkdir(cacheDir, { recursive: true });
  const target = join(cacheDir, `${pin.sha256}.deb`);
  if (await exists(target)) {
    if ((await sha256File(target)) === pin.sha256) return target;
    await rm(target);
  }
  const tmp = await mkdtemp(join(cacheDir, "dl-"));
  try {
    const r = await run("apt-get", [...APT_OPTS, "download", `${pin.name}=${pin.version}`], {
      cwd: tmp,
      reject: false,
    });
    if (r.failed) {
      const gone = /not found|Unable to locate|Can't find a source/i.test(r.stderrTail);
      throw new KilnError({
        code: gone ? "deb_version_gone" : "deb_download_failed",
        message: gone
          ? `${pin.name} ${pin.version} can no longer be downloaded: apt has no such version\n${r.stderrTail.trim()}`
          : `apt-get download ${pin.name}=${pin.version} failed:\n${r.stderrTail.trim()}`,
        hint: gone
          ? "see what moved with `kiln seed check`, then re-pin with `kiln seed pin`"
          : "check apt's sources and network (as root: apt-get update)",
      });
    }
    const [file] = (await readdir(tmp)).filter((f) => f.endsWith(".deb"));
    if (!file)
      throw new KilnError({
        code: "deb_download_failed",
        message: `apt-get download ${pin.name} produced no .deb`,
      });
    const got = await sha256File(join(tmp, file));
    if (got !== pin.sha256) {
      throw new KilnError({
        code: "deb_hash_mismatch",
        message: `${pin.name} ${pin.version}: downloaded .deb has sha256 ${got}, the lock pins ${pin.sha256}`,
        hint: "the archive serves different bytes for a pinned version: investigate before re-pinning",
      });
    }
    await rename(join(tmp, file), target);
    return target;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
