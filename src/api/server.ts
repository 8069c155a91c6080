/**
 * kiln's HTTP API (fastify, the one home of that dependency), modelled on Heroku's Platform API
 * under /v1: one plugin per resource in routes/, each route with its zod request and response
 * schemas (wire.ts) beside it. Bodies are validated (422 with the field and the reason), unknown
 * apps are 404, conflicts 409, oversize uploads 413 before they are read, a full build queue 429
 * with Retry-After. Every route but /healthz needs a bearer token.
 *
 * `buildApi` makes the app without listening (tests inject(); src/serve/controlPlane.ts listens).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import { configSchema } from "../config/config.js";
import { authenticated } from "./auth.js";
import type { ApiDeps, RouteDeps, RoutePlugin } from "./deps.js";
import { errorHandler } from "./errors.js";
import { accessRoutes } from "./routes/access.js";
import { appRoutes } from "./routes/apps.js";
import { buildRoutes, TARBALL_TYPES } from "./routes/builds.js";
import { cacheRoutes } from "./routes/cache.js";
import { checkRoutes } from "./routes/checks.js";
import { configRoutes } from "./routes/config.js";
import { dynoRoutes } from "./routes/dynos.js";
import { formationRoutes } from "./routes/formation.js";
import { gitRoutes } from "./routes/git.js";
import { healthRoutes } from "./routes/health.js";
import { imageRoutes } from "./routes/image.js";
import { logRoutes } from "./routes/logs.js";
import { metricsRoutes } from "./routes/metrics.js";
import { releaseRoutes } from "./routes/releases.js";
import { tokenRoutes } from "./routes/tokens.js";
import { userRoutes } from "./routes/users.js";
import { serializerCompiler, validatorCompiler } from "./zod.js";

export type { ApiDeps, DynoControl, RouteDeps, RoutePlugin } from "./deps.js";

/**
 * Routes with no token check of kiln's (none, or their own: a git remote's Basic auth, a
 * dashboard's session). Add a plugin with its own auth here, one line.
 */
const PUBLIC_ROUTES: RoutePlugin[] = [healthRoutes, gitRoutes, cacheRoutes];

/** Routes behind the bearer token (auth.ts: callerOf(req), appAccess, …). Add one line here. */
const TOKEN_ROUTES: RoutePlugin[] = [
  metricsRoutes,
  userRoutes,
  tokenRoutes,
  appRoutes,
  accessRoutes,
  configRoutes,
  releaseRoutes,
  formationRoutes,
  dynoRoutes,
  buildRoutes,
  checkRoutes,
  imageRoutes,
  logRoutes,
];

/**
 * The API, not listening. `sites` are more public plugins its composer adds (src/serve adds the
 * dashboard, which uses the API's tenancy and so cannot be imported from here).
 */
export function buildApi(apiDeps: ApiDeps, sites: RoutePlugin[] = []): FastifyInstance {
  const deps: RouteDeps = {
    ...apiDeps,
    quotas: apiDeps.quotas ?? configSchema.shape.quotas.parse(undefined),
    sourcesDir: join(apiDeps.dataDir, "sources"),
    unpacked: apiDeps.unpacked ?? {
      maxBytes: configSchema.shape.maxUnpackedSourceBytes.parse(undefined),
      maxEntries: configSchema.shape.maxSourceEntries.parse(undefined),
    },
  };
  mkdirSync(deps.sourcesDir, { recursive: true });
  const api = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    // kiln logs one summary line per request itself (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
  });
  api.setValidatorCompiler(validatorCompiler);
  api.setSerializerCompiler(serializerCompiler);
  api.setErrorHandler(errorHandler);
  // One summary line per request.
  api.addHook("onResponse", async (req, reply) => {
    req.log.info(
      { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      "request",
    );
  });
  // Any route's upload is a stream (a build reads it; others refuse it as a body they cannot parse).
  for (const type of TARBALL_TYPES)
    api.addContentTypeParser(type, (_req, payload, done) => done(null, payload));

  for (const routes of [...PUBLIC_ROUTES, ...sites]) void api.register(routes, { deps });
  void api.register(
    authenticated(deps.db, async (scope) => {
      for (const routes of TOKEN_ROUTES) await scope.register(routes, { deps });
    }),
  );
  return api;
}
