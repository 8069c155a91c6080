import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fsLookup, readTextBeneath, resolveBeneath } from "../../src/util/beneath.js";
import { tempDir } from "../tmp.js";

/** A tree under a parent holding a secret: what a link climbing one level would reach. */
function tree() {
  const parent = tempDir("kiln-beneath-");
  writeFileSync(join(parent, "secret"), "TOPSECRET\n");
  const root = join(parent, "root");
  mkdirSync(join(root, "d"), { recursive: true });
  writeFileSync(join(root, "d", "f"), "inside\n");
  symlinkSync(".", join(root, "u"));
  symlinkSync("u/..", join(root, "up1"));
  symlinkSync("d", join(root, "dl"));
  symlinkSync("dl/../d/f", join(root, "ok"));
  symlinkSync("up1/secret", join(root, "leak"));
  symlinkSync("loop2", join(root, "loop1"));
  symlinkSync("loop1", join(root, "loop2"));
  symlinkSync("/etc/passwd", join(root, "abs"));
  symlinkSync("missing/../../secret", join(root, "dangling"));
  return root;
}

describe("resolveBeneath", () => {
  const root = tree();
  const r = (p: string) => resolveBeneath(fsLookup(root), p);

  it("follows links that stay inside, through `..` after a link", async () => {
    expect(await r("ok")).toEqual({ ok: true, path: "d/f", kind: "file" });
    expect(await r("dl/f")).toEqual({ ok: true, path: "d/f", kind: "file" });
    expect(await r("u/u/u/d")).toEqual({ ok: true, path: "d", kind: "dir" });
  });

  it("refuses a chain that normalises inside but climbs out, absolute links, `..` past the root and loops", async () => {
    expect(await r("up1")).toEqual({ ok: false, reason: "escapes" });
    expect(await r("leak")).toEqual({ ok: false, reason: "escapes" });
    expect(await r("d/../..")).toEqual({ ok: false, reason: "escapes" });
    expect(await r("abs")).toEqual({ ok: false, reason: "absolute" });
    expect(await r("loop1")).toEqual({ ok: false, reason: "loop" });
  });

  it("stops at a missing component, as the kernel does (ENOENT before any `..`)", async () => {
    expect(await r("dangling")).toMatchObject({ ok: true, kind: "missing" });
  });

  it("readTextBeneath reads inside, refuses a leak without quoting it, and returns undefined for missing files", async () => {
    expect(await readTextBeneath(root, "ok")).toBe("inside\n");
    expect(await readTextBeneath(root, "nope")).toBeUndefined();
    const err = await readTextBeneath(root, "leak").catch((e: unknown) => e as Error);
    expect(err).toMatchObject({ code: "source_unsafe_link" });
    expect(String((err as Error).message)).not.toContain("TOPSECRET");
  });
});
