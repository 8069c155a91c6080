/**
 * A build as an OCI image: the run stack as the base layer, the slug as it is (its bytes are the
 * layer, so the layer digest is the slug's sha256: nothing is recompressed), and a small layer with
 * the entrypoint. Written as an image layout (a directory) or an oci-archive (a tar of one).
 *
 * The stack layer is made once per stack and kept in DATA_DIR/images (it is the one layer kiln
 * compresses on the host); the slug's diff_id is remembered there too.
 */
import { randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { copyFile, mkdir, readdir, readFile, rename, rm, rmdir, symlink, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { Writable } from "node:stream";
import { z } from "zod";
import { inspectUntrustedTarGz } from "../archive/untrusted.js";
import type { Config } from "../config/config.js";
import { bug, KilnError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { Nix } from "../nix/driver.js";
import { buildStacks, STACK_SOURCE_DATE_EPOCH, stackInfo } from "../stacks/stacks.js";
import { absent, exists, writeFileAtomic } from "../util/fs.js";
import {
  type Blob,
  IMAGE_REF,
  imageConfig,
  imageIndex,
  imageManifest,
  type LayerBlob,
  launcherScript,
  MEDIA,
  OCI_LAYOUT,
  sha256,
} from "./oci.js";
import type { ImageSource } from "./source.js";
import { digestsOfTarGz, type LayerDigests, writeArchive, writeEntriesLayer, writeGzipLayer } from "./tar.js";

export interface ImageDeps {
  config: Config;
  nix: Nix;
  log: Logger;
}

/** An image ready to write: its blobs on disk (layers) or in memory (the JSON documents). */
export interface PreparedImage {
  src: ImageSource;
  /** sha256 of the manifest: the image's digest. */
  digest: string;
  layers: (LayerBlob & { file: string })[];
  config: Blob & { bytes: Buffer };
  manifest: Blob & { bytes: Buffer };
  index: Buffer;
}

const digestsSchema = z.object({ digest: z.string(), diffId: z.string(), size: z.number() });

const imagesDir = (config: Config) => join(config.dataDir, "images");
const blobPath = (config: Config, digest: string) => join(imagesDir(config), "blobs", "sha256", digest);

async function remembered(config: Config, key: string): Promise<LayerDigests | undefined> {
  const text = await readFile(join(imagesDir(config), "layers", `${key}.json`), "utf8").catch(
    absent(undefined),
  );
  const parsed = text === undefined ? undefined : digestsSchema.safeParse(JSON.parse(text));
  return parsed?.success ? parsed.data : undefined;
}

async function remember(config: Config, key: string, d: LayerDigests): Promise<void> {
  const dir = join(imagesDir(config), "layers");
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, `${key}.json`), `${JSON.stringify(d)}\n`);
}

async function stackLayer(deps: ImageDeps, storePath: string): Promise<LayerDigests & { file: string }> {
  const key = `stack-${basename(storePath)}`;
  const known = await remembered(deps.config, key);
  if (known && (await exists(blobPath(deps.config, known.digest))))
    return { ...known, file: blobPath(deps.config, known.digest) };
  const dir = join(imagesDir(deps.config), "blobs", "sha256");
  await mkdir(dir, { recursive: true });
  // Written beside its final name and renamed once complete: never a half blob under a digest.
  const tmp = join(dir, `.partial-${randomUUID()}`);
  try {
    const d = await writeGzipLayer(deps.nix.realPath(storePath), tmp, {
      mtime: STACK_SOURCE_DATE_EPOCH,
    });
    await rename(tmp, blobPath(deps.config, d.digest));
    await remember(deps.config, key, d);
    return { ...d, file: blobPath(deps.config, d.digest) };
  } finally {
    await rm(tmp, { force: true });
  }
}

const SLUG_LIMITS = {
  maxBytes: 16 * 1024 ** 3,
  maxEntries: 2_000_000,
  maxRatio: 2000,
  specialModes: "refuse" as const,
};

/**
 * The slug as a layer. A slug is a build's output, as untrusted as for a dyno (same checks as
 * src/slug/runnable.ts: no devices, hard links, setuid bits, links out), and in an image it
 * also shares a root with the stack: every entry must be under app/, or a slug could replace
 * the stack's /etc/passwd or the entrypoint.
 */
async function slugLayer(deps: ImageDeps, src: ImageSource): Promise<LayerDigests> {
  const key = `slug-${src.slugSha256}`;
  const known = await remembered(deps.config, key);
  if (known) return known;
  const refuse = (why: string) =>
    new KilnError({
      code: "slug_unsafe",
      message: `the slug ${src.slugSha256} ${why}`,
      hint: "rebuild the app",
    });
  await inspectUntrustedTarGz(src.slugFile, SLUG_LIMITS).catch((err: unknown) => {
    throw err instanceof KilnError ? refuse(`is refused: ${err.message}`) : err;
  });
  const d = await digestsOfTarGz(src.slugFile, (p) => {
    const rel = p.replace(/^\.\//, "");
    if (rel !== "app" && rel !== "app/" && !rel.startsWith("app/")) throw refuse(`has ${p}, outside app/`);
  });
  if (d.digest !== src.slugSha256)
    throw new KilnError({
      code: "slug_corrupt",
      message: `${src.slugFile} has sha256 ${d.digest}, but its build recorded ${src.slugSha256}`,
      hint: "the file was changed after the build; rebuild the app",
    });
  await remember(deps.config, key, d);
  return d;
}

/**
 * kiln's own layer, last so nothing above can replace it: the entrypoint, and /tmp and /var/tmp
 * sticky and world-writable (a dyno gets a fresh tmpfs there; a container gets the image's dirs).
 */
async function launcherLayer(deps: ImageDeps, src: ImageSource): Promise<LayerDigests & { file: string }> {
  const entries = [
    { path: "kiln/", mode: 0o755 },
    { path: "kiln/launch", mode: 0o755, data: Buffer.from(launcherScript(src.processTypes)) },
    { path: "tmp/", mode: 0o1777 },
    { path: "var/tmp/", mode: 0o1777 },
  ];
  const dir = join(imagesDir(deps.config), "blobs", "sha256");
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.partial-${randomUUID()}`);
  try {
    const d = await writeEntriesLayer(entries, tmp, src.sourceDateEpoch);
    await rename(tmp, blobPath(deps.config, d.digest));
    return { ...d, file: blobPath(deps.config, d.digest) };
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Makes (or finds) every layer and the documents; `onStep` hears what is being done. */
export async function prepareImage(
  deps: ImageDeps,
  src: ImageSource,
  onStep: (step: string) => void = () => {},
): Promise<PreparedImage> {
  onStep("building the run stack");
  const [stack] = await buildStacks(deps, ["run"]);
  if (!stack) bug("no run stack built");
  const info = await stackInfo(deps, stack);
  onStep("packing the stack layer (once per stack)");
  const base = await stackLayer(deps, stack.storePath);
  onStep("hashing the slug layer");
  const slug = await slugLayer(deps, src);
  const launch = await launcherLayer(deps, src);
  const layers = [
    { ...base, mediaType: MEDIA.layerGzip, createdBy: `kiln: stack-run ${info.narHash}` },
    {
      ...slug,
      file: src.slugFile,
      mediaType: MEDIA.layerGzip,
      createdBy: `kiln: slug of ${src.app} (sha256 ${src.slugSha256})`,
    },
    { ...launch, mediaType: MEDIA.layer, createdBy: "kiln: entrypoint /kiln/launch, /tmp" },
  ];
  const configBytes = imageConfig({ src, stack: { name: "stack-run", narHash: info.narHash }, layers });
  const config = {
    mediaType: MEDIA.config,
    digest: sha256(configBytes),
    size: configBytes.length,
    bytes: configBytes,
  };
  const manifestBytes = imageManifest(config, layers);
  const manifest = {
    mediaType: MEDIA.manifest,
    digest: sha256(manifestBytes),
    size: manifestBytes.length,
    bytes: manifestBytes,
  };
  return { src, digest: manifest.digest, layers, config, manifest, index: imageIndex(manifest) };
}

/** The layout's files under `dir`; layers copied, or (`link`) symlinked when only a tar of it is wanted. */
async function fillLayout(img: PreparedImage, dir: string, link: boolean): Promise<void> {
  const blobs = join(dir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  for (const l of img.layers) {
    if (link) await symlink(resolve(l.file), join(blobs, l.digest));
    else await copyFile(l.file, join(blobs, l.digest));
  }
  await writeFile(join(blobs, img.config.digest), img.config.bytes);
  await writeFile(join(blobs, img.manifest.digest), img.manifest.bytes);
  await writeFile(join(dir, "index.json"), img.index);
  await writeFile(join(dir, "oci-layout"), OCI_LAYOUT);
}

/** Writes an image layout at `dir` (absent or empty), complete or not at all. */
export async function writeImageLayout(img: PreparedImage, dir: string): Promise<void> {
  const target = resolve(dir);
  const entries = await readdir(target).catch(absent(undefined));
  if (entries && entries.length > 0)
    throw new KilnError({
      code: "conflict",
      message: `${dir} is not empty`,
      hint: "give a new or empty directory to --output (an image layout is written whole)",
    });
  const partial = join(dirname(target), `.${basename(target)}.partial-${randomUUID().slice(0, 8)}`);
  try {
    await fillLayout(img, partial, false);
    if (entries) await rmdir(target);
    await rename(partial, target);
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
}

/** Streams the image as an oci-archive (an uncompressed tar of its layout) into `out`. */
export async function streamOciArchive(deps: ImageDeps, img: PreparedImage, out: Writable): Promise<void> {
  const tmp = join(imagesDir(deps.config), `.layout-${randomUUID()}`);
  try {
    await fillLayout(img, tmp, true);
    await writeArchive(tmp, out, img.src.sourceDateEpoch);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Writes the oci-archive to `file`, complete or not at all. */
export async function writeOciArchive(deps: ImageDeps, img: PreparedImage, file: string): Promise<void> {
  const partial = `${file}.partial`;
  try {
    await streamOciArchive(deps, img, createWriteStream(partial));
    await rename(partial, file);
  } finally {
    await rm(partial, { force: true });
  }
}

/** The reference skopeo and umoci take for a layout kiln wrote. */
export const layoutRef = (dir: string) => `oci:${dir}:${IMAGE_REF}`;
