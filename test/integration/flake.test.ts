import { readFileSync } from "node:fs";
import { join } from "node:path";
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
    expect(JSON.parse(show.stdout)).toEqual(
      expect.arrayContaining([
        "seed",
        "stack-build",
        "stack-run",
        "kiln",
        "kiln-stage0",
        "kiln-stage1",
        "kiln-stage2",
        "kiln-stage3",
      ]),
    );
    const checks = await execa("nix", [
      ...NIX,
      "eval",
      "--json",
      `${projectDir}#checks.x86_64-linux`,
      "--apply",
      "builtins.attrNames",
    ]);
    expect(JSON.parse(checks.stdout)).toEqual(
      expect.arrayContaining([
        "fixed-point",
        "repro-static-site",
        "repro-procfile-shell",
        "repro-node-web",
        "repro-kiln",
      ]),
    );
    // Builds the stages (cached after setup's bootstrap) and the fixed-point check itself.
    const check = await execa("nix", [...NIX, "flake", "check", projectDir], { reject: false });
    expect(check.stderr).not.toContain("error:");
    expect(check.exitCode).toBe(0);
    const fp = await execa("nix", [
      ...NIX,
      "eval",
      "--raw",
      `${projectDir}#checks.x86_64-linux.fixed-point.outPath`,
    ]);
    expect(readFileSync(join(fp.stdout, "report.txt"), "utf8")).toMatch(
      /^the stage2 and stage3 slugs are byte-identical \(sha256 [0-9a-f]{64}\)$/m,
    );
    // kiln check in pure Nix: each fixture's and kiln's own ordinary and fully varied builds.
    for (const name of ["static-site", "procfile-shell", "node-web", "kiln"]) {
      const out = await execa("nix", [
        ...NIX,
        "eval",
        "--raw",
        `${projectDir}#checks.x86_64-linux.repro-${name}.outPath`,
      ]);
      expect(readFileSync(join(out.stdout, "report.txt"), "utf8")).toMatch(
        /^the ordinary and varied slugs are byte-identical \(sha256 [0-9a-f]{64}\)$/m,
      );
    }
  });

  it("`nix run .#kiln -- --help` runs kiln as built by itself (stage2)", async () => {
    const r = await execa("nix", [...NIX, "run", `${projectDir}#kiln`, "--", "--help"]);
    expect(r.stdout).toContain("Usage: kiln");
    expect(r.stdout).toContain("bootstrap");
    const program = await execa("nix", [
      ...NIX,
      "eval",
      "--raw",
      `${projectDir}#apps.x86_64-linux.bootstrap.program`,
    ]);
    expect(program.stdout).toMatch(/^\/nix\/store\/[0-9a-z]{32}-kiln-bootstrap\/bin\/kiln-bootstrap$/);
  });

  it("builds the same stacks as the kiln CLI (one definition, two front doors)", async () => {
    const t = testContext();
    const viaFlake = await execa("nix", [...NIX, "eval", "--raw", `${projectDir}#stack-run.outPath`]);
    const viaKiln = await t.nix.eval({ file: `${projectDir}/nix/default.nix`, attr: "stack-run.outPath" });
    expect(viaFlake.stdout).toBe(viaKiln);
  });
});
