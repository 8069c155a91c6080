/**
 * A slug derivation's output, as the sandbox tools write it: slug.tgz, build.json (what was built,
 * the slug's sha256) and release.json (process types, config defaults), read through their schemas.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseJsonWith } from "../util/json.js";
import { type BuildFile, buildFileSchema, type ReleaseFile, releaseFileSchema } from "./records.js";

const damaged = (file: string) => ({
  file,
  code: "invalid_slug_output" as const,
  invalid: "is not one kiln's tools wrote",
  jsonHint: "the build output is damaged; build again",
  schemaHint: "it was written by another kiln's tools; build again with this one",
});

export async function readBuildFile(dir: string): Promise<BuildFile> {
  const file = join(dir, "build.json");
  return parseJsonWith(await readFile(file, "utf8"), buildFileSchema, damaged(file));
}

export async function readReleaseFile(dir: string): Promise<ReleaseFile> {
  const file = join(dir, "release.json");
  return parseJsonWith(await readFile(file, "utf8"), releaseFileSchema, damaged(file));
}
