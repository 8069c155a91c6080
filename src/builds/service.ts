/**
 * Runs one queued build for the control plane: the uploaded source is unpacked (strictly), built by
 * buildApp in the Nix sandbox with its output streamed to the build's log, and a success becomes a
 * new release with the app's config. Every outcome is recorded: succeeded, failed with the reason
 * (the build's error, `timeout`, `cancelled`), never left `building`.
 */

import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { extractUntrustedTarGz } from "../archive/untrusted.js";
import type { Config } from "../config/config.js";
import { isKilnError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { Nix } from "../nix/driver.js";
import { trackMachines } from "../nix/machines.js";
import { releaseSlug } from "../release/release.js";
import { getConfig } from "../store/apps.js";
import { endBuild, getBuild, startBuild, succeedBuild } from "../store/builds.js";
import type { Db } from "../store/db.js";
import { ensureDefaultFormation } from "../store/formation.js";
import type { Release } from "../store/releases.js";
import { buildApp } from "./build.js";
import type { BuildLogs } from "./buildLog.js";
import { openBuildLimits } from "./limits.js";
import type { QueuedJob } from "./queue.js";

export interface BuildServiceDeps {
  config: Config;
  log: Logger;
  nix: Nix;
  db: Db;
  logs: BuildLogs;
  /**
   * Called after a successful build's release is recorded (the formation rolls to it, or it is
   * handed to the platform this control plane runs on); `say` writes to the build's log.
   */
  onRelease?: (release: Release, say: (line: string) => void) => void | Promise<void>;
}

export async function runQueuedBuild(
  deps: BuildServiceDeps,
  job: QueuedJob,
  appName: string,
  signal: AbortSignal,
) {
  const { db } = deps;
  if (!startBuild(db, job.buildId)) return; // cancelled or superseded while queued
  const build = getBuild(db, job.buildId);
  const out = deps.logs.open(build.id);
  const started = Date.now();
  await mkdir(join(deps.config.dataDir, "tmp"), { recursive: true });
  // Named for this process: a sweep at a later start knows it is no longer in use (sweep.ts).
  const tmp = await mkdtemp(join(deps.config.dataDir, "tmp", `upload-${process.pid}-`));
  const say = (line: string) => out.write(line);
  let limited: Awaited<ReturnType<typeof openBuildLimits>> | undefined;
  try {
    out.write(`-----> Unpacking the source (sha256 ${build.sourceSha256.slice(0, 12)})`);
    await extractUntrustedTarGz(build.sourcePath, tmp, {
      maxBytes: deps.config.maxUnpackedSourceBytes,
      maxEntries: deps.config.maxSourceEntries,
    });
    limited = await openBuildLimits(deps, { id: build.id, appVars: getConfig(db, job.appId), say });
    const tracked = trackMachines(limited.nix);
    const limitedDeps = { ...deps, nix: tracked.nix };
    const result = await buildApp(limitedDeps, {
      appDir: tmp,
      app: appName,
      sourceFrom: "tenant",
      ...(build.buildpacks ? { buildpacks: build.buildpacks } : {}),
      ...(build.commit ? { commit: build.commit } : {}),
      onLog: (phase, line) => out.write(`${phase.padEnd(12)} | ${line}`),
      onStep: (m) => out.write(`-----> ${m}`),
      signal,
    });
    succeedBuild(db, build.id, {
      slugSha256: result.slug.sha256,
      slugPath: result.manifest.slug.path,
      manifestPath: result.manifestPath,
      builtOn: tracked.machines(),
    });
    if (!build.release) {
      out.write(
        `-----> Built in ${((Date.now() - started) / 1000).toFixed(1)} s: slug ${result.slug.sha256.slice(0, 12)} (not released: release=false)`,
      );
      deps.log.info(
        { build: build.id, app: appName, seconds: (Date.now() - started) / 1000 },
        "build succeeded",
      );
      return;
    }
    const release = releaseSlug(db, {
      appId: job.appId,
      buildId: build.id,
      slugSha256: result.slug.sha256,
      slugPath: result.manifest.slug.path,
      processTypes: result.release.processTypes,
      defaults: result.release.configVars,
      // As Heroku: a pushed build's release is named for its commit.
      description: `Deploy ${build.commit ? build.commit.slice(0, 7) : build.id.slice(0, 8)}`,
      commit: build.commit,
    });
    ensureDefaultFormation(db, release);
    out.write(
      `-----> Built in ${((Date.now() - started) / 1000).toFixed(1)} s: slug ${result.slug.sha256.slice(0, 12)}, release v${release.version}`,
    );
    deps.log.info(
      { build: build.id, app: appName, seconds: (Date.now() - started) / 1000 },
      "build succeeded",
    );
    await deps.onRelease?.(release, (line) => out.write(line));
  } catch (err) {
    const reason = signal.aborted
      ? signal.reason instanceof DOMException && signal.reason.name === "TimeoutError"
        ? "timeout"
        : signal.reason instanceof Error
          ? signal.reason.message
          : "cancelled"
      : isKilnError(err)
        ? err.message
        : `internal error: ${(err as Error).message}`;
    const hint = !signal.aborted && isKilnError(err) ? err.hint : undefined;
    out.write(`-----> Build failed: ${reason}`);
    if (hint) out.write(`       ${hint}`);
    endBuild(db, build.id, reason === "cancelled" ? "cancelled" : "failed", reason, hint);
    deps.log.info({ build: build.id, app: appName, reason }, "build failed");
  } finally {
    await limited?.release();
    out.end();
    await rm(tmp, { recursive: true, force: true });
    // The build is over, whatever the outcome: its source (a copy is in the Nix store, by content)
    // is not needed again. Builds interrupted by a crash never get here and keep theirs.
    await rm(build.sourcePath, { force: true });
  }
}
