/**
 * What kiln checks and prepares for the `nodejs` buildpack before a build starts: the lock file
 * (zod-validated, in sync with package.json, every package pinned by integrity), the tarballs to
 * fetch as fixed-output derivations and the dependency phase's inputs (`engines.node` is src/runtime's).
 */
import { z } from "zod";
import { KilnError } from "../errors.js";
import { allowedOrigins, originOf } from "../source/origins.js";
import { parseJsonWith } from "../util/json.js";

const depMap = z.record(z.string(), z.string());

export const lockPackageSchema = z.looseObject({
  name: z.string().optional(),
  version: z.string().optional(),
  resolved: z.string().optional(),
  integrity: z.string().optional(),
  link: z.boolean().optional(),
  dev: z.boolean().optional(),
  optional: z.boolean().optional(),
  inBundle: z.boolean().optional(),
  os: z.array(z.string()).optional(),
  cpu: z.array(z.string()).optional(),
  libc: z.array(z.string()).optional(),
  dependencies: depMap.optional(),
  devDependencies: depMap.optional(),
  optionalDependencies: depMap.optional(),
  peerDependencies: depMap.optional(),
});

export const packageLockSchema = z.looseObject({
  name: z.string().optional(),
  lockfileVersion: z.number().int(),
  packages: z.record(z.string(), lockPackageSchema),
});
export type PackageLock = z.infer<typeof packageLockSchema>;

export const packageJsonSchema = z.looseObject({
  name: z.string().optional(),
  version: z.string().optional(),
  scripts: z.record(z.string(), z.string()).optional(),
  engines: z.looseObject({ node: z.string().optional() }).optional(),
  dependencies: depMap.optional(),
  devDependencies: depMap.optional(),
  optionalDependencies: depMap.optional(),
  peerDependencies: depMap.optional(),
});
export type PackageJson = z.infer<typeof packageJsonSchema>;

export interface Tarball {
  /** The store name, also the file name the tools see: `scope-name-1.2.3.tgz`. */
  name: string;
  url: string;
  integrity: string;
}

function parseJson<T>(text: string, file: string, schema: z.ZodType<T>, hint: string): T {
  return parseJsonWith(text, schema, {
    file,
    code: "invalid_app",
    invalid: "is not what npm writes",
    jsonHint: hint,
    schemaHint: hint,
  });
}

export function parsePackageJson(text: string): PackageJson {
  return parseJson(text, "package.json", packageJsonSchema, "fix package.json (npm pkg fix can help)");
}

export function parsePackageLock(text: string): PackageLock {
  return parseJson(
    text,
    "package-lock.json",
    packageLockSchema,
    "regenerate it with: npm install --package-lock-only",
  );
}

const DEP_FIELDS = ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies"] as const;

/** Differences between package.json and the lock's root entry (what `npm ci` refuses). */
export function lockDrift(pkg: PackageJson, lock: PackageLock): string[] {
  const root = lock.packages[""] ?? {};
  const out: string[] = [];
  for (const field of DEP_FIELDS) {
    const want = pkg[field] ?? {};
    const have = (root[field] as Record<string, string> | undefined) ?? {};
    for (const [name, range] of Object.entries(want)) {
      if (!(name in have)) out.push(`${field}.${name}: in package.json (${range}) but not in the lock`);
      else if (have[name] !== range)
        out.push(`${field}.${name}: package.json says ${range}, the lock ${have[name]}`);
    }
    for (const name of Object.keys(have))
      if (!(name in want)) out.push(`${field}.${name}: in the lock but not in package.json`);
  }
  return out;
}

/** Package name from a lock key: `node_modules/a/node_modules/@s/b` → `@s/b`. */
export function packageNameFromKey(key: string, entry: { name?: string | undefined }): string {
  if (entry.name) return entry.name;
  const i = key.lastIndexOf("node_modules/");
  return key.slice(i + "node_modules/".length);
}

function platformMatches(values: string[] | undefined, current: string): boolean {
  if (!values || values.length === 0) return true;
  const allowed = values.filter((v) => !v.startsWith("!"));
  if (values.includes(`!${current}`)) return false;
  return allowed.length === 0 || allowed.includes(current);
}

