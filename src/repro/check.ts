/**
 * `kiln check`: is an app's build reproducible? The same prepared build (src/builds/build.ts) is
 * built N more times, each as its own derivations (a nonce, so nothing comes from the cache) with
 * the variations of nix/build/variations.json; every slug is compared with the reference (build 0,
 * or a recorded slug given with --against), and every difference is explained (diff.ts) and given
 * its likely cause (causes.ts).
 *
 *   verdict  reproducible (exit 0) · not_reproducible (1) · build_failed (2)
 */
import { randomUUID } from "node:crypto";
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { readTarEntries, type TarMember } from "../archive/tar.js";
import { type BuildDeps, buildExpr, type PreparedBuild } from "../builds/build.js";
import { bug, isKilnError, KilnError } from "../errors.js";
import type { BuildOptions } from "../nix/driver.js";
import { derivationName } from "../nix/events.js";
import { type BuildSpec, buildSpecSchema, type CheckSummary } from "../slug/records.js";
import { absent, hashFile, writeFileAtomic } from "../util/fs.js";
import { CAUSE_HINTS, type Cause, type CauseContext, type CauseId, nameCauses } from "./causes.js";
import { compareEntries, diffArchives, type FileDifference } from "./diff.js";
import { diffoscopeHtml } from "./diffoscope.js";
import {
  type CheckSettings,
  loadVariations,
  settingsFor,
  type VariationTable,
  variedIn,
} from "./variations.js";

export type Verdict = CheckSummary["verdict"];
export const EXIT_CODES: Record<Verdict, number> = { reproducible: 0, not_reproducible: 1, build_failed: 2 };

/** A slug to compare the fresh builds with: a file from elsewhere, or a recorded build's. */
export interface Against {
  label: string;
  file: string;
  sha256: string;
  bytes: number;
}

/** Checks that `file` is a file and hashes it: before anything is built (bad input changes nothing). */
export async function resolveAgainst(file: string, label: string): Promise<Against> {
  const st = await stat(file).catch(absent(undefined));
  if (!st?.isFile())
    throw new KilnError({
      code: "invalid_against",
      message: `--against ${label}: no such file, and not a build id`,
      hint: "give a slug.tgz (e.g. from another machine), or a build id (kiln builds --app APP) with --app",
    });
  return { label, file, sha256: await hashFile(file, "sha256"), bytes: st.size };
}

export interface CheckOptions {
  /** The check's id (default: a new one); the server's record uses its own. */
  id?: string;
  /** Fresh builds (at least 2 without `against`, at least 1 with it). */
  builds: number;
  /** Names from nix/build/variations.json, switched on. */
  variations: string[];
  against?: Against;
  /** Builds at once (default: as many as there are cores, up to the number of builds). */
  jobs?: number;
  /**
   * When slugs differ: one more build per variation, with only that one on, to say which
   * variation changes which file (reprotest's auto-build).
   */
  bisect?: boolean;
  onLog?: (build: number, line: string) => void;
  onProgress?: BuildOptions["onProgress"];
  onStep?: (message: string) => void;
  signal?: AbortSignal;
}

export interface CheckBuild {
  index: number;
  varied: { name: string; value: string }[];
  slug?: { sha256: string; bytes: number; path: string };
}

export interface ExplainedDifference extends Omit<FileDifference, "members"> {
  causes: Cause[];
  /** With --bisect: the variations that change this file when varied alone. */
  changedBy?: string[];
}

/** With --bisect: what one variation alone does to the slug. */
export interface BisectResult {
  variation: string;
  value: string;
  identical: boolean;
  /** The files it changes (flattened as in differences). */
  files: string[];
  error?: string;
}

export interface Comparison {
  /** Build indexes, or "against" for the recorded slug. */
  reference: number | "against";
  build: number;
  identical: boolean;
  /** The differing files, archives' members flattened (path `outer.tgz//member`). */
  differences: ExplainedDifference[];
  /** diffoscope's HTML report of the two slugs, where diffoscope is installed. */
  diffoscope?: string;
}

