// Apps of each package manager and lock shape, built in the real Nix sandbox (offline installs)
// and run on stack-run: each answers 200, its devDependency pruned, its workspaces its own source.
// yarn and pnpm run from the runtime's vendored tool (/kiln/runtime/pm, .heroku/{yarn,pnpm} in the slug).
import { cp, mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { listTarGz } from "../../src/archive/tar.js";
import { type BuildResult, buildApp, npmRegistry } from "../../src/builds/build.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { buildStacks } from "../../src/stacks/stacks.js";
import { projectDir, testContext } from "../helpers.js";
import { runSlugWeb, type SlugResponse } from "../slugRunner.js";

const fixture = (name: string) => join(projectDir, "test", "fixtures", "apps", name);
const APPS: {
  name: string;
  greeting: string;
  workspace: boolean;
  web: string;
  /** In the slug besides the app's own files. */
  files?: string[];
  /** No slug path matches. */
  absent?: RegExp;
  /** The fixture's https://registry.kiln.invalid/ is this machine's registry (its host stays out of the repo). */
  registryUrls?: boolean;
}[] = [
  { name: "npm-v1", greeting: "hello from npm-v1\n", workspace: false, web: "npm start" },
  { name: "npm-shrinkwrap", greeting: "hello from npm-shrinkwrap\n", workspace: false, web: "npm start" },
  {
    name: "npm-workspace",
    greeting: "hello from npm-workspace (a day is 86400000 ms)\n",
    workspace: true,
    // Its own postinstall ran in its directory, with its dependency installed.
    files: ["app/packages/greet/installed.txt"],
    web: "npm start",
  },
  { name: "yarn-classic", greeting: "hello from yarn-classic\n", workspace: false, web: "yarn start" },
  { name: "pnpm-9", greeting: "hello from pnpm-9\n", workspace: false, web: "pnpm start" },
  {
    name: "yarn-workspace",
    greeting: "hello from yarn-workspace (a day is 86400000 ms)\n",
    workspace: true,
    // Its own postinstall ran in its directory, with its dependency installed.
    files: ["app/packages/greet/installed.txt"],
    web: "yarn start",
  },
  {
    name: "pnpm-workspace",
    greeting: "hello from pnpm-workspace (a day is 86400000 ms)\n",
    workspace: true,
    // Its own postinstall ran in its directory, with its dependency installed.
    files: ["app/packages/greet/installed.txt"],
    web: "pnpm start",
  },
  // URL tarball dependencies (pnpm 10 records their integrity): pinned by it, fetched by Nix from the
  // lock's URL, installed from the loopback registry the lock's URLs are pointed at.
  {
    name: "pnpm-tarball",
    greeting: "hello from pnpm-tarball (a day is 86400000 ms)\n",
    workspace: false,
    web: "pnpm start",
    registryUrls: true,
  },
  // yarn 2+ with Plug'n'Play: no node_modules, the app runs through .pnp.cjs and berry's cache.
  {
    name: "yarn-berry",
    greeting: "hello from yarn-berry\n",
    workspace: false,
    web: "yarn start",
    files: ["app/.pnp.cjs", "app/.yarn/cache/express-npm-4.22.3-0e3c18b654-6345a6d460.zip"],
    absent: /^app\/node_modules\//,
  },
];

async function appDir(a: (typeof APPS)[number]): Promise<string> {
  if (!a.registryUrls) return fixture(a.name);
  const dir = await mkdtemp(join(tmpdir(), `kiln-${a.name}-`));
  const registry = (await npmRegistry()).replace(/\/?$/, "/");
  for (const f of await readdir(fixture(a.name))) {
    const text = await readFile(join(fixture(a.name), f), "utf8");
    await writeFile(join(dir, f), text.replaceAll("https://registry.kiln.invalid/", registry));
  }
  return dir;
}

interface Checked {
  build: BuildResult;
  responses: SlugResponse[];
  names: string[];
}

describe("package managers: built offline, run, answering", () => {
  const t = testContext();
  let runStack = "";
  const checked = new Map<string, Checked | Error>();

  beforeAll(async () => {
    await ensureSeed(t);
    const [run] = await buildStacks(t, ["run", "build"]);
    runStack = run?.storePath ?? "";
    // Separate apps share no state: each is built and then run as soon as it is built, while the
    // others still build (the checks overlap the builds). Each test below reports its own app.
    await Promise.all(
      APPS.map(async (a) => {
        try {
          const build = await buildApp(t, { appDir: await appDir(a) });
          const paths = a.workspace ? ["/"] : ["/", "/dev"];
          const responses = await runSlugWeb(
            runStack,
            build.slug.path,
            build.release.processTypes.web ?? "",
            paths,
          );
          const names = (await listTarGz(build.slug.path)).map((e) => e.path);
          checked.set(a.name, { build, responses, names });
        } catch (err) {
          checked.set(a.name, err as Error);
        }
      }),
    );
  }, 900_000);

  for (const a of APPS) {
    it(`${a.name}: web answers 200, devDependencies pruned`, () => {
      const c = checked.get(a.name);
      if (!c) throw new Error(`${a.name} was not built`);
      if (c instanceof Error) throw c;
      const { build, responses, names } = c;
      expect(build.release.processTypes.web).toBe(a.web);
      const [root, dev] = responses;
      expect(root?.status).toBe(200);
      expect(root?.body).toBe(a.greeting);
      if (!a.workspace) expect(JSON.parse(dev?.body ?? "")).toEqual({ dev: false });
      if (a.workspace) {
        // The greeting's "a day is … ms" is the workspace's own registry dependency, resolved at run time.
        expect(names).toContain("app/packages/greet/index.js");
        if (a.web === "npm start") expect(names).toContain("app/packages/greet/node_modules/ms/package.json");
      }
      for (const f of a.files ?? []) expect(names).toContain(f);
      if (a.absent) expect(names.filter((n) => a.absent?.test(n))).toEqual([]);
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

  it("a workspace package's failing install script fails the build, naming the workspace", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kiln-wsfail-"));
    await mkdir(join(dir, "packages", "a"), { recursive: true });
    const root = { name: "wsfail", version: "1.0.0", workspaces: ["packages/*"] };
    const a = { name: "a", version: "1.0.0", scripts: { postinstall: "exit 5" } };
    await writeFile(join(dir, "package.json"), JSON.stringify(root));
    await writeFile(join(dir, "packages", "a", "package.json"), JSON.stringify(a));
    await writeFile(join(dir, "server.js"), "");
    // As npm writes it for a workspace with no registry dependencies.
    const lock = {
      name: "wsfail",
      version: "1.0.0",
      lockfileVersion: 3,
      requires: true,
      packages: {
        "": { name: "wsfail", version: "1.0.0", workspaces: ["packages/*"] },
        "node_modules/a": { resolved: "packages/a", link: true },
        "packages/a": { version: "1.0.0", hasInstallScript: true },
      },
    };
    await writeFile(join(dir, "package-lock.json"), JSON.stringify(lock, null, 2));
    const lines: string[] = [];
    await expect(buildApp(t, { appDir: dir, onLog: (_p, l) => lines.push(l) })).rejects.toThrow();
    expect(lines.join("\n")).toMatch(/workspace packages\/a's "postinstall" script failed \(exit 5\)/);
  }, 300_000);
});
