/**
 * Finding the slug a dyno runs and unpacking it once: slugs are content-addressed, so
 * DATA_DIR/slugs/<sha256>/app is shared by every dyno of every release with those bytes and
 * never changes (dynos bind it read-only at /app).
 */
import {
  chmod,
  chown,
  lchown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
} from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { inspectUntrustedTarGz } from "../archive/untrusted.js";
import { KilnError } from "../errors.js";
import type { Nix } from "../nix/driver.js";
import { run } from "../process/run.js";
import { assertLinksBeneath } from "../util/beneath.js";
import { absent, exists, hashFile } from "../util/fs.js";
import { parseJsonWith } from "../util/json.js";
import { manifestSchema, releaseFileSchema } from "./records.js";

export interface RunnableSlug {
  app: string;
  /** The slug archive on this machine. */
  file: string;
  sha256: string;
  processTypes: Record<string, string>;
  /** Config vars the buildpacks' release step set (defaults; the user's vars override them). */
  configVars: Record<string, string>;
}

const invalid = (what: string) => ({
  code: "invalid_slug_ref" as const,
  invalid: "is invalid",
  jsonHint: `${what} is damaged; rebuild the app with kiln build`,
  schemaHint: `${what} is not one kiln wrote; rebuild the app with kiln build`,
});

async function fromManifest(nix: Nix, file: string): Promise<RunnableSlug> {
  const m = parseJsonWith(await readFile(file, "utf8"), manifestSchema, { file, ...invalid("the manifest") });
  const slugFile = m.slug.path.startsWith("/nix/store/") ? nix.realPath(m.slug.path) : m.slug.path;
  if (!(await exists(slugFile))) {
    throw new KilnError({
      code: "slug_missing",
      message: `the slug of ${file} is gone from the store (${m.slug.path})`,
      hint: "it was garbage-collected; rebuild the app with kiln build",
    });
  }
  return {
    app: m.app,
    file: slugFile,
    sha256: m.slug.sha256,
    processTypes: m.processTypes,
    configVars: m.configVars,
  };
}

async function fromBuildOutput(dir: string, app: string | undefined): Promise<RunnableSlug> {
  const file = join(dir, "release.json");
  const release = parseJsonWith(await readFile(file, "utf8"), releaseFileSchema, {
    file,
    ...invalid("release.json"),
  });
  const slug = join(dir, "slug.tgz");
  return {
    app: app ?? appFromStoreName(basename(dir)),
    file: slug,
    sha256: await hashFile(slug, "sha256"),
    processTypes: release.processTypes,
    configVars: release.configVars,
  };
}

function appFromStoreName(name: string): string {
  return /^[0-9a-z]{32}-kiln-slug-(.+)$/.exec(name)?.[1] ?? "app";
}

async function manifestsOf(dataDir: string): Promise<{ app: string; file: string; mtimeMs: number }[]> {
  const root = join(dataDir, "builds");
  const out: { app: string; file: string; mtimeMs: number }[] = [];
  for (const app of await readdir(root).catch(absent([] as string[]))) {
    for (const f of await readdir(join(root, app)).catch(absent([] as string[]))) {
      if (!f.endsWith(".json")) continue;
      const file = join(root, app, f);
      out.push({ app, file, mtimeMs: (await stat(file)).mtimeMs });
    }
  }
  return out;
}

/**
 * SLUG_OR_BUILD: an app name (its latest build), a build id (the slug's sha256 or a prefix of at
 * least 7 hex digits), a manifest file, a build output directory, or a slug.tgz with release.json
 * beside it.
 */
export async function resolveSlug(deps: { nix: Nix; dataDir: string }, ref: string): Promise<RunnableSlug> {
  const path = resolve(ref);
  const st = await stat(path).catch(absent(undefined));
  if (st?.isDirectory()) {
    if (await exists(join(path, "slug.tgz"))) return fromBuildOutput(path, undefined);
    throw new KilnError({
      code: "invalid_slug_ref",
      message: `${ref} is a directory without a slug.tgz`,
      hint: "to run an app's source, build it first: kiln build DIR, then kiln run APP",
    });
  }
  if (st?.isFile()) {
    if (path.endsWith(".json")) return fromManifest(deps.nix, path);
    if (await exists(join(dirname(path), "release.json"))) return fromBuildOutput(dirname(path), undefined);
    throw new KilnError({
      code: "invalid_slug_ref",
      message: `${ref} has no release.json beside it, so its process types are unknown`,
      hint: "run the build's output directory, its manifest, or the app name",
    });
  }
  const manifests = await manifestsOf(deps.dataDir);
  const byApp = manifests.filter((m) => m.app === ref).sort((a, b) => b.mtimeMs - a.mtimeMs)[0];
  if (byApp) return fromManifest(deps.nix, byApp.file);
  if (/^[0-9a-f]{7,64}$/.test(ref)) {
    const hits = manifests.filter((m) => basename(m.file).startsWith(ref));
    const [hit] = hits;
    if (hits.length > 1) {
      throw new KilnError({
        code: "ambiguous_build",
        message: `build id ${ref} matches ${hits.length} builds`,
        hint: "give more digits of the slug's sha256",
      });
    }
    if (hit) return fromManifest(deps.nix, hit.file);
  }
  const apps = [...new Set(manifests.map((m) => m.app))].sort();
  throw new KilnError({
    code: "unknown_slug",
    message: `no build, app or slug called "${ref}"`,
    hint: apps.length
      ? `built apps here: ${apps.join(", ")}; or build one: kiln build DIR`
      : "nothing is built yet: kiln build DIR",
  });
}

