import { readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { nixSettingArgs } from "../../src/nix/settings.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { leftovers, runBootstrap } from "../bootstrapRun.js";
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

// `nix run .#bootstrap -- --exit` (the hand-compiled kiln, run from the store, on the flake's source)
// ends on a failure just like `kiln bootstrap` does (test/integration/bootstrap.test.ts injects one
// at every stage): status 3, the report names the stage, nothing of it is left. Getting to the
// platform at all is the check that kiln run from the store evaluates its own nix/default.nix (it
// once failed there: "the string '{ "lockVersion": 1, … }' is not allowed to refer to a store
// path"), and then hung with its nix-daemon running.
describe("nix run .#bootstrap: a failure ends it", () => {
  const BOUND_MS = 8 * 60_000;
  it.each([
    { stage: "platform", cause: /crashed[\s\S]*injected failure \(KILN_TEST_FAIL_STAGE=platform\)/ },
    // A Nix build that goes silent: the silence bound ends it, and the build.
    {
      stage: "stage1:hang",
      silence: 20,
      cause: /stage1 showed no progress for 20 s while waiting for the Nix build of stage1/,
    },
  ])(
    "at $stage: exits 3, the report names the stage, nothing is left",
    async (f) => {
      const r = await runBootstrap({
        command: "nix",
        args: ({ apiPort, routerPort }) => [
          ...NIX,
          "run",
          `${projectDir}#bootstrap`,
          "--",
          "--exit",
          "--api-port",
          String(apiPort),
          "--router-port",
          String(routerPort),
        ],
        env: {
          KILN_TEST_FAIL_STAGE: f.stage,
          ...(f.silence ? { KILN_BOOTSTRAP_SILENCE_SECONDS: String(f.silence) } : {}),
        },
        boundMs: BOUND_MS,
      });
      const tail = r.output.slice(-4000);
      expect(r.hung, tail).toBe(false);
      expect(r.output).not.toContain("is not allowed to refer to a store path");
      expect(r.exitCode, tail).toBe(3);
      const report = r.report();
      expect(report.outcome, tail).toBe("failed");
      expect(report.failed?.stage).toBe(f.stage.split(":")[0]);
      expect(report.failed?.message).toMatch(f.cause);
      expect(r.seen.length).toBeGreaterThan(1);
      expect(await leftovers(r)).toEqual([]);
    },
    BOUND_MS + 60_000,
  );
});