export function tarballStoreName(name: string, version: string): string {
  return `${name.replace(/^@/, "").replace("/", "-")}-${version}.tgz`.replace(/[^A-Za-z0-9+\-._?=]/g, "_");
}

/**
 * Every tarball the lock needs on linux-x64, with its URL (the lock's `resolved`, or the registry's
 * conventional tarball path); refuses what cannot be pinned. nix/build/node-deps.nix makes the same
 * plan for the build (and the lock's offline copy, whose `resolved` point at kiln.invalid).
 */
export function planDependencies(
  lock: PackageLock,
  registry: string,
  opts: { allow?: readonly string[] } = {},
): { tarballs: Tarball[] } {
  const problems: string[] = [];
  // Tarballs come from the registry (and the operator's allow-list) alone: a lock's `resolved`
  // elsewhere (host loopback, a private address, another port) would be fetched by Nix on the
  // host's network.
  const origins = allowedOrigins(registry, opts.allow ?? []);
  const byName = new Map<string, Tarball>();
  const reg = registry.endsWith("/") ? registry : `${registry}/`;
  for (const [key, entry] of Object.entries(lock.packages)) {
    if (key === "") continue;
    const name = packageNameFromKey(key, entry);
    if (entry.link) {
      problems.push(`${key}: a linked package (workspace or file: link); kiln builds only registry packages`);
      continue;
    }
    if (entry.inBundle) continue;
    if (
      entry.optional &&
      (!platformMatches(entry.os, "linux") ||
        !platformMatches(entry.cpu, "x64") ||
        !platformMatches(entry.libc, "glibc"))
    ) {
      continue; // npm skips these on this platform too.
    }
    const resolved = entry.resolved;
    if (resolved && /^(git\+|git:|github:|file:|link:)/.test(resolved)) {
      problems.push(
        `${key}: ${resolved.split("#")[0]} — git and file dependencies have no pinned tarball; publish the package or vendor it`,
      );
      continue;
    }
    if (resolved?.startsWith("http:") && !entry.integrity) {
      problems.push(`${key}: ${resolved} is plain http without an integrity hash`);
      continue;
    }
    const fromLock = resolved !== undefined && /^https?:\/\//.test(resolved);
    if (fromLock && !origins.includes(originOf(resolved) ?? "")) {
      problems.push(
        `${key}: its resolved URL is not on the registry's origin (${origins.join(", ")}); kiln fetches dependencies from the registry and KILN_FETCH_ALLOW only`,
      );
      continue;
    }
    if (!entry.integrity || !entry.version) {
      problems.push(
        `${key}: no ${entry.integrity ? "version" : "integrity"} in the lock, so it cannot be pinned`,
      );
      continue;
    }
    const integrity =
      entry.integrity.split(/\s+/).find((h) => h.startsWith("sha512-")) ??
      entry.integrity.split(/\s+/)[0] ??
      "";
    if (!/^sha(512|1)-[A-Za-z0-9+/]+=*$/.test(integrity)) {
      problems.push(`${key}: unsupported integrity ${integrity}`);
      continue;
    }
    const basename = name.slice(name.lastIndexOf("/") + 1);
    const url = fromLock ? resolved : `${reg}${name}/-/${basename}-${entry.version}.tgz`;
    const storeName = tarballStoreName(name, entry.version);
    const t: Tarball = { name: storeName, url, integrity };
    const prior = byName.get(storeName);
    if (prior && prior.integrity !== integrity)
      problems.push(`${key}: ${name}@${entry.version} appears with two different integrity hashes`);
    byName.set(storeName, t);
  }
  if (problems.length > 0) {
    throw new KilnError({
      code: "unsupported_dependencies",
      message: `package-lock.json has dependencies kiln cannot fetch reproducibly:\n${problems.map((p) => `  ${p}`).join("\n")}`,
      hint: "every dependency must be a registry tarball pinned by integrity (npm install writes those)",
    });
  }
  const tarballs = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  return { tarballs };
}
