/**
 * yarn berry's yarn.lock (yarn 2–4: `__metadata`, `resolution: "name@npm:1.2.3"`). Berry's
 * `checksum` is the hash of the zip it makes in its own cache, not of the registry's tarball, so it
 * cannot pin a fixed-output fetch. kiln pins each `npm:` entry by the registry's own integrity for
 * that name and version, looked up when the build is planned (registryIntegrity.ts; immutable on
 * the registry, cached on disk); in the sandbox berry then converts the tarballs and checks every
 * zip against the lock's checksum (immutable install), so a tarball that is not the one the lock
 * was made from still fails the build. Zero-installs (`.yarn/cache` committed) need no tarballs.
 */
import YAML from "yaml";
import { KilnError } from "../errors.js";
import { onLinuxX64 } from "./pin.js";

export interface BerryEntry {
  key: string;
  name: string;
  /** The `npm:` version, when the entry is a registry package. */
  version?: string;
  protocol: string;
  archiveUrl?: string;
  conditions?: string;
}

export interface BerryLock {
  version: number;
  cacheKey: string;
  entries: BerryEntry[];
}

export function isBerryLock(text: string): boolean {
  return /^__metadata:/m.test(text.slice(0, 4096));
}

export function parseBerryLock(text: string): BerryLock {
  let doc: Record<string, unknown>;
  try {
    doc = (YAML.parse(text, { maxAliasCount: 100 }) ?? {}) as Record<string, unknown>;
  } catch (err) {
    throw new KilnError({
      code: "invalid_app",
      message: `yarn.lock (yarn berry) is not valid YAML: ${(err as Error).message.split("\n")[0]}`,
      hint: "regenerate it with yarn install and commit it",
    });
  }
  const meta = (doc.__metadata ?? {}) as { version?: unknown; cacheKey?: unknown };
  const entries: BerryEntry[] = [];
  for (const [key, raw] of Object.entries(doc)) {
    if (key === "__metadata" || !raw || typeof raw !== "object") continue;
    const e = raw as { resolution?: unknown; conditions?: unknown };
    const resolution = typeof e.resolution === "string" ? e.resolution : "";
    // `name@protocol:reference`; a scoped name's own @ is not the separator.
    const at = resolution.indexOf("@", 1);
    const name = resolution.slice(0, at);
    const ref = resolution.slice(at + 1);
    const colon = ref.indexOf(":");
    const protocol = colon === -1 ? "" : ref.slice(0, colon + 1);
    const entry: BerryEntry = { key, name, protocol };
    if (typeof e.conditions === "string") entry.conditions = e.conditions;
    if (protocol === "npm:") {
      const [version, params = ""] = ref.slice(4).split("::");
      entry.version = version ?? "";
      const archive = new URLSearchParams(params).get("__archiveUrl");
      if (archive) entry.archiveUrl = archive;
    }
    entries.push(entry);
  }
  return { version: Number(meta.version ?? 0), cacheKey: String(meta.cacheKey ?? ""), entries };
}

/** Berry's `conditions: os=darwin & cpu=arm64` against linux/x64/glibc. */
function conditionsMatch(conditions: string | undefined): boolean {
  if (!conditions) return true;
  const want: Record<string, string[]> = {};
  for (const part of conditions.split("&")) {
    const [k, v] = part.trim().split("=");
    if (k && v) want[k] = [...(want[k] ?? []), v];
  }
  return onLinuxX64({ os: want.os, cpu: want.cpu, libc: want.libc });
}

/** The entries berry fetches from the registry here, and those kiln refuses (by key). */
export function berryRegistryEntries(lock: BerryLock): { fetch: BerryEntry[]; problems: string[] } {
  const fetch: BerryEntry[] = [];
  const problems: string[] = [];
  for (const e of lock.entries) {
    // The app's own workspaces; builtin or in-tree patches applied by berry to an npm entry that
    // is itself in the lock.
    if (e.protocol === "workspace:" || e.protocol === "patch:") continue;
    if (e.protocol === "npm:") {
      if (conditionsMatch(e.conditions)) fetch.push(e);
      continue;
    }
    problems.push(
      `${e.key}: a ${e.protocol || "non-registry"} dependency has no pinned tarball; publish the package or vendor it`,
    );
  }
  return { fetch, problems };
}
