/**
 * git's smart HTTP (gitProtocol.ts) on the API's port: a plugin with its own auth (Basic with a
 * token as the password, as git's credential helpers send it, or Bearer), so server.ts lists it
 * among the routes without kiln's bearer scope. Tenancy is the API's own (appFor, build quotas).
 */

import type { RoutePlugin } from "../deps.js";
import { appFor, assertBuildQuota } from "../tenancy.js";
import { gitRoutes as gitProtocolRoutes } from "./gitProtocol.js";

export const gitRoutes: RoutePlugin = async (api, { deps }) => {
  const { db, quotas } = deps;
  await api.register(gitProtocolRoutes, {
    ...deps,
    access: {
      appFor: (caller, app, need) => appFor(db, caller, app, need),
      assertBuildQuota: (caller, app) => assertBuildQuota(db, { caller, app, release: true, quotas }),
    },
  });
};
