import { createHash } from "node:crypto";
import { chmod, mkdir, readFile, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { listTarGz, listTree, writeDeterministicTarGz } from "../../src/archive/tar.js";
import { tempDir } from "../tmp.js";

async function makeTree(root: string, variant: number) {
  // Same content, different creation order, times and permission noise.
  const names = variant === 0 ? ["b", "a", "Z", "é"] : ["é", "Z", "a", "b"];
  await mkdir(join(root, "dir", "sub"), { recursive: true });
  for (const n of names) await writeFile(join(root, "dir", n), `content ${n}\n`);
  await writeFile(join(root, "run.sh"), "#!/bin/sh\necho hi\n");
  await chmod(join(root, "run.sh"), variant === 0 ? 0o755 : 0o700);
  await chmod(join(root, "dir", "a"), variant === 0 ? 0o644 : 0o600);
  await symlink("dir/a", join(root, "link"));
  await writeFile(join(root, "dir", "sub", "deep"), "x");
  const t = variant === 0 ? new Date("2001-01-01") : new Date("2024-06-01");
  await utimes(join(root, "dir", "b"), t, t);
}

describe("deterministic tar.gz", () => {
  it("gives the same bytes for the same tree whatever the times, modes noise and creation order", async () => {
    const hashes: string[] = [];
    for (const variant of [0, 1]) {
      const root = tempDir("kiln-tar-");
      await makeTree(join(root, "t"), variant).catch(async () => {
        await mkdir(join(root, "t"));
        await makeTree(join(root, "t"), variant);
      });
      const file = join(root, "out.tar.gz");
      await writeDeterministicTarGz(join(root, "t"), file, { mtime: 315532800 });
      hashes.push(
        createHash("sha256")
          .update(await readFile(file))
          .digest("hex"),
      );
    }
    expect(hashes[0]).toBe(hashes[1]);
  });

  it("sorts entries bytewise, owns them by 0, fixes mtimes and keeps only the executable bit", async () => {
    const root = tempDir("kiln-tar-");
    await mkdir(join(root, "t"));
    await makeTree(join(root, "t"), 1);
    const file = join(root, "out.tar.gz");
    await writeDeterministicTarGz(join(root, "t"), file, { mtime: 315532800 });
    const entries = await listTarGz(file);
    const paths = entries.map((e) => e.path.replace(/\/$/, ""));
    expect(paths).toEqual(await listTree(join(root, "t")));
    expect(paths.slice(0, 6)).toEqual(["dir", "dir/Z", "dir/a", "dir/b", "dir/sub", "dir/sub/deep"]);
    for (const e of entries) {
      expect(e.uid).toBe(0);
      expect(e.gid).toBe(0);
      expect(e.uname).toBe("");
      if (e.type === "File") expect(e.mtime).toBe(315532800);
    }
    expect(entries.find((e) => e.path === "run.sh")?.mode).toBe(0o755);
    expect(entries.find((e) => e.path === "dir/a")?.mode).toBe(0o644);
    expect(entries.find((e) => e.path === "link")?.type).toBe("SymbolicLink");
    const gz = await readFile(file);
    expect(gz.readUInt32LE(4)).toBe(0); // gzip header mtime
    expect((gz[3] ?? 0xff) & 0x08).toBe(0); // no file name in the gzip header
  });
});
