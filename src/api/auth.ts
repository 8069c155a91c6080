/**
 * Who is calling, and what they may touch. `authenticated` is the encapsulated scope the token-guarded
 * routes are registered under (its onRequest hook runs for them alone: routes outside it, such as
 * /healthz or a plugin with its own auth, never see it). Inside it, `callerOf(req)` is the token's
 * owner, and the `appAccess`/`buildAccess` preValidation hooks load the app (and build) named in the
 * route before the body is validated: a caller who may not see an app gets its 404, not a 422.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest, preValidationHookHandler } from "fastify";
import { KilnError } from "../errors.js";
import type { App } from "../store/apps.js";
import { type BuildRecord, getBuild } from "../store/builds.js";
import type { Db } from "../store/db.js";
import { type TokenInfo, verifyToken } from "../store/tokens.js";
import { appFor, type Need, type Role } from "./tenancy.js";

const callers = new WeakMap<FastifyRequest, TokenInfo>();
const apps = new WeakMap<FastifyRequest, App & { role: Role }>();
const builds = new WeakMap<FastifyRequest, BuildRecord>();

const unauthorized = () =>
  new KilnError({
    code: "unauthorized",
    message: "a valid API token is required",
    hint: "send Authorization: Bearer TOKEN (kiln serve printed the admin token at first start)",
  });

/**
 * The token an `Authorization` header carries, for routes with their own auth (git, Nix's binary
 * cache): Bearer, or Basic with the token as the password (or as the user name when the password is
 * empty), as git's credential helpers and Nix's netrc send it.
 */
export function tokenOfHeader(authorization: string | undefined): string | undefined {
  const bearer = /^Bearer (\S+)$/.exec(authorization ?? "");
  if (bearer) return bearer[1];
  const basic = /^Basic ([A-Za-z0-9+/=]+)$/.exec(authorization ?? "");
  if (!basic?.[1]) return undefined;
  const decoded = Buffer.from(basic[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  const user = colon === -1 ? decoded : decoded.slice(0, colon);
  const password = colon === -1 ? "" : decoded.slice(colon + 1);
  return password || user || undefined;
}

/**
 * The bearer-token scope: `routes` are registered inside it, so every one of them needs a valid
 * token (and nothing outside it does).
 */
export function authenticated(db: Db, routes: (scope: FastifyInstance) => Promise<void>): FastifyPluginAsync {
  return async (scope) => {
    scope.addHook("onRequest", async (req) => {
      const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "");
      const info = m?.[1] ? verifyToken(db, m[1]) : undefined;
      if (!info) throw unauthorized();
      callers.set(req, info);
    });
    await routes(scope);
  };
}

/** The token behind a request in the authenticated scope. */
export function callerOf(req: FastifyRequest): TokenInfo {
  const c = callers.get(req);
  if (!c) throw unauthorized();
  return c;
}

export function requireAdmin(req: FastifyRequest, what = "manage users"): void {
  if (!callerOf(req).admin) {
    throw new KilnError({
      code: "forbidden",
      message: `only an admin token may ${what}`,
      hint: "use the admin token",
    });
  }
}

/** A preValidation hook: only admins go on (before the body is looked at). */
export const adminOnly =
  (what?: string): preValidationHookHandler =>
  async (req) =>
    requireAdmin(req, what);

type AppParams = { Params: { app: string } };

/**
 * A preValidation hook loading the route's `:app` when the caller may do `need` to it (else the
 * missing app's 404, or a collaborator's 403); `need` may depend on the request.
 */
export function appAccess(db: Db, need: Need | ((req: FastifyRequest) => Need)): preValidationHookHandler {
  return async (req) => {
    const { app } = (req as FastifyRequest<AppParams>).params;
    apps.set(req, appFor(db, callerOf(req), app, typeof need === "function" ? need(req) : need));
  };
}

/** appAccess, then the route's `:id` build, which must be the app's. */
export function buildAccess(db: Db, need: Need): preValidationHookHandler {
  return async (req) => {
    const { app: name, id } = (req as FastifyRequest<{ Params: { app: string; id: string } }>).params;
    const app = appFor(db, callerOf(req), name, need);
    apps.set(req, app);
    const b = getBuild(db, id);
    if (b.appId !== app.id)
      throw new KilnError({ code: "unknown_build", message: `no build ${id} in ${app.name}` });
    builds.set(req, b);
  };
}

/** The app an appAccess/buildAccess hook loaded for this request. */
export function appOf(req: FastifyRequest): App & { role: Role } {
  const a = apps.get(req);
  if (!a) throw new Error(`${req.routeOptions.url}: appOf without an appAccess hook`);
  return a;
}

/** The build a buildAccess hook loaded for this request (as it was then). */
export function buildOf(req: FastifyRequest): BuildRecord {
  const b = builds.get(req);
  if (!b) throw new Error(`${req.routeOptions.url}: buildOf without a buildAccess hook`);
  return b;
}
