/**
 * Two kilns, two Nix stores, one machine. Kiln A builds a fixture in this machine's store and serves
 * its signed cache (`kiln serve`'s /nix-cache). Kiln B has a store of its own (a chroot store under
 * a temp dir) that starts with nothing but the seed, moved there with `kiln seed export` / `kiln
 * seed import`:
 *   1. Attack: a cache that serves a forged slug under the slug's store path, signed by its own key.
 *      Control: a Nix that does not check signatures takes the forged bytes.
 *   2. With that forged cache as B's only substituter and A's key trusted, Nix refuses the forgery
 *      and B builds the fixture from the seed alone: the same slug sha256 as A's (the cross-store
 *      proof), a path Nix records as built here, unsigned.
 *   3. With the slug deleted from B, `kiln build --substituter A --trusted-key A's key` gets the slug
 *      from A instead of building it: nothing is built, B's copy carries A's signature, same bytes.
 */
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashPart, renderCacheInfo, renderNarinfo } from "../../src/cache/narinfo.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { generateSecretKey } from "../../src/signing/keys.js";
import { buildStacks } from "../../src/stacks/stacks.js";
import { hashFile } from "../../src/util/fs.js";
import { type CacheServer, startCacheServer } from "../cacheServer.js";
import { kiln, projectDir, testContext, throwawayStore } from "../helpers.js";
import { tempDir } from "../tmp.js";

const NIX = ["--extra-experimental-features", "nix-command"];
const nix = (args: string[]) => execa("nix", [...NIX, ...args], { reject: false, all: true });
const FIXTURE = join(projectDir, "test", "fixtures", "apps", "procfile-shell");
const APP = "subst";

interface BuildJson {
  slug: { path: string; sha256: string };
  builtOn: string[];
}

