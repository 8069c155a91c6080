/**
 * kiln's "tools": the part of kiln that runs inside the build sandbox (src/sandboxtools, compiled, plus
 * the few pure-JS packages it imports). They go into the store content-addressed, so a change to
 * them is a change to every slug derivation, and nothing else about kiln is.
 */
import { createHash } from "node:crypto";
import { cp, lstat, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { KilnError } from "../errors.js";
import type { Nix } from "../nix/driver.js";
import { absent, exists, writeFileAtomic } from "../util/fs.js";

/** Compiled directories the builder needs (it imports ../archive). */
const TOOL_DIRS = ["sandboxtools", "archive"];
/** npm packages the builder imports. */
const TOOL_PACKAGES = ["tar", "yaml", "picomatch"];

const pkgDeps = z.looseObject({ dependencies: z.record(z.string(), z.string()).optional() });

async function packageClosure(nodeModules: string, roots: string[]): Promise<string[]> {
  const seen = new Set<string>();
  const queue = [...roots];
  while (queue.length > 0) {
    const name = queue.shift() as string;
    if (seen.has(name)) continue;
    const dir = join(nodeModules, name);
    if (!(await exists(join(dir, "package.json")))) {
      throw new KilnError({
        code: "tools_incomplete",
        message: `kiln's tools need ${name}, which is not in ${nodeModules}`,
        hint: "run npm ci in the kiln checkout",
      });
    }
    seen.add(name);
    const pj = pkgDeps.parse(JSON.parse(await readFile(join(dir, "package.json"), "utf8")));
    for (const dep of Object.keys(pj.dependencies ?? {})) queue.push(dep);
  }
  return [...seen].sort();
}

/** Every input file of the tools with its size and mtime: if none changed, the store path did not. */
async function fingerprint(projectDir: string, packages: string[]): Promise<string> {
  const h = createHash("sha256");
  const walk = async (dir: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const st = await lstat(p);
      if (st.isDirectory()) await walk(p);
      else h.update(`${p}\0${st.size}\0${st.mtimeMs}\n`);
    }
  };
  for (const d of TOOL_DIRS) await walk(join(projectDir, "dist", d));
  for (const name of packages) await walk(join(projectDir, "node_modules", name));
  return h.digest("hex");
}

const cacheSchema = z.object({ fingerprint: z.string(), path: z.string(), narHash: z.string() });

/**
 * The tools' store path. Assembling and hashing them takes most of a second, so the result is
 * remembered in `cacheFile` under a fingerprint of their files (paths, sizes, mtimes).
 */
export async function storeTools(
  nix: Nix,
  projectDir: string,
  work: string,
  opts: { name?: string; cacheFile?: string } = {},
): Promise<{ path: string; narHash: string }> {
  const { cacheFile, name = "kiln-tools" } = opts;
  const packages = await packageClosure(join(projectDir, "node_modules"), TOOL_PACKAGES);
  let fp: string | undefined;
  if (cacheFile) {
    fp = await fingerprint(projectDir, packages)
      .then((f) => `${name}:${f}`)
      .catch(() => undefined);
    const cached = await readFile(cacheFile, "utf8").then(
      (t) => cacheSchema.safeParse(JSON.parse(t)).data,
      absent(undefined),
    );
    if (fp && cached?.fingerprint === fp && (await nix.isValid(cached.path))) {
      return { path: cached.path, narHash: cached.narHash };
    }
  }
  const stored = await assembleTools(nix, projectDir, join(work, name), packages);
  if (cacheFile && fp) await writeFileAtomic(cacheFile, JSON.stringify({ fingerprint: fp, ...stored }));
  return stored;
}

async function assembleTools(
  nix: Nix,
  projectDir: string,
  out: string,
  packages: string[],
): Promise<{ path: string; narHash: string }> {
  await assembleToolsDir(projectDir, out, packages);
  return nix.addPath(out);
}

/**
 * Lays out a kiln tree's tools in `out`: its compiled builder (and what that imports) and the npm
 * packages they need. Also run inside the sandbox by nix/bootstrap, by the tree whose tools they are.
 */
export async function assembleToolsDir(projectDir: string, out: string, packages?: string[]): Promise<void> {
  const pkgs = packages ?? (await packageClosure(join(projectDir, "node_modules"), TOOL_PACKAGES));
  const dist = join(projectDir, "dist");
  for (const d of TOOL_DIRS) {
    if (!(await exists(join(dist, d)))) {
      throw new KilnError({
        code: "tools_incomplete",
        message: `${join(dist, d)} is missing`,
        hint: "compile kiln first: npm run build",
      });
    }
    await mkdir(join(out, d), { recursive: true });
    for (const f of (await readdir(join(dist, d))).sort()) {
      if (f.endsWith(".js")) await cp(join(dist, d, f), join(out, d, f));
    }
  }
  for (const name of pkgs) {
    await cp(join(projectDir, "node_modules", name), join(out, "node_modules", name), {
      recursive: true,
      verbatimSymlinks: true,
    });
  }
  await writeFile(
    join(out, "package.json"),
    `${JSON.stringify({ name: "kiln-tools", private: true, type: "module" }, null, 2)}\n`,
  );
}
