/** Users (admins make and list them) and who the caller is. */
import { createUser, getUser, listUsers } from "../../store/users.js";
import { adminOnly, callerOf } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import { tokenView, userView } from "../views.js";
import * as wire from "../wire.js";

export const userRoutes: RoutePlugin = async (api, { deps: { db } }) => {
  api.post(
    "/v1/users",
    { schema: { body: wire.userCreate, response: { 201: wire.user } }, preValidation: adminOnly() },
    async (req, reply) => {
      const user = createUser(db, req.body);
      void reply.status(201);
      return userView(user);
    },
  );
  api.get(
    "/v1/users",
    { schema: { response: { 200: wire.user.array() } }, preValidation: adminOnly() },
    async () => listUsers(db).map(userView),
  );
  api.get("/v1/account", { schema: { response: { 200: wire.account } } }, async (req) => {
    const c = callerOf(req);
    return { ...userView(getUser(db, c.userId)), token: tokenView(c) };
  });
};
