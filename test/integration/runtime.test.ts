/**
 * The app's own Node and package manager, end to end: fixtures that ask for different Node lines
 * really built in the Nix sandbox (each runtime a fixed-output tarball from the registry), run as
 * real dynos (src/dyno: bubblewrap, cgroups, the relay), each answering with the Node that runs it;
 * refusals before anything is built; a rebuild of a slug giving the same bytes; and
 * `kiln inventory check|update` against the real registry on a copy of the inventories.
 */
import { chmodSync } from "node:fs";
import { cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BuildResult, buildApp, buildExpr } from "../../src/builds/build.js";
import { openAppLog } from "../../src/dyno/logs.js";
import { type DynoRuntime, launchDyno, prepareDynoRuntime } from "../../src/dyno/runtime.js";
import type { Supervised } from "../../src/dyno/supervisor.js";
import { isKilnError } from "../../src/errors.js";
import { ensureSeed } from "../../src/seed/seed.js";
import { resolveSlug } from "../../src/slug/runnable.js";
import { hashFile } from "../../src/util/fs.js";
import { httpGet, kiln, projectDir, testContext } from "../helpers.js";
import { tempDir } from "../tmp.js";

const fixture = (name: string) => join(projectDir, "test", "fixtures", "apps", name);

/**
 * Each fixture asks for `engines.node: "<line>.x"` and answers `node v<version>`. The oldest line
 * (a wrapped release tarball, npm 1.x) and two current ones; test/fixtures/apps/node-* has the
 * other lines for a by-hand run (kept out to hold CI's time budget).
 */
const LINES = ["0.10", "20", "22"];

async function until<T>(what: string, fn: () => T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A fixture copied to a temp dir with package.json changed by `edit`. */
async function variant(name: string, edit: (pkg: Record<string, unknown>) => void): Promise<string> {
  const dir = join(tempDir("kiln-runtime-app-"), name);
  await cp(fixture(name), dir, { recursive: true });
  const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as Record<string, unknown>;
  edit(pkg);
  await writeFile(join(dir, "package.json"), `${JSON.stringify(pkg, null, 2)}\n`);
  return dir;
}

/** The KilnError a build is refused with (fails the test if it builds). */
async function refusal(t: ReturnType<typeof testContext>, appDir: string) {
  const err = await buildApp(t, { appDir }).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isKilnError(err)) throw new Error(`expected a KilnError, got ${String(err)}`);
  return err;
}

