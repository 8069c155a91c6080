/**
 * `kiln verify`: is FILE what this provenance says, signed by this key? Each check is reported by
 * name, in order; the first that fails decides, and later ones are not run (they would judge an
 * unsigned or unrelated statement).
 */
import type { PublicKey } from "../signing/keys.js";
import { type Envelope, envelopeSignedBy, IN_TOTO_PAYLOAD_TYPE } from "./dsse.js";
import { statementOf } from "./provenance.js";
import { KILN_REPRODUCIBLE_V1, SLSA_PROVENANCE_V1, STATEMENT_TYPE, type Statement } from "./statement.js";

export type CheckName =
  | "signature"
  | "payload-type"
  | "statement"
  | "subject"
  | "builder-id"
  | "app"
  | "commit"
  | "reproducible";

export interface VerifyCheck {
  check: CheckName;
  ok: boolean;
  detail: string;
}

export interface VerifyResult {
  verified: boolean;
  /** The first check that failed, if any. */
  failed?: CheckName;
  checks: VerifyCheck[];
  statement?: Statement;
}

export interface VerifyOptions {
  sha256: string;
  bundle: Envelope[];
  key: PublicKey;
  builderId?: string;
  /**
   * The app and commit the file must have been built for (externalParameters): without them, any
   * slug the same builder made for any tenant verifies.
   */
  app?: string;
  commit?: string;
  requireReproducible?: boolean;
}

const hasSubject = (s: Statement | undefined, sha256: string) =>
  !!s?.subject.some((x) => x.digest?.sha256?.toLowerCase() === sha256);

export function verifyProvenance(o: VerifyOptions): VerifyResult {
  const checks: VerifyCheck[] = [];
  const done = (): VerifyResult => {
    const failed = checks.find((c) => !c.ok)?.check;
    return { verified: !failed, ...(failed ? { failed } : {}), checks };
  };
  const add = (check: CheckName, ok: boolean, detail: string) => {
    checks.push({ check, ok, detail });
    return ok;
  };
  // The build's provenance: a SLSA statement, preferring one about this file (a bundle may hold several).
  const slsa = o.bundle.filter((e) => statementOf(e)?.predicateType === SLSA_PROVENANCE_V1);
  const env = slsa.find((e) => hasSubject(statementOf(e), o.sha256)) ?? slsa[0] ?? o.bundle[0];
  if (!env) {
    add("statement", false, "the bundle holds no envelope");
    return done();
  }
  if (!add("signature", envelopeSignedBy(env, o.key), `signed over DSSE's PAE by ${o.key.name}`)) {
    checks[checks.length - 1] = {
      check: "signature",
      ok: false,
      detail: `no signature by ${o.key.name} verifies over the envelope's PAE (wrong key, or the payload was changed)`,
    };
    return done();
  }
  if (!add("payload-type", env.payloadType === IN_TOTO_PAYLOAD_TYPE, `payloadType ${env.payloadType}`))
    return done();
  const s = statementOf(env);
  if (
    !add(
      "statement",
      s?._type === STATEMENT_TYPE && s.predicateType === SLSA_PROVENANCE_V1,
      s ? `${s._type}, predicate ${s.predicateType}` : "the payload is not an in-toto statement",
    )
  )
    return done();
  const subjects = (s?.subject ?? []).map((x) => `${x.name} sha256:${x.digest?.sha256 ?? "?"}`).join(", ");
  if (
    !add(
      "subject",
      hasSubject(s, o.sha256),
      hasSubject(s, o.sha256)
        ? `sha256:${o.sha256} is a subject`
        : `the file's sha256:${o.sha256} is not a subject (subjects: ${subjects})`,
    )
  )
    return done();
  const builder = (s?.predicate as { runDetails?: { builder?: { id?: string } } } | undefined)?.runDetails
    ?.builder?.id;
  if (o.builderId !== undefined) {
    if (
      !add(
        "builder-id",
        builder === o.builderId,
        `builder ${builder ?? "(none)"}${builder === o.builderId ? "" : `, expected ${o.builderId}`}`,
      )
    )
      return done();
  }
  const params = (s?.predicate as { buildDefinition?: { externalParameters?: Record<string, unknown> } })
    ?.buildDefinition?.externalParameters;
  if (o.app !== undefined) {
    const app = typeof params?.app === "string" ? params.app : undefined;
    const ok = app === o.app;
    if (!add("app", ok, `built for app ${app ?? "(none)"}${ok ? "" : `, expected ${o.app}`}`)) return done();
  }
  if (o.commit !== undefined) {
    const c = (params?.source as { commit?: unknown } | undefined)?.commit;
    const commit = typeof c === "string" ? c : undefined;
    // A prefix of at least 7 hex digits, as git abbreviates.
    const want = o.commit.toLowerCase();
    const ok = !!commit && want.length >= 7 && commit.toLowerCase().startsWith(want);
    if (
      !add(
        "commit",
        ok,
        `built from commit ${commit ?? "(none recorded)"}${ok ? "" : `, expected ${o.commit}`}`,
      )
    )
      return done();
  }
  if (o.requireReproducible) {
    const proof = o.bundle.find((e) => {
      const r = statementOf(e);
      return (
        e.payloadType === IN_TOTO_PAYLOAD_TYPE &&
        r?._type === STATEMENT_TYPE &&
        r.predicateType === KILN_REPRODUCIBLE_V1 &&
        (r.predicate as { verdict?: string }).verdict === "reproducible" &&
        hasSubject(r, o.sha256) &&
        envelopeSignedBy(e, o.key)
      );
    });
    const p = (proof ? statementOf(proof)?.predicate : undefined) as
      | { checkId?: string; variations?: string[] }
      | undefined;
    add(
      "reproducible",
      !!proof,
      proof
        ? `check ${p?.checkId} found it reproducible (${(p?.variations ?? []).join(", ") || "no variations"})`
        : `no reproducibility statement for sha256:${o.sha256} signed by ${o.key.name} (run kiln check on the build)`,
    );
  }
  const r = done();
  return s ? { ...r, statement: s } : r;
}
