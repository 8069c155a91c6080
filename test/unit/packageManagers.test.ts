// Lock files of every package manager: which one is chosen, what is refused (by name), and the
// tarballs each plan pins (from the fixtures' real locks, made by the real clients).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { berryRegistryEntries, parseBerryLock } from "../../src/buildpacks/berryLock.js";
import { checkPackageManagerField, chooseLockFile } from "../../src/buildpacks/lockfiles.js";
import { parsePackageJson } from "../../src/buildpacks/nodejs.js";
import { assertWorkspaceDir, planNodeApp } from "../../src/buildpacks/nodePlan.js";
import { parsePnpmLock, planPnpmLock, pnpmKeyNameVersion } from "../../src/buildpacks/pnpmLock.js";
import { planYarnLock } from "../../src/buildpacks/yarnLock.js";
import { readTextBeneath } from "../../src/util/beneath.js";
import { tempDir } from "../tmp.js";

const REG = "https://registry.example.invalid/";
const apps = join(import.meta.dirname, "..", "fixtures", "apps");

describe("exactly one lock file", () => {
  it("refuses two managers' locks, naming both", () => {
    expect(() => chooseLockFile(["package-lock.json", "yarn.lock"])).toThrow(
      /more than one package manager: package-lock\.json, yarn\.lock/,
    );
  });
  it("refuses package-lock.json beside npm-shrinkwrap.json", () => {
    expect(() => chooseLockFile(["package-lock.json", "npm-shrinkwrap.json"])).toThrow(
      /npm-shrinkwrap\.json/,
    );
  });
  it("takes the single one", () => {
    expect(chooseLockFile(["pnpm-lock.yaml"])).toBe("pnpm-lock.yaml");
    expect(chooseLockFile([])).toBeUndefined();
  });
  it("refuses a packageManager that is not the lock's manager", () => {
    expect(() => checkPackageManagerField("npm", "package-lock.json", "pnpm@9.15.9")).toThrow(
      /"packageManager": "pnpm@9\.15\.9", but the app's lock file is package-lock\.json/,
    );
    expect(() => checkPackageManagerField("yarn", "yarn.lock", "yarn@4.5.3")).toThrow(/yarn 1 \(classic\)/);
    expect(() => checkPackageManagerField("berry", "yarn.lock", "yarn@4.5.3+sha512.abc")).not.toThrow();
  });
});

describe("yarn classic", () => {
  it("derives URLs from name and version where the lock has no resolved, and rewrites it for the mirror", () => {
    const { tarballs, offlineLock } = planYarnLock(
      readFileSync(join(apps, "yarn-classic", "yarn.lock"), "utf8"),
      {
        registry: REG,
      },
    );
    const express = tarballs.find((t) => t.package === "express");
    expect(express?.url).toMatch(
      /^https:\/\/registry\.example\.invalid\/express\/-\/express-4\.\d+\.\d+\.tgz$/,
    );
    expect(offlineLock).toContain(`resolved "https://kiln.invalid/kiln/-/${express?.name}"`);
  });
  it("refuses git and file entries by name", () => {
    const lock = `# yarn lockfile v1\n\n"thing@git+https://example.invalid/t.git":\n  version "1.0.0"\n  resolved "git+https://example.invalid/t.git#abc"\n\nlocal@file:../local:\n  version "1.0.0"\n`;
    expect(() => planYarnLock(lock, { registry: REG })).toThrow(
      /thing@git\+https[\s\S]*local@file:\.\.\/local/,
    );
  });
});

describe("pnpm", () => {
  it("reads keys of lockfile 5.4, 6 and 9", () => {
    expect(pnpmKeyNameVersion("/@s/a/1.0.0_peer@2", true)).toEqual({ name: "@s/a", version: "1.0.0" });
    expect(pnpmKeyNameVersion("/@s/a@1.0.0(peer@2)", false)).toEqual({ name: "@s/a", version: "1.0.0" });
    expect(pnpmKeyNameVersion("a@1.0.0", false)).toEqual({ name: "a", version: "1.0.0" });
  });
  it("pins resolution.integrity and lists the workspace importers", () => {
    const lock = parsePnpmLock(readFileSync(join(apps, "pnpm-workspace", "pnpm-lock.yaml"), "utf8"));
    expect(lock.importers).toEqual([".", "packages/greet"]);
    expect(planPnpmLock(lock, { registry: REG }).tarballs.length).toBeGreaterThan(50);
  });
  it("refuses a too old lockfileVersion", () => {
    expect(() => parsePnpmLock("lockfileVersion: 5.1\n")).toThrow(/lockfileVersion 5\.1/);
  });
});

