/** Only "not there" means absent: a read that fails for another reason is an error, not a missing file. */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { absent, exists } from "../../src/util/fs.js";
import { tempDir } from "../tmp.js";

describe("absent()", () => {
  const dir = tempDir("kiln-absent-");

  it("gives the fallback for a missing file and for a path through a file", async () => {
    await writeFile(join(dir, "f"), "x");
    expect(await readFile(join(dir, "nope"), "utf8").catch(absent("fallback"))).toBe("fallback");
    expect(await readFile(join(dir, "f", "under"), "utf8").catch(absent("fallback"))).toBe("fallback");
    expect(await exists(join(dir, "nope"))).toBe(false);
    expect(await exists(join(dir, "f"))).toBe(true);
  });

  it("rethrows any other failure (reading a directory)", async () => {
    // Control: the read does fail, and a catch-all would have called it absent.
    expect(await readFile(dir, "utf8").catch(() => "fallback")).toBe("fallback");
    await expect(readFile(dir, "utf8").catch(absent("fallback"))).rejects.toMatchObject({ code: "EISDIR" });
  });
});
