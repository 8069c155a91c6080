/**
 * yarn classic's yarn.lock (the "yarn lockfile v1" text format): the tarballs it pins and the lock
 * as the dependency phase sees it. Each entry's URL is its `resolved` (on an allowed origin) or,
 * where a lock carries none, the registry's conventional path from name and version; the hash is
 * its `integrity` (or the sha1 after `#` of an older lock's `resolved`). The rewritten lock points
 * every entry at `https://kiln.invalid/kiln/-/STORE_NAME`, whose base name is the file yarn looks
 * for in its offline mirror, so `yarn install --offline --frozen-lockfile` needs no network.
 */
import { KilnError } from "../errors.js";
import { finishPins, pinContext, pinEntry, sha1HexToSri, type Tarball, tarballStoreName } from "./pin.js";

export interface YarnEntry {
  /** The key line's specs: `name@range`. */
  specs: string[];
  /** The package's real name (an `npm:` alias resolved) and the fields kiln reads. */
  name: string;
  range: string;
  version?: string;
  resolved?: string;
  integrity?: string;
  /** Line indexes of the key and of the `resolved` line, for the rewrite. */
  keyLine: number;
  resolvedLine?: number;
  versionLine?: number;
}

function unquote(s: string): string {
  const t = s.trim();
  return t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
}

/** `name@range` → [name, range] (a scoped name's own @ is not the separator). */
function splitSpec(spec: string): [string, string] {
  const at = spec.indexOf("@", 1);
  return at === -1 ? [spec, ""] : [spec.slice(0, at), spec.slice(at + 1)];
}

export function parseYarnLock(text: string): { entries: YarnEntry[]; lines: string[] } {
  const lines = text.split(/\r?\n/);
  if (!/^# yarn lockfile v1\s*$/m.test(text.split("\n").slice(0, 5).join("\n"))) {
    throw new KilnError({
      code: "invalid_app",
      message:
        "yarn.lock is neither a yarn classic lock (# yarn lockfile v1) nor a yarn berry lock (__metadata)",
      hint: "regenerate it with yarn install and commit it",
    });
  }
  const entries: YarnEntry[] = [];
  let cur: YarnEntry | undefined;
  lines.forEach((line, i) => {
    if (line.startsWith("#") || line.trim() === "") return;
    if (!line.startsWith(" ")) {
      if (!line.endsWith(":")) {
        throw new KilnError({
          code: "invalid_app",
          message: `yarn.lock line ${i + 1} is not an entry's key`,
          hint: "regenerate it with yarn install and commit it",
        });
      }
      const specs = line.slice(0, -1).split(/,\s*/).map(unquote);
      const [first = ""] = specs;
      let [name, range] = splitSpec(first);
      if (range.startsWith("npm:")) [name, range] = splitSpec(range.slice(4));
      cur = { specs, name, range, keyLine: i };
      entries.push(cur);
      return;
    }
    const m = /^ {2}(version|resolved|integrity) (.*)$/.exec(line);
    if (!m || !cur) return;
    const value = unquote(m[2] ?? "");
    if (m[1] === "version") {
      cur.version = value;
      cur.versionLine = i;
    } else if (m[1] === "resolved") {
      cur.resolved = value;
      cur.resolvedLine = i;
    } else cur.integrity = value;
  });
  return { entries, lines };
}

const NOT_REGISTRY = /^(file:|link:|portal:|git\+|git:|github:|gitlab:|bitbucket:|https?:|[^@/:]+\/[^@/:]+$)/;

export function offlineYarnUrl(storeName: string): string {
  return `https://kiln.invalid/kiln/-/${storeName}`;
}

/** The tarballs a yarn classic lock pins on linux-x64, and the lock rewritten for an offline mirror. */
export function planYarnLock(
  text: string,
  opts: { registry: string; allow?: readonly string[] },
): { tarballs: Tarball[]; offlineLock: string } {
  const { entries, lines } = parseYarnLock(text);
  const ctx = pinContext(opts.registry, opts.allow ?? []);
  const out = [...lines];
  const inserts = new Map<number, string>();
  for (const e of entries) {
    const where = e.specs.join(", ");
    if (NOT_REGISTRY.test(e.range) && !(e.resolved && e.integrity)) {
      ctx.problems.push(
        `${where}: ${e.range.split("#")[0]} — git, file and URL dependencies have no pinned tarball; publish the package or vendor it`,
      );
      continue;
    }
    const [url, fragment] = (e.resolved ?? "").split("#");
    const integrity = e.integrity ?? (fragment ? sha1HexToSri(fragment) : undefined);
    pinEntry(ctx, { where, name: e.name, version: e.version, resolved: url || undefined, integrity });
    if (!e.version) continue;
    const line = `  resolved "${offlineYarnUrl(tarballStoreName(e.name, e.version))}${fragment ? `#${fragment}` : ""}"`;
    if (e.resolvedLine !== undefined) out[e.resolvedLine] = line;
    else inserts.set(e.versionLine ?? e.keyLine, line);
  }
  const tarballs = finishPins(ctx, "yarn.lock");
  const offlineLock = out.flatMap((l, i) => (inserts.has(i) ? [l, inserts.get(i) ?? ""] : [l])).join("\n");
  return { tarballs, offlineLock };
}
