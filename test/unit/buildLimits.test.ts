import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildSizeFor, instanceTag, setUpBuildLimits } from "../../src/builds/limits.js";
import { loadConfig } from "../../src/config/config.js";
import { processStartTime } from "../../src/dyno/procfs.js";
import { compiledSeccomp } from "../../src/dyno/seccomp.js";
import { isKilnError } from "../../src/errors.js";
import { createLogger } from "../../src/log/logger.js";
import type { Nix } from "../../src/nix/driver.js";
import { projectDir } from "../helpers.js";
import { tempDir } from "../tmp.js";

describe("build limits", () => {
  it("nix/build/seccomp.bpf is what the compiler makes of the current dyno policy", async () => {
    // Builds get the filter as bytes in the checkout (pure evaluation has no other way to it): if
    // src/dyno/seccomp.ts or libexec/kiln-seccomp.py changes, regenerate it:
    //   cp "$(node --input-type=module -e 'const {compiledSeccomp}=await import("./dist/dyno/seccomp.js");
    //     console.log(await compiledSeccomp({dataDir:"/tmp/kiln-seccomp",projectDir:"."}))')" nix/build/seccomp.bpf
    const dataDir = tempDir("kiln-seccomp-");
    const fresh = await readFile(await compiledSeccomp({ dataDir, projectDir }));
    const committed = await readFile(join(projectDir, "nix", "build", "seccomp.bpf"));
    expect(committed.length).toBeGreaterThan(0);
    expect(committed.equals(fresh)).toBe(true);
  });

  it("the build size: the app's KILN_BUILD_SIZE, else the server's, else performance-m", () => {
    const config = loadConfig({ KILN_DATA_DIR: "/tmp/x" });
    expect(buildSizeFor(config).name).toBe("performance-m");
    const server = loadConfig({ KILN_DATA_DIR: "/tmp/x", KILN_BUILD_SIZE: "standard-2x" });
    expect(buildSizeFor(server).name).toBe("standard-2x");
    expect(buildSizeFor(server, { KILN_BUILD_SIZE: "basic" }).name).toBe("basic");
    let err: unknown;
    try {
      buildSizeFor(server, { KILN_BUILD_SIZE: "huge" });
    } catch (e) {
      err = e;
    }
    expect(isKilnError(err) && err.code).toBe("invalid_dyno_size");
  });

  it("through a Nix daemon, says memory, pids and CPU are NOT ENFORCED and passes no file", async () => {
    const runDir = tempDir("kiln-run-");
    const config = loadConfig({ KILN_DATA_DIR: "/tmp/x", KILN_RUN_DIR: runDir, KILN_BUILD_SIZE: "basic" });
    // Only the store's name matters here: no Nix call is made before a build.
    const nix = { store: "daemon" } as Nix;
    // A dead kiln's limits file (pid 999999 does not exist) goes; a live one's and another
    // instance's stay.
    const tag = instanceTag(config.dataDir);
    const files = join(runDir, "build-limits");
    await mkdir(files, { recursive: true });
    const dead = `${tag}-999999-1-old`;
    const live = `${tag}-${process.pid}-${await processStartTime(process.pid)}-live`;
    const other = `0123456789ab-999999-1-other`;
    for (const f of [dead, live, other]) await writeFile(join(files, f), "tmp 1\n");
    const limits = await setUpBuildLimits(
      { config, nix, log: createLogger("silent") },
      {
        id: "b1",
        size: buildSizeFor(config),
      },
    );
    for (const name of ["memory", "pids", "cpu"]) {
      const row = limits.rows.find((r) => r.name === name);
      expect(row?.enforced, name).toBe(false);
      expect(row?.by).toMatch(/^NOT ENFORCED: the Nix daemon forks the builders/);
    }
    expect(limits.rows.find((r) => r.name === "/tmp")?.value).toBe("1280 MiB");
    expect(limits.rows.find((r) => r.name === "seccomp")?.enforced).toBe(true);
    expect(limits.nixOptions.sandboxPaths).toBeUndefined();
    expect(limits.nixOptions.cgroupProcs).toBeUndefined();
    expect(limits.nixOptions.buildTimeoutSeconds).toBe(900);
    const during = await readdir(files);
    expect(during).not.toContain(dead);
    expect(during.filter((f) => f.endsWith("-b1"))).toHaveLength(1);
    await limits.release();
    expect((await readdir(files)).sort()).toEqual([other, live].sort());
  });

  it("tells instances apart by their data directory", () => {
    expect(instanceTag("/var/lib/a")).not.toBe(instanceTag("/var/lib/b"));
    expect(instanceTag("/var/lib/a")).toMatch(/^[0-9a-f]{12}$/);
  });
});
