// Lock files of every package manager: which one is chosen, what is refused (by name), and the
// tarballs each plan pins (from the fixtures' real locks, made by the real clients).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { berryRegistryEntries, parseBerryLock } from "../../src/buildpacks/berryLock.js";
import { checkPackageManagerField, chooseLockFile } from "../../src/buildpacks/lockfiles.js";
import { parsePackageJson } from "../../src/buildpacks/nodejs.js";
import { assertWorkspaceDir, planNodeApp, WORKSPACE_LIST } from "../../src/buildpacks/nodePlan.js";
import { LOOPBACK_REGISTRY } from "../../src/buildpacks/pin.js";
import { parsePnpmLock, planPnpmLock, pnpmKeyNameVersion } from "../../src/buildpacks/pnpmLock.js";
import { workspaceOrder } from "../../src/buildpacks/workspaceOrder.js";
import { planYarnLock } from "../../src/buildpacks/yarnLock.js";
import type { KilnError } from "../../src/errors.js";
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
  // A URL dependency as pnpm 10 writes it (pnpm 7-9 write the same without the integrity).
  const TARBALL_ORIGIN = "https://tarballs.example.invalid";
  const INTEGRITY =
    "sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==";
  const tarballLock = (resolution: string, url = `${TARBALL_ORIGIN}/ms-2.1.3.tgz`) =>
    [
      "lockfileVersion: '9.0'",
      "",
      "importers:",
      "  .:",
      "    dependencies:",
      "      ms:",
      `        specifier: ${url}`,
      `        version: ${url}`,
      "      is-number:",
      "        specifier: ^7.0.0",
      "        version: 7.0.0",
      "",
      "packages:",
      "",
      `  ms@${url}:`,
      `    resolution: ${resolution}`,
      "    version: 2.1.3",
      "",
      "  is-number@7.0.0:",
      "    resolution: {integrity: sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==}",
      "",
      "snapshots:",
      "",
      `  ms@${url}: {}`,
      "",
      "  is-number@7.0.0: {}",
      "",
    ].join("\n");

  it("pins a tarball dependency by its integrity, from its own URL, and points the lock's URL at the loopback registry", () => {
    const url = `${TARBALL_ORIGIN}/ms-2.1.3.tgz`;
    const lock = parsePnpmLock(tarballLock(`{integrity: ${INTEGRITY}, tarball: ${url}}`));
    const { tarballs, offlineLock } = planPnpmLock(lock, { registry: REG, allow: [TARBALL_ORIGIN] });
    expect(tarballs).toContainEqual({
      name: "ms-2.1.3.tgz",
      url,
      integrity: INTEGRITY,
      package: "ms",
      version: "2.1.3",
    });
    // Registry entries are fetched from the registry as before and stay as written.
    expect(tarballs.find((t) => t.package === "is-number")?.url).toBe(
      `${REG}is-number/-/is-number-7.0.0.tgz`,
    );
    const offline = YAML.parse(offlineLock);
    expect(offline.packages[`ms@${url}`].resolution).toEqual({
      integrity: INTEGRITY,
      tarball: `${LOOPBACK_REGISTRY}kiln/-/ms-2.1.3.tgz`,
    });
    // What pnpm's frozen install compares with package.json is untouched.
    expect(offline.importers["."].dependencies.ms).toEqual({ specifier: url, version: url });
    expect(offline.packages["is-number@7.0.0"]).toEqual(YAML.parse(lock.text).packages["is-number@7.0.0"]);
    // Without a URL entry the lock goes as committed, byte for byte.
    const plain = parsePnpmLock(readFileSync(join(apps, "pnpm-9", "pnpm-lock.yaml"), "utf8"));
    expect(planPnpmLock(plain, { registry: REG }).offlineLock).toBe(plain.text);
  });

  it("refuses a tarball dependency without an integrity (pnpm 7-9), saying how to get one", () => {
    const lock = parsePnpmLock(tarballLock(`{tarball: ${TARBALL_ORIGIN}/ms-2.1.3.tgz}`));
    const err = (() => {
      try {
        planPnpmLock(lock, { registry: REG, allow: [TARBALL_ORIGIN] });
      } catch (e) {
        return e as KilnError;
      }
    })();
    expect(err?.code).toBe("unsupported_dependencies");
    expect(err?.message).toMatch(
      /ms@https:\/\/tarballs\.example\.invalid\/ms-2\.1\.3\.tgz: a tarball dependency .* with no integrity/,
    );
    expect(err?.hint).toMatch(/pnpm 10 records a tarball dependency's integrity/);
  });

  it("refuses a tarball dependency on an origin that is not allowed, naming KILN_FETCH_ALLOW", () => {
    for (const url of [`${TARBALL_ORIGIN}/ms-2.1.3.tgz`, "http://127.0.0.1:8080/ms-2.1.3.tgz"]) {
      const lock = parsePnpmLock(tarballLock(`{integrity: ${INTEGRITY}, tarball: ${url}}`, url));
      let err: KilnError | undefined;
      try {
        planPnpmLock(lock, { registry: REG });
      } catch (e) {
        err = e as KilnError;
      }
      expect(err?.code).toBe("unsupported_dependencies");
      expect(err?.message).toContain(`ms@${url}: its resolved URL is not on the registry's origin`);
      expect(err?.hint).toContain(`KILN_FETCH_ALLOW=${new URL(url).origin}`);
    }
  });

  it("names a URL dependency by its key's first @, and serves it under a file name with no path in it", () => {
    expect(pnpmKeyNameVersion("ms@https://h.example/@x/ms.tgz", false).name).toBe("ms");
    expect(pnpmKeyNameVersion("@s/a@https://h.example/a@1.tgz", false).name).toBe("@s/a");
    const url = `${TARBALL_ORIGIN}/x.tgz`;
    const lock = parsePnpmLock(
      tarballLock(`{integrity: ${INTEGRITY}, tarball: ${url}}`, url).replace(
        "    version: 2.1.3",
        "    name: ../../../etc/x\n    version: 1.0.0/../../y?z",
      ),
    );
    const { offlineLock } = planPnpmLock(lock, { registry: REG, allow: [TARBALL_ORIGIN] });
    const served = YAML.parse(offlineLock).packages[`ms@${url}`].resolution.tarball as string;
    expect(served.startsWith(`${LOOPBACK_REGISTRY}kiln/-/`)).toBe(true);
    expect(decodeURIComponent(served.slice(`${LOOPBACK_REGISTRY}kiln/-/`.length))).not.toMatch(/\//);
  });

  it("the loopback registry's port is the one lib/pm.sh serves on", () => {
    const sh = readFileSync(
      join(import.meta.dirname, "..", "..", "buildpacks", "nodejs", "lib", "pm.sh"),
      "utf8",
    );
    expect(LOOPBACK_REGISTRY).toBe(`http://127.0.0.1:${sh.match(/^KILN_REGISTRY_PORT=(\d+)$/m)?.[1]}/`);
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
      // The workspaces' own install scripts run later (bin/compile), in the list kiln writes.
      const list = join(plan.inputDir, WORKSPACE_LIST);
      if (ws.length > 0) expect(readFileSync(list, "utf8")).toBe(`${ws.join("\n")}\n`);
      else expect(existsSync(list)).toBe(false);
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

describe("workspace install scripts' order", () => {
  it("puts a workspace after the workspaces it depends on, ties by directory", () => {
    const ws = (dir: string, name: string, deps: Record<string, string> = {}, field = "dependencies") => ({
      dir,
      pkg: { name, [field]: deps },
    });
    expect(
      workspaceOrder([
        ws("apps/web", "web", { ui: "workspace:*", ms: "^2" }),
        ws("packages/ui", "ui", { util: "1.0.0" }, "devDependencies"),
        ws("packages/util", "util"),
        ws("a", "a"),
      ]),
    ).toEqual(["a", "packages/util", "packages/ui", "apps/web"]);
  });
  it("is total on cycles, odd manifests and deep chains", () => {
    expect(workspaceOrder([ws2("b", "x", "y"), ws2("a", "y", "x")])).toEqual(["b", "a"]);
    expect(
      workspaceOrder([
        { dir: "n", pkg: null },
        { dir: "s", pkg: "str" },
        { dir: "r", pkg: [1] },
      ]),
    ).toEqual(["n", "r", "s"]);
    const chain = Array.from({ length: 20_000 }, (_, i) =>
      ws2(`p${String(i).padStart(5, "0")}`, `n${i}`, `n${i + 1}`),
    );
    const order = workspaceOrder(chain);
    expect(order[0]).toBe("p19999");
    expect(order.at(-1)).toBe("p00000");
  });
});

function ws2(dir: string, name: string, dep: string) {
  return { dir, pkg: { name, dependencies: { [dep]: "*" } } };
}

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
    // Nor is the key listed for bin/compile to run that directory's install scripts.
    expect(existsSync(join(work, "kiln-deps-input", WORKSPACE_LIST))).toBe(false);
  });

  it("takes plain relative directories", () => {
    for (const ok of ["packages/api", "apps/web-1", "a"]) expect(() => assertWorkspaceDir(ok)).not.toThrow();
    for (const bad of ["../x", "a/../../b", "/etc", "a//b", "./a", "a\\..\\b", "a\nb", ""])
      expect(() => assertWorkspaceDir(bad), bad).toThrow(/not a directory inside the app/);
  });
});
