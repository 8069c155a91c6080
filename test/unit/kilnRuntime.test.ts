// nix/bootstrap/runtime.json is what pure Nix builds kiln's stage1 with; the platform builds stage2
// with the resolver. They must agree, or stage1's slug differs from stage2's (it once did: Node 22
// from the stack against Node 24 from engines ">=20").
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { KILN_RUNTIME_FILE, kilnRuntimeText } from "../../src/bootstrap/kilnRuntime.js";
import { tempDir } from "../tmp.js";

const root = join(import.meta.dirname, "..", "..");

describe("nix/bootstrap/runtime.json", () => {
  it("is what kiln's build resolves for kiln's package.json from nix/inventory", async () => {
    const pinned = readFileSync(join(root, KILN_RUNTIME_FILE), "utf8");
    expect(
      pinned,
      "stale: run `npm run kiln -- inventory update`, or write src/bootstrap/kilnRuntime.ts's output",
    ).toBe(await kilnRuntimeText(root));
  });

  it("differs once engines.node picks another Node (the check above can fail)", async () => {
    const dir = tempDir("kiln-runtime-pin-");
    mkdirSync(join(dir, "nix"));
    symlinkSync(join(root, "nix", "inventory"), join(dir, "nix", "inventory"));
    writeFileSync(join(dir, "package.json"), JSON.stringify({ engines: { node: "20.x" } }));
    const other = JSON.parse(await kilnRuntimeText(dir));
    expect(other.node.version).toMatch(/^20\./);
    expect(other.registry).toBeUndefined();
    expect(await kilnRuntimeText(dir)).not.toBe(readFileSync(join(root, KILN_RUNTIME_FILE), "utf8"));
  });
});
