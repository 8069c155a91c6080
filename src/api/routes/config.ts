/** Config vars: a change makes a new release (once the app has one), as on Heroku. */
import { getConfig } from "../../store/apps.js";
import { setConfigVars } from "../actions.js";
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
    async (req) => (await setConfigVars(deps, appOf(req), req.body)).config,
  );
};
