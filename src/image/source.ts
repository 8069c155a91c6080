/**
 * What an image is made from: one recorded build (its manifest) or a build output directory. Only
 * what the build produced goes in (slug, process types, the buildpacks' config defaults); the
 * app's own config vars live in the release, never in the build, and so never reach an image.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { NIX_CONSTANTS } from "../nix/constants.js";
import type { Nix } from "../nix/driver.js";
import { buildSpecSchema, type Manifest, manifestSchema } from "../slug/records.js";
import { resolveSlug } from "../slug/runnable.js";
import { absent } from "../util/fs.js";
import { parseJsonWith } from "../util/json.js";

export interface ImageSource {
  app: string;
  /** The slug archive on this machine. */
  slugFile: string;
  slugSha256: string;
  processTypes: Record<string, string>;
  /** The buildpacks' release defaults (e.g. NODE_ENV): part of the build output, not the app's config. */
  defaults: Record<string, string>;
  /** The git commit built, when the build came from a push. */
  commit?: string;
  /** The build's SOURCE_DATE_EPOCH: the image's `created` and its entries' mtimes. */
  sourceDateEpoch: number;
}

/** From a build's manifest (what the API's builds record). */
export async function imageSourceFromManifest(nix: Nix, manifestPath: string): Promise<ImageSource> {
  const m: Manifest = parseJsonWith(await readFile(manifestPath, "utf8"), manifestSchema, {
    file: manifestPath,
    code: "invalid_slug_ref",
    invalid: "is invalid",
    jsonHint: "the manifest is damaged; rebuild the app with kiln build",
    schemaHint: "the manifest is not one kiln wrote; rebuild the app with kiln build",
  });
  const slugFile = m.slug.path.startsWith("/nix/store/") ? nix.realPath(m.slug.path) : m.slug.path;
  return {
    app: m.app,
    slugFile,
    slugSha256: m.slug.sha256,
    processTypes: m.processTypes,
    defaults: m.configVars,
    ...(m.source.commit ? { commit: m.source.commit } : {}),
    sourceDateEpoch: await epochOfSpec(m.specFile),
  };
}

async function epochOfSpec(specFile: string | undefined): Promise<number> {
  const text = specFile ? await readFile(specFile, "utf8").catch(absent(undefined)) : undefined;
  const parsed = text === undefined ? undefined : buildSpecSchema.safeParse(JSON.parse(text));
  return parsed?.success ? parsed.data.sourceDateEpoch : NIX_CONSTANTS.sourceDateEpoch;
}

/** APP (its latest build), a build id (slug sha256 prefix), a manifest, or a build output directory. */
export async function resolveImageSource(
  deps: { nix: Nix; dataDir: string },
  ref: string,
): Promise<ImageSource> {
  const slug = await resolveSlug(deps, ref);
  // Recorded builds have a manifest named for the slug: it knows the commit and the epoch.
  const manifest = join(deps.dataDir, "builds", slug.app, `${slug.sha256}.json`);
  const recorded = ref.endsWith(".json") ? ref : manifest;
  const found = await readFile(recorded, "utf8").then(() => true, absent(false));
  if (found) {
    const src = await imageSourceFromManifest(deps.nix, recorded);
    if (src.slugSha256 !== slug.sha256)
      throw new KilnError({
        code: "invalid_slug_ref",
        message: `${recorded} records slug ${src.slugSha256}, not ${slug.sha256}`,
        hint: "the manifest was edited; rebuild the app",
      });
    return src;
  }
  return {
    app: slug.app,
    slugFile: slug.file,
    slugSha256: slug.sha256,
    processTypes: slug.processTypes,
    defaults: slug.configVars,
    sourceDateEpoch: NIX_CONSTANTS.sourceDateEpoch,
  };
}
