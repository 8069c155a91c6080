/** Formation: how many dynos of each process type run, and their size. */
import { getFormation } from "../../store/formation.js";
import { scaleApp } from "../actions.js";
import { appAccess, appOf, callerOf } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import * as wire from "../wire.js";
import { appParams } from "./params.js";

export const formationRoutes: RoutePlugin = async (api, { deps }) => {
  const { db } = deps;
  api.get(
    "/v1/apps/:app/formation",
    {
      schema: { params: appParams, response: { 200: wire.formation } },
      preValidation: appAccess(db, "read"),
    },
    async (req) => getFormation(db, appOf(req).id),
  );
  api.patch(
    "/v1/apps/:app/formation",
    {
      schema: { params: appParams, body: wire.formationPatch, response: { 200: wire.formation } },
      preValidation: appAccess(db, "write"),
    },
    async (req) => {
      const app = appOf(req);
      const updates = req.body.updates.map((u) => ({
        type: u.type,
        quantity: u.quantity,
        ...(u.size ? { size: u.size } : {}),
      }));
      return scaleApp(deps, { caller: callerOf(req), app, updates });
    },
  );
};