describe("yarn berry", () => {
  it("fetches npm: entries only; refuses others by key", () => {
    const lock = parseBerryLock(readFileSync(join(apps, "yarn-berry", "yarn.lock"), "utf8"));
    const { fetch, problems } = berryRegistryEntries(lock);
    expect(problems).toEqual([]);
    expect(fetch.some((e) => e.name === "express")).toBe(true);
    const bad = parseBerryLock(
      `__metadata:\n  version: 8\n\n"x@https://example.invalid/x.tgz":\n  resolution: "x@https://example.invalid/x.tgz"\n`,
    );
    expect(berryRegistryEntries(bad).problems[0]).toMatch(
      /^x@https:\/\/example\.invalid\/x\.tgz: a https: dependency/,
    );
  });
});

describe("the plan and the dependency phase's input", () => {
  for (const [app, kind, ws] of [
    ["npm-v1", "npm", []],
    ["npm-shrinkwrap", "npm", []],
    ["npm-workspace", "npm", ["packages/greet"]],
    ["yarn-classic", "yarn", []],
    ["yarn-workspace", "yarn", ["packages/greet"]],
    ["pnpm-9", "pnpm", []],
    ["pnpm-workspace", "pnpm", ["packages/greet"]],
  ] as const) {
    it(`${app}: planned by kiln, manifests and lock only`, async () => {
      const dir = join(apps, app);
      const pkg = parsePackageJson(readFileSync(join(dir, "package.json"), "utf8"));
      const work = mkdtempSync(join(tmpdir(), "kiln-plan-"));
      const plan = await planNodeApp(dir, pkg, {
        registry: REG,
        integrityCacheFile: join(work, "i.json"),
        work,
      });
      expect(plan?.kind).toBe(kind);
      if (plan?.planner !== "kiln") throw new Error("expected kiln's plan");
      expect(plan.workspaces).toEqual(ws);
      expect(plan.tarballs.length).toBeGreaterThan(50);
      const input = JSON.parse(readFileSync(join(plan.inputDir, "package.json"), "utf8"));
      expect(input.scripts).toBeUndefined();
      for (const w of ws) expect(() => readFileSync(join(plan.inputDir, w, "index.js"))).toThrow();
    });
  }
  it("node-web (plain package-lock.json v3) stays node-deps.nix's", async () => {
    const dir = join(apps, "node-web");
    const pkg = parsePackageJson(readFileSync(join(dir, "package.json"), "utf8"));
    const work = mkdtempSync(join(tmpdir(), "kiln-plan-"));
    const plan = await planNodeApp(dir, pkg, {
      registry: REG,
      integrityCacheFile: join(work, "i.json"),
      work,
    });
    expect(plan?.planner).toBe("nix");
  });
});

describe("workspace paths from the lock", () => {
  it("refuses a workspace key that climbs out through a link (the write would land outside the input)", async () => {
    const app = tempDir("kiln-ws-escape-");
    const work = tempDir("kiln-ws-work-");
    // d/d/…/d (8 deep) and l -> it: `l/` + 7 × `../` + `x` reads d/x beneath the app…
    const deep = join(app, ...Array(8).fill("d"));
    mkdirSync(deep, { recursive: true });
    symlinkSync(Array(8).fill("d").join("/"), join(app, "l"));
    mkdirSync(join(app, "d", "x"));
    writeFileSync(join(app, "d", "x", "package.json"), '{"name":"x","version":"1.0.0"}');
    const key = `l/${"../".repeat(7)}x`;
    writeFileSync(join(app, "package.json"), '{"name":"evil","version":"1.0.0"}');
    writeFileSync(
      join(app, "package-lock.json"),
      JSON.stringify({
        name: "evil",
        version: "1.0.0",
        lockfileVersion: 3,
        requires: true,
        packages: { "": { name: "evil", version: "1.0.0" }, [key]: { name: "x", version: "1.0.0" } },
      }),
    );
    // Control: the attack is real without the check. The read side resolves beneath the app (it
    // finds d/x/package.json), while the input path joined lexically leaves the work directory.
    expect(await readTextBeneath(app, `${key}/package.json`)).toContain('"x"');
    const lexical = resolve(join(work, "kiln-deps-input"), key, "package.json");
    expect(lexical.startsWith(`${work}/`)).toBe(false);

    const pkg = parsePackageJson(readFileSync(join(app, "package.json"), "utf8"));
    const err = await planNodeApp(app, pkg, {
      registry: REG,
      integrityCacheFile: join(work, "i.json"),
      work,
    }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe("invalid_workspace");
    expect(existsSync(lexical)).toBe(false);
  });

  it("takes plain relative directories", () => {
    for (const ok of ["packages/api", "apps/web-1", "a"]) expect(() => assertWorkspaceDir(ok)).not.toThrow();
    for (const bad of ["../x", "a/../../b", "/etc", "a//b", "./a", "a\\..\\b", "a\nb", ""])
      expect(() => assertWorkspaceDir(bad), bad).toThrow(/not a directory inside the app/);
  });
});
