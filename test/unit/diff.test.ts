import { chmod, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import * as tar from "tar";
import { describe, expect, it } from "vitest";
import { readTarEntries, writeDeterministicTarGz } from "../../src/archive/tar.js";
import { compareEntries, diffArchives, explainFile, type TreeEntry } from "../../src/repro/diff.js";
import { tempDir } from "../tmp.js";

type Spec = string | Buffer | { link: string } | { exec: string };

/** Writes `files` under a fresh directory; `{ link }` is a symlink, `{ exec }` an executable file. */
async function makeTree(files: Record<string, Spec>): Promise<string> {
  const root = tempDir("kiln-diff-");
  const dir = join(root, "t");
  await mkdir(dir);
  for (const [p, spec] of Object.entries(files)) {
    const full = join(dir, p);
    await mkdir(dirname(full), { recursive: true });
    if (typeof spec === "string" || Buffer.isBuffer(spec)) await writeFile(full, spec);
    else if ("link" in spec) await symlink(spec.link, full);
    else {
      await writeFile(full, spec.exec);
      await chmod(full, 0o755);
    }
  }
  return dir;
}

async function tgzBytes(files: Record<string, Spec>, mtime = 315532800): Promise<Buffer> {
  const dir = await makeTree(files);
  const file = join(dirname(dir), "out.tgz");
  await writeDeterministicTarGz(dir, file, { mtime });
  return readFile(file);
}

async function slug(files: Record<string, Spec>, mtime = 315532800): Promise<string> {
  const dir = await makeTree(files);
  const file = join(dirname(dir), "slug.tar.gz");
  await writeDeterministicTarGz(dir, file, { mtime, prefix: "app/" });
  return file;
}

function entry(path: string, data: string | Buffer, more: Partial<TreeEntry> = {}): TreeEntry {
  return { path, type: "File", mode: 0o644, linkpath: "", data: Buffer.from(data), ...more };
}

describe("readTarEntries", () => {
  it("reads files, directories and symlinks from tar and tar.gz alike", async () => {
    const dir = await makeTree({
      "a.txt": "hello\n",
      "d/b.bin": Buffer.from([0, 1, 2]),
      l: { link: "a.txt" },
    });
    const plain = join(dirname(dir), "x.tar");
    await tar.create({ cwd: dir, file: plain, portable: true }, ["a.txt", "d", "l"]);
    const gz = join(dirname(dir), "x.tgz");
    await tar.create({ cwd: dir, file: gz, gzip: true, portable: true }, ["a.txt", "d", "l"]);
    for (const file of [plain, gz]) {
      const es = await readTarEntries(await readFile(file));
      const byPath = new Map(es.map((e) => [e.path, e]));
      expect(byPath.get("a.txt")?.data.toString()).toBe("hello\n");
      expect(byPath.get("d/")?.type).toBe("Directory");
      expect(byPath.get("d/b.bin")?.data).toEqual(Buffer.from([0, 1, 2]));
      expect(byPath.get("l")).toMatchObject({ type: "SymbolicLink", linkpath: "a.txt" });
      expect(byPath.get("l")?.data.length).toBe(0);
    }
  });

  it("rejects what is not a tar", async () => {
    await expect(readTarEntries(Buffer.from("not a tar archive at all"))).rejects.toThrow();
  });
});

describe("explainFile", () => {
  it("gives a unified diff of a changed text file, the changed lines as evidence", async () => {
    const a = Buffer.from("one\ntwo\nthree\nconst builtAt = 1700000000;\nfour\nfive\nsix\nseven\n");
    const b = Buffer.from("one\ntwo\nthree\nconst builtAt = 1700000999;\nfour\nfive\nsix\nseven\n");
    const d = await explainFile("app/server.js", a, b);
    expect(d.kind).toBe("text");
    expect(d.detail.split("\n")).toEqual([
      "--- a/app/server.js",
      "+++ b/app/server.js",
      "@@ -1,7 +1,7 @@",
      " one",
      " two",
      " three",
      "-const builtAt = 1700000000;",
      "+const builtAt = 1700000999;",
      " four",
      " five",
      " six",
    ]);
    expect(d.evidence).toEqual({ a: ["const builtAt = 1700000000;"], b: ["const builtAt = 1700000999;"] });
    expect(d.a?.size).toBe(a.length);
    expect(d.a?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(d.a?.sha256).not.toBe(d.b?.sha256);
  });

  it("bounds a long text diff and cuts long lines around the change", async () => {
    const lines = (v: string) => Array.from({ length: 200 }, (_, i) => `line ${i} ${v}`).join("\n");
    const d = await explainFile("big.txt", Buffer.from(lines("a")), Buffer.from(lines("b")));
    const shown = d.detail.split("\n");
    expect(shown.length).toBeLessThanOrEqual(61);
    expect(shown.at(-1)).toMatch(/^… \d+ more lines$/);
    expect(d.evidence.a.length).toBeLessThanOrEqual(50);

    // Past a few thousand edits a minimal diff is too costly: lines are compared by position.
    const many = (v: string) => Array.from({ length: 5000 }, (_, i) => `${i} ${v}`).join("\n");
    const p = await explainFile("many.txt", Buffer.from(many("a")), Buffer.from(many("b")));
    const pl = p.detail.split("\n");
    expect(pl[2]).toBe("(too many changes for a minimal diff: lines compared by position)");
    expect(pl.slice(3, 6)).toEqual(["@@ line 1 @@", "-0 a", "+0 b"]);
    expect(pl.length).toBeLessThanOrEqual(61);
    expect(pl.at(-1)).toMatch(/^… more lines differ from line \d+$/);

    const min = (hash: string) => Buffer.from(`${"x".repeat(5000)}var h="${hash}";${"y".repeat(5000)}`);
    const m = await explainFile("bundle.min.js", min("abc123"), min("def456"));
    expect(m.kind).toBe("text");
    expect(m.evidence.a[0]).toContain('var h="abc123"');
    expect(m.evidence.b[0]).toContain('var h="def456"');
    expect(m.evidence.a[0]?.length).toBeLessThanOrEqual(300);
    expect(m.detail).toContain("+…"); // the + line is cut, and shows the change
    expect(m.detail).toContain('h="def456"');
  });

  it("lists changed JSON leaves by key path", async () => {
    const a = {
      name: "web",
      scripts: { build: "tsc", test: "vitest" },
      files: ["dist", "bin"],
      old: true,
      "@scope/key": 1,
    };
    const b = {
      name: "web",
      scripts: { build: "tsc -b", test: "vitest" },
      files: ["dist", "bin", "x"],
      "@scope/key": 2,
    };
    const d = await explainFile(
      "app/package.json",
      Buffer.from(JSON.stringify(a)),
      Buffer.from(JSON.stringify(b)),
    );
    expect(d.kind).toBe("json");
    expect(d.detail.split("\n")).toEqual([
      '  .scripts.build: "tsc" → "tsc -b"',
      '  .files[2]: added "x"',
      "  .old: removed",
      '  ["@scope/key"]: 1 → 2',
    ]);
    expect(d.evidence).toEqual({ a: ["tsc", "true", "1"], b: ["tsc -b", "x", "2"] });
  });

  it("falls back to a text diff when the JSON value is the same but its bytes are not", async () => {
    const d = await explainFile("x.json", Buffer.from('{"a":1,"b":2}\n'), Buffer.from('{"b":2,"a":1}\n'));
    expect(d.kind).toBe("text");
    expect(d.detail).toContain("same JSON value");
    expect(d.detail).toContain('+{"b":2,"a":1}');
  });

  it("locates a binary difference at its offset, with hex context and nearby strings", async () => {
    const a = Buffer.alloc(1024);
    a.write("BUILD_HOST=alpha", 0x100, "latin1");
    const b = Buffer.from(a);
    b[0x123] = 0xff;
    const d = await explainFile("app/lib.so", a, b);
    expect(d.kind).toBe("binary");
    const lines = d.detail.split("\n");
    expect(lines[0]).toBe("differs at 0x123 (291), 1 byte:");
    expect(lines).toContain("    00000110: 0000 0000 0000 0000 0000 0000 0000 0000  ................");
    expect(lines).toContain("    00000120: 0000 00ff 0000 0000 0000 0000 0000 0000  ................");
    expect(d.detail).not.toContain("sizes differ");
    expect(d.evidence).toEqual({ a: ["BUILD_HOST=alpha"], b: ["BUILD_HOST=alpha"] });
  });

  it("merges close differences into one region, reports at most three, and notes sizes", async () => {
    const a = Buffer.alloc(0x1000);
    const b = Buffer.alloc(0x1010);
    for (const off of [0x10, 0x18, 0x200, 0x300, 0x400]) b[off] = 1;
    const d = await explainFile("blob", a, b);
    const heads = d.detail.split("\n").filter((l) => !l.startsWith(" "));
    expect(heads).toEqual([
      "sizes differ: 4096 bytes in a, 4112 in b",
      "differs at 0x10 (16), 9 bytes:",
      "differs at 0x200 (512), 1 byte:",
      "differs at 0x300 (768), 1 byte:",
      "more differences from 0x400 (1024)",
    ]);
  });

  it("explains a single gzip member by what it holds", async () => {
    const a = gzipSync(Buffer.from('{"version":"1.0.0"}'));
    const b = gzipSync(Buffer.from('{"version":"1.0.1"}'));
    const d = await explainFile("app/data.json.gz", a, b);
    expect(d.kind).toBe("archive");
    expect(d.detail).toBe("1 member differs: data.json");
    expect(d.members?.map((m) => [m.path, m.kind])).toEqual([["app/data.json.gz//data.json", "json"]]);
    expect(d.members?.[0]?.detail).toBe('  .version: "1.0.0" → "1.0.1"');
    expect(d.evidence).toEqual({ a: ["1.0.0"], b: ["1.0.1"] });
  });

  it("says when only a gzip header differs", async () => {
    const a = gzipSync(Buffer.from("same\n"));
    const b = Buffer.from(a);
    b.writeUInt32LE(1700000001, 4); // MTIME
    const d = await explainFile("notes.txt.gz", a, b);
    expect(d.kind).toBe("archive");
    expect(d.members).toEqual([]);
    expect(d.detail).toContain("archive metadata only (member order, headers, or compression)");
    expect(d.detail).toContain("only the compression differs");
    expect(d.detail).toContain("differs at 0x4 (4), 4 bytes:");
  });

  it("compares what is not readable as the archive its name says by its content", async () => {
    const junk = (n: number) => Buffer.from([0x1f, 0x8b, 0, ...Buffer.from(`garbage ${n}`)]);
    const bin = await explainFile("broken.tgz", junk(1), junk(2));
    expect(bin.kind).toBe("binary");
    expect(bin.detail).toContain("differs at 0xb (11), 1 byte:");
    const text = await explainFile("notes.gz", Buffer.from("plain 1\n"), Buffer.from("plain 2\n"));
    expect(text.kind).toBe("text");
  });
});

describe("compareEntries", () => {
  it("omits equal entries and directories, sorts by path and prefixes member paths", async () => {
    const a = [
      entry("z.txt", "z\n"),
      entry("d", "", { type: "Directory", mode: 0o755 }),
      entry("a.txt", "a\n"),
    ];
    const b = [
      entry("a.txt", "A\n"),
      entry("d/", "", { type: "Directory", mode: 0o755 }),
      entry("z.txt", "Z\n"),
    ];
    const ds = await compareEntries(a, b, { prefix: "outer.tgz//" });
    expect(ds.map((d) => [d.path, d.kind])).toEqual([
      ["outer.tgz//a.txt", "text"],
      ["outer.tgz//z.txt", "text"],
    ]);
    expect(ds[0]?.a).toMatchObject({ mode: 0o644, type: "File", size: 2 });
    expect(await compareEntries(a, [...a].reverse())).toEqual([]);
  });

  it("reports a directory only when its mode or type differs", async () => {
    const dir = (mode: number) => entry("d", "", { type: "Directory", mode });
    const ds = await compareEntries([dir(0o755)], [dir(0o700)]);
    expect(ds.map((d) => [d.kind, d.detail])).toEqual([["mode", "mode differs: 0755 → 0700 (same content)"]]);
    const t = await compareEntries([dir(0o755)], [entry("d", "x")]);
    expect(t.map((d) => d.kind)).toEqual(["type"]);
  });

  it("adds a mode change to a content difference", async () => {
    const [d] = await compareEntries([entry("run", "a\n")], [entry("run", "b\n", { mode: 0o755 })]);
    expect(d?.kind).toBe("text");
    expect(d?.detail.split("\n").at(-1)).toBe("mode differs: 0644 → 0755");
  });
});

describe("diffArchives", () => {
  it("finds nothing in two slugs of the same tree", async () => {
    const files = {
      "index.js": "console.log(1)\n",
      "lib/x.bin": Buffer.from([0, 1]),
      l: { link: "index.js" },
    };
    expect(await diffArchives(await slug(files), await slug(files))).toEqual([]);
  });

  it("explains a missing file, a symlink target, a mode and a type change", async () => {
    const a = await slug({
      "index.js": "x\n",
      "only-a.txt": "gone\n",
      current: { link: "releases/v1" },
      "bin/start": "#!/bin/sh\n",
      thing: "file\n",
    });
    const b = await slug({
      "index.js": "x\n",
      current: { link: "releases/v2" },
      "bin/start": { exec: "#!/bin/sh\n" },
      thing: { link: "index.js" },
    });
    const ds = await diffArchives(a, b);
    expect(ds.map((d) => [d.path, d.kind])).toEqual([
      ["app/bin/start", "mode"],
      ["app/current", "link"],
      ["app/only-a.txt", "missing"],
      ["app/thing", "type"],
    ]);
    const [mode, link, missing, type] = ds;
    expect(mode?.detail).toBe("mode differs: 0644 → 0755 (same content)");
    expect(link?.detail).toBe('symlink target differs: "releases/v1" in a, "releases/v2" in b');
    expect(link?.evidence).toEqual({ a: ["releases/v1"], b: ["releases/v2"] });
    expect(link?.b?.linkpath).toBe("releases/v2");
    expect(missing?.a?.size).toBe(5);
    expect(missing?.b).toBeNull();
    expect(missing?.detail).toBe("only in a (File, 5 bytes)");
    expect(type?.detail).toBe("type differs: File in a, SymbolicLink → index.js in b");
  });

  it("recurses into a tar.gz inside the slug and names members with //", async () => {
    const inner = (v: string) => tgzBytes({ "lib/version.txt": `version ${v}\n`, "lib/same.txt": "same\n" });
    const a = await slug({ "vendor/inner.tgz": await inner("1"), "README.md": "hi\n" });
    const b = await slug({ "vendor/inner.tgz": await inner("2"), "README.md": "hi\n" });
    const ds = await diffArchives(a, b);
    expect(ds.map((d) => [d.path, d.kind])).toEqual([["app/vendor/inner.tgz", "archive"]]);
    const [outer] = ds;
    expect(outer?.detail).toBe("1 member differs: lib/version.txt");
    expect(outer?.members?.map((m) => [m.path, m.kind])).toEqual([
      ["app/vendor/inner.tgz//lib/version.txt", "text"],
    ]);
    expect(outer?.members?.[0]?.detail).toContain("-version 1");
    expect(outer?.evidence).toEqual({ a: ["version 1"], b: ["version 2"] });
  });

  it("stops opening archives three levels down", async () => {
    const nest = async (v: string) => {
      const c = await tgzBytes({ "leaf.txt": `${v}\n` });
      const bb = await tgzBytes({ "c.tgz": c });
      return slug({ "b.tgz": bb });
    };
    const [d] = await diffArchives(await nest("1"), await nest("2"));
    const member = d?.members?.[0];
    expect(member?.path).toBe("app/b.tgz//c.tgz");
    expect(member?.kind).toBe("archive");
    // The slug and two tarballs are opened; a third would be, here it is the leaf's file.
    expect(member?.members?.map((m) => [m.path, m.kind])).toEqual([["app/b.tgz//c.tgz//leaf.txt", "text"]]);

    const d3 = await explainFile(
      "x.tgz",
      await tgzBytes({ "y.txt": "1" }),
      await tgzBytes({ "y.txt": "2" }),
      3,
    );
    expect(d3.kind).toBe("binary");
  });

  it("explains slugs whose members are equal but whose headers are not", async () => {
    const files = { "index.js": "x\n" };
    const ds = await diffArchives(await slug(files, 315532800), await slug(files, 1700000000));
    expect(ds).toHaveLength(1);
    const [d] = ds;
    expect(d?.path).toBe(".");
    expect(d?.kind).toBe("archive");
    expect(d?.detail).toContain("archive metadata only (member order, headers, or compression)");
    expect(d?.detail).toContain("archive stream:");
    // The tar header's octal mtime field is what differs.
    expect(d?.evidence.b.some((s) => s.includes((1700000000).toString(8)))).toBe(true);
  });
});
