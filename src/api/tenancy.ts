/**
 * Who may do what to an app, and the quotas that bound a tenant's work. The rules (README: "Tenancy"):
 * - the platform admin (an admin user's token) may do everything, to every app;
 * - an app's owner may do everything to it; a collaborator everything but delete it or change who
 *   collaborates (leaving is allowed);
 * - anyone else is told the app does not exist (404, word for word what a missing app answers), in
 *   lists too, so app names other than the one being created leak nothing;
 * - platform apps (src/store/apps.ts: the reserved names, and any app an admin marks) are the
 *   admins' alone: to every other user they do not exist, and their names cannot be taken.
 */
import { type ErrorCode, KilnError } from "../errors.js";
import { type App, getApp, isPlatformApp, listApps, PLATFORM_APP_NAMES, unknownApp } from "../store/apps.js";
import { isCollaborator } from "../store/collaborators.js";
import type { Db } from "../store/db.js";
import type { TokenInfo } from "../store/tokens.js";
import {
  buildsInFlight,
  dynoTotal,
  formationQuantities,
  pendingBuildOf,
  pendingFirstDynos,
} from "../store/usage.js";
import { getUser } from "../store/users.js";

export type Role = "admin" | "owner" | "collaborator";

/** read: see it; write: deploy, configure, scale, restart, roll back, run; own: delete, share. */
export type Need = "read" | "write" | "own";

export interface Quotas {
  appDynos: number;
  userDynos: number;
  appBuilds: number;
  userBuilds: number;
}

export function roleOn(db: Db, caller: TokenInfo, app: App): Role | undefined {
  if (caller.admin) return "admin";
  if (isPlatformApp(app)) return undefined;
  if (app.ownerId === caller.userId) return "owner";
  return isCollaborator(db, app.id, caller.userId) ? "collaborator" : undefined;
}

/** The apps the caller may see (GET /v1/apps, the dashboard's list): admins all, others their own and shared. */
export function visibleApps(db: Db, caller: TokenInfo): App[] {
  if (caller.admin) return listApps(db);
  return listApps(db, { memberId: caller.userId }).filter((a) => !isPlatformApp(a));
}

/** The app, when the caller may do `need` to it; else the missing app's 404 (or 403 to a collaborator). */
export function appFor(db: Db, caller: TokenInfo, nameOrId: string, need: Need): App & { role: Role } {
  const app = getApp(db, nameOrId);
  const role = roleOn(db, caller, app);
  if (!role) throw unknownApp(nameOrId);
  if (need === "own" && role === "collaborator") {
    throw new KilnError({
      code: "forbidden",
      message: `only ${app.name}'s owner (or an admin) may do this; you are a collaborator`,
      hint: `ask the owner, ${getUser(db, app.ownerId).name}`,
    });
  }
  return { ...app, role };
}

/** A name only an admin may create an app under. */
export function assertMayCreate(caller: TokenInfo, name: string): void {
  if (!caller.admin && PLATFORM_APP_NAMES.includes(name)) {
    throw new KilnError({
      code: "forbidden",
      message: `"${name}" is reserved for the platform's own app`,
      hint: `choose another name (reserved: ${PLATFORM_APP_NAMES.join(", ")})`,
    });
  }
}

const raise = (setting: string, env: string) =>
  `the server's operator can raise it (${setting} in kiln's configuration, env ${env})`;

function quotaError(opts: { code: ErrorCode; message: string; hint: string; quota: string }): KilnError {
  return new KilnError({
    code: opts.code,
    message: opts.message,
    hint: opts.hint,
    details: { quota: opts.quota },
  });
}

/**
 * A scale must keep the app and its owner within their dyno quotas (the caller's own apps and
 * those it collaborates on count against their owners). Admins have no quotas.
 */