export interface CheckReport {
  id: string;
  app: string;
  verdict: Verdict;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  variations: string[];
  builds: CheckBuild[];
  against?: { label: string; sha256: string; bytes: number };
  comparisons: Comparison[];
  /** With --bisect, when the slugs differ: each variation alone. */
  bisect?: BisectResult[];
  /** Each cause found, with the files it explains and what to do. */
  causes: { id: CauseId; title: string; hint: string; files: string[] }[];
  /** Why the check could not build (verdict build_failed). */
  error?: { code: string; message: string; hint?: string; logTail?: string[] };
}

/** Runs a check of a prepared build. A build that fails gives a report (build_failed), not a throw. */
export async function runCheck(
  deps: BuildDeps,
  p: Pick<PreparedBuild, "app" | "spec">,
  opts: CheckOptions,
): Promise<CheckReport> {
  const started = new Date();
  const { config } = deps;
  const table = await loadVariations(config.projectDir);
  const id = opts.id ?? randomUUID();
  const step = opts.onStep ?? (() => {});
  const first = opts.against ? 1 : 0;
  const indexes = Array.from({ length: opts.builds }, (_, i) => first + i);
  const settings = new Map<number, CheckSettings>(
    indexes.map((i) => [i, settingsFor(table, opts.variations, i)]),
  );
  const builds: CheckBuild[] = indexes.map((i) => ({
    index: i,
    varied: variedIn(table, settings.get(i) as CheckSettings).map(({ name, value }) => ({ name, value })),
  }));
  const report = (rest: Partial<CheckReport> & Pick<CheckReport, "verdict">): CheckReport => {
    const finished = new Date();
    return {
      id,
      app: p.app,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      seconds: (finished.getTime() - started.getTime()) / 1000,
      variations: opts.variations,
      builds,
      comparisons: [],
      causes: [],
      ...rest,
    };
  };

  const against = opts.against;
  step(
    `building ${opts.builds} time${opts.builds === 1 ? "" : "s"} with ${opts.variations.length ? opts.variations.join(", ") : "no variations"} (nothing from the cache)`,
  );
  let slugs: SlugFile[];
  try {
    slugs = await buildJobs(
      deps,
      p.spec,
      indexes.map((i) => ({ index: i, nonce: `${id}-${i}`, settings: settings.get(i) as CheckSettings })),
      opts,
    );
  } catch (err) {
    if (opts.signal?.aborted || !isKilnError(err)) throw err;
    const tail = (err as { logTail?: string[] }).logTail;
    return report({
      verdict: "build_failed",
      error: {
        code: err.code,
        message: err.message,
        ...(err.hint ? { hint: err.hint } : {}),
        ...(tail ? { logTail: tail } : {}),
      },
    });
  }
  for (const [k, slug] of slugs.entries()) (builds[k] as CheckBuild).slug = slug;

  step("comparing the slugs");
  const build0 = builds[0]?.slug;
  const reference = against ?? (build0 ? { file: build0.path, sha256: build0.sha256 } : undefined);
  // Each slug is read once, however many comparisons (and bisect builds) it takes part in.
  const entries = memoEntries();
  const comparisons = reference
    ? await compareWithReference(deps, { id, table, settings, builds, reference, against, entries }, opts)
    : [];
  let bisect: BisectResult[] | undefined;
  if (opts.bisect && reference && comparisons.some((c) => !c.identical)) {
    bisect = await bisectVariations(
      deps,
      p.spec,
      { id, table, refFile: reference.file, refSha256: reference.sha256, entries },
      opts,
    );
    for (const c of comparisons)
      for (const d of c.differences)
        d.changedBy = bisect.filter((r) => r.files.includes(d.path)).map((r) => r.variation);
  }
  return report({
    verdict: comparisons.every((c) => c.identical) ? "reproducible" : "not_reproducible",
    ...(against ? { against: { label: against.label, sha256: against.sha256, bytes: against.bytes } } : {}),
    comparisons,
    ...(bisect ? { bisect } : {}),
    causes: causesOf(comparisons),
  });
}

