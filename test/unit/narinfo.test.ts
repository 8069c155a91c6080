import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fingerprint, narHashNix32, nix32, signPath } from "../../src/cache/narinfo.js";
import { generateSecretKey } from "../../src/signing/keys.js";

const nix = (args: string[]) =>
  execFileSync(
    "nix",
    ["--extra-experimental-features", "nix-command", "--option", "substituters", "", ...args],
    {
      encoding: "utf8",
    },
  ).trim();

describe("narinfo: Nix's base-32 and path signatures, checked against Nix itself", () => {
  it("nix32 is what nix hash to-base32 prints", () => {
    const bytes = Buffer.from("0123456789abcdef0123456789abcdef");
    const sri = `sha256-${bytes.toString("base64")}`;
    expect(nix32(bytes)).toBe(nix(["hash", "to-base32", sri]));
    expect(narHashNix32(sri)).toBe(`sha256:${nix32(bytes)}`);
  });

  it("signPath gives the signature nix store sign gives (ed25519 is deterministic)", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-narinfo-"));
    const store = join(dir, "store");
    const file = join(dir, "hello.txt");
    writeFileSync(file, "hello\n");
    const path = nix(["store", "add-file", "--store", store, file]);
    const key = generateSecretKey("unit-cache-1");
    const keyFile = join(dir, "key.sec");
    writeFileSync(keyFile, key.text);
    nix(["store", "sign", "--store", store, "--key-file", keyFile, path]);
    const [info] = JSON.parse(nix(["path-info", "--json", "--store", store, path])) as {
      path: string;
      narHash: string;
      narSize: number;
      references: string[];
      signatures: string[];
    }[];
    if (!info) throw new Error("no path info");
    expect(fingerprint(info)).toBe(`1;${path};${narHashNix32(info.narHash)};${info.narSize};`);
    expect(info.signatures).toContain(signPath(key, info));
  });
});
