/**
 * Dyno uids come from one allocation shared by every kiln on the host (issue 12): two data
 * directories never hand out the same uid, even for apps of the same name, and a data directory
 * written by an older kiln (which counted from 400000 in each) gives up a uid another one holds.
 * These use the real host-wide registry (root only), as kiln does.
 */
import { chmod, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { appUid, DYNO_UID_BASE, DYNO_UID_COUNT } from "../../src/dyno/uids.js";
import { tempDir } from "../tmp.js";

const dataDir = async () => {
  const d = tempDir("kiln-uids-");
  await chmod(d, 0o711);
  return d;
};

describe.runIf(process.getuid?.() === 0)("dyno uids", () => {
  it("never gives two kiln instances the same uid", async () => {
    const [a, b] = [await dataDir(), await dataDir()];
    const ua = await appUid(a, "web");
    const ub = await appUid(b, "web");
    const ua2 = await appUid(a, "other");
    expect(new Set([ua, ub, ua2]).size).toBe(3);
    for (const u of [ua, ub, ua2]) {
      expect(u).toBeGreaterThanOrEqual(DYNO_UID_BASE);
      expect(u).toBeLessThan(DYNO_UID_BASE + DYNO_UID_COUNT);
    }
    await rm(a, { recursive: true });
    await rm(b, { recursive: true });
  });

  it("moves an app off a uid that another instance holds (a map written by an older kiln)", async () => {
    const a = await dataDir();
    const ua = await appUid(a, "web");
    const b = await dataDir();
    await mkdir(join(b, "dynos"), { recursive: true });
    await writeFile(join(b, "dynos", "uids.json"), JSON.stringify({ api: ua }));
    const ub = await appUid(b, "api");
    expect(ub).not.toBe(ua);
    // and keeps its new one
    expect(await appUid(b, "api")).toBe(ub);
    await rm(a, { recursive: true });
    await rm(b, { recursive: true });
  });
});
