/**
 * kiln's "tools": the part of kiln that runs inside the build sandbox (src/builder, compiled, plus
 * the few pure-JS packages it imports). They go into the store content-addressed, so a change to
 * them is a change to every slug derivation, and nothing else about kiln is.
 */
import { cp, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { KilnError } from "../errors.js";
import type { Nix } from "../nix/driver.js";
import { exists } from "../util/fs.js";

/** Compiled directories the builder needs (it imports ../archive). */
const TOOL_DIRS = ["builder", "archive"];
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

export async function storeTools(
  nix: Nix,
  projectDir: string,
  work: string,
): Promise<{ path: string; narHash: string }> {
  const out = join(work, "kiln-tools");
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
  for (const name of await packageClosure(join(projectDir, "node_modules"), TOOL_PACKAGES)) {
    await cp(join(projectDir, "node_modules", name), join(out, "node_modules", name), {
      recursive: true,
      verbatimSymlinks: true,
    });
  }
  await writeFile(
    join(out, "package.json"),
    `${JSON.stringify({ name: "kiln-tools", private: true, type: "module" }, null, 2)}\n`,
  );
  return nix.addPath(out);
}
