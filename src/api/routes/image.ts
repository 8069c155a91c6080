/**
 * A build as an OCI image: GET /v1/apps/APP/builds/ID/image streams its oci-archive (an
 * uncompressed tar of an image layout; `skopeo copy oci-archive:FILE …`, `podman load -i FILE`).
 * Readable by whoever may read the build; another tenant's build is a 404 like a missing one.
 */
import { PassThrough } from "node:stream";
import { KilnError } from "../../errors.js";
import { prepareImage, streamOciArchive } from "../../image/export.js";
import { imageSourceFromManifest } from "../../image/source.js";
import { appOf, buildAccess, buildOf } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import { buildParams } from "./params.js";

export const imageRoutes: RoutePlugin = async (api, { deps }) => {
  const { db } = deps;
  api.get(
    "/v1/apps/:app/builds/:id/image",
    { schema: { params: buildParams }, preValidation: buildAccess(db, "read") },
    async (req, reply) => {
      const b = buildOf(req);
      const image = deps.image;
      if (!image)
        throw new KilnError({
          code: "images_disabled",
          message: "this server does not export images",
          hint: "run kiln serve on the machine whose Nix store holds the builds",
        });
      if (b.status !== "succeeded" || !b.manifestPath)
        throw new KilnError({
          code: "conflict",
          message: `build ${b.id} is ${b.status}: only a succeeded build has an image`,
          hint: "wait for the build to finish, or build the app again",
        });
      // Everything that can fail with a clear error happens before the first byte is sent.
      const img = await prepareImage(image, await imageSourceFromManifest(image.nix, b.manifestPath));
      const body = new PassThrough();
      streamOciArchive(image, img, body).catch((err: unknown) => {
        deps.log.error({ err, build: b.id }, "image export failed mid-stream");
        body.destroy(err instanceof Error ? err : new Error(String(err)));
      });
      return reply
        .header("content-type", "application/x-tar")
        .header("content-disposition", `attachment; filename="${appOf(req).name}-${b.id}.oci.tar"`)
        .header("x-kiln-image-digest", `sha256:${img.digest}`)
        .send(body);
    },
  );
};
