/** Collaborators: members see them; the owner (or an admin) adds and removes them; a collaborator may leave. */
import type { FastifyRequest } from "fastify";
import { z } from "zod";
import { KilnError } from "../../errors.js";
import { isPlatformApp } from "../../store/apps.js";
import { addCollaborator, listCollaborators, removeCollaborator } from "../../store/collaborators.js";
import { findUser, getUser } from "../../store/users.js";
import { appAccess, appOf, callerOf } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import { collaboratorView } from "../views.js";
import * as wire from "../wire.js";
import { appParams } from "./params.js";

const collaboratorParams = z.object({ app: z.string(), user: z.string() });

export const accessRoutes: RoutePlugin = async (api, { deps: { db } }) => {
  const list = (appId: string) => listCollaborators(db, appId).map(collaboratorView);
  api.get(
    "/v1/apps/:app/collaborators",
    {
      schema: { params: appParams, response: { 200: wire.collaborators } },
      preValidation: appAccess(db, "read"),
    },
    async (req) => list(appOf(req).id),
  );
  api.post(
    "/v1/apps/:app/collaborators",
    {
      schema: { params: appParams, body: wire.collaboratorAdd, response: { 201: wire.collaborators } },
      preValidation: appAccess(db, "own"),
    },
    async (req, reply) => {
      const a = appOf(req);
      if (isPlatformApp(a)) {
        throw new KilnError({
          code: "invalid_collaborator",
          message: `${a.name} is a platform app: only admins work on it`,
          hint: "make the user an admin instead (kiln users:create NAME --admin)",
        });
      }
      addCollaborator(db, a, getUser(db, req.body.user));
      void reply.status(201);
      return list(a.id);
    },
  );
  // Leaving an app needs only to see it; taking someone else off needs to own it.
  const leaving = (req: FastifyRequest) => {
    const c = callerOf(req);
    const { user } = req.params as { user: string };
    return user === c.user || user === c.userId;
  };
  api.delete(
    "/v1/apps/:app/collaborators/:user",
    {
      schema: { params: collaboratorParams, response: { 200: wire.collaborators } },
      preValidation: appAccess(db, (req) => (leaving(req) ? "read" : "own")),
    },
    async (req) => {
      const a = appOf(req);
      const user = findUser(db, req.params.user);
      if (!user || !removeCollaborator(db, a.id, user.id)) {
        throw new KilnError({
          code: user?.id === a.ownerId ? "conflict" : "unknown_collaborator",
          message:
            user?.id === a.ownerId
              ? `${user.name} owns ${a.name}: an owner cannot be removed`
              : `${req.params.user} is not a collaborator of ${a.name}`,
          hint: `list them with kiln access -a ${a.name}`,
        });
      }
      return list(a.id);
    },
  );
};
