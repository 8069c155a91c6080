import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultProjectDir } from "../../src/config/config.js";
import { NIX_CONSTANTS } from "../../src/nix/constants.js";
import { importExpr, selectExpr, toNix } from "../../src/nix/escape.js";

const nixEval = (expr: string): unknown =>
  JSON.parse(
    execFileSync("nix-instantiate", ["--eval", "--strict", "--json", "--expr", expr], { encoding: "utf8" }),
  );

describe("nix/constants.json", () => {
  it("is what Nix reads (nix/constants.nix) and what TypeScript reads (src/nix/constants.ts)", () => {
    const file = join(defaultProjectDir(), "nix", "constants.nix");
    const nix = nixEval(
      `let c = import ${toNix(file)}; in { inherit (c) system busybox sourceDateEpoch; builder = c.busyboxOf "/seed"; }`,
    );
    expect(nix).toEqual({ ...NIX_CONSTANTS, builder: `/seed/${NIX_CONSTANTS.busybox}` });
    expect(NIX_CONSTANTS.sourceDateEpoch).toBe(315532800);
  });
});

describe("importExpr and selectExpr", () => {
  it("apply a Nix file to escaped arguments, and select and apply its attributes", () => {
    const hostile = '"; builtins.abort "x ${y}';
    expect(importExpr("/a b/x.nix", { src: hostile, n: 1 })).toBe(
      '(import "/a b/x.nix" { n = 1; src = "\\"; builtins.abort \\"x \\${y}"; })',
    );
    // Evaluated by Nix: the hostile string arrives as data.
    expect(nixEval(selectExpr(`{ f = a: b: a + b; }`, "f", [hostile, "!"]))).toBe(`${hostile}!`);
    expect(() => selectExpr("{ }", "a.b")).toThrow(TypeError);
  });
});
