/**
 * DSSE (Dead Simple Signing Envelope) v1: the signature is over the pre-authentication encoding
 *   PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
 * (LEN in ASCII decimal bytes), never over the bare payload, so a payload cannot be replayed as
 * another type.
 */
import { z } from "zod";
import { type PublicKey, type SecretKey, signBytes, verifyBytes } from "../signing/keys.js";

export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";

export const envelopeSchema = z.object({
  payload: z.string(),
  payloadType: z.string(),
  signatures: z.array(z.object({ keyid: z.string().optional(), sig: z.string() })).min(1),
});
export type Envelope = z.infer<typeof envelopeSchema>;

export function pae(payloadType: string, body: Buffer): Buffer {
  const type = Buffer.from(payloadType, "utf8");
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${body.length} `), body]);
}

export function signEnvelope(key: SecretKey, payloadType: string, body: Buffer): Envelope {
  return {
    payload: body.toString("base64"),
    payloadType,
    signatures: [
      { keyid: key.publicKey.text, sig: signBytes(key, pae(payloadType, body)).toString("base64") },
    ],
  };
}

/** Whether any signature in the envelope is KEY's over the PAE of its payload type and payload. */
export function envelopeSignedBy(env: Envelope, key: PublicKey): boolean {
  const body = Buffer.from(env.payload, "base64");
  const msg = pae(env.payloadType, body);
  return env.signatures.some((s) => verifyBytes(key, msg, Buffer.from(s.sig, "base64")));
}
