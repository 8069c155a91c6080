import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { extractUntrustedTarGz, inspectUntrustedTarGz } from "../../src/archive/untrusted.js";
import { craftTarGz, type TarEntrySpec as Entry } from "../helpers.js";
import { tempDir } from "../tmp.js";

const limits = { maxBytes: 1 << 20, maxEntries: 1000 };

/** Both passes must refuse; nothing may appear outside the scratch directory. */
async function expectRefused(file: string, message: RegExp, lim = limits) {
  await expect(inspectUntrustedTarGz(file, lim)).rejects.toThrow(message);
  const root = tempDir("kiln-hostile-out-");
  const scratch = join(root, "scratch");
  mkdirSync(scratch);
  await expect(extractUntrustedTarGz(file, scratch, lim)).rejects.toThrow(message);
  expect(readdirSync(root)).toEqual(["scratch"]);
}

describe("untrusted source archives", () => {
  it("accept a plain app and strip setuid bits", async () => {
    const file = craftTarGz([
      { name: "app", type: "dir", mode: 0o755 },
      { name: "app/package.json", type: "file", data: "{}" },
      { name: "app/run", type: "file", data: "#!/bin/sh\n", mode: 0o4755 },
      { name: "app/link", type: "symlink", target: "package.json" },
    ]);
    expect(await inspectUntrustedTarGz(file, limits)).toEqual({ entries: 4 });
    const out = tempDir("kiln-hostile-out-");
    await extractUntrustedTarGz(file, out, limits);
    expect(readFileSync(join(out, "app/package.json"), "utf8")).toBe("{}");
    expect(statSync(join(out, "app/run")).mode & 0o7777).toBe(0o755);
  });

  it.each<[string, Entry[], RegExp]>([
    ["a ../ entry", [{ name: "../evil", type: "file", data: "x" }], /leaves the app directory/],
    ["an absolute path", [{ name: "/etc/evil", type: "file", data: "x" }], /leaves the app directory/],
    ["a FIFO", [{ name: "pipe", type: "fifo" }], /is a FIFO/],
    ["a device node", [{ name: "dev", type: "chr" }], /is a CharacterDevice/],
    ["a hard link to an outside file", [{ name: "hard", type: "link", target: "/etc/passwd" }], /is a Link/],
    ["a symlink to outside", [{ name: "out", type: "symlink", target: "/tmp" }], /outside the app/],
    [
      "a file written through a symlink",
      [
        { name: "up", type: "symlink", target: "sub" },
        { name: "up/evil", type: "file", data: "x" },
      ],
      /is written through a symlink/,
    ],
    [
      // Each link normalises to a path inside; resolved link by link, the last climbs to /.
      "a symlink chain that climbs out only when resolved",
      [
        { name: "u", type: "symlink", target: "." },
        { name: "up1", type: "symlink", target: "u/.." },
        { name: "up2", type: "symlink", target: "up1/.." },
        { name: "passwd", type: "symlink", target: "up2/etc/passwd" },
      ],
      /resolves outside the app/,
    ],
    [
      "a relative symlink climbing out",
      [{ name: "a/b", type: "symlink", target: "../../etc" }],
      /outside the app/,
    ],
  ])("refuse %s", async (_what, entries, message) => {
    await expectRefused(craftTarGz(entries), message);
  });

  it("bound a gzip bomb by size and by entry count", async () => {
    await expectRefused(
      craftTarGz([{ name: "big", type: "file", data: "x".repeat(5000) }]),
      /unpacked source over/,
      {
        maxBytes: 1000,
        maxEntries: 100,
      },
    );
    const many = Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, type: "file" as const, data: "" }));
    await expectRefused(craftTarGz(many), /over 10 entries/, { maxBytes: 1 << 20, maxEntries: 10 });
  });

  it("refuse truncated and corrupt archives", async () => {
    const files = Array.from({ length: 50 }, (_, i) => ({
      name: `f${i}`,
      type: "file" as const,
      data: "y".repeat(999),
    }));
    await expectRefused(craftTarGz(files, { truncate: 0.5 }), /not a readable tar.gz/);
    const junk = join(tempDir("kiln-hostile-"), "x.tar.gz");
    writeFileSync(junk, "not a tarball");
    await expectRefused(junk, /not a readable tar.gz/);
  });
});
