/**
 * `kiln verify` binds the app and the commit (review s3, L2): it checked the signature, the
 * subject and the builder only, so a slug the same kiln built for any tenant verified as another
 * app's. A real ed25519 key and DSSE envelope over a statement shaped as kiln's (statement.ts).
 */
import { describe, expect, it } from "vitest";
import { IN_TOTO_PAYLOAD_TYPE, signEnvelope } from "../../src/provenance/dsse.js";
import { SLSA_PROVENANCE_V1, STATEMENT_TYPE } from "../../src/provenance/statement.js";
import { verifyProvenance } from "../../src/provenance/verify.js";
import { generateSecretKey } from "../../src/signing/keys.js";

const key = generateSecretKey("kiln-unit-verify-1");
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const SHA = "a".repeat(64);
/** Alice's slug, built by this kiln for her app `shop` from COMMIT. */
const bundle = [
  signEnvelope(
    key,
    IN_TOTO_PAYLOAD_TYPE,
    Buffer.from(
      JSON.stringify({
        _type: STATEMENT_TYPE,
        subject: [{ name: "shop-slug.tgz", digest: { sha256: SHA } }],
        predicateType: SLSA_PROVENANCE_V1,
        predicate: {
          buildDefinition: {
            externalParameters: { app: "shop", source: { narHash: "sha256-x", commit: COMMIT } },
          },
          runDetails: { builder: { id: "urn:kiln:builder:test" } },
        },
      }),
    ),
  ),
];
const verify = (o: { app?: string; commit?: string }) =>
  verifyProvenance({ sha256: SHA, bundle, key: key.publicKey, builderId: "urn:kiln:builder:test", ...o });

describe("kiln verify binds the app and the commit", () => {
  it("control: without --app, shop's slug verifies for whoever asks (a consumer of `bank` is fooled)", () => {
    expect(verify({}).verified).toBe(true);
  });

  it("shop's attestation checked against app bank fails the app check, naming both", () => {
    const r = verify({ app: "bank" });
    expect(r.verified).toBe(false);
    expect(r.failed).toBe("app");
    expect(r.checks.at(-1)?.detail).toBe("built for app shop, expected bank");
    expect(verify({ app: "shop" }).verified).toBe(true);
  });

  it("the commit: the recorded one (or 7+ of its digits) passes, another or too short a prefix fails", () => {
    expect(verify({ app: "shop", commit: COMMIT }).verified).toBe(true);
    expect(verify({ commit: COMMIT.slice(0, 7) }).verified).toBe(true);
    expect(verify({ commit: "fedcba9" }).failed).toBe("commit");
    expect(verify({ commit: "0123" }).failed).toBe("commit");
  });
});
