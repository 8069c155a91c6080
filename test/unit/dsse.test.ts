import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { envelopeSignedBy, IN_TOTO_PAYLOAD_TYPE, pae, signEnvelope } from "../../src/provenance/dsse.js";
import { bundleText, parseBundle } from "../../src/provenance/provenance.js";
import { SLSA_PROVENANCE_V1, STATEMENT_TYPE } from "../../src/provenance/statement.js";
import { verifyProvenance } from "../../src/provenance/verify.js";
import { generateSecretKey, parsePublicKey, parseSecretKey } from "../../src/signing/keys.js";

const nix = (args: string[], input?: string) =>
  execFileSync("nix", ["--extra-experimental-features", "nix-command", ...args], {
    encoding: "utf8",
    ...(input !== undefined ? { input } : {}),
  }).trim();

const statement = (sha256: string) =>
  Buffer.from(
    JSON.stringify({
      _type: STATEMENT_TYPE,
      subject: [{ name: "a-slug.tgz", digest: { sha256 } }],
      predicateType: SLSA_PROVENANCE_V1,
      predicate: { runDetails: { builder: { id: "urn:kiln:builder:test" } } },
    }),
  );

describe("DSSE and ed25519 keys", () => {
  it("encodes PAE as the DSSE spec's example", () => {
    expect(pae("http://example.com/HelloWorld", Buffer.from("hello world")).toString()).toBe(
      "DSSEv1 29 http://example.com/HelloWorld 11 hello world",
    );
  });

  it("reads a key Nix made, and derives the public key Nix derives", () => {
    const secret = nix(["key", "generate-secret", "--key-name", "unit-test-1"]);
    const pub = nix(["key", "convert-secret-to-public"], secret);
    const k = parseSecretKey(secret);
    expect(k.publicKey.text).toBe(pub);
    expect(parsePublicKey(pub).name).toBe("unit-test-1");
  });

  it("a key kiln made is one Nix accepts (same public key)", () => {
    const k = generateSecretKey("kiln-unit-1");
    expect(nix(["key", "convert-secret-to-public"], k.text)).toBe(k.publicKey.text);
  });

  it("refuses keys that are not NAME:BASE64 of the right length", () => {
    expect(() => parsePublicKey("nope")).toThrow(/NAME:BASE64/);
    expect(() => parsePublicKey(`x:${Buffer.alloc(31).toString("base64")}`)).toThrow(/32 bytes/);
    const k = generateSecretKey("a-1");
    const raw = Buffer.from(k.text.split(":")[1] ?? "", "base64");
    raw[40] = (raw[40] ?? 0) ^ 1; // the public half no longer matches the seed
    expect(() => parseSecretKey(`a-1:${raw.toString("base64")}`)).toThrow(/does not match/);
  });

  it("signs and verifies an envelope; a changed payload, type or key fails", () => {
    const k = generateSecretKey("k-1");
    const other = generateSecretKey("k-2");
    const env = signEnvelope(k, IN_TOTO_PAYLOAD_TYPE, Buffer.from("{}"));
    expect(envelopeSignedBy(env, k.publicKey)).toBe(true);
    expect(envelopeSignedBy(env, other.publicKey)).toBe(false);
    expect(envelopeSignedBy({ ...env, payload: Buffer.from("{ }").toString("base64") }, k.publicKey)).toBe(
      false,
    );
    expect(envelopeSignedBy({ ...env, payloadType: "text/plain" }, k.publicKey)).toBe(false);
  });

  it("verifyProvenance names the failing check", () => {
    const k = generateSecretKey("k-1");
    const a = "a".repeat(64);
    const b = "b".repeat(64);
    const bundle = parseBundle(bundleText([signEnvelope(k, IN_TOTO_PAYLOAD_TYPE, statement(a))]));
    expect(verifyProvenance({ sha256: a, bundle, key: k.publicKey }).verified).toBe(true);
    expect(verifyProvenance({ sha256: b, bundle, key: k.publicKey }).failed).toBe("subject");
    expect(verifyProvenance({ sha256: a, bundle, key: generateSecretKey("x-1").publicKey }).failed).toBe(
      "signature",
    );
    expect(
      verifyProvenance({ sha256: a, bundle, key: k.publicKey, builderId: "urn:kiln:builder:other" }).failed,
    ).toBe("builder-id");
    expect(verifyProvenance({ sha256: a, bundle, key: k.publicKey, requireReproducible: true }).failed).toBe(
      "reproducible",
    );
    const wrongType = [signEnvelope(k, "application/json", statement(a))];
    expect(verifyProvenance({ sha256: a, bundle: wrongType, key: k.publicKey }).failed).toBe("payload-type");
  });

  it("parses one envelope as JSON or a bundle as JSON Lines, and refuses other input", () => {
    const k = generateSecretKey("k-1");
    const env = signEnvelope(k, IN_TOTO_PAYLOAD_TYPE, Buffer.from("{}"));
    expect(parseBundle(JSON.stringify(env, null, 2))).toHaveLength(1);
    expect(parseBundle(bundleText([env, env]))).toHaveLength(2);
    expect(() => parseBundle("")).toThrow(/empty/);
    expect(() => parseBundle('{"payload": 1}')).toThrow(/not a DSSE envelope/);
  });
});
