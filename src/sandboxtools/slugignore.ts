/** `.slugignore`: paths removed from the app before the buildpacks run (as on Heroku). */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import picomatch from "picomatch";
import { listTree } from "../archive/tar.js";

/**
 * Heroku's rules: one pattern per line, `#` comments; a pattern with a slash is matched from the
 * app root, one without matches a name at any depth; a matching directory goes with its contents.
 */
export function slugignoreMatcher(text: string): (path: string) => boolean {
  const patterns = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((p) => p.replace(/^\/+/, "").replace(/\/+$/, ""));
  const matchers = patterns.map((p) =>
    p.includes("/") ? picomatch(p, { dot: true }) : picomatch(p, { dot: true, basename: true }),
  );
  return (path) => matchers.some((m) => m(path));
}

/** Removes what `.slugignore` names; returns the removed paths (top-most only), sorted. */
export async function applySlugignore(appDir: string, text: string): Promise<string[]> {
  const matches = slugignoreMatcher(text);
  const removed: string[] = [];
  for (const p of await listTree(appDir)) {
    if (removed.some((r) => p.startsWith(`${r}/`))) continue;
    if (matches(p)) removed.push(p);
  }
  for (const p of removed) await rm(join(appDir, p), { recursive: true, force: true });
  return removed;
}
