/**
 * Remote builders on Nix's own protocol: a second store on this machine
 * (`ssh-ng://localhost?remote-store=DIR` runs Nix's real worker protocol, no sshd) builds what
 * `kiln build --builders … --remote-only` and `kiln serve --builders … --remote-only` hand it. The
 * remote store really has the slug (and did not before), the local store received it, the build
 * record and /metrics say where it ran, and a local build of the same source gives the same slug
 * sha256. Bad builder settings are refused before anything runs.
 */
import { randomUUID } from "node:crypto";
import { cpSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureSeed } from "../../src/seed/seed.js";
import { buildStacks } from "../../src/stacks/stacks.js";
import { type CacheServer, startCacheServer } from "../cacheServer.js";
import { kiln, projectDir, testContext } from "../helpers.js";
import { tempDir } from "../tmp.js";

const NIX = ["--extra-experimental-features", "nix-command"];
const validIn = async (store: string, path: string) =>
  (await execa("nix", [...NIX, "path-info", "--store", store, path], { reject: false })).exitCode === 0;

/** The fixture with a file of its own: a derivation no earlier run built, so Nix must build it. */
function uniqueApp(): string {
  const dir = join(tempDir("kiln-remote-app-"), "app");
  cpSync(join(projectDir, "test", "fixtures", "apps", "procfile-shell"), dir, { recursive: true });
  writeFileSync(join(dir, "public", "marker.txt"), `${randomUUID()}\n`);
  return dir;
}

describe("remote builders: --builders SPEC, --remote-only", () => {
  const remoteDir = tempDir("kiln-remote-store-");
  const builder = `ssh-ng://localhost?remote-store=${remoteDir}`;
  const spec = `${builder} x86_64-linux - 1 1`;
  const dataDir = tempDir("kiln-remote-data-");
  const env = { KILN_DATA_DIR: dataDir };
  let s: CacheServer;

  beforeAll(async () => {
    const t = testContext();
    await ensureSeed(t);
    await buildStacks(t, ["build"]);
  }, 600_000);
  afterAll(async () => {
    await s?.stop();
  });

  it("kiln build --remote-only builds in the other store; a local build gives the same slug sha256", async () => {
    const app = uniqueApp();
    const r = await kiln(["build", app, "--app", "remote-a", "--builders", spec, "--remote-only", "--json"], {
      env,
    });
    expect(r.exitCode, r.all).toBe(0);
    const remote = JSON.parse(r.stdout) as { slug: { path: string; sha256: string }; builtOn: string[] };
    expect(remote.builtOn).toEqual([builder]);
    const out = dirname(remote.slug.path);
    // Built there: the remote store has the slug, and this store received it.
    expect(await validIn(`local?root=${remoteDir}`, out)).toBe(true);
    expect(await validIn("local", out)).toBe(true);

    // Control for the check above: the same query says "absent" for a path never sent there.
    const stack = (await execa("sh", ["-c", `readlink ${dataDir}/gcroots/stack-build`])).stdout.trim();
    expect(stack).toMatch(/^\/nix\/store\//);
    expect(await validIn(`local?root=${remoteDir}`, stack)).toBe(true); // an input: copied there
    expect(await validIn(`local?root=${remoteDir}`, "/nix/store/00000000000000000000000000000000-none")).toBe(
      false,
    );

    // The same source built here: drop the remote-built slug from this store, build without builders.
    rmSync(join(dataDir, "gcroots", "slug-remote-a"));
    const del = await execa("nix", [...NIX, "store", "delete", out], { reject: false, all: true });
    expect(del.exitCode, del.all).toBe(0);
    expect(await validIn("local", out)).toBe(false);
    const l = await kiln(["build", app, "--app", "remote-a", "--json"], { env });
    expect(l.exitCode, l.all).toBe(0);
    const local = JSON.parse(l.stdout) as { slug: { sha256: string }; builtOn: string[] };
    expect(local.builtOn).toEqual(["local"]);
    expect(local.slug.sha256).toBe(remote.slug.sha256);
  }, 600_000);

  it("kiln serve --builders: the build record and /metrics say where the build ran", async () => {
    const machines = join(tempDir("kiln-remote-machines-"), "machines");
    writeFileSync(machines, `# the second store\n${spec}\n`);
    s = await startCacheServer({
      prefix: "kiln-remote-serve-",
      args: ["--builders", `@${machines}`, "--remote-only"],
    });
    expect((await s.k("apps:create", "remote-b")).exitCode).toBe(0);
    const d = await s.k("deploy", uniqueApp(), "-a", "remote-b");
    expect(d.exitCode, d.all).toBe(0);
    const builds = (await (await s.api("/v1/apps/remote-b/builds")).json()) as {
      id: string;
      status: string;
      built_on: string[] | null;
      slug_path: string;
    }[];
    expect(builds[0]?.status).toBe("succeeded");
    expect(builds[0]?.built_on).toEqual([builder]);
    expect(await validIn(`local?root=${remoteDir}`, dirname(builds[0]?.slug_path ?? ""))).toBe(true);
    // The CLI shows it too.
    const listed = await s.k("builds", "-a", "remote-b");
    expect(listed.exitCode, listed.all).toBe(0);
    expect(listed.stdout).toContain(`${builds[0]?.id.slice(0, 8)}  succeeded`);
    expect(listed.stdout).toContain(`built on ${builder}`);
    const metrics = await (
      await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token()}` } })
    ).text();
    expect(metrics).toContain(`kiln_builds_by_machine{machine="${builder}"} 1`);
  }, 600_000);

  it("refuses bad builder settings before building, with a hint", async () => {
    const app = join(projectDir, "test", "fixtures", "apps", "procfile-shell");
    const missing = await kiln(["build", app, "--builders", "@/nonexistent/machines", "--json"], { env });
    expect(missing.exitCode).toBe(1);
    expect(JSON.parse(missing.stdout).error.code).toBe("invalid_builders");
    const bad = await kiln(["build", app, "--builders", "/etc/passwd x86_64-linux", "--json"], { env });
    expect(JSON.parse(bad.stdout).error.code).toBe("invalid_builders");
    const alone = await kiln(["build", app, "--remote-only"], { env });
    expect(alone.exitCode).toBe(2);
    expect(alone.stderr).toContain("--builders");
    const keyless = await kiln(["build", app, "--substituter", "http://127.0.0.1:1/nix-cache", "--json"], {
      env,
    });
    expect(JSON.parse(keyless.stdout).error.code).toBe("invalid_substituter");
  });
});