describe("the app's Node and package manager", () => {
  const dataDir = tempDir("kiln-runtime-");
  chmodSync(dataDir, 0o711);
  const t = testContext({ dataDir });
  let rt: DynoRuntime;
  const built = new Map<string, BuildResult>();
  const running: Supervised[] = [];

  beforeAll(async () => {
    await ensureSeed(t);
    rt = await prepareDynoRuntime(t);
    // In parallel: Nix fetches each Node once and builds the slugs side by side.
    const names = [...LINES.map((l) => `node-${l}`), "node-pnpm-start"];
    const results = await Promise.all(names.map((n) => buildApp(t, { appDir: fixture(n) })));
    for (const [i, n] of names.entries()) built.set(n, results[i] as BuildResult);
  });

  afterAll(async () => {
    await Promise.all(running.map((d) => d.stop()));
  });

  /** GET / from the app's web dyno, over its relay socket as the router does. */
  async function serve(name: string) {
    const r = built.get(name) as BuildResult;
    const slug = await resolveSlug({ nix: t.nix, dataDir: t.config.dataDir }, r.manifestPath);
    const d = await launchDyno(rt, {
      slug,
      type: "web",
      restart: false,
      log: await openAppLog(rt.dataDir, slug.app),
    });
    running.push(d);
    const socket = await until("the dyno to be up", () =>
      d.record().state === "up" ? d.current()?.relay?.socket : undefined,
    );
    const res = await httpGet({ socketPath: socket, path: "/", host: "dyno" });
    await d.stop();
    return res;
  }

  it.each(LINES)(
    "Node %s.x: the newest release of the line, in the manifest, serving as a dyno",
    async (line) => {
      const r = built.get(`node-${line}`) as BuildResult;
      const version = r.manifest.runtime?.node.version ?? "";
      expect(version.startsWith(`${line}.`), version).toBe(true);
      // The newest of the line in the pinned inventory (what Heroku's resolver gives).
      const inv = JSON.parse(await readFile(join(projectDir, "nix", "inventory", "node.json"), "utf8")) as {
        versions: Record<string, unknown>;
      };
      const newest = Object.keys(inv.versions)
        .filter((v) => v.startsWith(`${line}.`))
        .sort((a, b) => a.localeCompare(b, "en", { numeric: true }))
        .at(-1);
      expect(version).toBe(newest);
      expect(await serve(`node-${line}`)).toEqual({ status: 200, body: `node v${version}\n` });
    },
  );

  it("vendors the package manager: `web: pnpm start` runs the pinned pnpm on the app's Node", async () => {
    const r = built.get("node-pnpm-start") as BuildResult;
    expect(r.manifest.runtime?.pm).toMatchObject({ name: "pnpm", version: "9.12.0" });
    const res = await serve("node-pnpm-start");
    expect(res).toEqual({ status: 200, body: `node v${r.manifest.runtime?.node.version}\n` });
  });

  it("rebuilding a slug gives the same bytes (nix --rebuild) and the same sha256", async () => {
    const r = built.get("node-20") as BuildResult;
    await t.nix.check({ expr: buildExpr(t.config, r.specFile, "slug") });
    expect(await hashFile(r.slug.path, "sha256")).toBe(r.slug.sha256);
    // And building again from the same source resolves the same runtime to the same slug.
    const again = await buildApp(t, { appDir: fixture("node-20") });
    expect(again.slug.sha256).toBe(r.slug.sha256);
    expect(again.manifest.runtime).toEqual(r.manifest.runtime);
  });

  it("refuses an engines.node nothing satisfies, naming the lines it has", async () => {
    const err = await refusal(
      t,
      await variant("node-20", (p) => {
        p.engines = { node: "99.x" };
      }),
    );
    expect(err.code).toBe("node_version_unavailable");
    expect(err.message).toContain("99.x");
    expect(`${err.message}\n${err.hint}`).toMatch(/22\.\d+\.\d+/);
    expect(err.hint).toBeTruthy();
  });

  it("refuses a packageManager whose corepack hash does not match the registry's", async () => {
    const err = await refusal(
      t,
      await variant("node-pnpm-start", (p) => {
        p.packageManager = `pnpm@9.12.0+sha512.${"ab".repeat(64)}`;
      }),
    );
    expect(err.code).toBe("package_manager_hash_mismatch");
    expect(err.message).toContain("pnpm@9.12.0");
    expect(err.hint).toBeTruthy();
    // Control: the same app with the hash the registry has builds (the check is not a blanket no).
    expect(built.get("node-pnpm-start")?.manifest.runtime?.pm.version).toBe("9.12.0");
  });

  it("refuses engines.iojs and a packageManager that is not the lock file's", async () => {
    const iojs = await refusal(
      t,
      await variant("node-20", (p) => {
        p.engines = { iojs: "3.x" };
      }),
    );
    expect(iojs.code).toBe("iojs_unsupported");
    expect(iojs.hint).toBeTruthy();
    const conflict = await refusal(
      t,
      await variant("node-pnpm-start", (p) => {
        p.packageManager = "yarn@1.22.22";
      }),
    );
    expect(conflict.code).toBe("package_manager_conflict");
    expect(`${conflict.message}`).toContain("pnpm-lock.yaml");
    expect(conflict.hint).toBeTruthy();
  });

  describe("kiln inventory", () => {
    /** A project dir whose inventories are copies, with yarn's newest release taken out. */
    async function staleProject() {
      const dir = tempDir("kiln-inventory-");
      await cp(join(projectDir, "nix", "inventory"), join(dir, "nix", "inventory"), { recursive: true });
      const file = join(dir, "nix", "inventory", "yarn.json");
      const inv = JSON.parse(await readFile(file, "utf8")) as { versions: Record<string, unknown> };
      const newest = Object.keys(inv.versions).at(-1) as string;
      delete inv.versions[newest];
      await writeFile(file, `${JSON.stringify(inv, null, 1)}\n`);
      return { dir, file, newest };
    }
    const env = (dir: string) => ({ KILN_PROJECT_DIR: dir, KILN_DATA_DIR: dataDir });

    it("check reports a release missing from the pin (exit 1) and changes nothing; update writes it", async () => {
      const p = await staleProject();
      const stale = await readFile(p.file, "utf8");
      const check = await kiln(["inventory", "check", "--only", "yarn"], { env: env(p.dir) });
      expect(check.exitCode, check.all).toBe(1);
      expect(check.stdout).toContain(`yarn: 1 new release(s): ${p.newest}`);
      expect(await readFile(p.file, "utf8")).toBe(stale);

      const update = await kiln(["inventory", "update", "--only", "yarn", "--json"], { env: env(p.dir) });
      expect(update.exitCode, update.all).toBe(0);
      expect(JSON.parse(update.stdout)).toMatchObject({
        written: [p.file],
        changes: [{ kind: "added", inventory: "yarn", versions: [p.newest] }],
      });
      expect(JSON.parse(await readFile(p.file, "utf8")).versions[p.newest]).toBeTruthy();

      const again = await kiln(["inventory", "check", "--only", "yarn"], { env: env(p.dir) });
      expect(again.exitCode, again.all).toBe(0);
      expect(again.stdout).toContain("match what the registry offers");
    });

    it("refuses an unknown inventory name with a hint, before reading the registry", async () => {
      const r = await kiln(["inventory", "check", "--only", "bun"]);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toContain('no inventory named "bun"');
      expect(r.stderr).toContain("choose from node, npm, yarn, yarn-berry, pnpm");
    });
  });
});
