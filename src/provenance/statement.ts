/**
 * What kiln attests, as in-toto Statement v1 documents:
 *   - a build: a SLSA provenance v1 predicate (what went in, who built it, how);
 *   - a passed `kiln check`: kiln's reproducibility predicate (the verdict, the variations, the
 *     builds compared), whose subjects are the slugs that came out identical.
 * The build type is documented in docs/provenance.md (the notes text, until merged).
 */

import type { DerivationInfo } from "../nix/driver.js";
import type { SeedLock } from "../seed/lock.js";
import type { BuildSpec, Manifest } from "../slug/records.js";

export const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
export const SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1";
export const KILN_BUILD_TYPE = "urn:kiln:build-type:nix-buildpacks:v1";
export const KILN_REPRODUCIBLE_V1 = "urn:kiln:predicate:reproducible:v1";

export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest?: Record<string, string>;
  annotations?: Record<string, unknown>;
}

export interface Statement {
  _type: typeof STATEMENT_TYPE;
  subject: { name: string; digest: Record<string, string> }[];
  predicateType: string;
  predicate: Record<string, unknown>;
}

/** A Nix SRI hash (`sha256-BASE64`) as the hex digest in-toto's DigestSet uses. */
export function sriToHex(sri: string): { algo: string; hex: string } {
  const m = /^(sha256|sha512)-([A-Za-z0-9+/]+=*)$/.exec(sri);
  if (!m?.[1] || !m[2]) throw new Error(`not an SRI hash: ${sri}`);
  return { algo: m[1], hex: Buffer.from(m[2], "base64").toString("hex") };
}

/** A NAR hash: the sha256 of the path's NAR serialisation (what `nix hash path` prints). */
const narDigest = (sri: string) => ({ nixNarSha256: sriToHex(sri).hex });

/**
 * The commit the source came from, when the build recorded one (a `git push` build); looked up
 * under the names the manifest may carry it (`commit`, `source.commit`, `git.commit`).
 */
export function commitOf(raw: unknown): string | undefined {
  const o = (raw ?? {}) as Record<string, unknown>;
  const pick = (v: unknown) =>
    typeof v === "string" && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(v) ? v : undefined;
  const sub = (k: string) => (o[k] && typeof o[k] === "object" ? (o[k] as Record<string, unknown>) : {});
  return pick(o.commit) ?? pick(sub("source").commit) ?? pick(sub("git").commit);
}

/**
 * Every fixed-output derivation the build depends on (dependency tarballs, the seed's files, a
 * runtime's archive): the bytes that came from outside, each by the hash Nix checked it against.
 * Taken from the derivation closure, so it holds whatever a buildpack or lock format planned.
 */
