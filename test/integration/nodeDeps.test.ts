// The dependency plan is made twice: by kiln's TypeScript (checks, readable errors) and by
// nix/build/node-deps.nix (what is built, also in pure flake evaluation). They must agree.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parsePackageLock, planDependencies } from "../../src/buildpacks/nodejs.js";
import { toNix } from "../../src/nix/escape.js";
import { projectDir, testContext } from "../helpers.js";

const REGISTRY = "https://registry.example.invalid/";

describe("the dependency plan: TypeScript and Nix agree", () => {
  for (const dir of [
    join(projectDir, "test", "fixtures", "apps", "node-web"),
    join(projectDir, "test", "fixtures", "apps", "node-native"),
    projectDir, // kiln itself: optional platform packages, scoped names, dev dependencies
  ]) {
    it(`${dir.slice(projectDir.length) || "kiln"}: the same tarballs, names, hashes and URLs`, async () => {
      const t = testContext();
      const lock = parsePackageLock(readFileSync(join(dir, "package-lock.json"), "utf8"));
      const ts = planDependencies(lock, REGISTRY).tarballs;
      const nix = (await t.nix.eval({
        expr: `(import ${toNix(join(projectDir, "nix", "build", "node-deps.nix"))} { source = ${toNix(dir)}; registry = ${toNix(REGISTRY)}; busybox = "unused"; }).plan`,
      })) as { name: string; url: string; integrity: string }[];
      expect(nix.length).toBeGreaterThan(0);
      expect(nix).toEqual(ts.map((x) => ({ name: x.name, url: x.url, integrity: x.integrity })));
    });
  }
});
