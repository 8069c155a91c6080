/** Dynos: list (state, release, since), restart all or one, and one-off runs streamed back. */
import { z } from "zod";
import { KilnError } from "../../errors.js";
import { currentRelease } from "../../store/releases.js";
import { appAccess, appOf } from "../auth.js";
import type { DynoControl, RoutePlugin } from "../deps.js";
import * as wire from "../wire.js";
import { appParams } from "./params.js";

const dynoParams = z.object({ app: z.string(), dyno: z.string() });

export const dynoRoutes: RoutePlugin = async (api, { deps }) => {
  const { db } = deps;
  const control = (): DynoControl => {
    if (!deps.dynos) {
      throw new KilnError({
        code: "dynos_disabled",
        message: "this server does not run dynos",
        hint: "start kiln serve as root without --no-dynos",
      });
    }
    return deps.dynos;
  };
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
    async (req) => ({ restarted: await control().restart(appOf(req).name) }),
  );
  api.delete(
    "/v1/apps/:app/dynos/:dyno",
    {
      schema: { params: dynoParams, response: { 200: wire.dynosRestarted } },
      preValidation: appAccess(db, "write"),
    },
    async (req) => {
      const n = await control().restart(appOf(req).name, req.params.dyno);
      if (n === 0)
        throw new KilnError({
          code: "unknown_dyno",
          message: `no dyno ${req.params.dyno}`,
          hint: "list them with kiln ps",
        });
      return { restarted: n };
    },
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
