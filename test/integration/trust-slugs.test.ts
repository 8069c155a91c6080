/**
 * Slugs are untrusted (issue 12, item 3): a process a build leaves running may rewrite slug.tgz
 * after kiln packed it, and whatever the slug holds is unpacked on the host. kiln stops every
 * other process of the build before packing, hashes the slug itself from the store path, and
 * unpacks slugs as an unprivileged uid, refusing setuid/setgid bits, devices, hard links and links
 * out of the tree. The unpack rows first show plain `tar` as root keeping what kiln refuses.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { listTarGz } from "../../src/archive/tar.js";
import { buildApp } from "../../src/builds/build.js";
import { type RunnableSlug, unpackSlug } from "../../src/slug/runnable.js";
import { hashFile } from "../../src/util/fs.js";
import { craftTarGz, type TarEntrySpec, testContext } from "../helpers.js";
import { tempDir } from "../tmp.js";

async function runnable(file: string): Promise<RunnableSlug> {
  return { app: "evil", file, sha256: await hashFile(file, "sha256"), processTypes: {}, configVars: {} };
}

const base: TarEntrySpec[] = [
  { name: "app", type: "dir", mode: 0o755 },
  { name: "app/index.html", type: "file", data: "<h1>hi</h1>\n" },
];

describe("unpacking a slug", () => {
  it.each<[string, TarEntrySpec[], string, RegExp]>([
    [
      "a setuid file",
      [{ name: "app/suid", type: "file", data: "#!/bin/sh\nid\n", mode: 0o4755 }],
      "app/suid",
      /setuid or setgid/,
    ],
    [
      "a setgid file",
      [{ name: "app/sgid", type: "file", data: "x", mode: 0o2755 }],
      "app/sgid",
      /setuid or setgid/,
    ],
    ["a device node", [{ name: "app/dev", type: "chr" }], "app/dev", /CharacterDevice/],
    [
      "a hard link out",
      [{ name: "app/shadow", type: "link", target: "/etc/shadow" }],
      "app/shadow",
      /is a Link/,
    ],
    [
      "a symlink chain out",
      [
        { name: "app/u", type: "symlink", target: "." },
        { name: "app/up1", type: "symlink", target: "u/.." },
        ...Array.from({ length: 11 }, (_, i) => ({
          name: `app/up${i + 2}`,
          type: "symlink" as const,
          target: `up${i + 1}/..`,
        })),
        { name: "app/etc", type: "symlink", target: "up12/etc" },
      ],
      "app/etc/passwd",
      /resolves outside the app/,
    ],
  ])("refuses %s (plain tar as root keeps it)", async (what, extra, probe, message) => {
    const file = craftTarGz([...base, ...extra]);
    // Control: what unpacking as root with plain tar gives.
    const plain = tempDir("kiln-slug-plain-");
    execFileSync("tar", ["-xpzPf", file, "-C", plain]);
    const st = statSync(join(plain, probe));
    if (what.startsWith("a setuid")) expect(st.mode & 0o4000).toBe(0o4000);
    if (what.startsWith("a setgid")) expect(st.mode & 0o2000).toBe(0o2000);
    if (what === "a device node") expect(st.isCharacterDevice()).toBe(true);
    if (what === "a hard link out") expect(st.ino).toBe(statSync("/etc/shadow").ino);
    if (what === "a symlink chain out") expect(st.ino).toBe(statSync("/etc/passwd").ino);
    rmSync(plain, { recursive: true, force: true }); // not least the hard link to /etc/shadow

    const dataDir = tempDir("kiln-slug-data-");
    chmodSync(dataDir, 0o711); // as kiln serve requires: the dynos' (and the unpacking) uids pass through
    await expect(unpackSlug(dataDir, await runnable(file))).rejects.toMatchObject({
      code: "slug_unsafe",
      message: expect.stringMatching(message),
    });
    // Nothing is left behind, half unpacked or otherwise.
    expect(readdirSync(join(dataDir, "slugs"))).toEqual([]);
  });

  it("unpacks a plain slug as files owned by root with plain modes", async () => {
    const file = craftTarGz([...base, { name: "app/run", type: "file", data: "#!/bin/sh\n", mode: 0o755 }]);
    const dataDir = tempDir("kiln-slug-data-");
    chmodSync(dataDir, 0o711); // as kiln serve requires: the dynos' (and the unpacking) uids pass through
    const dir = await unpackSlug(dataDir, await runnable(file));
    const st = statSync(join(dir, "run"));
    expect([st.uid, st.mode & 0o7777]).toEqual([0, 0o755]);
    expect(statSync(join(dir, "index.html")).mode & 0o7777).toBe(0o644);
  });
});

describe("a build that leaves a process rewriting its slug", () => {
  it("has it stopped before packing: the slug is kiln's, hashed by the host", async () => {
    // The evil slug the leftover process writes over kiln's: a setuid file among the app's.
    const evil = craftTarGz([
      ...base,
      { name: "app/suid", type: "file", data: "#!/bin/sh\nid\n", mode: 0o4755 },
    ]);
    const bp = tempDir("kiln-slug-bp-");
    mkdirSync(join(bp, "bin"));
    copyFileSync(evil, join(bp, "evil.tgz"));
    const script = (name: string, text: string) => {
      writeFileSync(join(bp, "bin", name), text);
      chmodSync(join(bp, "bin", name), 0o755);
    };
    script("detect", "#!/bin/sh\necho evil\n");
    script(
      "compile",
      `#!/bin/sh
cp "$(dirname "$0")/../evil.tgz" /tmp/evil.tgz
# Left running: waits for kiln's slug, then keeps writing its own over it.
( while [ ! -e /kiln/out/slug.tgz ]; do sleep 0.01; done
  while true; do cp /tmp/evil.tgz /kiln/out/.evil && mv -f /kiln/out/.evil /kiln/out/slug.tgz; sleep 0.02; done
) </dev/null >/dev/null 2>&1 &
mkdir -p "$1/public" && echo '<h1>hi</h1>' > "$1/public/index.html"
`,
    );
    script(
      "release",
      "#!/bin/sh\nprintf -- '---\\ndefault_process_types:\\n  web: httpd -f -p $PORT -h /app/public\\n'\n",
    );
    const app = tempDir("kiln-slug-app-");
    writeFileSync(join(app, "README"), `leftover ${Date.now()}\n`);

    const lines: string[] = [];
    const dataDir = tempDir("kiln-slug-build-");
    const r = await buildApp(testContext({ dataDir }), {
      appDir: app,
      buildpacks: [bp],
      onLog: (phase, line) => lines.push(`${phase} | ${line}`),
    });
    const names = (await listTarGz(r.slug.path)).map((e) => e.path);
    expect(names).toContain("app/public/index.html");
    expect(names).not.toContain("app/suid");
    expect(r.slug.sha256).toBe(await hashFile(r.slug.path, "sha256"));
    expect(r.manifest.slug.sha256).toBe(r.slug.sha256);
    expect(lines.join("\n")).toMatch(
      /pack \| stopped \d+ process(es)? the build left running, before packing/,
    );
  });
});
