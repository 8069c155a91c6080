/** Dynos: list (state, release, since), restart all or one, and one-off runs streamed back. */
import { z } from "zod";
import { KilnError } from "../../errors.js";
import { currentRelease } from "../../store/releases.js";
import { dynoControl, restartDynos } from "../actions.js";
import { appAccess, appOf } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import * as wire from "../wire.js";
import { appParams } from "./params.js";

const dynoParams = z.object({ app: z.string(), dyno: z.string() });

export const dynoRoutes: RoutePlugin = async (api, { deps }) => {
  const { db } = deps;
  const control = () => dynoControl(deps);
  // (The app first: one the caller may not see is a 404 whether or not this server runs dynos.)
  api.get(
    "/v1/apps/:app/dynos",
    { schema: { params: appParams, response: { 200: wire.dynos } }, preValidation: appAccess(db, "read") },
    async (req) => control().list(appOf(req).name),
  );
  api.delete(
    "/v1/apps/:app/dynos",
    {
      schema: { params: appParams, response: { 200: wire.dynosRestarted } },
      preValidation: appAccess(db, "write"),
    },
    async (req) => ({ restarted: await restartDynos(deps, appOf(req)) }),
  );
  api.delete(
    "/v1/apps/:app/dynos/:dyno",
    {
      schema: { params: dynoParams, response: { 200: wire.dynosRestarted } },
      preValidation: appAccess(db, "write"),
    },
    async (req) => ({ restarted: await restartDynos(deps, appOf(req), req.params.dyno) }),
  );
  // A one-off dyno: its output streams back as it runs; the last line says how it ended.
  api.post(
    "/v1/apps/:app/dynos",
    { schema: { params: appParams, body: wire.dynoRun }, preValidation: appAccess(db, "write") },
    async (req, reply) => {
      const app = appOf(req);
      const c = control();
      if (!currentRelease(db, app.id)) {
        throw new KilnError({
          code: "conflict",
          message: `${app.name} has no release yet`,
          hint: "deploy it first",
        });
      }
      reply.raw.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      const exit = await c.runOnce(app.name, req.body.command, (line) => reply.raw.write(`${line}\n`));
      reply.raw.end(`kiln: ${exit.reason}\n`);
      return reply;
    },
  );
};
