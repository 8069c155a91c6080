/**
 * The files a build produces and records, validated with zod:
 *   spec     what kiln hands nix/build/default.nix
 *   build    build.json and release.json, written by the tools inside the sandbox
 *   manifest what kiln records for the build: everything that went in and what came out
 */
import { z } from "zod";

const storePath = z.string().regex(/^\/nix\/store\/[0-9a-z]{32}-[^/]+$/);
const narHash = z.string().regex(/^sha256-[A-Za-z0-9+/]+=*$/);
const stringMap = z.record(z.string(), z.string());
const runtimePin = z.object({
  package: z.string(),
  version: z.string(),
  integrity: z.string(),
  path: z.string(),
});
const runtimeRelease = z.object({
  package: z.string(),
  version: z.string(),
  integrity: z.string(),
  reason: z.string(),
});

export const buildSpecSchema = z.object({
  app: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/),
  source: storePath,
  sourceHash: narHash,
  sourceDateEpoch: z.number().int().nonnegative(),
  slugMaxBytes: z.number().int().positive(),
  env: stringMap,
  buildpacks: z.array(z.object({ name: z.string(), version: z.string(), path: storePath })).min(1),
  tools: storePath,
  /** nix/build/node-deps.nix plans the tarballs from the source's lock; the registry is npm's. */
  dependencies: z
    .object({
      buildpackIndex: z.number().int().nonnegative(),
      registry: z.string().url(),
      /** More origins tarballs may come from (KILN_FETCH_ALLOW); node-deps.nix refuses all others. */
      allow: z.array(z.string()).default([]),
      /** A plan made by kiln (src/buildpacks/nodePlan.ts) for locks node-deps.nix does not read. */
      plan: z
        .object({
          manager: z.enum(["npm", "yarn", "berry", "pnpm"]),
          input: storePath,
          tarballs: z.array(
            z.object({
              name: z.string(),
              url: z.string(),
              integrity: z.string(),
              package: z.string().optional(),
              version: z.string().optional(),
            }),
          ),
        })
        .optional(),
    })
    .nullable(),
  /** The app's Node, npm and package manager (src/runtime, nix/build/runtime.nix); absent: the stack's. */
  runtime: z
    .object({
      registry: z.string().url(),
      node: runtimePin,
      npm: runtimePin.extend({ name: z.string() }),
      pm: runtimePin.extend({ name: z.string() }),
    })
    .optional(),
  /** The app's kiln.json fetches (src/buildpacks/extraFetches.ts); absent when it declares none. */
  fetches: z
    .array(
      z.object({
        name: z.string(),
        url: z.string(),
        hash: z.string(),
        unpack: z.enum(["none", "gzip", "tar", "zip"]),
        executable: z.boolean(),
        env: stringMap,
      }),
    )
    .optional(),
  /** One build of a reproducibility check (src/repro): its own derivations, with variations. */
  check: z
    .object({
      nonce: z.string(),
      index: z.number().int().nonnegative(),
      settings: z.record(z.string(), z.string()),
    })
    .optional(),
});
export type BuildSpec = z.infer<typeof buildSpecSchema>;

export const releaseFileSchema = z.object({
  processTypes: stringMap,
  configVars: stringMap,
  addons: z.array(z.string()),
});
export type ReleaseFile = z.infer<typeof releaseFileSchema>;

export const buildFileSchema = z.object({
  app: z.string(),
  sourceHash: z.string(),
  buildpacks: z.array(z.object({ name: z.string(), version: z.string(), detected: z.string() })),
  slug: z.object({
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    bytes: z.number(),
    unpackedBytes: z.number(),
    files: z.number(),
  }),
  processTypes: stringMap,
});
export type BuildFile = z.infer<typeof buildFileSchema>;

/** What a build's manifest records of a `kiln check` of its slug. */
export const checkSummarySchema = z.object({
  id: z.string(),
  verdict: z.enum(["reproducible", "not_reproducible", "build_failed"]),
  at: z.string(),
  builds: z.number().int(),
  variations: z.array(z.string()),
  differingFiles: z.number().int(),
});
export type CheckSummary = z.infer<typeof checkSummarySchema>;

export const manifestSchema = z.object({
  manifestVersion: z.literal(1),
  app: z.string(),
  buildpacks: z.array(z.object({ name: z.string(), version: z.string(), narHash, detected: z.string() })),
  stack: z.object({ name: z.string(), path: storePath, narHash }),
  seed: z.object({ path: storePath, narHash }),
  tools: z.object({ path: storePath, narHash }),
  /** commit: the git commit pushed (git push; absent for an upload or a directory). */
  source: z.object({ narHash, files: z.number(), bytes: z.number(), commit: z.string().optional() }),
  lockfile: z.object({ file: z.string(), sha256: z.string() }).nullable(),
  /** The Node and package manager releases the build used (nodejs buildpack; older manifests lack it). */
  runtime: z
    .object({
      node: runtimeRelease.extend({ lts: z.string().optional() }),
      npm: runtimeRelease.extend({ name: z.string() }),
      pm: runtimeRelease.extend({ name: z.string() }),
    })
    .optional(),
  slug: z.object({
    path: z.string(),
    sha256: z.string(),
    bytes: z.number(),
    unpackedBytes: z.number(),
    files: z.number(),
  }),
  derivation: z.string(),
  processTypes: stringMap,
  configVars: stringMap,
  /** The spec the derivations were made from: what `kiln check` rebuilds (older manifests lack it). */
  specFile: z.string().optional(),
  /** Reproducibility checks of this slug (kiln check), newest last. */
  checks: z.array(checkSummarySchema).optional(),
});
export type Manifest = z.infer<typeof manifestSchema>;
