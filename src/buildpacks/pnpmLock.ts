/**
 * pnpm-lock.yaml (lockfileVersion 5.4 from pnpm 7, 6.0 from pnpm 8, 9.0 from pnpm 9 and 10): the
 * registry tarballs it pins (`resolution.integrity`, fetched from the registry's conventional
 * path, as pnpm itself does), and its importers (the app's own workspace folders). pnpm installs
 * from a loopback registry that serves only these; an entry with its own `resolution.tarball` (a
 * URL dependency, or a registry other than the default) is fetched by pnpm from that URL, so the
 * lock is handed over with those URLs pointed at the loopback registry (its integrity unchanged).
 */
import YAML from "yaml";
import { KilnError } from "../errors.js";
import {
  finishPins,
  loopbackTarballUrl,
  onLinuxX64,
  pinContext,
  pinEntry,
  type Tarball,
  tarballStoreName,
} from "./pin.js";

interface PnpmPackage {
  name?: string;
  version?: string;
  resolution?: { integrity?: string; tarball?: string; type?: string; directory?: string; repo?: string };
  os?: string[];
  cpu?: string[];
  libc?: string[];
}

export interface PnpmLock {
  /** The text it was read from (the offline copy is this with tarball URLs rewritten). */
  text: string;
  lockfileVersion: string;
  importers: string[];
  packages: Record<string, PnpmPackage>;
}

export function parsePnpmLock(text: string): PnpmLock {
  let doc: unknown;
  try {
    doc = YAML.parse(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new KilnError({
      code: "invalid_app",
      message: `pnpm-lock.yaml is not valid YAML: ${(err as Error).message.split("\n")[0]}`,
      hint: "regenerate it with pnpm install --lockfile-only and commit it",
    });
  }
  const d = (doc ?? {}) as Record<string, unknown>;
  const version = String(d.lockfileVersion ?? "");
  const major = Number.parseFloat(version);
  if (!(major >= 5.3 && major < 10)) {
    throw new KilnError({
      code: "lockfile_unsupported",
      message: `pnpm-lock.yaml has lockfileVersion ${version || "(none)"}; kiln reads 5.4 (pnpm 7), 6.0 (pnpm 8) and 9.0 (pnpm 9, 10)`,
      hint: "regenerate it with pnpm 7 or later: pnpm install --lockfile-only",
    });
  }
  const importers = d.importers && typeof d.importers === "object" ? Object.keys(d.importers) : ["."];
  return {
    text,
    lockfileVersion: version,
    importers: importers.sort(),
    packages: (d.packages && typeof d.packages === "object" ? d.packages : {}) as Record<string, PnpmPackage>,
  };
}

/** A packages key → name and version: `/a/1.0.0_peer` (5.x), `/a@1.0.0(peer)` (6), `a@1.0.0` (9). */
export function pnpmKeyNameVersion(key: string, v5: boolean): { name: string; version: string } {
  let k = key.startsWith("/") ? key.slice(1) : key;
  k = k.replace(/\(.*$/, "");
  if (v5) {
    const slash = k.lastIndexOf("/");
    return { name: k.slice(0, slash), version: k.slice(slash + 1).split("_")[0] ?? "" };
  }
  // The first `@` after a scope's: a URL dependency's key is `name@https://host/…` (which may hold `@`s).
  const at = k.indexOf("@", 1);
  return at <= 0 ? { name: k, version: "" } : { name: k.slice(0, at), version: k.slice(at + 1) };
}

export function planPnpmLock(
  lock: PnpmLock,
  opts: { registry: string; allow?: readonly string[] },
): { tarballs: Tarball[]; offlineLock: string } {
  const ctx = pinContext(opts.registry, opts.allow ?? []);
  const v5 = Number.parseFloat(lock.lockfileVersion) < 6;
  // packages key → the store name its own tarball URL is served under on the loopback.
  const ownUrl = new Map<string, string>();
  for (const [key, p] of Object.entries(lock.packages)) {
    if (!onLinuxX64(p)) continue; // pnpm does not install these here either
    const r = p.resolution ?? {};
    const fromKey = pnpmKeyNameVersion(key, v5);
    const name = p.name ?? fromKey.name;
    const version = p.version ?? fromKey.version;
    if (r.type === "git" || r.repo || r.type === "directory" || r.directory) {
      ctx.problems.push(
        `${key}: a ${r.type ?? (r.repo ? "git" : "directory")} dependency has no pinned tarball; publish the package or vendor it`,
      );
      continue;
    }
    if (r.tarball?.startsWith("file:")) {
      ctx.problems.push(
        `${key}: ${r.tarball} — file dependencies have no pinned tarball; publish the package or vendor it`,
      );
      continue;
    }
    if (r.tarball !== undefined && !r.integrity) {
      // pnpm 7–9 record no integrity for a URL dependency, pnpm 10 only when it downloads the
      // tarball (not when its store has it): nothing to pin it by.
      ctx.problems.push(
        `${key}: a tarball dependency (${r.tarball}) with no integrity in the lock, so it cannot be pinned`,
      );
      ctx.hints.add(
        'pnpm 10 records a tarball dependency\'s integrity when it downloads it (pnpm 7-9 never do, pnpm 10 not when its store already has the tarball): regenerate the lock with pnpm 10 and an empty store (pnpm install --lockfile-only --store-dir "$(mktemp -d)"), or depend on the package from the registry',
      );
      continue;
    }
    const before = ctx.problems.length;
    pinEntry(ctx, { where: key, name, version, resolved: r.tarball, integrity: r.integrity });
    if (r.tarball !== undefined && ctx.problems.length === before)
      ownUrl.set(key, tarballStoreName(name, version));
  }
  const tarballs = finishPins(ctx, "pnpm-lock.yaml");
  return { tarballs, offlineLock: ownUrl.size === 0 ? lock.text : offlineText(lock.text, ownUrl) };
}

/** The lock with each own-URL entry's `resolution.tarball` on the loopback registry, the rest as written. */
function offlineText(text: string, ownUrl: Map<string, string>): string {
  const doc = YAML.parseDocument(text);
  for (const [key, storeName] of ownUrl) {
    const path = ["packages", key, "resolution", "tarball"];
    // Found through aliases or non-string keys by the parse, not here: pnpm writes neither.
    if (typeof doc.getIn(path) !== "string")
      throw new KilnError({
        code: "invalid_app",
        message: `pnpm-lock.yaml: the entry ${JSON.stringify(key.slice(0, 200))} is not written as pnpm writes it (its resolution.tarball is not a plain string)`,
        hint: "regenerate the lock with pnpm install --lockfile-only and commit it",
      });
    doc.setIn(path, loopbackTarballUrl(storeName));
  }
  return doc.toString({ lineWidth: 0 });
}
