/**
 * The rules every lock file's entries are pinned by, whichever package manager wrote it: a
 * registry tarball (the lock's URL on an allowed origin, or the registry's conventional path from
 * name and version) with an integrity hash; git, file and unpinned entries are refused by name.
 */
import { KilnError } from "../errors.js";
import { allowedOrigins, originOf } from "../source/origins.js";

export interface Tarball {
  /** The store name, also the file name the tools see: `scope-name-1.2.3.tgz`. */
  name: string;
  url: string;
  integrity: string;
  /** The package's name and version: where a loopback registry serves it (non-npm managers). */
  package?: string;
  version?: string;
}

export function tarballStoreName(name: string, version: string): string {
  return `${name.replace(/^@/, "").replace("/", "-")}-${version}.tgz`.replace(/[^A-Za-z0-9+\-._?=]/g, "_");
}

/** The registry's conventional tarball URL: `REG/@s/n/-/n-1.2.3.tgz`. */
export function conventionalUrl(registry: string, name: string, version: string): string {
  const reg = registry.endsWith("/") ? registry : `${registry}/`;
  return `${reg}${name}/-/${name.slice(name.lastIndexOf("/") + 1)}-${version}.tgz`;
}

/** The strongest hash of an SRI list (npm may write several), or undefined if none is usable. */
export function pickIntegrity(integrity: string): string | undefined {
  const hs = integrity.split(/\s+/).filter(Boolean);
  const h = hs.find((x) => x.startsWith("sha512-")) ?? hs[0] ?? "";
  return /^sha(512|256|1)-[A-Za-z0-9+/]+=*$/.test(h) ? h : undefined;
}

/** A hex sha1 (yarn classic's `#hash` on a resolved URL) as an SRI hash. */
export function sha1HexToSri(hex: string): string | undefined {
  if (!/^[0-9a-f]{40}$/i.test(hex)) return undefined;
  return `sha1-${Buffer.from(hex, "hex").toString("base64")}`;
}

/**
 * The registry the dependencies phase runs on the sandbox's own loopback (lib/registry.cjs, port
 * KILN_REGISTRY_PORT in buildpacks/nodejs/lib/pm.sh): it serves each pinned tarball also at
 * `kiln/-/STORE_NAME`, where a lock's own tarball URLs are pointed for the offline install.
 */
export const LOOPBACK_REGISTRY = "http://127.0.0.1:48730/";

export function loopbackTarballUrl(storeName: string): string {
  return `${LOOPBACK_REGISTRY}kiln/-/${encodeURIComponent(storeName)}`;
}

const UNPINNABLE = /^(git\+|git:|github:|gitlab:|bitbucket:|file:|link:|portal:|exec:|workspace:)/;

export interface PinContext {
  registry: string;
  origins: string[];
  problems: string[];
  /** Said after the general hint when the problems need more (e.g. how to get an integrity). */
  hints: Set<string>;
  byName: Map<string, Tarball>;
}

export function pinContext(registry: string, allow: readonly string[] = []): PinContext {
  // Tarballs come from the registry (and the operator's allow-list) alone: a lock's URL elsewhere
  // (host loopback, a private address, another port) would be fetched by Nix on the host's network.
  return {
    registry,
    origins: allowedOrigins(registry, allow),
    problems: [],
    hints: new Set(),
    byName: new Map(),
  };
}

/**
 * Pins one lock entry into `ctx.byName`, or records why not in `ctx.problems`. `where` names the
 * entry in messages (its key in the lock).
 */
export function pinEntry(
  ctx: PinContext,
  e: {
    where: string;
    name: string;
    version?: string | undefined;
    resolved?: string | undefined;
    integrity?: string | undefined;
  },
): void {
  const { where, name, version, resolved } = e;
  if (resolved && UNPINNABLE.test(resolved)) {
    ctx.problems.push(
      `${where}: ${resolved.split("#")[0]} — git and file dependencies have no pinned tarball; publish the package or vendor it`,
    );
    return;
  }
  if (resolved?.startsWith("http:") && !e.integrity) {
    ctx.problems.push(`${where}: ${resolved} is plain http without an integrity hash`);
    return;
  }
  const fromLock = resolved !== undefined && /^https?:\/\//.test(resolved);
  if (fromLock && !ctx.origins.includes(originOf(resolved) ?? "")) {
    ctx.problems.push(
      `${where}: its resolved URL is not on the registry's origin (${ctx.origins.join(", ")}); kiln fetches dependencies from the registry and KILN_FETCH_ALLOW only`,
    );
    ctx.hints.add(
      `a tarball on another server is fetched only from an origin the operator allows (KILN_FETCH_ALLOW=${originOf(resolved) ?? "https://HOST"}), or publish the package to the registry`,
    );
    return;
  }
  if (resolved !== undefined && !fromLock) {
    ctx.problems.push(`${where}: ${resolved.split("#")[0]} is not a registry tarball`);
    return;
  }
  if (!e.integrity || !version) {
    ctx.problems.push(
      `${where}: no ${e.integrity ? "version" : "integrity"} in the lock, so it cannot be pinned`,
    );
    return;
  }
  const integrity = pickIntegrity(e.integrity);
  if (!integrity) {
    ctx.problems.push(`${where}: unsupported integrity ${e.integrity.split(/\s+/)[0]}`);
    return;
  }
  const url = fromLock ? resolved : conventionalUrl(ctx.registry, name, version);
  const storeName = tarballStoreName(name, version);
  const prior = ctx.byName.get(storeName);
  if (prior && prior.integrity !== integrity) {
    ctx.problems.push(`${where}: ${name}@${version} appears with two different integrity hashes`);
    return;
  }
  ctx.byName.set(storeName, { name: storeName, url, integrity, package: name, version });
}

/** The pinned tarballs, sorted by name, or the refusal listing every entry that cannot be pinned. */
export function finishPins(ctx: PinContext, lockFile: string): Tarball[] {
  if (ctx.problems.length > 0) {
    throw new KilnError({
      code: "unsupported_dependencies",
      message: `${lockFile} has dependencies kiln cannot fetch reproducibly:\n${ctx.problems.map((p) => `  ${p}`).join("\n")}`,
      hint: [
        "every dependency must be a registry tarball pinned by integrity (npm, yarn and pnpm write those for registry packages)",
        ...ctx.hints,
      ].join("; "),
    });
  }
  return [...ctx.byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** npm's platform fields (`os`, `cpu`, `libc`, with `!x` negations) against linux/x64/glibc. */
export function platformMatches(values: readonly string[] | undefined, current: string): boolean {
  if (!values || values.length === 0) return true;
  const allowed = values.filter((v) => !v.startsWith("!"));
  if (values.includes(`!${current}`)) return false;
  return allowed.length === 0 || allowed.includes(current);
}

export function onLinuxX64(e: {
  os?: readonly string[] | undefined;
  cpu?: readonly string[] | undefined;
  libc?: readonly string[] | undefined;
}): boolean {
  return platformMatches(e.os, "linux") && platformMatches(e.cpu, "x64") && platformMatches(e.libc, "glibc");
}
