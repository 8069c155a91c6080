/**
 * Where checks are kept: each report as DATA_DIR/checks/ID.json, and a summary in the manifest of
 * the build whose slug was the reference (a build that passed a check carries that with it).
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { attestCheck } from "../provenance/provenance.js";
import { type CheckSummary, manifestSchema } from "../slug/records.js";
import { absent, withFileLock, writeFileAtomic } from "../util/fs.js";
import type { CheckReport } from "./check.js";

export function checkSummary(r: CheckReport): CheckSummary {
  return {
    id: r.id,
    verdict: r.verdict,
    at: r.finishedAt,
    builds: r.builds.length,
    variations: r.variations,
    differingFiles: r.comparisons.reduce((n, c) => n + c.differences.length, 0),
  };
}

export async function saveCheckReport(dataDir: string, r: CheckReport): Promise<string> {
  const dir = join(dataDir, "checks");
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${r.id}.json`);
  await writeFileAtomic(file, `${JSON.stringify(r, null, 2)}\n`);
  return file;
}

/** The slug the check's builds were compared with (the recorded one, else build 0's). */
export function referenceSha256(r: CheckReport): string | undefined {
  return r.against?.sha256 ?? r.builds.find((b) => b.index === 0)?.slug?.sha256;
}

/**
 * Adds the check to the manifest of the build with that slug, if this machine recorded one.
 * Returns the manifest's path, or undefined.
 */
export async function recordInManifest(
  dataDir: string,
  r: CheckReport,
  manifestPath = join(dataDir, "builds", r.app, `${referenceSha256(r) ?? "none"}.json`),
): Promise<string | undefined> {
  return withFileLock(`${manifestPath}.lock`, async () => {
    const text = await readFile(manifestPath, "utf8").catch(absent(undefined));
    if (text === undefined) return undefined;
    const m = manifestSchema.parse(JSON.parse(text));
    m.checks = [...(m.checks ?? []).filter((c) => c.id !== r.id), checkSummary(r)];
    await writeFileAtomic(manifestPath, `${JSON.stringify(m, null, 2)}\n`);
    await attestCheck(dataDir, manifestPath, r);
    return manifestPath;
  }).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  });
}
