/** Logs: the app's recent lines (dyno output and kiln's events), then live ones with ?tail=true. */
import { z } from "zod";
import { dynoFilter, followLog, formatLogLine, readLogTail } from "../../dyno/logs.js";
import { appAccess, appOf } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import { appParams } from "./params.js";

const logsQuery = z.object({
  lines: z.coerce.number().int().min(0).max(10000).default(100),
  tail: z.string().optional(),
  dyno: z.string().optional(),
});

export const logRoutes: RoutePlugin = async (api, { deps }) => {
  api.get(
    "/v1/apps/:app/logs",
    { schema: { params: appParams, querystring: logsQuery }, preValidation: appAccess(deps.db, "read") },
    async (req, reply) => {
      const app = appOf(req);
      const { lines, tail } = req.query;
      const keep = dynoFilter(req.query.dyno);
      reply.raw.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      const recent = (await readLogTail(deps.dataDir, app.name, Number.MAX_SAFE_INTEGER))
        .filter(keep)
        .slice(-lines);
      for (const l of recent) reply.raw.write(`${formatLogLine(l)}\n`);
      if (tail === "true" || tail === "1") {
        const closed = new AbortController();
        req.raw.on("close", () => closed.abort());
        await followLog(
          deps.dataDir,
          app.name,
          (l) => keep(l) && reply.raw.write(`${formatLogLine(l)}\n`),
          closed.signal,
        );
      }
      reply.raw.end();
      return reply;
    },
  );
};
