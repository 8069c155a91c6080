/**
 * The seed's two files under nix/: the spec (what we want, edited by hand) and the lock (exactly what
 * we got, written by `kiln seed pin`, read by nix/seed.nix). Both are validated with zod.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { KilnError } from "../errors.js";
import { writeFileAtomic } from "../util/fs.js";
import { parseJsonWith } from "../util/json.js";

const pkgName = z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, "a Debian package name");
const npmName = z
  .string()
  .regex(/^(@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*$/, "an npm package name");

export const seedSpecSchema = z.object({
  /** Debian packages whose dependency closure goes into each stack (build also gets run's). */
  debian: z.object({
    run: z.array(pkgName).min(1),
    build: z.array(pkgName),
    /** Packages never taken even when something depends on them (maintainer-script machinery). */
    exclude: z.array(pkgName),
    /**
     * Packages pinned into the seed but copied into no stack: their files are facts make-stack.sh
     * reads (base-files' os-release and debian_version) without its /boot, /dev… or maintainer scripts.
     */
    facts: z.array(pkgName).default([]),
    architecture: z.literal("amd64"),
  }),
  /** Node (official binaries, as published in the npm package) and npm, by semver range. */
  node: z.object({ package: npmName, range: z.string().min(1) }),
  npm: z.object({ package: npmName, range: z.string().min(1) }),
});
export type SeedSpec = z.infer<typeof seedSpecSchema>;

export const debPinSchema = z.object({
  name: pkgName,
  version: z.string().min(1),
  architecture: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.number().int().positive(),
  filename: z.string(),
});
export type DebPin = z.infer<typeof debPinSchema>;

export const npmPinSchema = z.object({
  name: npmName,
  version: z.string().min(1),
  integrity: z.string().regex(/^sha512-[A-Za-z0-9+/]+=*$/),
});
export type NpmPin = z.infer<typeof npmPinSchema>;

export const seedLockSchema = z.object({
  lockVersion: z.literal(1),
  debian: z.array(debPinSchema),
  stacks: z.object({ run: z.array(pkgName), build: z.array(pkgName) }),
  node: npmPinSchema,
  npm: npmPinSchema,
  /** The seed directory's NAR hash: its fixed-output (recursive sha256) identity. */
  narHash: z.string().regex(/^sha256-[A-Za-z0-9+/]+=*$/),
  storePath: z.string().regex(/^\/nix\/store\/[0-9a-z]{32}-kiln-seed$/),
});
export type SeedLock = z.infer<typeof seedLockSchema>;

export const SEED_NAME = "kiln-seed";

export function seedFiles(projectDir: string) {
  return { spec: join(projectDir, "nix", "seed.spec.json"), lock: join(projectDir, "nix", "seed.lock.json") };
}

async function readJson<T>(file: string, schema: z.ZodType<T>, what: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new KilnError({
      code: "seed_file_missing",
      message: `cannot read the seed ${what} at ${file}`,
      hint: what === "lock" ? "create it with `kiln seed pin`" : "restore nix/seed.spec.json from git",
      cause: err,
    });
  }
  return parseJsonWith(text, schema, {
    file,
    code: "seed_file_invalid",
    invalid: "is invalid",
    jsonHint: "restore it from git",
    schemaHint: "restore it from git, or re-pin with `kiln seed pin`",
  });
}

export const readSeedSpec = (projectDir: string) =>
  readJson(seedFiles(projectDir).spec, seedSpecSchema, "spec");
export const readSeedLock = (projectDir: string) =>
  readJson(seedFiles(projectDir).lock, seedLockSchema, "lock");

/** Writes the lock atomically (write + rename), with a stable key order and sorted packages. */
export async function writeSeedLock(projectDir: string, lock: SeedLock): Promise<void> {
  const file = seedFiles(projectDir).lock;
  const sorted: SeedLock = {
    ...lock,
    debian: [...lock.debian].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    stacks: { run: [...lock.stacks.run].sort(), build: [...lock.stacks.build].sort() },
  };
  await writeFileAtomic(file, `${JSON.stringify(seedLockSchema.parse(sorted), null, 2)}\n`);
}
