/**
 * `kiln inventory update` / `check`: the inventories in nix/inventory/ made anew from the registry
 * (npm's own client and configuration), compared with the pinned files, and written only on
 * request.
 *
 * Node's LTS lines come from the npm package `node-releases` (Node.js release data: each line's
 * codename, and which releases are LTS); the inventory pins the version of it that was read, so an
 * update says where its LTS facts came from.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import semver from "semver";
import { z } from "zod";
import { readTarEntries } from "../archive/tar.js";
import { KilnError } from "../errors.js";
import { run } from "../process/run.js";
import { fetchNpmTarball, resolveNpmPin } from "../seed/npm.js";
import { writeFileAtomic } from "../util/fs.js";
import {
  forgetInventories,
  INVENTORIES,
  INVENTORY_NAMES,
  type Inventory,
  type InventoryEntry,
  type InventoryName,
  inventoryPath,
  parseInventory,
  registryPathOf,
  sortedVersions,
} from "./inventory.js";

const viewRow = z.looseObject({
  version: z.string(),
  "dist.integrity": z.string().optional(),
  "dist.shasum": z.string().optional(),
  "dist.tarball": z.string(),
  "engines.node": z.unknown().optional(),
});

/** `npm view SPEC FIELD…`: one object per matching version (an object alone when one matches). */
async function npmViewFields(spec: string, fields: string[]): Promise<unknown> {
  const r = await run("npm", ["view", spec, ...fields, "--json"], { reject: false });
  if (r.failed || r.stdout.trim() === "") {
    throw new KilnError({
      code: "npm_view_failed",
      message: `npm view ${spec} failed${r.stderrTail ? `:\n${r.stderrTail.trim()}` : ""}`,
      hint: "check `npm config get registry` and the network",
    });
  }
  return JSON.parse(r.stdout);
}

/** sha1 hex (the registry's `shasum`, all that very old releases have) as an SRI string. */
const shasumSri = (hex: string) => `sha1-${Buffer.from(hex, "hex").toString("base64")}`;

/** Every stable release of one inventory's package, as the registry lists it today. */
export async function fetchInventory(
  name: InventoryName,
  registry: string,
  opts: { cacheDir: string },
): Promise<Inventory> {
  const def = INVENTORIES[name];
  const raw = await npmViewFields(`${def.package}@${def.range}`, [
    "version",
    "dist.integrity",
    "dist.shasum",
    "dist.tarball",
    "engines.node",
  ]);
  const rows = z.array(viewRow).parse(Array.isArray(raw) ? raw : [raw]);
  const versions: Record<string, InventoryEntry> = {};
  for (const r of rows) {
    if (semver.valid(r.version) === null || semver.prerelease(r.version) !== null) continue;
    const path = registryPathOf(registry, r["dist.tarball"]);
    if (!path) {
      throw new KilnError({
        code: "inventory_foreign_tarball",
        message: `${def.package}@${r.version}: its tarball ${r["dist.tarball"]} is not on the registry ${registry}`,
        hint: "kiln pins registry tarballs only; check `npm config get registry`",
      });
    }
    const integrity =
      r["dist.integrity"]?.split(/\s+/).find((h) => h.startsWith("sha512-")) ??
      (r["dist.shasum"] ? shasumSri(r["dist.shasum"]) : undefined);
    if (!integrity) continue;
    const node = typeof r["engines.node"] === "string" ? r["engines.node"] : undefined;
    versions[r.version] = { integrity, path, ...(node ? { node } : {}) };
  }
  const inv: Inventory = {
    inventoryVersion: 1,
    package: def.package,
    versions: Object.fromEntries(sortedKeys(versions).map((v) => [v, versions[v] as InventoryEntry])),
  };
  if (name === "node") inv.lts = await fetchLts(opts.cacheDir);
  return inv;
}

const sortedKeys = (o: Record<string, unknown>) => Object.keys(o).sort(semver.compare);

const scheduleSchema = z.record(z.string(), z.looseObject({ codename: z.string().optional() }));
const envsSchema = z.array(
  z.looseObject({ version: z.string(), lts: z.union([z.string(), z.boolean()]).optional() }),
);