describe("another kiln with its own store: cross-store build, --substituter, a forged cache refused", () => {
  let a: CacheServer;
  let aKey = "";
  let slugOut = "";
  let slugSha = "";
  const b = { store: "", dataDir: "" };
  const forged = { server: undefined as Server | undefined, url: "", bytes: Buffer.alloc(0), sha: "" };
  const inB = (path: string) => join(b.store, path);
  const kilnB = (args: string[], env: Record<string, string> = {}) =>
    kiln(["--store", b.store, "--data-dir", b.dataDir, ...args], { env });
  const validInB = async (path: string) =>
    (await nix(["path-info", "--store", b.store, path])).exitCode === 0;
  /** Removes the slug from B's store (its GC root first), so the next build must get it again. */
  async function dropSlugFromB() {
    await rm(join(b.dataDir, "gcroots", `slug-${APP}`), { force: true });
    const del = await nix(["store", "delete", "--store", b.store, slugOut]);
    expect(del.exitCode, del.all).toBe(0);
    expect(await validInB(slugOut)).toBe(false);
  }

  beforeAll(async () => {
    const t = testContext();
    await ensureSeed(t);
    await buildStacks(t, ["build"]);
    a = await startCacheServer({ prefix: "kiln-subst-a-" });
    const built = await kiln(["build", FIXTURE, "--app", APP, "--json"], {
      env: { KILN_DATA_DIR: a.dataDir },
    });
    expect(built.exitCode, built.all).toBe(0);
    const j = JSON.parse(built.stdout) as BuildJson;
    slugOut = dirname(j.slug.path);
    slugSha = j.slug.sha256;
    aKey = (await a.k("cache", "key")).stdout.trim();

    // B: a fresh store given only the seed, the way a second machine gets it.
    Object.assign(b, await throwawayStore());
    const nar = join(tempDir("kiln-subst-seed-"), "seed.nar");
    const ex = await kiln(["seed", "export", nar]);
    expect(ex.exitCode, ex.all).toBe(0);
    const im = await kilnB(["seed", "import", nar]);
    expect(im.exitCode, im.all).toBe(0);
    await rm(dirname(nar), { recursive: true, force: true });

    // The forged cache: other bytes under the slug's store path, signed by a key of its own.
    const dir = join(tempDir("kiln-subst-forged-"), "slug");
    mkdirSync(dir);
    writeFileSync(join(dir, "slug.tgz"), "not the slug A built\n");
    forged.bytes = Buffer.from((await execa("nix-store", ["--dump", dir], { encoding: "buffer" })).stdout);
    forged.sha = createHash("sha256").update("not the slug A built\n").digest("hex");
    const narHash = `sha256-${createHash("sha256").update(forged.bytes).digest("base64")}`;
    const info = { path: slugOut, narHash, narSize: forged.bytes.length, references: [] as string[] };
    const narinfo = renderNarinfo(info as Parameters<typeof renderNarinfo>[0], generateSecretKey("forger-1"));
    const narPath = `/${narinfo.match(/^URL: (\S+)$/m)?.[1]}`;
    forged.server = createServer((req, res) => {
      const body =
        req.url === "/nix-cache-info"
          ? renderCacheInfo()
          : req.url === `/${hashPart(slugOut)}.narinfo`
            ? narinfo
            : req.url === narPath
              ? forged.bytes
              : undefined;
      res.writeHead(body === undefined ? 404 : 200).end(body);
    });
    await new Promise<void>((r) => forged.server?.listen(0, "127.0.0.1", r));
    forged.url = `http://127.0.0.1:${(forged.server.address() as AddressInfo).port}`;
  }, 600_000);
  afterAll(async () => {
    await a?.stop();
    forged.server?.close();
    if (b.store) await rm(dirname(b.store), { recursive: true, force: true });
  });

  it("control: a Nix that does not check signatures takes the forged slug for the slug's path", async () => {
    const open = (await throwawayStore()).store;
    const c = await nix([
      "copy",
      "--option",
      "substituters",
      "",
      "--option",
      "require-sigs",
      "false",
      "--from",
      forged.url,
      "--to",
      open,
      slugOut,
    ]);
    expect(c.exitCode, c.all).toBe(0);
    expect(await hashFile(join(open, slugOut, "slug.tgz"), "sha256")).toBe(forged.sha);
    await rm(dirname(open), { recursive: true, force: true });
  });

  it("B, offered only the forged slug with A's key trusted, refuses it and builds from the seed alone: A's slug sha256", async () => {
    expect(await validInB(slugOut)).toBe(false);
    // The forger's cache is B's only substituter: it has the forged slug and nothing else, so
    // B builds everything (stack, slug) from the imported seed.
    const r = await kilnB([
      "build",
      FIXTURE,
      "--app",
      APP,
      "--substituter",
      forged.url,
      "--trusted-key",
      aKey,
      "--json",
    ]);
    expect(r.exitCode, r.all).toBe(0);
    const j = JSON.parse(r.stdout) as BuildJson;
    expect(j.builtOn).toEqual(["local"]);
    expect(j.slug.path).toBe(inB(join(slugOut, "slug.tgz")));
    expect(j.slug.sha256).toBe(slugSha);
    expect(await hashFile(inB(join(slugOut, "slug.tgz")), "sha256")).toBe(slugSha);
    // Nix's own record: built here ("ultimate", unsigned), not the forger's signed path.
    const info = await nix(["path-info", "--json", "--store", b.store, slugOut]);
    const [p] = JSON.parse(info.stdout) as { ultimate?: boolean; signatures?: string[] }[];
    expect(p?.ultimate).toBe(true);
    expect(p?.signatures ?? []).toEqual([]);
  }, 300_000);

  it("--substituter A --trusted-key KEY: B gets the slug from A instead of building it", async () => {
    await dropSlugFromB();
    const r = await kilnB(
      [
        "build",
        FIXTURE,
        "--app",
        APP,
        "--substituter",
        `${a.url}/nix-cache`,
        "--trusted-key",
        aKey,
        "--json",
      ],
      { KILN_NETRC_FILE: a.netrc() },
    );
    expect(r.exitCode, r.all).toBe(0);
    const j = JSON.parse(r.stdout) as BuildJson;
    expect(j.builtOn).toEqual([]); // Nix built nothing
    expect(j.slug.sha256).toBe(slugSha);
    // Nix's own record: a substituted path, signed by A's cache key (a path built here is
    // "ultimate" and unsigned, as the previous test's was).
    const info = await nix(["path-info", "--json", "--store", b.store, slugOut]);
    const [p] = JSON.parse(info.stdout) as { ultimate?: boolean; signatures?: string[] }[];
    expect(p?.ultimate ?? false).toBe(false);
    expect(p?.signatures?.some((s) => s.startsWith(`${aKey.split(":")[0]}:`))).toBe(true);
  }, 300_000);
});
