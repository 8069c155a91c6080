/** Config vars: a change makes a new release (once the app has one), as on Heroku. */
import { changeConfig } from "../../release/release.js";
import { getConfig } from "../../store/apps.js";
import { assertEnvVars } from "../../util/envVars.js";
import { appAccess, appOf } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import * as wire from "../wire.js";
import { appParams } from "./params.js";

export const configRoutes: RoutePlugin = async (api, { deps }) => {
  const { db } = deps;
  api.get(
    "/v1/apps/:app/config-vars",
    {
      schema: { params: appParams, response: { 200: wire.configVars } },
      preValidation: appAccess(db, "read"),
    },
    async (req) => getConfig(db, appOf(req).id),
  );
  api.patch(
    "/v1/apps/:app/config-vars",
    {
      schema: { params: appParams, body: wire.configPatch, response: { 200: wire.configVars } },
      preValidation: appAccess(db, "write"),
    },
    async (req) => {
      const app = appOf(req);
      const patch = req.body;
      assertEnvVars(patch);
      const { config, release: result } = changeConfig(db, app.id, patch);
      if (result) {
        deps.dynos?.reconcile(app.id);
        await deps.platform?.release(app.name, result);
      }
      return config;
    },
  );
};
