import { describe, expect, it } from "vitest";
import { escapeNixString, toNix } from "../../src/nix/escape.js";

describe("toNix", () => {
  it("escapes everything that could end a string or start an antiquotation", () => {
    expect(escapeNixString('a"b\\c${d}\n')).toBe('a\\"b\\\\c\\${d}\\n');
    expect(toNix('"; builtins.abort "x')).toBe('"\\"; builtins.abort \\"x"');
  });

  it("renders values, quoting attribute names that are not identifiers", () => {
    expect(toNix({ b: [1, "x", true, null], a: { "with space": -2 }, if: 1 })).toBe(
      '{ a = { "with space" = (-2); }; b = [ (1) ("x") (true) (null) ]; "if" = 1; }',
    );
  });

  it("refuses numbers Nix cannot express", () => {
    expect(() => toNix(Number.NaN)).toThrow();
    expect(() => toNix(1e300)).toThrow();
  });
});
