/**
 * Provenance files: beside each build's manifest (DATA_DIR/builds/APP/SHA.json) an in-toto bundle,
 * SHA.intoto.jsonl, one DSSE envelope per line: the build's SLSA provenance first, then one
 * reproducibility statement per passed `kiln check` of that slug. Signed with this instance's
 * provenance key (DATA_DIR/provenance-key.sec, not the binary cache's), made on first use.
 */
import { createHash, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Config } from "../config/config.js";
import { KilnError } from "../errors.js";
import type { Nix } from "../nix/driver.js";
import type { SeedLock } from "../seed/lock.js";
import { loadOrCreateSecretKey, type SecretKey } from "../signing/keys.js";
import type { BuildSpec, Manifest } from "../slug/records.js";
import { withFileLock, writeFileAtomic } from "../util/fs.js";
import { type Envelope, envelopeSchema, IN_TOTO_PAYLOAD_TYPE, signEnvelope } from "./dsse.js";
import {
  buildStatement,
  fetchedInputs,
  KILN_REPRODUCIBLE_V1,
  type ReproducibleStatementInput,
  reproducibleStatement,
  type Statement,
} from "./statement.js";

export const PROVENANCE_KEY_FILE = "provenance-key.sec";

const safeHost = () =>
  hostname()
    .replace(/[^A-Za-z0-9.-]+/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "") || "kiln";

export function provenanceKey(dataDir: string): Promise<SecretKey> {
  return loadOrCreateSecretKey(join(dataDir, PROVENANCE_KEY_FILE), `kiln-provenance-${safeHost()}-1`);
}

/**
 * This kiln instance, as provenance names its builder: the operator's KILN_BUILDER_ID, else the
 * host and a tag of the data directory (two kilns on one host are two builders).
 */
export function builderIdOf(config: Pick<Config, "dataDir"> & { builderId?: string | undefined }): string {
  if (config.builderId) return config.builderId;
  const tag = createHash("sha256").update(config.dataDir).digest("hex").slice(0, 12);
  return `urn:kiln:builder:${safeHost()}:${tag}`;
}

export function provenancePathFor(manifestPath: string): string {
  return `${manifestPath.replace(/\.json$/, "")}.intoto.jsonl`;
}

let versionCache: string | undefined;
async function kilnVersion(projectDir: string): Promise<string> {
  if (versionCache) return versionCache;
  const pkg = JSON.parse(await readFile(join(projectDir, "package.json"), "utf8")) as { version?: string };
  versionCache = pkg.version ?? "0.0.0";
  return versionCache;
}

const encode = (s: Statement) => Buffer.from(JSON.stringify(s), "utf8");

export interface BuildProvenanceInput {
  manifest: Manifest;
  manifestPath: string;
  spec: BuildSpec;
  seedLock: SeedLock;
  startedOn: Date;
  builtOn?: string[];
}

/** Signs the build's provenance and writes the bundle (replacing an earlier build of the same slug's). */
export async function writeBuildProvenance(
  deps: { config: Config; nix: Nix },
  i: BuildProvenanceInput,
): Promise<string> {
  const [key, drvs, rawManifest, version] = await Promise.all([
    provenanceKey(deps.config.dataDir),
    deps.nix.showDerivation(i.manifest.derivation, { recursive: true }),
    readFile(i.manifestPath, "utf8").then((t) => JSON.parse(t) as unknown),
    kilnVersion(deps.config.projectDir),
  ]);
  const statement = buildStatement({
    manifest: i.manifest,
    rawManifest,
    spec: i.spec,
    seedLock: i.seedLock,
    fetched: fetchedInputs(drvs),
    builderId: builderIdOf(deps.config),
    kilnVersion: version,
    invocationId: randomUUID(),
    startedOn: i.startedOn,
    finishedOn: new Date(),
    ...(i.builtOn ? { builtOn: i.builtOn } : {}),
  });
  const file = provenancePathFor(i.manifestPath);
  const env = signEnvelope(key, IN_TOTO_PAYLOAD_TYPE, encode(statement));
  await withFileLock(`${file}.lock`, async () => {
    // A rebuild of the same slug keeps the checks that passed for it: they are about these bytes.
    const kept = (await readBundleFile(file).catch(() => [])).filter(
      (e) => statementOf(e)?.predicateType === KILN_REPRODUCIBLE_V1,
    );
    await writeFileAtomic(file, bundleText([env, ...kept]));
  });
  return file;
}

