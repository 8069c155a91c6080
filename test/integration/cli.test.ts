import { readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { kiln, kilnBin, projectDir } from "../helpers.js";
import { tempDir } from "../tmp.js";

/** The npm packages a kiln command line loaded (via a resolve hook, not a guess). */
async function packagesLoaded(args: string[]): Promise<Set<string>> {
  const spy = join(tempDir("kiln-loads-"), "urls");
  const spyHook = join(projectDir, "test", "fixtures", "loadSpy.mjs");
  const r = await execa("node", ["--import", spyHook, kilnBin, ...args], {
    reject: false,
    env: { KILN_LOAD_SPY: spy },
  });
  expect(r.exitCode, r.stderr).toBe(0);
  const urls = readFileSync(spy, "utf8").split("\n");
  return new Set(
    urls.map((u) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1]).filter((p) => p !== undefined),
  );
}

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

  it("loads no server, database, watcher or schema code for --version and --help", async () => {
    const heavy = ["fastify", "better-sqlite3", "chokidar", "zod", "pino", "execa"];
    // Control: a client command's own help does load its module (and chokidar behind kiln dev).
    const control = await packagesLoaded(["apps", "--help"]);
    expect([...control]).toEqual(expect.arrayContaining(["commander", "zod", "chokidar"]));
    for (const args of [["--version"], ["--help"]]) {
      const loaded = await packagesLoaded(args);
      expect([...loaded], args.join(" ")).toEqual(["commander"]);
      for (const p of heavy) expect(loaded.has(p), `${args.join(" ")} loads ${p}`).toBe(false);
    }
  });

  it("lists every command with its description, and runs a command whose module loads lazily", async () => {
    const help = await kiln(["--help"]);
    for (const word of ["build [options] [dir]", "apps:create [options] <name>", "git:credential", "verify"])
      expect(help.stdout).toContain(word);
    const sub = await kiln(["help", "config:set"]);
    expect(sub.exitCode).toBe(0);
    expect(sub.stdout).toContain("Usage: kiln config:set [options] <pairs...>");
    expect(sub.stdout).toContain("--server <url>");
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
