/**
 * What the binary cache may serve: the store paths kiln recorded, never an arbitrary store path.
 * That is each recorded build's slug, stack, seed and tools (DATA_DIR/builds/APP/*.json), the
 * outputs of its derivation closure that are in the store (dependency trees, runtimes, fetched
 * tarballs), kiln's GC roots but the sources' (a tenant's source is not a build output), and
 * the runtime closure of all of these (what a client needs to make them valid).
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Nix } from "../nix/driver.js";
import type { ValidPathInfo } from "../nix/pathInfo.js";
import { manifestSchema } from "../slug/records.js";
import { hashPart, narHashNix32 } from "./narinfo.js";

export interface RecordedPaths {
  /** By the store path's hash part (what a `HASH.narinfo` request names). */
  byHash: Map<string, ValidPathInfo>;
  /** By NAR hash, nix32 (what a `nar/NARHASH.nar` request names). */
  byNarHash: Map<string, ValidPathInfo>;
}

const STORE_PATH = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[^/]+$/;

export function createRecordedPaths(deps: { dataDir: string; nix: Nix }, opts: { ttlMs?: number } = {}) {
  const ttl = opts.ttlMs ?? 5000;
  // A manifest's derivation closure is the same as long as the manifest is: asked once per file.
  const outputsOf = new Map<string, { mtimeMs: number; paths: string[] }>();
  let cached: { at: number; value: Promise<RecordedPaths> } | undefined;

  async function manifestPaths(file: string): Promise<string[]> {
    const st = await stat(file);
    const memo = outputsOf.get(file);
    if (memo && memo.mtimeMs === st.mtimeMs) return memo.paths;
    const parsed = manifestSchema.safeParse(JSON.parse(await readFile(file, "utf8")));
    if (!parsed.success) return [];
    const m = parsed.data;
    const paths = [dirname(m.slug.path), m.stack.path, m.seed.path, m.tools.path];
    const drvs = await deps.nix.showDerivation(m.derivation, { recursive: true }).catch(() => ({}));
    for (const d of Object.values(drvs))
      for (const o of Object.values(d.outputs)) if (o.path) paths.push(o.path);
    const kept = paths.filter((p) => STORE_PATH.test(p));
    outputsOf.set(file, { mtimeMs: st.mtimeMs, paths: kept });
    return kept;
  }

  async function compute(): Promise<RecordedPaths> {
    const roots: string[] = [];
    const buildsDir = join(deps.dataDir, "builds");
    const apps = await readdir(buildsDir).catch(() => [] as string[]);
    for (const app of apps) {
      const files = await readdir(join(buildsDir, app)).catch(() => [] as string[]);
      for (const f of files.filter((n) => /^[0-9a-f]{64}\.json$/.test(n)))
        roots.push(...(await manifestPaths(join(buildsDir, app, f)).catch(() => [])));
    }
    for (const r of await deps.nix.listRoots())
      if (!r.name.startsWith("source-") && STORE_PATH.test(r.target)) roots.push(r.target);
    const unique = [...new Set(roots)];
    // Outputs never built here (a derivation's other outputs) are not valid: path-info of the
    // closure of each valid one, asked one by one would be slow; ask which are valid first.
    const valid = await deps.nix.pathInfo(unique);
    const closure = valid.length
      ? await deps.nix.pathInfo(
          valid.map((v) => v.path),
          { recursive: true },
        )
      : [];
    const byHash = new Map<string, ValidPathInfo>();
    const byNarHash = new Map<string, ValidPathInfo>();
    for (const info of closure) {
      byHash.set(hashPart(info.path), info);
      byNarHash.set(narHashNix32(info.narHash).slice("sha256:".length), info);
    }
    return { byHash, byNarHash };
  }

  return {
    get(): Promise<RecordedPaths> {
      if (!cached || Date.now() - cached.at > ttl) {
        const value = compute();
        cached = { at: Date.now(), value };
        value.catch(() => {
          cached = undefined;
        });
      }
      return cached.value;
    },
  };
}
