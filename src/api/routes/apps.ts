/** Apps: each caller sees its own (owned or shared with it); admins see all. */
import { KilnError } from "../../errors.js";
import { deleteApp, PLATFORM_APP_NAMES, setPlatformApp } from "../../store/apps.js";
import { listBuilds } from "../../store/builds.js";
import { currentRelease } from "../../store/releases.js";
import { createAppAs } from "../actions.js";
import { appAccess, appOf, callerOf, requireAdmin } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import { visibleApps } from "../tenancy.js";
import { appView, releaseView } from "../views.js";
import * as wire from "../wire.js";
import { appParams } from "./params.js";

export const appRoutes: RoutePlugin = async (api, { deps }) => {
  const { db } = deps;
  api.post(
    "/v1/apps",
    { schema: { body: wire.appCreate, response: { 201: wire.app } } },
    async (req, reply) => {
      const body = req.body;
      if (body.platform !== undefined) requireAdmin(req, "make a platform app");
      const app = createAppAs(db, callerOf(req), {
        name: body.name,
        ...(body.platform ? { platform: true } : {}),
      });
      void reply.status(201);
      return appView(db, app);
    },
  );
  api.get("/v1/apps", { schema: { response: { 200: wire.app.array() } } }, async (req) => {
    return visibleApps(db, callerOf(req)).map((a) => appView(db, a));
  });
  api.get(
    "/v1/apps/:app",
    { schema: { params: appParams, response: { 200: wire.appShow } }, preValidation: appAccess(db, "read") },
    async (req) => {
      const a = appOf(req);
      const rel = currentRelease(db, a.id);
      return {
        ...appView(db, a),
        role: a.role,
        web_url: deps.webUrl?.(a.name) || null,
        release: rel ? releaseView(rel) : null,
      };
    },
  );
  // Marking an app as the platform's own (or not): admins only.
  api.patch(
    "/v1/apps/:app",
    {
      schema: { params: appParams, body: wire.appPatch, response: { 200: wire.app } },
      preValidation: appAccess(db, "own"),
    },
    async (req) => {
      const a = appOf(req);
      requireAdmin(req, "mark platform apps");
      if (!req.body.platform && PLATFORM_APP_NAMES.includes(a.name)) {
        throw new KilnError({
          code: "invalid_platform",
          message: `${a.name} is a reserved platform app name: it stays a platform app`,
          hint: `reserved: ${PLATFORM_APP_NAMES.join(", ")}`,
        });
      }
      return appView(db, setPlatformApp(db, a.id, req.body.platform));
    },
  );
  api.delete(
    "/v1/apps/:app",
    {
      schema: { params: appParams, response: { 200: wire.appDeleted } },
      preValidation: appAccess(db, "own"),
    },
    async (req) => {
      const owned = appOf(req);
      // Its builds go with it: a queued one left behind would run for an app that is gone.
      for (const b of listBuilds(db, owned.id))
        if (b.status === "pending" || b.status === "building") deps.queue.cancel(b.id, "the app was deleted");
      const a = deleteApp(db, owned.id);
      return { id: a.id, name: a.name, deleted: true as const };
    },
  );
};
