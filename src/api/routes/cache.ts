/**
 * HTTP routes of src/cache and src/provenance, as one fastify plugin (one line in server.ts):
 *   GET /nix-cache/nix-cache-info, /nix-cache/HASH.narinfo, /nix-cache/nar/NARHASH.nar
 *       a Nix binary cache of what kiln recorded (recorded.ts), narinfo signed with the cache key;
 *       reads need an admin token (Bearer, or Basic with the token as password, which Nix sends
 *       from a netrc file) unless the operator made the cache public (KILN_CACHE_PUBLIC). It
 *       serves every app's slugs, so a tenant's token is not enough.
 *   GET /v1/apps/APP/builds/ID/provenance
 *       the build's signed provenance bundle (JSON Lines of DSSE envelopes).
 */
import { readFile } from "node:fs/promises";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { cacheKey } from "../../cache/key.js";
import { renderCacheInfo, renderNarinfo } from "../../cache/narinfo.js";
import { createRecordedPaths } from "../../cache/recorded.js";
import { KilnError } from "../../errors.js";
import type { Nix } from "../../nix/driver.js";
import { provenancePathFor } from "../../provenance/provenance.js";
import { getBuild } from "../../store/builds.js";
import type { Db } from "../../store/db.js";
import { type TokenInfo, verifyToken } from "../../store/tokens.js";
import { tokenOfHeader } from "../auth.js";
import type { RoutePlugin } from "../deps.js";
import { appFor } from "../tenancy.js";

export interface CacheRoutesOptions {
  db: Db;
  dataDir: string;
  /** The binary cache needs the store; without it only the provenance route is served. */
  nix?: Nix;
  /** Anyone may read the binary cache (no token). */
  cachePublic?: boolean;
}

/** The routes as the API lists them (its own auth: a public plugin in server.ts). */
export const cacheRoutes: RoutePlugin = async (api, { deps }) => {
  await api.register(nixCacheRoutes, { db: deps.db, dataDir: deps.dataDir, ...deps.cache });
};

const nixCacheRoutes: FastifyPluginAsync<CacheRoutesOptions> = async (api, opts) => {
  const { db } = opts;
  const caller = (req: FastifyRequest): TokenInfo => {
    const t = tokenOfHeader(req.headers.authorization);
    const info = t ? verifyToken(db, t) : undefined;
    if (!info)
      throw new KilnError({
        code: "unauthorized",
        message: "a valid API token is required",
        hint: "send Authorization: Bearer TOKEN, or Basic with the token as password (a netrc file for Nix)",
      });
    return info;
  };

  api.get<{ Params: { app: string; id: string } }>(
    "/v1/apps/:app/builds/:id/provenance",
    async (req, reply) => {
      const app = appFor(db, caller(req), req.params.app, "read");
      const b = getBuild(db, req.params.id);
      if (b.appId !== app.id)
        throw new KilnError({ code: "unknown_build", message: `no build ${req.params.id} in ${app.name}` });
      const text = b.manifestPath
        ? await readFile(provenancePathFor(b.manifestPath), "utf8").catch((err: NodeJS.ErrnoException) => {
            if (err.code === "ENOENT") return undefined;
            throw err;
          })
        : undefined;
      if (text === undefined)
        throw new KilnError({
          code: "unknown_provenance",
          message: `build ${b.id} has no provenance (${b.status === "succeeded" ? "built by a kiln that wrote none" : b.status})`,
        });
      return reply.type("application/jsonl; charset=utf-8").send(text);
    },
  );

  const nix = opts.nix;
  if (!nix) return;
  const key = await cacheKey(opts.dataDir);
  const recorded = createRecordedPaths({ dataDir: opts.dataDir, nix });

  await api.register(async (cache) => {
    cache.addHook("onRequest", async (req, reply) => {
      if (opts.cachePublic) return;
      const t = tokenOfHeader(req.headers.authorization);
      const info = t ? verifyToken(db, t) : undefined;
      if (info?.admin) return;
      reply.header("www-authenticate", 'Basic realm="kiln nix-cache"');
      throw new KilnError({
        code: info ? "forbidden" : "unauthorized",
        message: info
          ? "the binary cache serves every app's slugs: only an admin token may read it"
          : "a valid admin token is required to read the binary cache",
        hint: "give Nix a netrc file (--option netrc-file FILE) with the admin token as password, or make the cache public (KILN_CACHE_PUBLIC=1)",
      });
    });
    const notHere = (reply: FastifyReply) =>
      reply.code(404).type("text/plain; charset=utf-8").send("not in this cache\n");

    cache.get("/nix-cache/nix-cache-info", async (_req, reply) =>
      reply.type("text/x-nix-cache-info").send(renderCacheInfo()),
    );
    cache.get<{ Params: { name: string } }>("/nix-cache/:name", async (req, reply) => {
      const m = /^([0-9a-df-np-sv-z]{32})\.narinfo$/.exec(req.params.name);
      const info = m?.[1] ? (await recorded.get()).byHash.get(m[1]) : undefined;
      if (!info) return notHere(reply);
      return reply.type("text/x-nix-narinfo").send(renderNarinfo(info, key));
    });
    cache.get<{ Params: { file: string } }>("/nix-cache/nar/:file", async (req, reply) => {
      const m = /^([0-9a-df-np-sv-z]{52})\.nar$/.exec(req.params.file);
      const info = m?.[1] ? (await recorded.get()).byNarHash.get(m[1]) : undefined;
      if (!info) return notHere(reply);
      const dump = nix.dumpStream(info.path);
      let gone = false;
      req.raw.on("close", () => {
        gone = true;
        dump.stop();
      });
      dump.done.catch((err: unknown) => {
        if (!gone) req.log.error({ err, path: info.path }, "nar dump failed");
        dump.stream.destroy(err as Error);
      });
      return reply
        .type("application/x-nix-nar")
        .header("content-length", String(info.narSize))
        .send(dump.stream);
    });
  });
};
