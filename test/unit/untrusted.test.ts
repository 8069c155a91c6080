import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { extractUntrustedTarGz } from "../../src/archive/untrusted.js";

/** Writes a tar.gz with hand-made entries (Python's tarfile can write what tar(1) would refuse). */
function craft(
  entries: { name: string; type: "file" | "fifo" | "chr" | "link"; data?: string; target?: string }[],
) {
  const dir = mkdtempSync(join(tmpdir(), "kiln-untrusted-"));
  const file = join(dir, "src.tar.gz");
  const script = `
import io, json, sys, tarfile
entries = json.loads(sys.argv[2])
with tarfile.open(sys.argv[1], "w:gz") as t:
    for e in entries:
        info = tarfile.TarInfo(e["name"])
        data = e.get("data", "").encode()
        if e["type"] == "file":
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        else:
            info.type = {"fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE, "link": tarfile.LNKTYPE}[e["type"]]
            info.linkname = e.get("target", "")
            t.addfile(info)
`;
  execFileSync("/usr/bin/python3", ["-c", script, file, JSON.stringify(entries)]);
  return { file, out: join(dir, "out") };
}

describe("extracting an uploaded source", () => {
  const extract = async (c: ReturnType<typeof craft>, maxBytes = 1 << 20) => {
    const { mkdirSync } = await import("node:fs");
    mkdirSync(c.out, { recursive: true });
    return extractUntrustedTarGz(c.file, c.out, { maxBytes });
  };

  it("unpacks plain files", async () => {
    const c = craft([{ name: "package.json", type: "file", data: "{}" }]);
    await extract(c);
    expect(readFileSync(join(c.out, "package.json"), "utf8")).toBe("{}");
  });

  it.each([
    [[{ name: "../evil", type: "file" as const, data: "x" }], /leaves the app directory/],
    [[{ name: "/etc/evil", type: "file" as const, data: "x" }], /leaves the app directory/],
    [[{ name: "pipe", type: "fifo" as const }], /is a FIFO/],
    [[{ name: "dev", type: "chr" as const }], /is a CharacterDevice/],
    [[{ name: "hard", type: "link" as const, target: "/etc/passwd" }], /is a Link/],
  ])("refuses %j", async (entries, message) => {
    await expect(extract(craft(entries))).rejects.toThrow(message);
  });

  it("refuses a source that unpacks past the limit", async () => {
    const c = craft([{ name: "big", type: "file", data: "x".repeat(5000) }]);
    await expect(extract(c, 1000)).rejects.toThrow(/over 0 MiB/);
  });

  it("refuses what is not a tar.gz", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-untrusted-"));
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(dir, "x.tar.gz"), "not a tarball");
    await expect(extractUntrustedTarGz(join(dir, "x.tar.gz"), dir, { maxBytes: 1000 })).rejects.toThrow(
      /not a readable tar.gz/,
    );
  });
});
