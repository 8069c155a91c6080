import { describe, expect, it } from "vitest";
import { kiln } from "../helpers.js";

describe("the kiln CLI", () => {
  it("has help on every command", async () => {
    for (const args of [
      ["--help"],
      ["seed", "--help"],
      ["seed", "check", "--help"],
      ["stack", "--help"],
      ["stack", "export", "--help"],
      ["stack", "exec", "--help"],
    ]) {
      const r = await kiln(args);
      expect(r.exitCode, args.join(" ")).toBe(0);
      expect(r.stdout).toContain("Usage: kiln");
    }
  });

  it("rejects unknown commands and bad arguments with exit 2 and a pointer to --help", async () => {
    const r = await kiln(["frobnicate"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("unknown command");
    const r2 = await kiln(["stack", "export", "run"]);
    expect(r2.exitCode).toBe(2);
    expect(r2.stderr).toContain("missing required argument");
  });

  it("explains an unknown stack name with the valid ones, as text and as JSON", async () => {
    const r = await kiln(["stack", "info", "bogus"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('there is no stack called "bogus"');
    expect(r.stderr).toContain("hint: the stacks are: run, build");
    const j = await kiln(["stack", "info", "bogus", "--json"]);
    expect(j.exitCode).toBe(1);
    expect(JSON.parse(j.stdout)).toEqual({
      error: {
        code: "unknown_stack",
        message: 'there is no stack called "bogus"',
        hint: "the stacks are: run, build",
      },
    });
  });

  it("refuses to import a file that does not exist, changing nothing", async () => {
    const r = await kiln(["seed", "import", "/nonexistent/seed.nar"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("cannot read /nonexistent/seed.nar");
  });
});