/** Every fresh build against the reference; differing slugs explained (and diffoscope'd). */
async function compareWithReference(
  deps: BuildDeps,
  ctx: {
    id: string;
    table: VariationTable;
    settings: Map<number, CheckSettings>;
    builds: CheckBuild[];
    reference: { file: string; sha256: string };
    against: Against | undefined;
    entries: SlugEntries;
  },
  opts: CheckOptions,
): Promise<Comparison[]> {
  const { id, against, reference, settings } = ctx;
  const refSettings = against ? settingsFor(ctx.table, [], 0) : (settings.get(0) as CheckSettings);
  const comparisons: Comparison[] = [];
  for (const b of ctx.builds) {
    if (!b.slug || (!against && b.index === 0)) continue;
    const c: Comparison = {
      reference: against ? "against" : 0,
      build: b.index,
      identical: b.slug.sha256 === reference.sha256,
      differences: [],
    };
    if (!c.identical) {
      const refFile = reference.file;
      c.differences = await explainSlugs(
        refFile,
        b.slug.path,
        {
          a: refSettings,
          b: settings.get(b.index) as CheckSettings,
          labels: { a: against ? against.label : "build 0", b: `build ${b.index}` },
        },
        ctx.entries,
      );
      const html = join(deps.config.dataDir, "checks", `${id}-build${b.index}.html`);
      await mkdir(dirname(html), { recursive: true });
      const written = await diffoscopeHtml(
        refFile,
        b.slug.path,
        html,
        opts.signal ? { signal: opts.signal } : {},
      );
      if (written) c.diffoscope = written;
    }
    comparisons.push(c);
  }
  return comparisons;
}

/** Each cause found in the differences, once, with the files it explains and what to do. */
function causesOf(comparisons: Comparison[]): CheckReport["causes"] {
  const causes = new Map<CauseId, CheckReport["causes"][number]>();
  for (const c of comparisons)
    for (const d of c.differences)
      for (const cause of d.causes) {
        const e = causes.get(cause.id) ?? {
          id: cause.id,
          title: cause.title,
          hint: CAUSE_HINTS[cause.id],
          files: [],
        };
        if (!e.files.includes(d.path)) e.files.push(d.path);
        causes.set(cause.id, e);
      }
  return [...causes.values()];
}

interface SlugFile {
  sha256: string;
  bytes: number;
  path: string;
}

/**
 * Builds the prepared spec once per job, each its own derivations (the nonce), in one nix call
 * (it takes one --expr: an attribute set of the slugs), up to `jobs` at once.
 */
async function buildJobs(
  deps: BuildDeps,
  base: BuildSpec,
  jobs: { index: number; nonce: string; settings: CheckSettings }[],
  opts: CheckOptions,
): Promise<SlugFile[]> {
  const { config, nix } = deps;
  const specFiles: string[] = [];
  try {
    for (const j of jobs) {
      const spec = buildSpecSchema.parse({
        ...base,
        check: { nonce: j.nonce, index: j.index, settings: j.settings },
      });
      const file = join(config.dataDir, "specs", `check-${j.nonce}.json`);
      await mkdir(dirname(file), { recursive: true });
      await writeFileAtomic(file, `${JSON.stringify(spec, null, 2)}\n`);
      specFiles.push(file);
    }
    const expr = `{ ${specFiles.map((f, k) => `b${k} = ${buildExpr(config, f, "slug")};`).join(" ")} }`;
    const results = await nix.build([{ expr, attrs: specFiles.map((_, k) => `b${k}`) }], {
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      // Side by side: the builds are independent, and this is where a check's time goes.
      maxJobs: Math.max(1, Math.min(jobs.length, opts.jobs ?? availableParallelism())),
      onLogLine: (drvPath, line) => {
        const m = /-check(\d+)$/.exec(derivationName(drvPath));
        if (m && opts.onLog) opts.onLog(Number(m[1]), line);
      },
    });
    // nix reports the results in its own order: each derivation's name ends in its build's index.
    const byIndex = new Map(
      results.map((r) => [Number(/-check(\d+)$/.exec(derivationName(r.drvPath))?.[1]), r]),
    );
    const out: SlugFile[] = [];
    for (const j of jobs) {
      const o = byIndex.get(j.index)?.outputs.out;
      if (!o) bug(`nix gave no slug for build ${j.index}`);
      const dir = nix.realPath(o);
      // The host's own hash of the registered slug, never the build's report of it.
      const path = join(dir, "slug.tgz");
      const [sha256, st] = await Promise.all([hashFile(path, "sha256"), stat(path)]);
      out.push({ sha256, bytes: st.size, path });
    }
    return out;
  } finally {
    // They were for this nix call only (the report records the settings).
    await Promise.all(specFiles.map((f) => rm(f, { force: true })));
  }
}

