/** GET /healthz: up or not, without a token (load balancers, `kiln serve`'s callers). */
import type { RoutePlugin } from "../deps.js";
import * as wire from "../wire.js";

export const healthRoutes: RoutePlugin = async (api) => {
  api.get("/healthz", { schema: { response: { 200: wire.health } } }, async () => ({ ok: true as const }));
};
