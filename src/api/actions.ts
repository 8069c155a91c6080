/**
 * What the API's routes and the dashboard's forms do to an app, each in one function so the two
 * cannot drift: the store change, then its hand-offs (the dynos follow, the hosting platform is
 * told). Callers load the app through tenancy first (appAccess in a route, appFor in the
 * dashboard) with the need tenancy.ts gives the action; quotas are checked here.
 */
import { rm } from "node:fs/promises";
import { KilnError } from "../errors.js";
import { changeConfig } from "../release/release.js";
import { type App, createApp } from "../store/apps.js";
import { type BuildRecord, endBuild, getBuild } from "../store/builds.js";
import { type FormationEntry, scaleFormation } from "../store/formation.js";
import { type Release, rollback } from "../store/releases.js";
import type { TokenInfo } from "../store/tokens.js";
import { assertEnvVars } from "../util/envVars.js";
import type { DynoControl, RouteDeps } from "./deps.js";
import { assertDynoQuota, assertMayCreate } from "./tenancy.js";

type Deps = Pick<RouteDeps, "db" | "dynos" | "platform">;

/** A new app owned by the caller (`platform`: the route checks the caller is an admin). */
export function createAppAs(
  db: RouteDeps["db"],
  caller: TokenInfo,
  opts: { name: string; platform?: boolean },
): App {
  assertMayCreate(caller, opts.name);
  return createApp(db, opts.name, { ownerId: caller.userId, ...(opts.platform ? { platform: true } : {}) });
}

/** Sets (a string) and unsets (null) config vars; the release that makes (if any) goes out. */
export async function setConfigVars(
  deps: Deps,
  app: App,
  patch: Record<string, string | null>,
): Promise<{ config: Record<string, string>; release: Release | undefined }> {
  assertEnvVars(patch);
  const { config, release } = changeConfig(deps.db, app.id, patch);
  if (release) {
    deps.dynos?.reconcile(app.id);
    await deps.platform?.release(app.name, release);
  }
  return { config, release };
}

/** A new release with vN's slug and config, out to the dynos. */
export async function rollbackTo(deps: Deps, app: App, version: number): Promise<Release> {
  const r = rollback(deps.db, app.id, version);
  await deps.platform?.release(app.name, r);
  deps.dynos?.reconcile(app.id);
  return r;
}

export async function scaleApp(
  deps: Deps & Pick<RouteDeps, "quotas">,
  opts: { caller: TokenInfo; app: App; updates: { type: string; quantity: number; size?: string }[] },
): Promise<FormationEntry[]> {
  const { app, updates } = opts;
  assertDynoQuota(deps.db, { caller: opts.caller, app, updates, quotas: deps.quotas });
  const formation = scaleFormation(deps.db, app.id, updates);
  deps.dynos?.reconcile(app.id);
  await deps.platform?.scale(app.name, updates);
  return formation;
}

export function dynoControl(deps: Pick<RouteDeps, "dynos">): DynoControl {
  if (!deps.dynos) {
    throw new KilnError({
      code: "dynos_disabled",
      message: "this server does not run dynos",
      hint: "start kiln serve as root without --no-dynos",
    });
  }
  return deps.dynos;
}

/** Restarts the app's dynos, or the one named; how many restarted. */
export async function restartDynos(deps: Pick<RouteDeps, "dynos">, app: App, dyno?: string): Promise<number> {
  const n = await dynoControl(deps).restart(app.name, dyno);
  if (dyno !== undefined && n === 0) {
    throw new KilnError({ code: "unknown_dyno", message: `no dyno ${dyno}`, hint: "list them with kiln ps" });
  }
  return n;
}

/** Cancels a queued or running build of the app (a finished one is a conflict). */
export async function cancelBuild(
  deps: Pick<RouteDeps, "db" | "queue">,
  build: BuildRecord,
): Promise<BuildRecord> {
  const b = getBuild(deps.db, build.id);
  if (!deps.queue.cancel(b.id) && b.status !== "pending") {
    throw new KilnError({ code: "conflict", message: `build ${b.id} is ${b.status}: nothing to cancel` });
  }
  // A running build ends (and cleans up) in its own time; a queued one never starts, so its source goes now.
  if (endBuild(deps.db, b.id, "cancelled", "cancelled") && b.status === "pending")
    await rm(b.sourcePath, { force: true });
  return getBuild(deps.db, b.id);
}
