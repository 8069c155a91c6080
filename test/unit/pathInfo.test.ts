import { describe, expect, it } from "vitest";
import { parsePathInfo } from "../../src/nix/pathInfo.js";

describe("path-info JSON", () => {
  it("splits valid and missing paths and sorts references", () => {
    const json = JSON.stringify([
      {
        path: "/nix/store/44qhi1ffkrg03i8fc3idv7m4prpgw3il-kiln-seed",
        narHash: "sha256-NVhnKd9V5easm0Ru3Die7/iDWFZiT3mN4lXf866efHU=",
        narSize: 2049952,
        references: ["/nix/store/b", "/nix/store/a"],
        ca: "fixed:r:sha256:0xbwkspg7psmwa6pjkv2arc87y7gkqwdqvj4kfnfdramvwlnfn1m",
        closureSize: 2049952,
        registrationTime: 1795618794,
      },
      { path: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x", valid: false },
    ]);
    const r = parsePathInfo(json);
    expect(r.missing).toEqual(["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"]);
    expect(r.valid[0]).toMatchObject({
      narSize: 2049952,
      closureSize: 2049952,
      references: ["/nix/store/a", "/nix/store/b"],
    });
  });

  it("rejects output that is not path-info", () => {
    expect(() => parsePathInfo('[{"path":"/nix/store/x"}]')).toThrow();
    expect(() => parsePathInfo("{}")).toThrow();
  });
});