/**
 * Adds a passed check's signed statement to the bundle of the build it checked. The builder id is
 * the one the build's own provenance names: the same instance attests both.
 */
export async function appendReproducible(
  dataDir: string,
  manifestPath: string,
  i: Omit<ReproducibleStatementInput, "builderId">,
): Promise<string | undefined> {
  const file = provenancePathFor(manifestPath);
  return withFileLock(`${file}.lock`, async () => {
    const bundle = await readBundleFile(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw err;
    });
    const first = bundle?.[0] && statementOf(bundle[0]);
    if (!bundle || !first) return undefined; // built by a kiln that wrote no provenance
    const builder = (first.predicate as { runDetails?: { builder?: { id?: string } } }).runDetails?.builder
      ?.id;
    const key = await provenanceKey(dataDir);
    const env = signEnvelope(
      key,
      IN_TOTO_PAYLOAD_TYPE,
      encode(reproducibleStatement({ ...i, builderId: builder ?? "" })),
    );
    const others = bundle.filter((e) => {
      const s = statementOf(e);
      return !(
        s?.predicateType === KILN_REPRODUCIBLE_V1 &&
        (s.predicate as { checkId?: string }).checkId === i.checkId
      );
    });
    await writeFileAtomic(file, bundleText([...others, env]));
    return file;
  });
}

export function bundleText(envs: Envelope[]): string {
  return envs.map((e) => `${JSON.stringify(e)}\n`).join("");
}

/** A bundle: JSON Lines of envelopes, or one envelope as a JSON document. */
export function parseBundle(text: string): Envelope[] {
  const trimmed = text.trim();
  const bad = (why: string) =>
    new KilnError({
      code: "invalid_provenance",
      message: `not a DSSE envelope or a bundle of them (JSON Lines): ${why}`,
      hint: "pass the .intoto.jsonl file kiln build --json names as provenance",
    });
  if (!trimmed) throw bad("the file is empty");
  let docs: unknown[];
  try {
    const one = JSON.parse(trimmed) as unknown;
    docs = [one];
  } catch {
    try {
      docs = trimmed
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as unknown);
    } catch (err) {
      throw bad((err as Error).message);
    }
  }
  return docs.map((d, n) => {
    const r = envelopeSchema.safeParse(d);
    if (!r.success)
      throw bad(
        `entry ${n + 1}: ${r.error.issues[0]?.path.join(".") ?? ""} ${r.error.issues[0]?.message ?? ""}`,
      );
    return r.data;
  });
}

export async function readBundleFile(file: string): Promise<Envelope[]> {
  return parseBundle(await readFile(file, "utf8"));
}

/** The envelope's statement, unverified (undefined when the payload is not one). */
export function statementOf(env: Envelope): Statement | undefined {
  try {
    const s = JSON.parse(Buffer.from(env.payload, "base64").toString("utf8")) as Statement;
    return s && typeof s === "object" && Array.isArray(s.subject) ? s : undefined;
  } catch {
    return undefined;
  }
}

/** What a check report says, as far as its attestation needs (structural: repro's CheckReport). */
export interface CheckOutcome {
  id: string;
  app: string;
  verdict: string;
  finishedAt: string;
  variations: string[];
  builds: { index: number; varied: { name: string; value: string }[]; slug?: { sha256: string } }[];
  against?: { label: string; sha256: string };
}

/** A passed check's statement, added to the checked build's bundle; other verdicts attest nothing. */
export async function attestCheck(
  dataDir: string,
  manifestPath: string,
  r: CheckOutcome,
): Promise<string | undefined> {
  if (r.verdict !== "reproducible") return undefined;
  const reference = r.against ?? {
    label: "build 0",
    sha256: r.builds.find((b) => b.index === 0)?.slug?.sha256 ?? "",
  };
  if (!reference.sha256) return undefined;
  return appendReproducible(dataDir, manifestPath, {
    app: r.app,
    checkId: r.id,
    verdict: r.verdict,
    variations: r.variations,
    reference: { sha256: reference.sha256, label: reference.label },
    builds: r.builds.map((b) => ({
      index: b.index,
      ...(b.slug ? { sha256: b.slug.sha256 } : {}),
      varied: b.varied,
    })),
    finishedOn: r.finishedAt,
  });
}
