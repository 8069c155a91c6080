/**
 * Checks for the server (POST /v1/apps/{app}/builds/{id}/checks): a recorded build is rebuilt from
 * the spec its manifest names, against its own slug, one check at a time in the background. Each
 * check is a row (src/store/checks.ts), a report file, and an entry in the build's manifest.
 */
import { readFile } from "node:fs/promises";
import type { Config } from "../config/config.js";
import { isKilnError, KilnError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { Nix } from "../nix/driver.js";
import { buildSpecSchema, manifestSchema } from "../slug/records.js";
import type { BuildRecord } from "../store/builds.js";
import { type CheckRecord, createCheck, failCheck, finishCheck } from "../store/checks.js";
import type { Db } from "../store/db.js";
import { absent } from "../util/fs.js";
import { resolveAgainst, runCheck } from "./check.js";
import { recordInManifest, saveCheckReport } from "./records.js";
import { loadVariations, selectVariations } from "./variations.js";

export interface CheckRunner {
  /** Records a running check of a succeeded build and starts it (after any check before it). */
  submit(
    build: BuildRecord,
    appName: string,
    opts: { builds?: number; vary?: string[]; skip?: string[] },
  ): Promise<CheckRecord>;
  /** Server shutdown: the running check stops (recorded as an error), the waiting ones too. */
  close(): Promise<void>;
}

export function createCheckRunner(deps: { config: Config; log: Logger; nix: Nix; db: Db }): CheckRunner {
  const { db, nix } = deps;
  let chain: Promise<void> = Promise.resolve();
  const stop = new AbortController();

  async function specOf(build: BuildRecord) {
    const unavailable = (why: string) =>
      new KilnError({
        code: "conflict",
        message: `build ${build.id} cannot be rebuilt: ${why}`,
        hint: "build the app again (its next build can be checked), or check a directory: kiln check DIR",
      });
    if (build.status !== "succeeded" || !build.manifestPath || !build.slugPath)
      throw new KilnError({
        code: "conflict",
        message: `build ${build.id} is ${build.status}: only a succeeded build has a slug to check`,
      });
    const manifest = manifestSchema.parse(JSON.parse(await readFile(build.manifestPath, "utf8")));
    if (!manifest.specFile) throw unavailable("its manifest names no spec (it was built by an older kiln)");
    const text = await readFile(manifest.specFile, "utf8").catch(absent(undefined));
    if (text === undefined) throw unavailable(`its spec ${manifest.specFile} is gone`);
    const spec = buildSpecSchema.parse(JSON.parse(text));
    for (const p of [spec.source, spec.tools, ...spec.buildpacks.map((b) => b.path)])
      if (!(await nix.isValid(p))) throw unavailable(`${p} was garbage-collected from the Nix store`);
    if (!(await nix.isValid(build.slugPath.replace(/\/slug\.tgz$/, ""))))
      throw unavailable("its slug was garbage-collected from the Nix store");
    return { spec, manifestPath: build.manifestPath, slugFile: nix.realPath(build.slugPath) };
  }

  return {
    async submit(build, appName, opts) {
      const table = await loadVariations(deps.config.projectDir);
      const variations = selectVariations(table, {
        ...(opts.vary ? { only: opts.vary } : {}),
        ...(opts.skip ? { skip: opts.skip } : {}),
      });
      const { spec, manifestPath, slugFile } = await specOf(build);
      const builds = opts.builds ?? 1;
      const record = createCheck(db, { buildId: build.id, builds, variations });
      const log = deps.log.child({ check: record.id, build: build.id, app: appName });
      const run = async () => {
        if (stop.signal.aborted) return failCheck(db, record.id, "interrupted: the server stopped");
        try {
          const report = await runCheck(
            deps,
            { app: spec.app, spec },
            {
              id: record.id,
              builds,
              variations,
              against: await resolveAgainst(slugFile, `build ${build.id.slice(0, 8)}`),
              signal: stop.signal,
            },
          );
          const file = await saveCheckReport(deps.config.dataDir, report);
          await recordInManifest(deps.config.dataDir, report, manifestPath);
          finishCheck(db, record.id, report.verdict, file);
          log.info({ verdict: report.verdict, seconds: report.seconds }, "check finished");
        } catch (err) {
          const reason = stop.signal.aborted
            ? "interrupted: the server stopped"
            : isKilnError(err)
              ? err.message
              : `internal error: ${(err as Error).message}`;
          failCheck(db, record.id, reason);
          log.warn({ reason }, "check failed");
        }
      };
      chain = chain.then(run);
      return record;
    },
    async close() {
      stop.abort();
      await chain;
    },
  };
}