/** Node's LTS lines from the newest `node-releases`: codename, and the line's first LTS release. */
async function fetchLts(cacheDir: string): Promise<NonNullable<Inventory["lts"]>> {
  const pin = await resolveNpmPin("node-releases", "latest");
  const file = await fetchNpmTarball(pin, cacheDir);
  const members = await readTarEntries(await readFile(file));
  const json = (path: string): unknown => {
    const m = members.find((e) => e.path === `package/${path}`);
    if (!m) {
      throw new KilnError({
        code: "inventory_lts_unreadable",
        message: `node-releases@${pin.version} has no ${path}`,
        hint: "its layout changed: update src/runtime/update.ts",
      });
    }
    return JSON.parse(m.data.toString("utf8"));
  };
  const schedule = scheduleSchema.parse(json("data/release-schedule/release-schedule.json"));
  const envs = envsSchema.parse(json("data/processed/envs.json"));
  const lines: Record<string, { codename: string; since: string }> = {};
  for (const [key, line] of Object.entries(schedule)) {
    const major = /^v(\d+)$/.exec(key)?.[1];
    if (!major || !line.codename) continue;
    const lts = envs
      .filter(
        (e) =>
          typeof e.lts === "string" && semver.valid(e.version) && semver.major(e.version) === Number(major),
      )
      .map((e) => e.version)
      .sort(semver.compare);
    // A line with a codename whose first LTS release is not out yet is not LTS.
    if (lts[0]) lines[major] = { codename: line.codename, since: lts[0] };
  }
  return { source: pin, lines };
}

export type InventoryChange =
  | { kind: "added"; inventory: InventoryName; versions: string[] }
  | { kind: "removed"; inventory: InventoryName; versions: string[] }
  | { kind: "changed"; inventory: InventoryName; version: string; from: string; to: string }
  | { kind: "lts"; inventory: InventoryName; line: string; from: string; to: string }
  | { kind: "new-file"; inventory: InventoryName; versions: number };

/** What moved between a pinned inventory (undefined: none yet) and today's. */
export function diffInventory(
  name: InventoryName,
  before: Inventory | undefined,
  after: Inventory,
): InventoryChange[] {
  if (!before) return [{ kind: "new-file", inventory: name, versions: Object.keys(after.versions).length }];
  const out: InventoryChange[] = [];
  const added = sortedVersions(after).filter((v) => !(v in before.versions));
  const removed = sortedVersions(before).filter((v) => !(v in after.versions));
  if (added.length) out.push({ kind: "added", inventory: name, versions: added });
  if (removed.length) out.push({ kind: "removed", inventory: name, versions: removed });
  for (const v of sortedVersions(before)) {
    const a = before.versions[v];
    const b = after.versions[v];
    if (a && b && (a.integrity !== b.integrity || a.path !== b.path))
      out.push({ kind: "changed", inventory: name, version: v, from: a.integrity, to: b.integrity });
  }
  const la = before.lts?.lines ?? {};
  const lb = after.lts?.lines ?? {};
  for (const line of new Set([...Object.keys(la), ...Object.keys(lb)])) {
    const f = la[line] ? `${la[line].codename} since ${la[line].since}` : "not LTS";
    const t = lb[line] ? `${lb[line].codename} since ${lb[line].since}` : "not LTS";
    if (f !== t) out.push({ kind: "lts", inventory: name, line, from: f, to: t });
  }
  return out;
}

async function readPinned(projectDir: string, name: InventoryName): Promise<Inventory | undefined> {
  const file = inventoryPath(projectDir, name);
  try {
    return parseInventory(await readFile(file, "utf8"), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export interface InventoryUpdate {
  changes: InventoryChange[];
  written: string[];
}

/**
 * Today's inventories against the pinned ones; with `write`, the changed files rewritten (whole,
 * atomically). `only` limits it to some inventories.
 */
export async function updateInventories(opts: {
  projectDir: string;
  dataDir: string;
  registry: string;
  write: boolean;
  only?: InventoryName[];
  onStep?: (message: string) => void;
}): Promise<InventoryUpdate> {
  const cacheDir = join(opts.dataDir, "cache", "inventory");
  await mkdir(cacheDir, { recursive: true });
  const changes: InventoryChange[] = [];
  const written: string[] = [];
  for (const name of opts.only ?? INVENTORY_NAMES) {
    opts.onStep?.(`reading ${INVENTORIES[name].package} from the registry`);
    const [before, after] = await Promise.all([
      readPinned(opts.projectDir, name),
      fetchInventory(name, opts.registry, { cacheDir }),
    ]);
    const diff = diffInventory(name, before, after);
    changes.push(...diff);
    if (opts.write && diff.length > 0) {
      const file = inventoryPath(opts.projectDir, name);
      await mkdir(join(opts.projectDir, "nix", "inventory"), { recursive: true });
      await writeFileAtomic(file, `${JSON.stringify(after, null, 1)}\n`);
      written.push(file);
    }
  }
  if (written.length) forgetInventories();
  return { changes, written };
}
