/** Config vars: a change makes a new release (once the app has one), as on Heroku. */
import { getConfig, patchConfig } from "../../store/apps.js";
import { createRelease, currentRelease } from "../../store/releases.js";
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
      const keys = Object.keys(patch);
      const { config, result } = patchConfig(db, app.id, patch, (cfg) => {
        const cur = currentRelease(db, app.id);
        if (!cur) return undefined;
        const set = keys.filter((k) => patch[k] !== null);
        const unset = keys.filter((k) => patch[k] === null);
        const description = [
          set.length ? `Set ${set.join(", ")}` : "",
          unset.length ? `Unset ${unset.join(", ")}` : "",
        ]
          .filter(Boolean)
          .join("; ");
        // The release's config: the current one (buildpack defaults included), with the patch applied.
        const next = { ...cur.config };
        for (const k of unset) delete next[k];
        for (const k of set) next[k] = cfg[k] as string;
        return createRelease(db, {
          appId: app.id,
          buildId: cur.buildId,
          slugSha256: cur.slugSha256,
          slugPath: cur.slugPath,
          processTypes: cur.processTypes,
          config: next,
          description,
        });
      });
      if (result) {
        deps.dynos?.reconcile(app.id);
        await deps.platform?.release(app.name, result);
      }
      return config;
    },
  );
};
