/** GET /metrics: Prometheus' text format (see ../metrics.ts). */
import type { RoutePlugin } from "../deps.js";
import { renderMetrics } from "../metrics.js";

export const metricsRoutes: RoutePlugin = async (api, { deps }) => {
  api.get("/metrics", async (_req, reply) => {
    void reply.type("text/plain; version=0.0.4");
    return renderMetrics(deps.db, deps.queue, deps.dynos?.all() ?? []);
  });
};
