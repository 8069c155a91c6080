import { cp, readdir, readFile, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { listTarGz } from "../../src/archive/tar.js";
import { type BuildResult, buildApp } from "../../src/builds/build.js";
import { resolveAgainst, runCheck } from "../../src/repro/check.js";
import { formatReport } from "../../src/repro/report.js";
import { loadVariations, variationNames } from "../../src/repro/variations.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { buildSpecSchema } from "../../src/slug/records.js";
import { buildStacks } from "../../src/stacks/stacks.js";
import { kiln, NODE_WEB_GREETING, projectDir, testContext } from "../helpers.js";
import { runSlugWeb } from "../slugRunner.js";
import { tempDir } from "../tmp.js";

const fixture = (name: string) => join(projectDir, "test", "fixtures", "apps", name);

describe("kiln build: the fixture apps", () => {
  const t = testContext();
  let runStack = "";
  const built = new Map<string, BuildResult>();

  beforeAll(async () => {
    await ensureSeed(t);
    const [run] = await buildStacks(t, ["run", "build"]);
    runStack = run?.storePath ?? "";
  });

  const cases: {
    name: string;
    web: string;
    expect: (body: string) => void;
    extra?: (r: BuildResult) => Promise<void>;
  }[] = [
    {
      name: "node-web",
      web: "npm start",
      expect: (b) => expect(b).toBe(NODE_WEB_GREETING),
    },
    {
      name: "node-native",
      web: "npm start",
      expect: (b) => expect(b).toMatch(/^sqlite 3\.\d+\.\d+, 1 visits\n$/),
    },
    {
      // The app is itself an addon: npm's default install (node-gyp rebuild) builds it.
      name: "node-gyp-root",
      web: "npm start",
      expect: (b) => expect(b).toBe("hello from the app's own addon\n"),
    },
    {
      name: "ts-app",
      web: "npm start",
      expect: (b) => expect(b).toBe("hello from TypeScript\n"),
      extra: async (r) => {
        const names = (await listTarGz(r.slug.path)).map((e) => e.path);
        expect(names).toContain("app/dist/server.js");
        expect(names.some((n) => n.startsWith("app/node_modules/typescript/"))).toBe(false);
      },
    },
    {
      name: "static-site",
      web: "/app/.heroku/node/bin/node /app/.kiln/static-server.js",
      expect: (b) => expect(b).toContain("<h1>Static site on kiln</h1>"),
      extra: async (r) => {
        const names = (await listTarGz(r.slug.path)).map((e) => e.path);
        expect(names).not.toContain("app/logo.psd");
        expect(names.some((n) => n.startsWith("app/drafts"))).toBe(false);
        const [about] = await runSlugWeb(runStack, r.slug.path, r.release.processTypes.web ?? "", ["/about"]);
        expect(about?.status).toBe(200);
        expect(about?.body).toContain("About this static site");
        expect(about?.headers.get("x-served-by")).toBe("kiln-static");
      },
    },
    {
      name: "procfile-shell",
      web: "httpd -f -p $PORT -h /app/public",
      expect: (b) => expect(b).toBe("<h1>Procfile app on kiln</h1>\n"),
    },
    {
      name: "third-party",
      web: "httpd -f -p $PORT -h /app/public",
      expect: (b) => expect(b).toContain("<h1>Hello from a third-party buildpack</h1><p>5 words</p>"),
      extra: async (r) => {
        expect(r.release.configVars).toEqual({ GREETING_FROM: "greeting-buildpack" });
        expect(r.manifest.buildpacks.map((b) => b.name)).toEqual(["greeting", "hello-site"]);
        expect(r.manifest.buildpacks[1]?.version).toMatch(/^1\.2\.3\+/);
      },
    },
  ];

  for (const c of cases) {
    it(`${c.name}: builds, passes kiln check with every variation, and the slug serves HTTP 200 on stack-run`, async () => {
      const r = await buildApp(t, { appDir: fixture(c.name) });
      built.set(c.name, r);
      expect(r.app).toBe(c.name);
      expect(r.slug.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(r.release.processTypes.web).toBe(c.web);
      // The manifest records what went in.
      expect(r.manifest.seed.narHash).toMatch(/^sha256-/);
      expect(r.manifest.stack.path).toMatch(/-kiln-stack-build$/);
      expect(r.manifest.slug.sha256).toBe(r.slug.sha256);
      // Nothing in the output refers to the store (slugs run on stack-run alone).
      const [info] = await t.nix.pathInfo([r.outPath]);
      expect(info?.references).toEqual([]);
      // Rebuilt from scratch (dependencies and slug) with every variation of kiln check on
      // (build path, clock, TZ, locale, umask, host, user, CPUs, env, file order): the same bytes.
      const spec = buildSpecSchema.parse(JSON.parse(await readFile(r.specFile, "utf8")));
      const check = await runCheck(
        t,
        { app: r.app, spec },
        {
          builds: 1,
          variations: variationNames(await loadVariations(projectDir)),
          against: await resolveAgainst(r.slug.path, "the ordinary build"),
        },
      );
      expect(check.verdict, formatReport(check).join("\n")).toBe("reproducible");
      expect(check.builds[0]?.varied.length).toBe(check.variations.length);
      const [res] = await runSlugWeb(runStack, r.slug.path, r.release.processTypes.web ?? "");
      expect(res?.status).toBe(200);
      c.expect(res?.body ?? "");
      await c.extra?.(r);
    });
  }

  it("each app from another path, with other mtimes, TZ, LANG and umask, gives the same slug", async () => {
    for (const c of cases) {
      const first = built.get(c.name) ?? (await buildApp(t, { appDir: fixture(c.name) }));
      const copy = join(tempDir("kiln elsewhere "), "renamed-app");
      await cp(fixture(c.name), copy, { recursive: true });
      for (const f of await readdir(copy))
        await utimes(join(copy, f), new Date("2011-11-11"), new Date("2011-11-11"));
      // The third-party app names its buildpacks by relative path; from elsewhere, name them here.
      const bps =
        c.name === "third-party"
          ? ["greeting", "hello-site"].flatMap((b) => [
              "-b",
              join(projectDir, "test", "fixtures", "buildpacks", b),
            ])
          : [];
      const r = await execa(
        "sh",
        [
          "-c",
          'umask 077 && exec node "$@"',
          "sh",
          join(projectDir, "bin", "kiln.js"),
          "build",
          copy,
          "--app",
          c.name,
          "--json",
          ...bps,
        ],
        { env: { TZ: "Pacific/Kiritimati", LANG: "tr_TR.UTF-8", LC_ALL: "tr_TR.UTF-8" }, reject: false },
      );
      expect(r.stderr.slice(-2000), c.name).not.toContain("error:");
      expect(r.exitCode, c.name).toBe(0);
      expect(JSON.parse(r.stdout).slug.sha256, c.name).toBe(first.slug.sha256);
    }
  });

  it("an app-code change reuses the dependency derivation", async () => {
    const copy = join(tempDir("kiln-edit-"), "node-web");
    await cp(fixture("node-web"), copy, { recursive: true });
    // A new edit every run, so the slug is really rebuilt even on a warm store.
    const edit = `// edited ${process.pid} ${Date.now()}\n`;
    await writeFile(join(copy, "server.js"), `${await readFile(join(copy, "server.js"), "utf8")}${edit}`);
    const events: string[] = [];
    const r = await buildApp(t, { appDir: copy, app: "node-web", onLog: (phase) => events.push(phase) });
    expect(r.slug.sha256).not.toBe(built.get("node-web")?.slug.sha256);
    expect(events).not.toContain("dependencies");
    expect(events).toContain("compile");
  });
});

describe("kiln build: the CLI", () => {
  it("prints the slug path, sha256, size and process types, streams the phases; --json for scripts", async () => {
    // A config var makes this build new, so its output streams.
    const r = await kiln(["build", fixture("procfile-shell"), "--env", `NONCE=${process.pid}-${Date.now()}`]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/built procfile-shell in/);
    expect(r.stdout).toMatch(/slug {7}\/nix\/store\/[0-9a-z]{32}-kiln-slug-procfile-shell\/slug\.tgz/);
    expect(r.stdout).toMatch(/sha256 {5}[0-9a-f]{64}/);
    expect(r.stdout).toContain("web: httpd -f -p $PORT -h /app/public");
    expect(r.stderr).toMatch(/^release +\| web: httpd/m);
    const j = await kiln(["build", fixture("procfile-shell"), "--json"]);
    expect(JSON.parse(j.stdout)).toMatchObject({
      app: "procfile-shell",
      processTypes: { worker: expect.stringContaining("tick") },
    });
  });
});
