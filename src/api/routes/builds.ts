/**
 * Builds: the source as a tar.gz request body (or a source_blob URL), listed, shown, cancelled, and
 * their output streamed while they run.
 */
import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { z } from "zod";
import { inspectUntrustedTarGz } from "../../archive/untrusted.js";
import { KilnError } from "../../errors.js";
import { fetchSourceBlob, receiveUpload, tooLarge } from "../../source/upload.js";
import { createBuild, endBuild, getBuild, listBuilds } from "../../store/builds.js";
import { listChecks } from "../../store/checks.js";
import { cancelBuild } from "../actions.js";
import { appAccess, appOf, buildAccess, buildOf, callerOf } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import { assertBuildQuota } from "../tenancy.js";
import { buildView } from "../views.js";
import * as wire from "../wire.js";
import { parseRequest } from "../zod.js";
import { appParams, buildParams } from "./params.js";

/** kiln's addition to Heroku's builds: ?release=false builds (and records) without releasing. */
const buildQuery = z.object({ release: z.enum(["true", "false"]).default("true") }).strict();

/** The content types a build's source is uploaded as: a stream, read by the route (never buffered whole). */
export const TARBALL_TYPES = ["application/gzip", "application/x-gzip", "application/octet-stream"];

export const buildRoutes: RoutePlugin = async (api, { deps }) => {
  const { db } = deps;
  api.post(
    "/v1/apps/:app/builds",
    {
      schema: { params: appParams, querystring: buildQuery, response: { 201: wire.build } },
      preValidation: appAccess(db, "write"),
    },
    async (req, reply) => {
      const app = appOf(req);
      const release = req.query.release === "true";
      const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim() ?? "";
      const isTarball = TARBALL_TYPES.includes(type);
      if (!isTarball && type !== "application/json") {
        throw new KilnError({
          code: "unsupported_media_type",
          message: `a build takes the app's source as a tar.gz body (or JSON with a source_blob), not ${type || "no content type"}`,
          hint: "POST it with Content-Type: application/gzip (kiln deploy does this)",
        });
      }
      const declared = Number(req.headers["content-length"] ?? Number.NaN);
      if (isTarball && Number.isFinite(declared) && declared > deps.maxSourceBytes)
        throw tooLarge(deps.maxSourceBytes);
      const quota = { caller: callerOf(req), app, release, quotas: deps.quotas };
      assertBuildQuota(db, quota); // before reading the upload, and again once it is in (below)
      if (deps.queue.isFull()) {
        void reply.header("retry-after", "60");
        throw new KilnError({
          code: "queue_full",
          message: "the build queue is full",
          hint: "retry in a minute",
        });
      }
      const file = join(deps.sourcesDir, `${randomUUID()}.tar.gz`);
      // The body is a stream or a source_blob (checked here: it has no route schema, being either).
      const { sha256 } = isTarball
        ? await receiveUpload(req.body as Readable, { file, maxBytes: deps.maxSourceBytes })
        : await fetchSourceBlob(parseRequest(wire.buildFromUrl, req.body).source_blob, {
            file,
            maxBytes: deps.maxSourceBytes,
            allow: deps.fetchAllow ?? [],
          });
      // A hostile or broken archive is refused now (422), before anything is queued or unpacked.
      try {
        await inspectUntrustedTarGz(file, deps.unpacked);
        // Other builds may have started while this one uploaded (nothing yields between here and the insert).
        assertBuildQuota(db, quota);
      } catch (err) {
        await rm(file, { force: true });
        throw err;
      }
      const build = createBuild(db, {
        appId: app.id,
        sourceSha256: sha256,
        sourcePath: file,
        logPath: deps.logs.path,
        release,
        userId: callerOf(req).userId,
      });
      try {
        deps.queue.submit({ buildId: build.id, appId: app.id });
      } catch (err) {
        endBuild(db, build.id, "failed", "the build queue was full");
        if (err instanceof KilnError && err.code === "queue_full") void reply.header("retry-after", "60");
        throw err;
      }
      void reply.status(201);
      return buildView(getBuild(db, build.id), app.name);
    },
  );
  api.get(
    "/v1/apps/:app/builds",
    {
      schema: { params: appParams, response: { 200: wire.build.array() } },
      preValidation: appAccess(db, "read"),
    },
    async (req) => {
      const app = appOf(req);
      return listBuilds(db, app.id).map((b) => buildView(b, app.name, listChecks(db, b.id)));
    },
  );
  api.get(
    "/v1/apps/:app/builds/:id",
    {
      schema: { params: buildParams, response: { 200: wire.build } },
      preValidation: buildAccess(db, "read"),
    },
    async (req) => {
      const b = buildOf(req);
      return buildView(b, appOf(req).name, listChecks(db, b.id));
    },
  );
  api.delete(
    "/v1/apps/:app/builds/:id",
    {
      schema: { params: buildParams, response: { 200: wire.build } },
      preValidation: buildAccess(db, "write"),
    },
    async (req) => {
      const b = await cancelBuild(deps, buildOf(req));
      return buildView(b, appOf(req).name, listChecks(db, b.id));
    },
  );
  // The build's output: what it printed so far, then live until it ends (text, chunked).
  api.get(
    "/v1/apps/:app/builds/:id/output",
    { schema: { params: buildParams }, preValidation: buildAccess(db, "read") },
    async (req, reply) => {
      const b = buildOf(req);
      reply.raw.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      const closed = new AbortController();
      req.raw.on("close", () => closed.abort());
      // A pending build has no log yet: wait for it to start (or end) before following.
      while (getBuild(db, b.id).status === "pending" && !closed.signal.aborted)
        await new Promise((r) => setTimeout(r, 100));
      await deps.logs.follow(b.id, (t) => reply.raw.write(t), closed.signal);
      reply.raw.end();
      return reply;
    },
  );
};
