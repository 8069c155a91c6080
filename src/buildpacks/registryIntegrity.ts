/**
 * The registry's integrity for name@version (`GET REGISTRY/NAME/VERSION`, its `dist.integrity`):
 * what pins a yarn berry lock's tarballs, whose own checksums are of berry's cache zips. A
 * published version never changes on the registry, so answers are kept in a JSON file and a
 * rebuild asks nothing.
 */
import { readFile } from "node:fs/promises";
import { KilnError } from "../errors.js";
import { writeFileAtomic } from "../util/fs.js";
import { pickIntegrity } from "./pin.js";

type Cache = Record<string, string>;

async function readCache(file: string): Promise<Cache> {
  try {
    const v = JSON.parse(await readFile(file, "utf8")) as unknown;
    return v && typeof v === "object" ? (v as Cache) : {};
  } catch (err) {
    // Absent or torn: ask again (the registry is the source of truth).
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || err instanceof SyntaxError) return {};
    throw err;
  }
}

export async function registryIntegrities(
  wanted: { name: string; version: string }[],
  opts: { registry: string; cacheFile: string; concurrency?: number },
): Promise<Map<string, string>> {
  const cache = await readCache(opts.cacheFile);
  const reg = opts.registry.endsWith("/") ? opts.registry : `${opts.registry}/`;
  const out = new Map<string, string>();
  const missing = wanted.filter((w) => {
    const hit = cache[`${w.name}@${w.version}`];
    if (hit) out.set(`${w.name}@${w.version}`, hit);
    return !hit;
  });
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < missing.length) {
      const w = missing[next++];
      if (!w) break;
      const key = `${w.name}@${w.version}`;
      try {
        const res = await fetch(`${reg}${w.name.replace("/", "%2f")}/${encodeURIComponent(w.version)}`, {
          headers: { accept: "application/json" },
          signal: AbortSignal.timeout(60_000),
        });
        if (!res.ok) {
          failures.push(`${key}: the registry answered ${res.status}`);
          continue;
        }
        const body = (await res.json()) as { dist?: { integrity?: string; shasum?: string } };
        const integrity =
          (body.dist?.integrity && pickIntegrity(body.dist.integrity)) ||
          (body.dist?.shasum && /^[0-9a-f]{40}$/.test(body.dist.shasum)
            ? `sha1-${Buffer.from(body.dist.shasum, "hex").toString("base64")}`
            : undefined);
        if (!integrity) failures.push(`${key}: the registry gives no integrity`);
        else {
          out.set(key, integrity);
          cache[key] = integrity;
        }
      } catch (err) {
        failures.push(`${key}: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 8, missing.length) }, worker));
  if (missing.length > 0) await writeFileAtomic(opts.cacheFile, `${JSON.stringify(cache)}\n`);
  if (failures.length > 0) {
    throw new KilnError({
      code: "registry_lookup_failed",
      message: `kiln could not look up the registry's integrity of ${failures.length} package(s) in yarn.lock:\n${failures
        .slice(0, 20)
        .map((f) => `  ${f}`)
        .join("\n")}`,
      hint: "yarn berry's checksums are of its own zips, so kiln pins berry's tarballs by the registry's integrity: check that the registry (npm config get registry) is reachable, or commit .yarn/cache (zero-installs)",
    });
  }
  return out;
}
