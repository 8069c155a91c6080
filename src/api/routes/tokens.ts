/** Tokens: a user makes (shown once), lists and revokes its own; an admin anyone's. */
import { z } from "zod";
import { KilnError } from "../../errors.js";
import { createToken, listTokens, revokeToken } from "../../store/tokens.js";
import { getUser } from "../../store/users.js";
import { callerOf, requireAdmin } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import { tokenView } from "../views.js";
import * as wire from "../wire.js";

const tokenParams = z.object({ id: z.string() });

export const tokenRoutes: RoutePlugin = async (api, { deps: { db } }) => {
  api.post(
    "/v1/tokens",
    { schema: { body: wire.tokenCreate, response: { 201: wire.tokenCreated } } },
    async (req, reply) => {
      const c = callerOf(req);
      let userId = c.userId;
      if (req.body.user !== undefined) {
        const mine = req.body.user === c.user || req.body.user === c.userId;
        if (!mine) requireAdmin(req, "make tokens for another user");
        userId = getUser(db, req.body.user).id;
      }
      const { token, info } = createToken(db, { name: req.body.name, userId });
      void reply.status(201);
      return { ...tokenView(info), token };
    },
  );
  api.get("/v1/tokens", { schema: { response: { 200: wire.token.array() } } }, async (req) => {
    const c = callerOf(req);
    return listTokens(db, c.admin ? {} : { userId: c.userId }).map(tokenView);
  });
  api.delete(
    "/v1/tokens/:id",
    { schema: { params: tokenParams, response: { 200: wire.tokenRevoked } } },
    async (req) => {
      const c = callerOf(req);
      if (c.id === req.params.id) {
        throw new KilnError({
          code: "conflict",
          message: "a token cannot revoke itself",
          hint: "revoke it with another token of yours (or an admin token)",
        });
      }
      // Another user's token is as unknown as a missing one.
      if (!revokeToken(db, req.params.id, c.admin ? {} : { userId: c.userId }))
        throw new KilnError({ code: "unknown_token", message: `no token ${req.params.id}` });
      return { id: req.params.id, revoked: true as const };
    },
  );
};