/** DATA_DIR/slugs/<sha256>/app, unpacked (and checked against its hash) on first use. */
export async function unpackSlug(dataDir: string, slug: RunnableSlug): Promise<string> {
  const root = join(dataDir, "slugs");
  const dir = join(root, slug.sha256);
  if (await exists(join(dir, "app"))) return join(dir, "app");
  await mkdir(root, { recursive: true });
  // Dynos run as the apps' uids: they must pass through to the slug (but need not list others).
  await chmod(root, 0o711);
  const actual = await hashFile(slug.file, "sha256");
  if (actual !== slug.sha256) {
    throw new KilnError({
      code: "slug_corrupt",
      message: `${slug.file} has sha256 ${actual}, but its build recorded ${slug.sha256}`,
      hint: "the file was changed after the build; rebuild the app",
    });
  }
  // Unpacked beside the target and renamed when complete: a crash never leaves half a slug in place.
  const tmp = await mkdtemp(join(root, `.unpack-${slug.sha256.slice(0, 12)}-`));
  try {
    await unpackUntrustedSlug(slug.file, tmp);
    if (!(await exists(join(tmp, "app")))) {
      throw new KilnError({
        code: "slug_corrupt",
        message: `${slug.file} has no app/ directory`,
        hint: "this is not a kiln slug; rebuild the app",
      });
    }
    await chmod(tmp, 0o755);
    await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
      // Another kiln unpacked the same slug first: theirs is identical.
      if (err.code !== "ENOTEMPTY" && err.code !== "EEXIST") throw err;
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return join(dir, "app");
}

/** The uid that unpacks slugs: nobody, so the unpacking itself cannot write where root could. */
export const UNPACK_UID = 65534;

const SLUG_LIMITS = {
  maxBytes: 16 * 1024 ** 3,
  maxEntries: 2_000_000,
  // Slugs may hold large runs of one byte (the build's own files); bytes and entries bound them.
  maxRatio: 2000,
  specialModes: "refuse" as const,
};

/**
 * A slug is a build's output, so as untrusted as an upload: its entries are checked (no setuid or
 * setgid bits, devices, FIFOs, hard links, or links whose target resolves out of the tree), it is
 * unpacked by an unprivileged uid (tar reads it from a descriptor root opened), and the result is
 * checked once more on disk before it is handed to root (every entry re-owned, links not followed).
 */
export async function unpackUntrustedSlug(file: string, into: string): Promise<void> {
  const refuse = (why: string) =>
    new KilnError({ code: "slug_unsafe", message: `the slug ${file} ${why}`, hint: "rebuild the app" });
  await inspectUntrustedTarGz(file, SLUG_LIMITS).catch((err: unknown) => {
    throw err instanceof KilnError ? refuse(`is refused: ${err.message}`) : err;
  });
  // Traversable for the unpacking uid to reach its own directory (as the data directory must be
  // for the dynos' uids); `w` itself is that uid's alone.
  await chmod(into, 0o711);
  const work = join(into, "w");
  await mkdir(work, { mode: 0o700 });
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await chown(work, UNPACK_UID, UNPACK_UID);
  const tarArgs = [
    "-xzf",
    "-",
    "-C",
    work,
    "--no-same-owner",
    "--no-same-permissions",
    "--delay-directory-restore",
  ];
  const r = asRoot
    ? await run(
        "setpriv",
        [
          `--reuid=${UNPACK_UID}`,
          `--regid=${UNPACK_UID}`,
          "--clear-groups",
          "--no-new-privs",
          "--inh-caps=-all",
          "--",
          "tar",
          ...tarArgs,
        ],
        { cwd: work, inputFile: file, reject: false, env: { LC_ALL: "C" } },
      )
    : await run("tar", tarArgs, { cwd: work, inputFile: file, reject: false, env: { LC_ALL: "C" } });
  if (r.exitCode !== 0)
    throw refuse(`could not be unpacked: ${r.stderrTail.trim().split("\n").slice(-3).join("; ")}`);
  await assertLinksBeneath(work, "the slug's").catch((err: unknown) => {
    throw err instanceof KilnError ? refuse(`is refused: ${err.message}`) : err;
  });
  const walk = async (rel: string): Promise<void> => {
    const p = rel ? join(work, rel) : work;
    const st = await lstat(p);
    if (!st.isDirectory() && !st.isFile() && !st.isSymbolicLink())
      throw refuse(`holds ${rel}, which is not a file, directory or symlink`);
    if ((st.mode & 0o6000) !== 0) throw refuse(`holds ${rel} with the setuid or setgid bit`);
    if (st.isFile() && st.nlink > 1) throw refuse(`holds ${rel}, a hard link`);
    if (asRoot) await lchown(p, 0, 0);
    if (!st.isSymbolicLink()) await chmod(p, st.isDirectory() || (st.mode & 0o100) !== 0 ? 0o755 : 0o644);
    if (st.isDirectory())
      for (const name of (await readdir(p)).sort()) await walk(rel ? `${rel}/${name}` : name);
  };
  await walk("");
  for (const name of await readdir(work)) await rename(join(work, name), join(into, name));
  await rm(work, { recursive: true });
}
