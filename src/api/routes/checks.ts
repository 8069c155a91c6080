/** Reproducibility checks of a recorded build: rebuilt with variations, compared with its slug. */
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { KilnError } from "../../errors.js";
import { getCheck, listChecks } from "../../store/checks.js";
import { appOf, buildAccess, buildOf } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import { checkView } from "../views.js";
import * as wire from "../wire.js";
import { buildParams } from "./params.js";

const checkParams = z.object({ app: z.string(), id: z.string(), check: z.string() });

export const checkRoutes: RoutePlugin = async (api, { deps }) => {
  const { db } = deps;
  api.post(
    "/v1/apps/:app/builds/:id/checks",
    {
      // No body is an empty one: every setting has its default.
      schema: { params: buildParams, body: wire.checkCreate.optional(), response: { 202: wire.check } },
      preValidation: buildAccess(db, "write"),
    },
    async (req, reply) => {
      const app = appOf(req);
      if (!deps.checks)
        throw new KilnError({ code: "checks_disabled", message: "this server does not run checks" });
      const c = await deps.checks.submit(buildOf(req), app.name, req.body ?? {});
      void reply.status(202);
      return checkView(c, app.name);
    },
  );
  api.get(
    "/v1/apps/:app/builds/:id/checks",
    {
      schema: { params: buildParams, response: { 200: wire.check.array() } },
      preValidation: buildAccess(db, "read"),
    },
    async (req) => listChecks(db, buildOf(req).id).map((c) => checkView(c, appOf(req).name)),
  );
  api.get(
    "/v1/apps/:app/builds/:id/checks/:check",
    {
      schema: { params: checkParams, response: { 200: wire.checkWithReport } },
      preValidation: buildAccess(db, "read"),
    },
    async (req) => {
      const b = buildOf(req);
      const c = getCheck(db, req.params.check);
      if (c.buildId !== b.id)
        throw new KilnError({
          code: "unknown_check",
          message: `no check ${req.params.check} of build ${b.id}`,
        });
      const report = c.reportPath ? JSON.parse(await readFile(c.reportPath, "utf8")) : null;
      return { ...checkView(c, appOf(req).name), report };
    },
  );
};
