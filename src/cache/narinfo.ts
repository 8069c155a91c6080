/**
 * Nix's binary cache format, as far as kiln serves it: `nix-cache-info`, `HASH.narinfo` (signed) and
 * uncompressed NARs. A signature is ed25519 over the path's fingerprint
 *   1;STORE_PATH;sha256:NIX32(NAR_HASH);NAR_SIZE;REF1,REF2,…   (references as full store paths)
 * and is written `Sig: KEYNAME:BASE64`, which Nix checks against its trusted-public-keys.
 */
import type { ValidPathInfo } from "../nix/pathInfo.js";
import { type SecretKey, signBytes } from "../signing/keys.js";

const NIX32 = "0123456789abcdfghijklmnpqrsvwxyz";

/** Nix's base-32 (its own alphabet, least significant bits first), as in store paths and hashes. */
export function nix32(bytes: Uint8Array): string {
  const len = Math.ceil((bytes.length * 8) / 5);
  let out = "";
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = Math.floor(b / 8);
    const j = b % 8;
    const c = ((bytes[i] ?? 0) >> j) | (i + 1 < bytes.length ? (bytes[i + 1] ?? 0) << (8 - j) : 0);
    out += NIX32[c & 0x1f];
  }
  return out;
}

/** `sha256-BASE64` (what nix path-info --json prints) as `sha256:NIX32` (what narinfo says). */
export function narHashNix32(sri: string): string {
  const m = /^sha256-([A-Za-z0-9+/]+=*)$/.exec(sri);
  if (m?.[1]) return `sha256:${nix32(Buffer.from(m[1], "base64"))}`;
  if (/^sha256:[0-9a-df-np-sv-z]{52}$/.test(sri)) return sri;
  throw new Error(`not a sha256 NAR hash: ${sri}`);
}

export const hashPart = (storePath: string) => storePath.replace(/^\/nix\/store\//, "").slice(0, 32);
const baseName = (storePath: string) => storePath.replace(/^\/nix\/store\//, "");

export function fingerprint(
  info: Pick<ValidPathInfo, "path" | "narHash" | "narSize" | "references">,
): string {
  return `1;${info.path};${narHashNix32(info.narHash)};${info.narSize};${[...info.references].sort().join(",")}`;
}

export function signPath(key: SecretKey, info: Parameters<typeof fingerprint>[0]): string {
  return `${key.name}:${signBytes(key, fingerprint(info)).toString("base64")}`;
}

/** Where the NAR is served, named for its hash so a URL always means the same bytes. */
export const narUrl = (info: Pick<ValidPathInfo, "narHash">) =>
  `nar/${narHashNix32(info.narHash).slice("sha256:".length)}.nar`;

export function renderNarinfo(info: ValidPathInfo, key: SecretKey): string {
  const narHash = narHashNix32(info.narHash);
  const lines = [
    `StorePath: ${info.path}`,
    `URL: ${narUrl(info)}`,
    "Compression: none",
    `FileHash: ${narHash}`,
    `FileSize: ${info.narSize}`,
    `NarHash: ${narHash}`,
    `NarSize: ${info.narSize}`,
    `References: ${[...info.references].sort().map(baseName).join(" ")}`,
    ...(info.deriver ? [`Deriver: ${baseName(info.deriver)}`] : []),
    `Sig: ${signPath(key, info)}`,
    ...(info.ca ? [`CA: ${info.ca}`] : []),
  ];
  return `${lines.join("\n")}\n`;
}

export function renderCacheInfo(priority = 40): string {
  return `StoreDir: /nix/store\nWantMassQuery: 1\nPriority: ${priority}\n`;
}
