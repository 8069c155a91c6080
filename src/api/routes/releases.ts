/** Releases: listed, shown, rolled back to; and (admins) a slug built elsewhere imported as one. */
import type { FastifyRequest } from "fastify";
import { z } from "zod";
import { releaseSlug } from "../../release/release.js";
import { assertSlugFile } from "../../slug/verify.js";
import { ensureDefaultFormation } from "../../store/formation.js";
import { getRelease, listReleases, type Release } from "../../store/releases.js";
import { assertEnvVars } from "../../util/envVars.js";
import { rollbackTo } from "../actions.js";
import { appAccess, appOf, requireAdmin } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import { releaseView } from "../views.js";
import * as wire from "../wire.js";
import { appParams } from "./params.js";

const releaseParams = z.object({ app: z.string(), version: z.coerce.number().int().positive() });

/** An import (its body has a slug) is for admins alone: refused before its body is looked at. */
const isImport = (req: FastifyRequest) =>
  typeof req.body === "object" && req.body !== null && "slug" in req.body;

export const releaseRoutes: RoutePlugin = async (api, { deps }) => {
  const { db } = deps;
  api.get(
    "/v1/apps/:app/releases",
    {
      schema: { params: appParams, response: { 200: wire.release.array() } },
      preValidation: appAccess(db, "read"),
    },
    async (req) => listReleases(db, appOf(req).id).map(releaseView),
  );
  api.get(
    "/v1/apps/:app/releases/:version",
    {
      schema: { params: releaseParams, response: { 200: wire.release } },
      preValidation: appAccess(db, "read"),
    },
    async (req) => releaseView(getRelease(db, appOf(req).id, req.params.version)),
  );
  api.post(
    "/v1/apps/:app/releases",
    {
      schema: { params: appParams, body: wire.releaseCreate, response: { 201: wire.release } },
      preValidation: [
        appAccess(db, "write"),
        async (req) => {
          if (isImport(req)) requireAdmin(req, "import a release");
        },
      ],
    },
    async (req, reply) => {
      const app = appOf(req);
      const body = req.body;
      let r: Release;
      if ("slug" in body) {
        assertEnvVars(body.config);
        await assertSlugFile(body.slug.path, body.slug.sha256);
        // The platform's own config vars for the app (its wiring: state, sockets, tokens) win.
        r = releaseSlug(db, {
          appId: app.id,
          buildId: null,
          slugSha256: body.slug.sha256,
          slugPath: body.slug.path,
          processTypes: body.process_types,
          defaults: body.config,
          description: body.description,
        });
        ensureDefaultFormation(db, r);
        deps.dynos?.reconcile(app.id);
      } else {
        r = await rollbackTo(deps, app, body.rollback);
      }
      void reply.status(201);
      return releaseView(r);
    },
  );
};
