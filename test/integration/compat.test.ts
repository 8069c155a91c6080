/**
 * Install-time downloads (issue 13): an install script that downloads fails in the offline build
 * with an error naming the host it tried; the app's kiln.json `fetches` are the way in, fetched by
 * Nix from an allowed origin (a loopback server here, allowed with KILN_FETCH_ALLOW), checked by
 * hash, and read by the install script through the variable the entry names. Debian-like stacks:
 * what platform sniffers (Prisma's OpenSSL detection) read, seen by a build and by the running app.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BuildResult, buildApp } from "../../src/builds/build.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { buildStacks } from "../../src/stacks/stacks.js";
import { projectDir, testContext } from "../helpers.js";
import { runSlugWeb } from "../slugRunner.js";

const fixture = join(projectDir, "test", "fixtures", "apps", "download-postinstall");

describe("install-time downloads", () => {
  // Random per run: the fetch's store path is new, so Nix really fetches it from the server.
  const body = randomBytes(4096);
  const sha256 = createHash("sha256").update(body).digest("hex");
  const hits: string[] = [];
  let server: Server;
  let origin: string;
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-compat-"));

  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.push(req.url ?? "");
      if (req.url === "/engine.bin") res.end(body);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => server.close());

  function appWith(kilnJson: unknown | undefined): string {
    const dir = mkdtempSync(join(tmpdir(), "kiln-compat-app-"));
    cpSync(fixture, dir, { recursive: true });
    if (kilnJson !== undefined) writeFileSync(join(dir, "kiln.json"), JSON.stringify(kilnJson));
    return dir;
  }
  const engineFetch = (hash: string) => ({
    fetches: [{ name: "engine", url: `${origin}/engine.bin`, sha256: hash, env: { DEMO_ENGINE_PATH: "" } }],
  });

  it("without a fetch, the failed download is explained: the host, offline by design, the way in", async () => {
    const err = await buildApp(testContext({ dataDir }), { appDir: appWith(undefined) }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: "build_download_blocked",
      message: expect.stringMatching(
        /compile phase failed: the app's build tried to download from engines\.kiln-download-demo\.example \(getaddrinfo (EAI_AGAIN|ENOTFOUND)\); builds are offline by design/,
      ),
      hint: expect.stringMatching(/kiln\.json as a fetch.*KILN_FETCH_ALLOW.*nix log \/nix\/store\/.*\.drv/),
    });
  });

  it("with the fetch declared and its origin allowed, the install script reads the file and the build passes", async () => {
    const before = hits.length;
    const r = await buildApp(testContext({ dataDir, fetchAllow: [origin] }), {
      appDir: appWith(engineFetch(sha256)),
    });
    // Nix fetched it from the server (not from some cache), once.
    expect(hits.slice(before)).toEqual(["/engine.bin"]);
    const inSlug = execFileSync("tar", ["-xzOf", r.slug.path, "app/engine/engine.bin"]);
    expect(createHash("sha256").update(inSlug).digest("hex")).toBe(sha256);
  });

  it("a wrong hash fails, naming the fetch and both hashes", async () => {
    const wrong = createHash("sha256").update("something else").digest("hex");
    const err = await buildApp(testContext({ dataDir, fetchAllow: [origin] }), {
      appDir: appWith(engineFetch(wrong)),
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: "fetch_hash_mismatch",
      message: expect.stringContaining(
        `"engine" downloaded a file whose hash is sha256-${Buffer.from(sha256, "hex").toString("base64")}, not the declared sha256-${Buffer.from(wrong, "hex").toString("base64")}`,
      ),
    });
  });

  it("an origin the operator did not allow, or a malformed entry, is refused before anything is fetched", async () => {
    const before = hits.length;
    const ctx = testContext({ dataDir });
    await expect(buildApp(ctx, { appDir: appWith(engineFetch(sha256)) })).rejects.toMatchObject({
      code: "invalid_fetch",
      message: expect.stringMatching(
        /fetches\[0\] \(engine\): http:\/\/127\.0\.0\.1:\d+ is not an origin kiln fetches from/,
      ),
    });
    for (const [bad, why] of [
      [{ fetches: [{ name: "Engine", url: `${origin}/x`, sha256 }] }, /fetches\.0\.name/],
      [{ fetches: [{ name: "e", url: `${origin}/x` }] }, /exactly one of sha256 and integrity/],
      [{ fetches: [{ name: "e", url: `${origin}/x`, sha256, env: { PATH: "" } }] }, /PATH is set by kiln/],
      [
        { fetches: [{ name: "e", url: `${origin}/x`, sha256, unpack: "tar", env: { X: "../up" } }] },
        /'\.\.'/,
      ],
    ] as const) {
      await expect(
        buildApp(testContext({ dataDir, fetchAllow: [origin] }), { appDir: appWith(bad) }),
      ).rejects.toMatchObject({ code: "invalid_fetch", message: expect.stringMatching(why) });
    }
    expect(hits.length).toBe(before);
  });
});

describe("Debian-like stacks", () => {
  const t = testContext();
  let runStack = "";
  let build: BuildResult | undefined;

  beforeAll(async () => {
    await ensureSeed(t);
    const [run] = await buildStacks(t, ["run", "build"]);
    runStack = run?.storePath ?? "";
    build = await buildApp(t, { appDir: join(projectDir, "test", "fixtures", "apps", "debian-probe") });
  }, 600_000);

  it("a build and a dyno see os-release ID_LIKE=debian, openssl, ldconfig's cache and Debian's CA layout", async () => {
    if (!build) throw new Error("debian-probe was not built");
    const [res] = await runSlugWeb(runStack, build.slug.path, build.release.processTypes.web ?? "");
    expect(res?.status).toBe(200);
    const seen = JSON.parse(res?.body ?? "{}") as { build: string; run: string };
    for (const text of [seen.build, seen.run]) {
      expect(text).toContain("os-release: ID=kiln ID_LIKE=debian VERSION_ID=12 VERSION_CODENAME=bookworm");
      expect(text).toMatch(/^debian_version: 12\.\d+$/m);
      expect(text).toMatch(/^openssl: OpenSSL 3\.0\.\d+ /m);
      expect(text).toMatch(
        /^ldconfig: libssl\.so\.3 \(libc6,x86-64\) => \/lib\/x86_64-linux-gnu\/libssl\.so\.3$/m,
      );
      // What Prisma picks, both ways it looks: the right engine for this libssl.
      expect(text).toContain("binary target (ldconfig): debian-openssl-3.0.x");
      expect(text).toContain("binary target (openssl): debian-openssl-3.0.x");
      expect(text).toMatch(/^bundle: \d{2,} certificates$/m);
      // -CApath finds the issuer only through the hashed links.
      expect(text).toContain("verify: /etc/ssl/certs/ISRG_Root_X1.pem: OK");
    }
  });
});
