/** GET /metrics: Prometheus' text format (see ../metrics.ts), the admin's alone. */
import { requireAdmin } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import { renderMetrics } from "../metrics.js";

export const metricsRoutes: RoutePlugin = async (api, { deps }) => {
  api.get("/metrics", async (req, reply) => {
    // Platform-wide: every tenant's builds, and the remote builders' addresses.
    requireAdmin(req, "read the platform's /metrics");
    void reply.type("text/plain; version=0.0.4");
    return renderMetrics(deps.db, deps.queue, deps.dynos?.all() ?? []);
  });
};