/** One build per switched-on variation with only that one varied, each compared with the reference. */
async function bisectVariations(
  deps: BuildDeps,
  base: BuildSpec,
  ctx: {
    id: string;
    table: VariationTable;
    refFile: string;
    refSha256: string;
    entries: SlugEntries;
  },
  opts: CheckOptions,
): Promise<BisectResult[]> {
  // Indexes from 100 name the derivations (and their log lines) apart from the check's own builds.
  const jobs = opts.variations.map((v, k) => ({
    variation: v,
    index: 100 + k,
    nonce: `${ctx.id}-only-${v}`,
    settings: settingsFor(ctx.table, [v], 1),
  }));
  opts.onStep?.(`bisecting: ${jobs.length} more builds, one variation each`);
  let slugs: SlugFile[];
  try {
    slugs = await buildJobs(deps, base, jobs, opts);
  } catch (err) {
    if (opts.signal?.aborted || !isKilnError(err)) throw err;
    return jobs.map((j) => ({
      variation: j.variation,
      value: "",
      identical: false,
      files: [],
      error: err.message,
    }));
  }
  const out: BisectResult[] = [];
  for (const [k, j] of jobs.entries()) {
    const slug = slugs[k] as SlugFile;
    const value = variedIn(ctx.table, j.settings)[0]?.value ?? "";
    const identical = slug.sha256 === ctx.refSha256;
    const files = identical
      ? []
      : (
          await explainSlugs(
            ctx.refFile,
            slug.path,
            { a: settingsFor(ctx.table, [], 0), b: j.settings },
            ctx.entries,
          )
        ).map((d) => d.path);
    out.push({ variation: j.variation, value, identical, files });
  }
  return out;
}

/** A slug's members by file, each slug read once. */
type SlugEntries = (file: string) => Promise<TarMember[]>;

function memoEntries(): SlugEntries {
  const read = new Map<string, Promise<TarMember[]>>();
  return (file) => {
    let got = read.get(file);
    if (!got) {
      got = readFile(file).then(readTarEntries);
      read.set(file, got);
    }
    return got;
  };
}

/** Every differing file of two slugs, archive members flattened, each with its likely causes. */
export async function explainSlugs(
  aFile: string,
  bFile: string,
  ctx: CauseContext,
  entries: SlugEntries = memoEntries(),
): Promise<ExplainedDifference[]> {
  const [ea, eb] = await Promise.all([entries(aFile), entries(bFile)]);
  const da = new Map(ea.map((e) => [e.path, e.data]));
  const db = new Map(eb.map((e) => [e.path, e.data]));
  const out: ExplainedDifference[] = [];
  const visit = (d: FileDifference) => {
    if (d.members && d.members.length > 0) {
      for (const m of d.members) visit(m);
      return;
    }
    const a = da.get(d.path);
    const b = db.get(d.path);
    const texts = d.kind === "text" && a && b ? { a: a.toString("utf8"), b: b.toString("utf8") } : undefined;
    const { members: _members, ...rest } = d;
    out.push({ ...rest, causes: nameCauses(d, ctx, texts) });
  };
  const diffs = await compareEntries(ea, eb, { depth: 1 });
  // Same members, different bytes: diffArchives explains the archive itself (headers, order, gzip).
  for (const d of diffs.length > 0 ? diffs : await diffArchives(aFile, bFile)) visit(d);
  return out;
}
