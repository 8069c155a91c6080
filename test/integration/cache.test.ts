/**
 * The signed binary cache with the real Nix on both sides: a build deployed through the API is
 * served at /nix-cache; `nix copy --from` with the cache's key copies it into a fresh chroot store
 * (same bytes, a signature `nix store verify` accepts), with a wrong key Nix itself refuses it;
 * reads need the admin token; paths kiln did not record (a source, any other path) are not served.
 * And the build's provenance is served by the API and verifies.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureSeed } from "../../src/seed/seed.js";
import { buildStacks } from "../../src/stacks/stacks.js";
import { hashFile } from "../../src/util/fs.js";
import { type CacheServer, startCacheServer } from "../cacheServer.js";
import { kiln, projectDir, testContext } from "../helpers.js";

const NIX = ["--extra-experimental-features", "nix-command"];
const nix = (args: string[], input?: string) =>
  execa("nix", [...NIX, ...args], { reject: false, all: true, ...(input !== undefined ? { input } : {}) });

describe("kiln serve: a signed Nix binary cache of what kiln built", () => {
  let s: CacheServer;
  let slugOut = "";
  let slugSha = "";
  let provenance = "";
  let pub = "";

  const copyFrom = (key: string, to: string, netrc?: string) =>
    nix([
      "copy",
      "--option",
      "substituters",
      "",
      "--option",
      "trusted-public-keys",
      key,
      ...(netrc ? ["--option", "netrc-file", netrc] : []),
      "--from",
      `${s.url}/nix-cache`,
      "--to",
      to,
      slugOut,
    ]);

  beforeAll(async () => {
    const t = testContext();
    await ensureSeed(t);
    await buildStacks(t, ["build"]);
    s = await startCacheServer({ prefix: "kiln-cache-" });
    expect((await s.k("apps:create", "cache-app")).exitCode).toBe(0);
    const d = await s.k(
      "deploy",
      join(projectDir, "test", "fixtures", "apps", "procfile-shell"),
      "-a",
      "cache-app",
    );
    expect(d.exitCode, d.all).toBe(0);
    const builds = (await (await s.api("/v1/apps/cache-app/builds")).json()) as { id: string }[];
    const id = builds[0]?.id ?? "";
    const res = await s.api(`/v1/apps/cache-app/builds/${id}/provenance`);
    expect(res.status).toBe(200);
    provenance = await res.text();
    const st = JSON.parse(
      Buffer.from(JSON.parse(provenance.split("\n")[0] ?? "").payload, "base64").toString(),
    );
    slugSha = st.subject[0].digest.sha256;
    const slugUri = st.predicate.runDetails.byproducts.find((b: { name: string }) => b.name === "slug").uri;
    slugOut = dirname(slugUri);
    pub = (await s.k("cache", "key")).stdout.trim();
  }, 600_000);
  afterAll(async () => {
    await s?.stop();
  });

  it("the API serves the build's provenance, and it verifies for the slug", async () => {
    const file = join(await mkdtemp(join(tmpdir(), "kiln-cache-prov-")), "p.intoto.jsonl");
    execFileSync("sh", ["-c", 'cat > "$1"', "sh", file], { input: provenance });
    const key = (await s.k("provenance", "key")).stdout.trim();
    expect(key).not.toBe(pub); // the provenance key is not the cache's
    const v = await kiln(["verify", join(slugOut, "slug.tgz"), "--provenance", file, "--key", key]);
    expect(v.exitCode, v.all).toBe(0);
    const other = await s.api("/v1/apps/cache-app/builds/00000000-0000-0000-0000-000000000000/provenance");
    expect(other.status).toBe(404);
  });

  it("prints a public key in Nix's format, the one the narinfo is signed with", async () => {
    expect(pub).toMatch(/^kiln-cache-[A-Za-z0-9.-]+-1:[A-Za-z0-9+/]{43}=$/);
    const hash = slugOut.slice("/nix/store/".length, "/nix/store/".length + 32);
    const r = await s.api(`/nix-cache/${hash}.narinfo`);
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(text).toContain(`StorePath: ${slugOut}`);
    expect(text).toContain(`Sig: ${pub.split(":")[0]}:`);
  });

  it("reads need the admin token: none is 401 (a Basic challenge), Basic with it is 200", async () => {
    const none = await fetch(`${s.url}/nix-cache/nix-cache-info`);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Basic /);
    const basic = await fetch(`${s.url}/nix-cache/nix-cache-info`, {
      headers: { authorization: `Basic ${Buffer.from(`kiln:${s.token()}`).toString("base64")}` },
    });
    expect(basic.status).toBe(200);
    expect(await basic.text()).toContain("StoreDir: /nix/store");
    const wrong = await fetch(`${s.url}/nix-cache/nix-cache-info`, {
      headers: { authorization: `Basic ${Buffer.from("kiln:not-a-token").toString("base64")}` },
    });
    expect(wrong.status).toBe(401);
    // And Nix itself, without the netrc, cannot copy.
    const noAuth = await copyFrom(pub, await mkdtemp(join(tmpdir(), "kiln-cs-noauth-")));
    expect(noAuth.exitCode, noAuth.all).not.toBe(0);
  });

  it("serves only what kiln recorded: a valid store path kiln did not build is 404", async () => {
    // Control: the path is in the store (the build's source, and the fixture's tools closure's Nix).
    const source = (await execa("sh", ["-c", "ls -d /nix/store/*-kiln-source | head -1"])).stdout.trim();
    const valid = await nix(["path-info", "--option", "substituters", "", source]);
    expect(valid.exitCode, valid.all).toBe(0);
    const hash = source.slice("/nix/store/".length, "/nix/store/".length + 32);
    expect((await s.api(`/nix-cache/${hash}.narinfo`)).status).toBe(404);
    expect((await s.api("/nix-cache/../../etc/passwd")).status).toBe(404);
    expect((await s.api(`/nix-cache/nar/${"0".repeat(52)}.nar`)).status).toBe(404);
  });

  it("nix copy with the cache's key copies the slug into a fresh store: same bytes, a valid signature", async () => {
    const root = await mkdtemp(join(tmpdir(), "kiln-cs-ok-"));
    const r = await copyFrom(pub, root, s.netrc());
    expect(r.exitCode, r.all).toBe(0);
    expect(await hashFile(join(root, slugOut, "slug.tgz"), "sha256")).toBe(slugSha);
    // Nix's own check of the signature it stored.
    const v = await nix([
      "store",
      "verify",
      "--store",
      root,
      "--option",
      "trusted-public-keys",
      pub,
      "--sigs-needed",
      "1",
      slugOut,
    ]);
    expect(v.exitCode, v.all).toBe(0);
    const otherKey = (
      await nix(
        ["key", "convert-secret-to-public"],
        (
          await nix(["key", "generate-secret", "--key-name", "v-1"])
        ).stdout,
      )
    ).stdout.trim();
    const bad = await nix([
      "store",
      "verify",
      "--store",
      root,
      "--option",
      "trusted-public-keys",
      otherKey,
      "--sigs-needed",
      "1",
      slugOut,
    ]);
    expect(bad.exitCode, bad.all).not.toBe(0);
  });

  it("with a wrong key Nix itself refuses the path", async () => {
    const wrong = (
      await nix(
        ["key", "convert-secret-to-public"],
        (
          await nix(["key", "generate-secret", "--key-name", "wrong-1"])
        ).stdout,
      )
    ).stdout.trim();
    const r = await copyFrom(wrong, await mkdtemp(join(tmpdir(), "kiln-cs-bad-")), s.netrc());
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/lacks a valid signature/);
  });
});
