/**
 * The order a package manager's install runs workspace packages' own lifecycle scripts in: a
 * workspace after the workspaces it depends on (its `postinstall` may use their build output), ties
 * and cycles broken by directory name so the order is the same on every build.
 */
const DEP_FIELDS = ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies"] as const;

export interface WorkspaceManifest {
  dir: string;
  /** The workspace's package.json, parsed (anything: it is tenant input). */
  pkg: unknown;
}

function field(pkg: unknown, key: string): unknown {
  return pkg && typeof pkg === "object" && !Array.isArray(pkg)
    ? (pkg as Record<string, unknown>)[key]
    : undefined;
}

export function workspaceOrder(workspaces: readonly WorkspaceManifest[]): string[] {
  const byName = new Map<string, string>();
  for (const w of [...workspaces].sort((a, b) => (a.dir < b.dir ? -1 : 1))) {
    const name = field(w.pkg, "name");
    if (typeof name === "string" && !byName.has(name)) byName.set(name, w.dir);
  }
  const deps = new Map<string, string[]>();
  for (const w of workspaces) {
    const on = new Set<string>();
    for (const f of DEP_FIELDS) {
      const d = field(w.pkg, f);
      if (!d || typeof d !== "object") continue;
      for (const n of Object.keys(d)) {
        const dir = byName.get(n);
        if (dir !== undefined && dir !== w.dir) on.add(dir);
      }
    }
    deps.set(w.dir, [...on].sort());
  }
  const out: string[] = [];
  const seen = new Set<string>();
  // Iterative depth-first: a tenant's thousands of workspaces must not overflow the stack.
  for (const start of [...deps.keys()].sort()) {
    if (seen.has(start)) continue;
    const stack: { dir: string; next: number }[] = [{ dir: start, next: 0 }];
    seen.add(start);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (!top) break;
      const on = deps.get(top.dir) ?? [];
      const child = on[top.next++];
      if (child === undefined) {
        out.push(top.dir);
        stack.pop();
      } else if (!seen.has(child)) {
        seen.add(child);
        stack.push({ dir: child, next: 0 });
      }
    }
  }
  return out;
}
