/**
 * What each dashboard page shows, read through the same store functions and the same permission
 * model (src/api/tenancy.ts) as the API's routes: a page lists exactly what the API would answer
 * to the session's token, and an app the token may not see is the API's 404.
 */
import type { DynoControl } from "../api/server.js";
import { appFor, type Need, visibleApps } from "../api/tenancy.js";
import { type LogLine, readLogTail } from "../dyno/logs.js";
import { KilnError } from "../errors.js";
import { type App, getConfig, isPlatformApp } from "../store/apps.js";
import { type BuildRecord, getBuild, listBuilds } from "../store/builds.js";
import { type CheckRecord, listChecks } from "../store/checks.js";
import type { Db } from "../store/db.js";
import { type FormationEntry, getFormation } from "../store/formation.js";
import { currentRelease, listReleases, type Release } from "../store/releases.js";
import type { TokenInfo } from "../store/tokens.js";
import { getUser } from "../store/users.js";

export type DynoView = ReturnType<DynoControl["list"]>[number];

export interface AppSummary {
  name: string;
  owner: string;
  platform: boolean;
  release: Release | undefined;
  dynos: { up: number; total: number } | undefined;
  lastBuild: BuildRecord | undefined;
}

/** How many of each list a page shows (the newest first); the CLI and API have them all. */
export const PAGE_ROWS = 20;
export const LOG_LINES = 100;

function dynoCounts(dynos: DynoControl | undefined, app: App, formation: FormationEntry[]) {
  if (!dynos) return undefined;
  const total = formation.reduce((n, f) => n + f.quantity, 0);
  const up = dynos.list(app.name).filter((d) => d.state === "up").length;
  return { up, total };
}

export function appSummaries(db: Db, caller: TokenInfo, dynos: DynoControl | undefined): AppSummary[] {
  return visibleApps(db, caller).map((a) => ({
    name: a.name,
    owner: getUser(db, a.ownerId).name,
    platform: isPlatformApp(a),
    release: currentRelease(db, a.id),
    dynos: dynoCounts(dynos, a, getFormation(db, a.id)),
    lastBuild: listBuilds(db, a.id)[0],
  }));
}

export interface AppPage {
  app: App & { role: string };
  owner: string;
  webUrl: string | null;
  release: Release | undefined;
  releases: Release[];
  formation: FormationEntry[];
  /** Process types of the current release that have no formation row yet (scalable from 0). */
  unscaled: string[];
  dynos: DynoView[] | undefined;
  config: { key: string; value: string | undefined }[];
  builds: (BuildRecord & { checks: CheckRecord[] })[];
  logs: LogLine[];
}

/** The app page; `reveal` names the config vars whose values it shows (all others masked). */
export async function appPage(opts: {
  db: Db;
  caller: TokenInfo;
  app: string;
  dataDir: string;
  dynos: DynoControl | undefined;
  webUrl: ((app: string) => string) | undefined;
  reveal?: ReadonlySet<string>;
}): Promise<AppPage> {
  const { db } = opts;
  const app = appFor(db, opts.caller, opts.app, "read");
  const release = currentRelease(db, app.id);
  const formation = getFormation(db, app.id);
  const config = getConfig(db, app.id);
  return {
    app,
    owner: getUser(db, app.ownerId).name,
    webUrl: opts.webUrl?.(app.name) || null,
    release,
    releases: listReleases(db, app.id).slice(0, PAGE_ROWS),
    formation,
    unscaled: Object.keys(release?.processTypes ?? {}).filter((t) => !formation.some((f) => f.type === t)),
    dynos: opts.dynos?.list(app.name),
    config: Object.keys(config)
      .sort()
      .map((key) => ({ key, value: opts.reveal?.has(key) ? config[key] : undefined })),
    builds: listBuilds(db, app.id)
      .slice(0, PAGE_ROWS)
      .map((b) => ({ ...b, checks: listChecks(db, b.id) })),
    logs: await readLogTail(opts.dataDir, app.name, LOG_LINES),
  };
}

/** A build of an app the caller may see (a build of another app is as unknown as a missing one). */
export function appBuild(db: Db, caller: TokenInfo, appName: string, id: string, need: Need = "read") {
  const app = appFor(db, caller, appName, need);
  const build = getBuild(db, id);
  if (build.appId !== app.id) throw unknownBuild(id, app.name);
  return { app, build, checks: listChecks(db, build.id) };
}

const unknownBuild = (id: string, app: string) =>
  new KilnError({ code: "unknown_build", message: `no build ${id} in ${app}` });

/** The platform page: the builds queued and running (of the apps the caller may see). */
export function buildQueue(db: Db, caller: TokenInfo): { app: string; build: BuildRecord }[] {
  return visibleApps(db, caller)
    .flatMap((a) =>
      listBuilds(db, a.id)
        .filter((b) => b.status === "pending" || b.status === "building")
        .map((build) => ({ app: a.name, build })),
    )
    .sort((x, y) => x.build.createdAt.localeCompare(y.build.createdAt));
}

/** Prometheus text (GET /metrics) as name{labels} → value, for the platform page's summary. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const m = /^(\S+)\s+(\S+)$/.exec(line);
    if (m?.[1] && m[2] !== undefined) out.set(m[1], Number(m[2]));
  }
  return out;
}
