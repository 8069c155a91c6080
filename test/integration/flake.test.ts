import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { nixSettingArgs } from "../../src/nix/settings.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { projectDir, testContext } from "../helpers.js";

const NIX = nixSettingArgs();

describe("flake.nix", () => {
  beforeAll(async () => {
    await ensureSeed(testContext());
  });

  it("has no inputs, offers seed and both stacks, and `nix flake check` passes", async () => {
    const meta = await execa("nix", [...NIX, "flake", "metadata", "--json", projectDir]);
    expect(JSON.parse(meta.stdout).locks.nodes.root.inputs ?? {}).toEqual({});
    const show = await execa("nix", [
      ...NIX,
      "eval",
      "--json",
      `${projectDir}#packages.x86_64-linux`,
      "--apply",
      "builtins.attrNames",
    ]);
    expect(JSON.parse(show.stdout)).toEqual(expect.arrayContaining(["seed", "stack-build", "stack-run"]));
    const check = await execa("nix", [...NIX, "flake", "check", projectDir], { reject: false });
    expect(check.stderr).not.toContain("error:");
    expect(check.exitCode).toBe(0);
  });

  it("builds the same stacks as the kiln CLI (one definition, two front doors)", async () => {
    const t = testContext();
    const viaFlake = await execa("nix", [...NIX, "eval", "--raw", `${projectDir}#stack-run.outPath`]);
    const viaKiln = await t.nix.eval({ file: `${projectDir}/nix/default.nix`, attr: "stack-run.outPath" });
    expect(viaFlake.stdout).toBe(viaKiln);
  });
});
