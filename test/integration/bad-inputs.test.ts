import { randomBytes } from "node:crypto";
import { mkdir, readdir, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../src/builds/build.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { kiln, testContext, throwawayStore } from "../helpers.js";
import { tempDir } from "../tmp.js";

/** Writes an app from a map of file name → content into a fresh directory. */
async function app(files: Record<string, string | Buffer>): Promise<string> {
  const dir = tempDir("kiln-bad-");
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(dir, name, ".."), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  return dir;
}

const lock = (deps: Record<string, string>, packages: Record<string, unknown> = {}) =>
  JSON.stringify({
    name: "bad",
    version: "1.0.0",
    lockfileVersion: 3,
    requires: true,
    packages: { "": { name: "bad", version: "1.0.0", dependencies: deps }, ...packages },
  });

describe("kiln build: bad input fails before building, with a clear message, changing nothing", () => {
  // A separate data directory: after every failure it must hold no record, root or leftover.
  let dataDir = "";
  const server = createServer((_req, res) => res.end("reached"));
  let port = 0;

  beforeAll(async () => {
    await ensureSeed(testContext());
    dataDir = (await throwawayStore()).dataDir;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  async function expectNothingRecorded() {
    const entries = await readdir(dataDir).catch(() => [] as string[]);
    expect(entries.filter((e) => e === "builds")).toEqual([]);
    expect(await readdir(join(dataDir, "tmp")).catch(() => [])).toEqual([]);
    const roots = await readdir(join(dataDir, "gcroots")).catch(() => [] as string[]);
    expect(roots.filter((r) => r.startsWith("slug-"))).toEqual([]);
  }

  const cases: {
    name: string;
    files: Record<string, string>;
    code: string;
    message: RegExp;
    hint?: RegExp;
    args?: string[];
  }[] = [
    {
      name: "no buildpack detects",
      files: { "README.txt": "just text" },
      code: "no_buildpack",
      message: /no buildpack detects the app/,
      hint: /nodejs needs package\.json/,
    },
    {
      name: "dependencies without a lock file",
      files: {
        "package.json": JSON.stringify({ name: "bad", version: "1.0.0", dependencies: { ms: "^2.1.3" } }),
      },
      code: "lockfile_missing",
      message: /no package-lock\.json/,
      hint: /npm install --package-lock-only/,
    },
    {
      name: "lock out of sync with package.json",
      files: {
        "package.json": JSON.stringify({
          name: "bad",
          version: "1.0.0",
          dependencies: { ms: "^2.1.3", debug: "^4" },
        }),
        "package-lock.json": lock(
          { ms: "^2.1.3" },
          {
            "node_modules/ms": {
              version: "2.1.3",
              integrity:
                "sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==",
            },
          },
        ),
      },
      code: "lockfile_out_of_sync",
      message: /dependencies\.debug: in package\.json \(\^4\) but not in the lock/,
      hint: /npm install/,
    },
    {
      name: "a git dependency",
      files: {
        "package.json": JSON.stringify({
          name: "bad",
          version: "1.0.0",
          dependencies: { thing: "git+ssh://git@example.invalid/thing.git" },
        }),
        "package-lock.json": lock(
          { thing: "git+ssh://git@example.invalid/thing.git" },
          {
            "node_modules/thing": {
              version: "1.0.0",
              resolved: "git+ssh://git@example.invalid/thing.git#abc",
            },
          },
        ),
      },
      code: "unsupported_dependencies",
      message:
        /node_modules\/thing: git\+ssh:\/\/git@example\.invalid\/thing\.git — git and file dependencies/,
    },
    {
      name: "a file: dependency",
      files: {
        "package.json": JSON.stringify({
          name: "bad",
          version: "1.0.0",
          dependencies: { local: "file:../local.tgz" },
        }),
        "package-lock.json": lock(
          { local: "file:../local.tgz" },
          { "node_modules/local": { version: "1.0.0", resolved: "file:../local.tgz" } },
        ),
      },
      code: "unsupported_dependencies",
      message: /file:\.\.\/local\.tgz/,
    },
    {
      name: "an http: tarball without integrity",
      files: {
        "package.json": JSON.stringify({
          name: "bad",
          version: "1.0.0",
          dependencies: { plain: "http://example.invalid/plain.tgz" },
        }),
        "package-lock.json": lock(
          { plain: "http://example.invalid/plain.tgz" },
          { "node_modules/plain": { version: "1.0.0", resolved: "http://example.invalid/plain.tgz" } },
        ),
      },
      code: "unsupported_dependencies",
      message: /plain http without an integrity hash/,
    },
    {
      name: "a malformed Procfile",
      files: { Procfile: "web: ok\nthis line has no colon\nworker:\n" },
      code: "invalid_procfile",
      message: /line 2: expected `name: command`[\s\S]*line 3: process type "worker" has no command/,
    },
    {
      name: "an engines.node no pinned runtime satisfies",
      files: { "package.json": JSON.stringify({ name: "bad", version: "1.0.0", engines: { node: ">=99" } }) },
      code: "node_version_unavailable",
      message: /engines\.node ">=99" matches no Node release kiln has/,
      hint: /available lines \(newest of each\): .*22\./,
    },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const dir = await app(c.files);
      const t = testContext({ dataDir });
      await expect(buildApp(t, { appDir: dir })).rejects.toMatchObject({
        code: c.code,
        message: expect.stringMatching(c.message),
        ...(c.hint ? { hint: expect.stringMatching(c.hint) } : {}),
      });
      await expectNothingRecorded();
      // The CLI: exit 1, the message and the hint on stderr.
      const r = await kiln(["--data-dir", dataDir, "build", dir]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(c.message);
      if (c.hint) expect(r.stderr).toMatch(/\nhint: /);
    });
  }

  it("a symlink out of the app", async () => {
    const dir = await app({ Procfile: "web: true\n" });
    await symlink("/etc/passwd", join(dir, "passwd"));
    await expect(buildApp(testContext({ dataDir }), { appDir: dir })).rejects.toMatchObject({
      code: "source_unsafe_link",
    });
    await expectNothingRecorded();
  });

  it("a directory that does not exist", async () => {
    const r = await kiln(["--data-dir", dataDir, "build", "/nonexistent/app"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("/nonexistent/app is not a directory");
  });

  it("a postinstall that reaches for the network fails the build with the sandbox's error", async () => {
    const script = `node -e "require('http').get('http://127.0.0.1:${port}/', (r) => console.log('STATUS=' + r.statusCode)).on('error', (e) => { console.error('postinstall network error: ' + e.code); process.exit(1); })"`;
    const dir = await app({
      "package.json": JSON.stringify({ name: "netty", version: "1.0.0", scripts: { postinstall: script } }),
      "package-lock.json": JSON.stringify({
        name: "netty",
        version: "1.0.0",
        lockfileVersion: 3,
        requires: true,
        packages: { "": { name: "netty", version: "1.0.0" } },
      }),
    });
    const t = testContext({ dataDir });
    const err = await buildApp(t, { appDir: dir }).catch((e: unknown) => e);
    // The build failed, and kiln says why: it tried the network (src/builds/offlineHint.ts).
    expect(err).toMatchObject({ code: "build_download_blocked" });
    const tail = (err as { logTail: string[] }).logTail.join("\n");
    expect(tail).toContain("postinstall network error: ECONNREFUSED");
    expect(tail).not.toMatch(/STATUS=\d/);
    await expectNothingRecorded();
  });

  it("a slug over the size limit fails with its size and the largest paths", async () => {
    const dir = await app({
      Procfile: "web: httpd -f -p $PORT -h /app\n",
      "big.bin": randomBytes(300_000),
      "small.txt": "y",
    });
    const err = await buildApp(testContext({ dataDir }), { appDir: dir, slugMaxBytes: 1000 }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "nix_build_failed" });
    const tail = (err as { logTail: string[] }).logTail.join("\n");
    expect(tail).toMatch(/the slug is [\d.]+ MB compressed, over the 0\.0 MB limit/);
    expect(tail).toMatch(/big\.bin/);
    await expectNothingRecorded();
  });
});
