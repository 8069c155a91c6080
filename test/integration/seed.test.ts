import { copyFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { nixSettingArgs } from "../../src/nix/settings.js";
import { readSeedLock } from "../../src/seed/lock.js";
import { ensureSeed, exportSeed, importSeed } from "../../src/seed/seed.js";
import { hashFile } from "../../src/util/fs.js";
import { kiln, projectDir, testContext, throwawayStore } from "../helpers.js";
import { tempDir } from "../tmp.js";

const NIX = nixSettingArgs();

describe("the seed, in the real Nix store", () => {
  const t = testContext();

  beforeAll(async () => {
    await ensureSeed(t);
  });

  it("is the pinned fixed-output path, with the pinned NAR hash", async () => {
    const lock = await readSeedLock(projectDir);
    const [info] = await t.nix.pathInfo([lock.storePath]);
    expect(info?.narHash).toBe(lock.narHash);
    expect(info?.ca).toMatch(/^fixed:r:sha256:/);
    expect(info?.references).toEqual([]);
    const again = await ensureSeed(t);
    expect(again.imported).toBe(false);
    const r = await kiln(["seed", "status", "--json"]);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ present: true, storePath: lock.storePath });
  });

  it("exports to a NAR whose sha256 is the NAR hash, and imports into another store verified", async () => {
    const lock = await readSeedLock(projectDir);
    const dir = tempDir("kiln-seed-export-");
    const file = join(dir, "seed.nar");
    try {
      const r = await exportSeed(t, file);
      expect(r.narHash).toBe(lock.narHash);
      expect((await stat(file)).size).toBe(r.bytes);

      const other = await throwawayStore();
      const o = testContext({ nixStore: other.store, dataDir: other.dataDir });
      expect(await o.nix.isValid(lock.storePath)).toBe(false);

      // A file that is not the pinned seed is refused, and the store is left as it was.
      const bogus = join(dir, "bogus.nar");
      await writeFile(bogus, "not a seed");
      await expect(importSeed(o, bogus)).rejects.toMatchObject({ code: "seed_file_mismatch" });
      expect(await o.nix.isValid(lock.storePath)).toBe(false);

      const imported = await importSeed(o, file);
      expect(imported).toEqual({ storePath: lock.storePath, imported: true });
      const [info] = await o.nix.pathInfo([lock.storePath]);
      expect(info?.narHash).toBe(lock.narHash);
      await rm(other.store, { recursive: true, force: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("when missing, stops evaluation with the command that imports it", async () => {
    const other = await throwawayStore();
    // Through kiln: a typed error with the hint.
    const r = await kiln(["--store", other.store, "--data-dir", other.dataDir, "stack", "build", "run"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("the kiln seed is not in the Nix store");
    expect(r.stderr).toContain("npm run kiln -- seed");
    // Through Nix alone (as a user of the flake would see it): the message comes from evaluation.
    const n = await execa(
      "nix",
      [
        ...NIX,
        "--store",
        other.store,
        "eval",
        "--raw",
        "--file",
        join(projectDir, "nix/default.nix"),
        "stack-run.drvPath",
      ],
      {
        reject: false,
      },
    );
    expect(n.exitCode).not.toBe(0);
    expect(n.stderr).toContain("kiln-seed-is-missing");
    expect(n.stderr).toContain("npm run kiln -- seed");
    await rm(join(other.store, ".."), { recursive: true, force: true });
  });

  it("verifies cached .debs: a corrupted cache entry is replaced by the pinned bytes", async () => {
    const lock = await readSeedLock(projectDir);
    const { fetchDeb } = await import("../../src/seed/apt.js");
    const pin = lock.debian.find((p) => p.name === "busybox-static");
    if (!pin) throw new Error("busybox-static not pinned");
    const cache = tempDir("kiln-debs-");
    const good = await fetchDeb(pin, join(t.config.dataDir, "cache", "debs"));
    await copyFile(good, join(cache, `${pin.sha256}.deb`));
    await writeFile(join(cache, `${pin.sha256}.deb`), "corrupt");
    const file = await fetchDeb(pin, cache);
    expect(await hashFile(file, "sha256")).toBe(pin.sha256);
    // A version that apt has never had fails with the re-pin command in the hint.
    const empty = tempDir("kiln-debs-");
    await expect(fetchDeb({ ...pin, version: "0.0-kiln-never" }, empty)).rejects.toMatchObject({
      code: "deb_version_gone",
      hint: expect.stringContaining("kiln seed pin"),
    });
    await rm(cache, { recursive: true, force: true });
    await rm(empty, { recursive: true, force: true });
  });
});
