/**
 * Provenance end to end with the real CLI: `kiln build --json` names a signed bundle, `kiln verify`
 * accepts the slug it was made for and names the check that fails for a tampered slug, a tampered
 * payload, a wrong key and a swapped subject; a passed `kiln check` adds the reproducibility
 * statement `--require-reproducible` needs; Python's `cryptography` verifies it without kiln.
 */
import { execFileSync } from "node:child_process";
import { chmodSync } from "node:fs";
import { appendFile, cp, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ensureSeed } from "../../src/seed/seed.js";
import { buildStacks } from "../../src/stacks/stacks.js";
import { kiln, projectDir, testContext } from "../helpers.js";

interface Built {
  slug: { path: string; sha256: string };
  provenance: string;
}

describe("provenance: signed, verifiable, tamper-evident", () => {
  let dataDir = "";
  let env: Record<string, string> = {};
  let a: Built;
  let b: Built;
  let work = "";
  let pub = "";

  const build = async (dir: string, app: string): Promise<Built> => {
    const r = await kiln(["build", dir, "--app", app, "--json"], { env });
    expect(r.exitCode, r.all).toBe(0);
    return JSON.parse(r.stdout) as Built;
  };
  const verify = (...args: string[]) => kiln(["verify", ...args], { env });

  beforeAll(async () => {
    const t = testContext();
    await ensureSeed(t);
    await buildStacks(t, ["build"]);
    dataDir = await mkdtemp(join(tmpdir(), "kiln-prov-"));
    chmodSync(dataDir, 0o711);
    env = { KILN_DATA_DIR: dataDir };
    work = await mkdtemp(join(tmpdir(), "kiln-prov-src-"));
    const srcA = join(work, "a");
    const srcB = join(work, "b");
    await cp(join(projectDir, "test", "fixtures", "apps", "procfile-shell"), srcA, { recursive: true });
    await cp(srcA, srcB, { recursive: true });
    await writeFile(join(srcB, "public", "index.html"), "<h1>B, not A</h1>\n");
    a = await build(srcA, "prov-a");
    b = await build(srcB, "prov-b");
    const k = await kiln(["provenance", "key"], { env });
    expect(k.exitCode, k.all).toBe(0);
    pub = k.stdout.trim();
  }, 600_000);

  it("build --json names the bundle; its statement is SLSA provenance v1 of the slug", async () => {
    expect(a.provenance).toMatch(/\.intoto\.jsonl$/);
    const env0 = JSON.parse((await readFile(a.provenance, "utf8")).split("\n")[0] ?? "");
    expect(env0.payloadType).toBe("application/vnd.in-toto+json");
    const s = JSON.parse(Buffer.from(env0.payload, "base64").toString());
    expect(s._type).toBe("https://in-toto.io/Statement/v1");
    expect(s.predicateType).toBe("https://slsa.dev/provenance/v1");
    expect(s.subject).toEqual([{ name: "prov-a-slug.tgz", digest: { sha256: a.slug.sha256 } }]);
    const names = s.predicate.buildDefinition.resolvedDependencies.map((d: { name: string }) => d.name);
    expect(names).toEqual(
      expect.arrayContaining(["source", "seed", "runtime", "stack-build", "buildpack:procfile"]),
    );
    expect(s.predicate.buildDefinition.buildType).toBe("urn:kiln:build-type:nix-buildpacks:v1");
    expect(s.predicate.runDetails.builder.id).toMatch(/^urn:kiln:builder:/);
  });

  it("verifies the slug it was made for (exit 0), with this kiln's key or --key", async () => {
    const own = await verify(a.slug.path, "--provenance", a.provenance);
    expect(own.exitCode, own.all).toBe(0);
    const r = await verify(a.slug.path, "--provenance", a.provenance, "--key", pub, "--json");
    expect(r.exitCode, r.all).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, failed: null, sha256: a.slug.sha256 });
  });

  it("a tampered slug fails the subject check", async () => {
    const copy = join(work, "tampered.tgz");
    await cp(a.slug.path, copy);
    await appendFile(copy, "x");
    const r = await verify(copy, "--provenance", a.provenance, "--key", pub);
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stdout).toMatch(/FAIL subject .*is not a subject/);
  });

  it("a tampered payload fails the signature check", async () => {
    const env0 = JSON.parse((await readFile(a.provenance, "utf8")).split("\n")[0] ?? "");
    const s = JSON.parse(Buffer.from(env0.payload, "base64").toString());
    s.predicate.runDetails.builder.id = "urn:kiln:builder:someone-else";
    env0.payload = Buffer.from(JSON.stringify(s)).toString("base64");
    const file = join(work, "tampered.intoto.jsonl");
    await writeFile(file, `${JSON.stringify(env0)}\n`);
    const r = await verify(a.slug.path, "--provenance", file, "--key", pub);
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stdout).toMatch(/FAIL signature /);
  });

  it("a wrong key fails the signature check", async () => {
    const other = execFileSync("nix", [
      "--extra-experimental-features",
      "nix-command",
      "key",
      "generate-secret",
      "--key-name",
      "other-1",
    ]);
    const otherPub = execFileSync(
      "nix",
      ["--extra-experimental-features", "nix-command", "key", "convert-secret-to-public"],
      { input: other },
    )
      .toString()
      .trim();
    const r = await verify(a.slug.path, "--provenance", a.provenance, "--key", otherPub);
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stdout).toMatch(/FAIL signature .*other-1/);
  });

  it("a swapped subject (A's provenance presented for B) fails the subject check", async () => {
    const control = await verify(b.slug.path, "--provenance", b.provenance, "--key", pub);
    expect(control.exitCode, control.all).toBe(0);
    const r = await verify(b.slug.path, "--provenance", a.provenance, "--key", pub);
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stdout).toMatch(/FAIL subject /);
  });

  it("checks the builder id", async () => {
    const r = await verify(
      a.slug.path,
      "--provenance",
      a.provenance,
      "--builder-id",
      "urn:kiln:builder:elsewhere",
    );
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stdout).toMatch(/FAIL builder-id .*expected urn:kiln:builder:elsewhere/);
  });

  it("bad input exits 2, naming it", async () => {
    const notJson = join(work, "garbage.json");
    await writeFile(notJson, "not an envelope");
    const r1 = await verify(a.slug.path, "--provenance", notJson, "--key", pub);
    expect(r1.exitCode, r1.all).toBe(2);
    expect(r1.stderr).toMatch(/not a DSSE envelope/);
    const r2 = await verify(join(work, "missing.tgz"), "--provenance", a.provenance, "--key", pub);
    expect(r2.exitCode, r2.all).toBe(2);
    const r3 = await verify(a.slug.path, "--provenance", a.provenance, "--key", "nope:AAAA");
    expect(r3.exitCode, r3.all).toBe(2);
  });

  it("--require-reproducible fails until a kiln check passes, then verifies", async () => {
    const before = await verify(
      a.slug.path,
      "--provenance",
      a.provenance,
      "--key",
      pub,
      "--require-reproducible",
    );
    expect(before.exitCode, before.all).toBe(1);
    expect(before.stdout).toMatch(/FAIL reproducible /);
    const c = await kiln(
      ["check", join(work, "a"), "--app", "prov-a", "--against", a.slug.path, "-n", "1", "--json"],
      { env },
    );
    expect(c.exitCode, c.all).toBe(0);
    const lines = (await readFile(a.provenance, "utf8")).trim().split("\n");
    expect(lines).toHaveLength(2);
    const s = JSON.parse(Buffer.from(JSON.parse(lines[1] ?? "").payload, "base64").toString());
    expect(s.predicateType).toBe("urn:kiln:predicate:reproducible:v1");
    expect(s.predicate.verdict).toBe("reproducible");
    expect(s.subject[0].digest.sha256).toBe(a.slug.sha256);
    const after = await verify(
      a.slug.path,
      "--provenance",
      a.provenance,
      "--key",
      pub,
      "--require-reproducible",
    );
    expect(after.exitCode, after.all).toBe(0);
    // The statement is about A's slug: it does not make B's reproducible.
    const forB = await verify(
      b.slug.path,
      "--provenance",
      b.provenance,
      "--key",
      pub,
      "--require-reproducible",
    );
    expect(forB.exitCode, forB.all).toBe(1);
  }, 600_000);

  it("the README's Python recipe (cryptography, no kiln) verifies it, and refuses a tampered slug", async () => {
    const doc = await readFile(join(projectDir, "docs", "provenance.md"), "utf8");
    const script = /```python\n([\s\S]*?)```/.exec(doc)?.[1] ?? "";
    expect(script).toContain("Ed25519PublicKey");
    const py = join(work, "verify.py");
    await writeFile(py, script);
    const ok = execFileSync("python3", [py, a.provenance, pub, a.slug.path]).toString();
    expect(ok).toContain(`verified ${a.slug.sha256}`);
    const copy = join(work, "tampered2.tgz");
    await cp(a.slug.path, copy);
    await appendFile(copy, "x");
    expect(() => execFileSync("python3", [py, a.provenance, pub, copy], { stdio: "pipe" })).toThrow(
      /not a subject/,
    );
    const other = execFileSync("nix", [
      "--extra-experimental-features",
      "nix-command",
      "key",
      "generate-secret",
      "--key-name",
      "py-1",
    ]);
    const otherPub = execFileSync(
      "nix",
      ["--extra-experimental-features", "nix-command", "key", "convert-secret-to-public"],
      { input: other },
    )
      .toString()
      .trim();
    expect(() =>
      execFileSync("python3", [py, a.provenance, otherPub, a.slug.path], { stdio: "pipe" }),
    ).toThrow(/InvalidSignature/);
  });
});