export function fetchedInputs(drvs: Record<string, DerivationInfo>): ResourceDescriptor[] {
  const out: ResourceDescriptor[] = [];
  for (const [drvPath, d] of Object.entries(drvs)) {
    const o = d.outputs.out;
    if (!o?.hash || !o.hashAlgo) continue;
    const recursive = o.hashAlgo.startsWith("r:");
    const algo = o.hashAlgo.replace(/^r:/, "");
    const hex = /^[0-9a-f]+$/.test(o.hash) ? o.hash : Buffer.from(o.hash, "base64").toString("hex");
    const digest: Record<string, string> = recursive
      ? { [`nixNar${algo === "sha256" ? "Sha256" : algo}`]: hex }
      : { [algo]: hex };
    // Only a real URL (the seed's FOD names a placeholder: it is imported, never fetched).
    const url = [d.env.url, d.env.urls?.split(" ")[0]].find((u) => !!u && /^[a-z][a-z0-9+.-]*:\/\//.test(u));
    out.push({
      name: d.env.name ?? drvPath,
      ...(url ? { uri: url } : {}),
      digest,
      annotations: {
        kind: "fetched",
        storePath: o.path,
        ...(algo === "sha512" && !recursive
          ? { integrity: `sha512-${Buffer.from(hex, "hex").toString("base64")}` }
          : {}),
      },
    });
  }
  return out.sort((a, b) => ((a.name ?? "") < (b.name ?? "") ? -1 : (a.name ?? "") > (b.name ?? "") ? 1 : 0));
}

export interface BuildStatementInput {
  manifest: Manifest;
  /** The manifest as written (it may carry fields newer than this schema, like a commit). */
  rawManifest: unknown;
  spec: BuildSpec;
  seedLock: SeedLock;
  fetched: ResourceDescriptor[];
  builderId: string;
  kilnVersion: string;
  invocationId: string;
  startedOn: Date;
  finishedOn: Date;
  /** Where the derivations were built (local, or a remote builder's URI), when known. */
  builtOn?: string[];
}

export function buildStatement(i: BuildStatementInput): Statement {
  const m = i.manifest;
  const raw = (i.rawManifest ?? {}) as Record<string, unknown>;
  const commit = commitOf(raw);
  const runtime = raw.runtime && typeof raw.runtime === "object" ? raw.runtime : undefined;
  const resolved: ResourceDescriptor[] = [
    {
      name: "source",
      digest: { ...narDigest(m.source.narHash), ...(commit ? { gitCommit: commit } : {}) },
      annotations: {
        files: m.source.files,
        bytes: m.source.bytes,
        ...(m.lockfile ? { lockfile: m.lockfile } : {}),
      },
    },
    { name: "seed", uri: m.seed.path, digest: narDigest(m.seed.narHash), annotations: { kind: "seed-pin" } },
    {
      name: "runtime",
      ...(runtime
        ? { annotations: { kind: "runtime", ...(runtime as Record<string, unknown>) } }
        : {
            uri: `pkg:npm/${i.seedLock.node.name}@${i.seedLock.node.version}`,
            digest: { sha512: sriToHex(i.seedLock.node.integrity).hex },
            annotations: {
              kind: "runtime",
              from: "seed",
              node: i.seedLock.node.version,
              npm: i.seedLock.npm.version,
            },
          }),
    },
    {
      name: m.stack.name,
      uri: m.stack.path,
      digest: narDigest(m.stack.narHash),
      annotations: { kind: "stack" },
    },
    ...m.buildpacks.map((b, n) => ({
      name: `buildpack:${b.name}`,
      uri: i.spec.buildpacks[n]?.path ?? "",
      digest: narDigest(b.narHash),
      annotations: { kind: "buildpack", version: b.version, detected: b.detected },
    })),
    {
      name: "kiln-tools",
      uri: m.tools.path,
      digest: narDigest(m.tools.narHash),
      annotations: { kind: "tools" },
    },
    ...i.fetched,
  ];
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: `${m.app}-slug.tgz`, digest: { sha256: m.slug.sha256 } }],
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: {
        buildType: KILN_BUILD_TYPE,
        externalParameters: {
          app: m.app,
          source: { narHash: m.source.narHash, ...(commit ? { commit } : {}) },
          buildpacks: m.buildpacks.map((b) => b.name),
          // Config vars' names only: their values may be secrets.
          env: Object.keys(i.spec.env).sort(),
          slugMaxBytes: i.spec.slugMaxBytes,
        },
        internalParameters: {
          derivation: m.derivation,
          sourceDateEpoch: i.spec.sourceDateEpoch,
          ...(i.spec.dependencies
            ? { registry: i.spec.dependencies.registry, fetchAllow: i.spec.dependencies.allow }
            : {}),
        },
        resolvedDependencies: resolved,
      },
      runDetails: {
        builder: { id: i.builderId, version: { kiln: i.kilnVersion } },
        metadata: {
          invocationId: i.invocationId,
          startedOn: i.startedOn.toISOString(),
          finishedOn: i.finishedOn.toISOString(),
        },
        byproducts: [
          { name: "slug", uri: m.slug.path, annotations: { bytes: m.slug.bytes, files: m.slug.files } },
          ...(i.builtOn ? [{ name: "built-on", annotations: { builders: i.builtOn } }] : []),
        ],
      },
    },
  };
}

export interface ReproducibleStatementInput {
  app: string;
  checkId: string;
  verdict: string;
  variations: string[];
  /** The slug every build was compared with, and each build's. */
  reference: { sha256: string; label: string };
  builds: { index: number; sha256?: string; varied: { name: string; value: string }[] }[];
  builderId: string;
  finishedOn: string;
}

export function reproducibleStatement(i: ReproducibleStatementInput): Statement {
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: `${i.app}-slug.tgz`, digest: { sha256: i.reference.sha256 } }],
    predicateType: KILN_REPRODUCIBLE_V1,
    predicate: {
      verdict: i.verdict,
      checkId: i.checkId,
      variations: i.variations,
      comparedWith: i.reference,
      builds: i.builds,
      builder: { id: i.builderId },
      finishedOn: i.finishedOn,
    },
  };
}
