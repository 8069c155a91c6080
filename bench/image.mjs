#!/usr/bin/env node
// OCI image export benchmarks, per fixture (node-web: express, a ~48 MiB slug; procfile-shell: a
// tiny one), each in a throwaway data directory on the machine's Nix store (builds are cached):
//
//   export, first     `kiln image APP --output DIR` with no image cache: packs the run stack's
//                     layer (once per stack), hashes the slug (its diff_id), writes the layout
//   export, again     the same into a new directory: stack layer and diff_id remembered
//   archive           `kiln image APP --archive FILE` (a tar of the layout), cache warm
//     vs  cp slug.tgz           copying the slug alone: the least any export must write
//     vs  skopeo copy oci:A oci:B  a real OCI tool copying the same image
//   size              the image (every blob) against the slug, and against the slug + stack
//
// Runnable alone (`node bench/image.mjs`) or as part of `npm run bench`. Options: --json.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const kilnBin = join(root, "bin", "kiln.js");
const json = process.argv.includes("--json");

function timed(label, cmd, args, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 30, ...opts });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0)
    throw new Error(`${label} failed (exit ${r.status}):\n${(r.stderr ?? "").slice(-3000)}`);
  return { seconds, stdout: r.stdout };
}

const dirBytes = (dir) =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .reduce((n, e) => n + statSync(join(e.parentPath, e.name)).size, 0);

function benchApp(app) {
  const data = mkdtempSync(join(tmpdir(), "kiln-bench-image-"));
  chmodSync(data, 0o711);
  const out = mkdtempSync(join(tmpdir(), "kiln-bench-image-out-"));
  const env = { ...process.env, KILN_DATA_DIR: data, KILN_LOG_LEVEL: "error" };
  const kiln = (label, args) => timed(label, process.execPath, [kilnBin, "-q", ...args], { env });
  try {
    const built = JSON.parse(
      kiln(`build ${app}`, ["build", join(root, "test", "fixtures", "apps", app), "--json"]).stdout,
    );
    const slugFile = built.slug.path;
    const first = kiln("export, first", ["image", app, "--output", join(out, "a"), "--json"]);
    const again = kiln("export, again", ["image", app, "--output", join(out, "b"), "--json"]);
    const archive = kiln("archive", ["image", app, "--archive", join(out, "img.tar"), "--json"]);
    const cp = timed("cp slug", "cp", [slugFile, join(out, "slug-copy.tgz")]);
    const skopeo = timed("skopeo copy", "skopeo", [
      "copy",
      "-q",
      `oci:${join(out, "a")}:latest`,
      `oci:${join(out, "c")}:latest`,
    ]);
    const info = JSON.parse(first.stdout);
    const slugBytes = statSync(slugFile).size;
    const stackBytes = info.layers[0].size;
    const imageBytes = dirBytes(join(out, "a"));
    return {
      app,
      digest: info.digest,
      seconds: {
        first: first.seconds,
        again: again.seconds,
        archive: archive.seconds,
        cpSlug: cp.seconds,
        skopeoCopy: skopeo.seconds,
      },
      bytes: {
        slug: slugBytes,
        stackLayer: stackBytes,
        image: imageBytes,
        archive: statSync(join(out, "img.tar")).size,
      },
      ratios: {
        againVsCp: again.seconds / cp.seconds,
        againVsSkopeo: again.seconds / skopeo.seconds,
        firstVsAgain: first.seconds / again.seconds,
        imageVsSlug: imageBytes / slugBytes,
        imageVsSlugPlusStack: imageBytes / (slugBytes + stackBytes),
      },
    };
  } finally {
    rmSync(data, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  }
}

const results = ["procfile-shell", "node-web"].map(benchApp);
if (json) console.log(JSON.stringify(results, null, 2));
else {
  const mib = (n) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  const s = (n) => `${n.toFixed(2)} s`;
  for (const r of results) {
    console.log(`${r.app} (${r.digest.slice(0, 19)}…)`);
    console.log(`  export, first   ${s(r.seconds.first)}   (${r.ratios.firstVsAgain.toFixed(1)}× again)`);
    console.log(
      `  export, again   ${s(r.seconds.again)}   ${r.ratios.againVsCp.toFixed(1)}× cp slug.tgz (${s(r.seconds.cpSlug)}), ${r.ratios.againVsSkopeo.toFixed(2)}× skopeo copy (${s(r.seconds.skopeoCopy)})`,
    );
    console.log(`  archive         ${s(r.seconds.archive)}`);
    console.log(
      `  size            image ${mib(r.bytes.image)} = ${r.ratios.imageVsSlug.toFixed(2)}× slug (${mib(r.bytes.slug)}); slug + stack layer (${mib(r.bytes.stackLayer)}) + ${r.bytes.image - r.bytes.slug - r.bytes.stackLayer} bytes of kiln's layer and documents`,
    );
  }
}
