/**
 * Kiln hosted on kiln: the control plane that runs as the app `kiln` builds and records releases,
 * and hands each one to the dyno manager it runs on (the platform's API, reached through a Unix
 * socket granted to that app alone), which then runs the app's dynos. Node's http client, because
 * fetch cannot speak to a Unix socket.
 */
import { request } from "node:http";
import { KilnError } from "../errors.js";
import type { Release } from "../store/releases.js";
import * as wire from "./wire.js";

export interface PlatformHandoff {
  /** Records the release on the platform (creating the app there if needed); its version there. */
  release(appName: string, release: Release, builtWith?: string): Promise<number>;
  /** Scales the app's dynos there (what it runs is the platform's formation). */
  scale(appName: string, updates: wire.FormationUpdate[]): Promise<void>;
}

export function createPlatformHandoff(opts: { url: string; token: string }): PlatformHandoff {
  const socketPath = opts.url.startsWith("unix:") ? opts.url.slice("unix:".length) : undefined;
  const base = socketPath ? new URL("http://platform") : new URL(opts.url);
  const call = (method: string, path: string, body: unknown) =>
    new Promise<{ status: number; json: unknown }>((resolve, reject) => {
      const data = JSON.stringify(body);
      const req = request(
        {
          method,
          path,
          ...(socketPath ? { socketPath } : { host: base.hostname, port: base.port }),
          headers: {
            authorization: `Bearer ${opts.token}`,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(data),
          },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let json: unknown = text;
            try {
              json = JSON.parse(text);
            } catch {}
            resolve({ status: res.statusCode ?? 0, json });
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("the platform did not answer in 30 s")));
      req.on("error", reject);
      req.end(data);
    });
  const fail = (what: string, r: { status: number; json: unknown }) =>
    new KilnError({
      code: "platform_handoff_failed",
      message: `the platform refused to ${what} (HTTP ${r.status}): ${JSON.stringify(r.json)}`,
      hint: "check the platform's log; the release is recorded here and can be handed over again by rolling back to it",
    });
  const ensureApp = async (appName: string) => {
    const app = await call("POST", "/v1/apps", { name: appName });
    if (app.status !== 201 && app.status !== 409) throw fail(`create the app ${appName}`, app);
  };
  return {
    async scale(appName, updates) {
      await ensureApp(appName);
      const r = await call("PATCH", `/v1/apps/${encodeURIComponent(appName)}/formation`, { updates });
      if (r.status !== 200 || !wire.formation.safeParse(r.json).success) throw fail(`scale ${appName}`, r);
    },
    async release(appName, release, builtWith) {
      await ensureApp(appName);
      const { slugPath, slugSha256 } = release;
      // Every release made here is of a built slug (the platform could only refuse one without).
      if (!slugPath || !slugSha256) throw new Error(`release v${release.version} has no slug to hand over`);
      const body: wire.ReleaseImport = {
        slug: { path: slugPath, sha256: slugSha256 },
        process_types: release.processTypes,
        config: release.config,
        description: `${release.description}: v${release.version} of the hosted control plane${builtWith ? `, built with ${builtWith}` : ""}`,
      };
      const r = await call("POST", `/v1/apps/${encodeURIComponent(appName)}/releases`, body);
      if (r.status !== 201) throw fail(`take release v${release.version}`, r);
      const taken = wire.release.safeParse(r.json);
      if (!taken.success) throw fail(`answer release v${release.version} with a release`, r);
      return taken.data.version;
    },
  };
}
