/**
 * ed25519 keys in Nix's own text format, `NAME:BASE64`: a secret key is the 32-byte seed followed
 * by the 32-byte public key (what `nix key generate-secret` writes), a public key the 32 bytes
 * alone. One format for the binary cache's key (Nix must read it) and the provenance key (so
 * `--key` takes the same kind of string everywhere).
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { link, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { KilnError } from "../errors.js";

export interface SecretKey {
  name: string;
  /** `NAME:BASE64(seed ‖ public)`, Nix's secret-key format. */
  text: string;
  publicKey: PublicKey;
  key: KeyObject;
}

export interface PublicKey {
  name: string;
  /** `NAME:BASE64(public)`, what Nix's trusted-public-keys takes. */
  text: string;
  key: KeyObject;
}

const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function splitKey(text: string, bytes: number, what: string): { name: string; raw: Buffer } {
  const t = text.trim();
  const i = t.indexOf(":");
  const name = i > 0 ? t.slice(0, i) : "";
  const b64 = t.slice(i + 1);
  const raw = Buffer.from(b64, "base64");
  if (!KEY_NAME.test(name) || !/^[A-Za-z0-9+/]+=*$/.test(b64) || raw.length !== bytes) {
    throw new KilnError({
      code: "invalid_key",
      message: `not an ed25519 ${what} in Nix's NAME:BASE64 format (${bytes} bytes)`,
      hint: what === "public key" ? "pass what `kiln cache key` or `kiln provenance key` prints" : "",
    });
  }
  return { name, raw };
}

const b64url = (b: Buffer) => b.toString("base64url");

export function parsePublicKey(text: string): PublicKey {
  const { name, raw } = splitKey(text, 32, "public key");
  const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: b64url(raw) }, format: "jwk" });
  return { name, text: `${name}:${raw.toString("base64")}`, key };
}

export function parseSecretKey(text: string): SecretKey {
  const { name, raw } = splitKey(text, 64, "secret key");
  const seed = raw.subarray(0, 32);
  const pub = raw.subarray(32);
  const key = createPrivateKey({
    key: { kty: "OKP", crv: "Ed25519", d: b64url(seed), x: b64url(pub) },
    format: "jwk",
  });
  // The public half written in the file must be the seed's: a mismatched file signs with one key
  // and advertises another.
  const derived = createPublicKey(key).export({ format: "jwk" }).x;
  if (derived !== b64url(pub))
    throw new KilnError({
      code: "invalid_key",
      message: "the secret key's public half does not match its seed",
    });
  return {
    name,
    text: `${name}:${raw.toString("base64")}`,
    publicKey: parsePublicKey(`${name}:${pub.toString("base64")}`),
    key,
  };
}

export function generateSecretKey(name: string): SecretKey {
  if (!KEY_NAME.test(name)) throw new KilnError({ code: "invalid_key", message: `invalid key name ${name}` });
  const { privateKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  const raw = Buffer.concat([Buffer.from(jwk.d ?? "", "base64url"), Buffer.from(jwk.x ?? "", "base64url")]);
  return parseSecretKey(`${name}:${raw.toString("base64")}`);
}

export function signBytes(key: SecretKey, data: Buffer | string): Buffer {
  return sign(null, Buffer.from(data), key.key);
}

export function verifyBytes(key: PublicKey, data: Buffer | string, sig: Buffer): boolean {
  return sig.length === 64 && verify(null, Buffer.from(data), key.key, sig);
}

/**
 * The key in FILE, made (mode 0600) on first use. Written to a temporary file and linked into
 * place, so two processes starting at once agree on one key and nobody reads half a file.
 */
export async function loadOrCreateSecretKey(file: string, name: string): Promise<SecretKey> {
  const existing = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  if (existing !== undefined) return parseSecretKey(existing);
  await mkdir(dirname(file), { recursive: true });
  const key = generateSecretKey(name);
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, `${key.text}\n`, { mode: 0o600 });
  try {
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    await rm(tmp, { force: true });
  }
  return parseSecretKey(await readFile(file, "utf8"));
}
