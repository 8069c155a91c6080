/**
 * Arrows between src/ folders point one way (cli/api → builds → {nix, slug, buildpacks, dyno} →
 * process): this fails listing every group of folders that import each other round in a circle,
 * read from the `import … from "…"` / `import("…")` specifiers of every src/**\/*.ts.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { projectDir } from "../helpers.js";

const src = join(projectDir, "src");

/**
 * Cycles once known and broken (keep this empty): source/beneath.ts moved to util/, build records
 * to slug/records.ts, dyno sizes to config/dynoSizes.ts, and the control plane (API + dashboard) to
 * serve/, so api/ never imports a domain that imports it.
 */
const KNOWN: string[][] = [];

function folderGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  const files = readdirSync(src, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
  for (const f of files) {
    const from = f.split("/")[0] as string;
    if (!f.includes("/")) continue; // src/main.ts, the composition root, may import anything
    const text = readFileSync(join(src, f), "utf8");
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)["'](\.[^"']+)["']/g)) {
      const target = relative(src, resolve(dirname(join(src, f)), m[1] as string));
      const to = target.split("/")[0] as string;
      if (target.startsWith("..") || !target.includes("/") || to === from) continue;
      if (!graph.has(from)) graph.set(from, new Set());
      graph.get(from)?.add(to);
    }
  }
  return graph;
}

/** Tarjan's strongly connected components with more than one folder: the cycles. */
function cycles(graph: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v) as number, idx.get(w) as number));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out.sort();
}

describe("src/ folders", () => {
  it("import each other without cycles", () => {
    const graph = folderGraph();
    expect(graph.size).toBeGreaterThan(5);
    expect(cycles(graph)).toEqual(KNOWN);
  });
});