export function assertDynoQuota(
  db: Db,
  opts: { caller: TokenInfo; app: App; updates: { type: string; quantity: number }[]; quotas: Quotas },
): void {
  const { caller, app, quotas } = opts;
  if (caller.admin) return;
  const next = formationQuantities(db, app.id);
  const before = [...next.values()].reduce((a, b) => a + b, 0);
  for (const u of opts.updates) next.set(u.type, u.quantity);
  const after = [...next.values()].reduce((a, b) => a + b, 0);
  if (after <= before) return; // scaling down is always allowed, even over a lowered quota
  if (after > quotas.appDynos) {
    throw quotaError({
      code: "quota_exceeded",
      quota: "app_dynos",
      message: `${app.name} may run at most ${quotas.appDynos} dynos (quota app_dynos); this scale asks for ${after}`,
      hint: `scale another process type down first; ${raise("quotas.appDynos", "KILN_QUOTA_APP_DYNOS")}`,
    });
  }
  const owner = getUser(db, app.ownerId);
  if (owner.admin) return;
  const total =
    dynoTotal(db, { ownerId: owner.id }) - before + after + pendingFirstDynos(db, owner.id, app.id);
  if (total > quotas.userDynos) {
    throw quotaError({
      code: "quota_exceeded",
      quota: "user_dynos",
      message: `${owner.name}'s apps may run at most ${quotas.userDynos} dynos together (quota user_dynos); this scale makes ${total}`,
      hint: `scale one of ${owner.name}'s other apps down first; ${raise("quotas.userDynos", "KILN_QUOTA_USER_DYNOS")}`,
    });
  }
}

/**
 * A new build must keep the app and the user starting it within their builds-in-flight quotas.
 * The app's queued build, if any, does not count: the new one supersedes it. An app's first
 * release makes a web dyno, so a build of an app with no formation yet needs room for one.
 */
export function assertBuildQuota(
  db: Db,
  opts: { caller: TokenInfo; app: App; release: boolean; quotas: Quotas },
): void {
  const { caller, app, quotas } = opts;
  if (caller.admin) return;
  const superseded = pendingBuildOf(db, app.id);
  const forApp = buildsInFlight(db, { appId: app.id }) - (superseded ? 1 : 0) + 1;
  if (forApp > quotas.appBuilds) {
    throw quotaError({
      code: "build_quota_exceeded",
      quota: "app_builds",
      message: `${app.name} may have at most ${quotas.appBuilds} builds queued or running (quota app_builds)`,
      hint: `wait for its builds to finish (or cancel one); ${raise("quotas.appBuilds", "KILN_QUOTA_APP_BUILDS")}`,
    });
  }
  const mine =
    buildsInFlight(db, { userId: caller.userId }) - (superseded?.userId === caller.userId ? 1 : 0) + 1;
  if (mine > quotas.userBuilds) {
    throw quotaError({
      code: "build_quota_exceeded",
      quota: "user_builds",
      message: `${caller.user} may have at most ${quotas.userBuilds} builds queued or running (quota user_builds)`,
      hint: `wait for your builds to finish (or cancel one); ${raise("quotas.userBuilds", "KILN_QUOTA_USER_BUILDS")}`,
    });
  }
  if (opts.release && formationQuantities(db, app.id).size === 0) {
    if (quotas.appDynos < 1) {
      throw quotaError({
        code: "quota_exceeded",
        quota: "app_dynos",
        message: `${app.name}'s first release would start a web dyno, past its ${quotas.appDynos} dynos (quota app_dynos)`,
        hint: `build it without releasing (?release=false); ${raise("quotas.appDynos", "KILN_QUOTA_APP_DYNOS")}`,
      });
    }
    const owner = getUser(db, app.ownerId);
    if (owner.admin) return;
    const total = dynoTotal(db, { ownerId: owner.id }) + pendingFirstDynos(db, owner.id, app.id) + 1;
    if (total > quotas.userDynos) {
      throw quotaError({
        code: "quota_exceeded",
        quota: "user_dynos",
        message: `${app.name}'s first release would start a web dyno, past ${owner.name}'s ${quotas.userDynos} dynos (quota user_dynos)`,
        hint: `scale one of ${owner.name}'s other apps down first; ${raise("quotas.userDynos", "KILN_QUOTA_USER_DYNOS")}`,
      });
    }
  }
}
