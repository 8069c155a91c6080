// Apps of each package manager and lock shape, built in the real Nix sandbox (offline installs)
// and run on stack-run: each answers 200, its devDependency pruned, its workspaces its own source.
// yarn and pnpm run from the runtime's vendored tool (/kiln/runtime/pm, .heroku/{yarn,pnpm} in the slug).
import { cp, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { listTarGz } from "../../src/archive/tar.js";
import { type BuildResult, buildApp } from "../../src/builds/build.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { buildStacks } from "../../src/stacks/stacks.js";
import { projectDir, testContext } from "../helpers.js";
import { runSlugWeb } from "../slugRunner.js";

const fixture = (name: string) => join(projectDir, "test", "fixtures", "apps", name);
const APPS = [
  { name: "npm-v1", greeting: "hello from npm-v1\n", workspace: false, web: "npm start" },
  { name: "npm-shrinkwrap", greeting: "hello from npm-shrinkwrap\n", workspace: false, web: "npm start" },
  {
    name: "npm-workspace",
    greeting: "hello from npm-workspace (a day is 86400000 ms)\n",
    workspace: true,
    web: "npm start",
  },
  { name: "yarn-classic", greeting: "hello from yarn-classic\n", workspace: false, web: "yarn start" },
  { name: "pnpm-9", greeting: "hello from pnpm-9\n", workspace: false, web: "pnpm start" },
];

describe("package managers: built offline, run, answering", () => {
  const t = testContext();
  let runStack = "";
  const built = new Map<string, BuildResult>();

  beforeAll(async () => {
    await ensureSeed(t);
    const [run] = await buildStacks(t, ["run", "build"]);
    runStack = run?.storePath ?? "";
    // Separate apps share no state: build them together.
    const results = await Promise.all(APPS.map((a) => buildApp(t, { appDir: fixture(a.name) })));
    APPS.forEach((a, i) => {
      const r = results[i];
      if (r) built.set(a.name, r);
    });
  }, 600_000);

  for (const a of APPS) {
    it(`${a.name}: web answers 200, devDependencies pruned`, async () => {
      const r = built.get(a.name);
      if (!r) throw new Error(`${a.name} was not built`);
      expect(r.release.processTypes.web).toBe(a.web);
      const paths = a.workspace ? ["/"] : ["/", "/dev"];
      const [root, dev] = await runSlugWeb(runStack, r.slug.path, r.release.processTypes.web ?? "", paths);
      expect(root?.status).toBe(200);
      expect(root?.body).toBe(a.greeting);
      if (dev) expect(JSON.parse(dev.body)).toEqual({ dev: false });
      const names = (await listTarGz(r.slug.path)).map((e) => e.path);
      if (a.workspace) {
        // The greeting's "a day is … ms" is the workspace's own registry dependency, resolved at run time.
        expect(names).toContain("app/packages/greet/index.js");
        if (a.web === "npm start") expect(names).toContain("app/packages/greet/node_modules/ms/package.json");
      }
    });
  }

  it("an app-code change reuses the dependencies derivation (workspace source is app code)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kiln-ws-"));
    await cp(fixture("npm-workspace"), dir, { recursive: true });
    await writeFile(
      join(dir, "packages", "greet", "index.js"),
      "exports.greet = (who) => `changed ${who}`;\n",
    );
    const lines: string[] = [];
    const r = await buildApp(t, {
      appDir: dir,
      app: "npm-workspace",
      onLog: (p, l) => lines.push(`${p} ${l}`),
    });
    expect(lines.some((l) => l.startsWith("dependencies "))).toBe(false);
    const [res] = await runSlugWeb(runStack, r.slug.path, r.release.processTypes.web ?? "");
    expect(res?.body).toBe("changed npm-workspace\n");
  }, 300_000);

  it("two lock files are refused before building, both named", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kiln-2lock-"));
    await cp(fixture("npm-v1"), dir, { recursive: true });
    await cp(join(fixture("yarn-classic"), "yarn.lock"), join(dir, "yarn.lock"));
    await expect(buildApp(t, { appDir: dir })).rejects.toMatchObject({
      code: "multiple_lockfiles",
      message: expect.stringMatching(/package-lock\.json, yarn\.lock/),
    });
  });

  it("a failing heroku-prebuild fails the build, named; heroku-cleanup runs last", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kiln-prebuild-"));
    const pkg = (scripts: Record<string, string>) =>
      writeFile(join(dir, "package.json"), JSON.stringify({ name: "hooks", version: "1.0.0", scripts }));
    await writeFile(join(dir, "server.js"), "");
    await pkg({ "heroku-prebuild": "exit 3" });
    const lines: string[] = [];
    await expect(buildApp(t, { appDir: dir, onLog: (_p, l) => lines.push(l) })).rejects.toThrow();
    expect(lines.join("\n")).toMatch(/the app's "heroku-prebuild" script failed \(exit 3\)/);
    await pkg({ build: "echo built > out.txt", "heroku-cleanup": "cat out.txt > cleaned.txt" });
    const r = await buildApp(t, { appDir: dir });
    const names = (await listTarGz(r.slug.path)).map((e) => e.path);
    expect(names).toContain("app/cleaned.txt");
    expect(r.release.processTypes.web).toBe("node server.js");
  }, 300_000);
});
