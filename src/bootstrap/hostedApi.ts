/**
 * The few calls `kiln bootstrap` makes to the hosted control plane's API, as any client would:
 * over HTTP at the front door, with a bearer token.
 */
import { openAsBlob } from "node:fs";
import { KilnError } from "../errors.js";

export interface HostedBuild {
  id: string;
  status: string;
  failure_reason: string | null;
  slug_sha256: string | null;
  slug_path: string | null;
  output_stream_url: string;
}

export function createHostedApi(opts: { url: string; token: string }) {
  const call = async (method: string, path: string, init: { body?: BodyInit; type?: string } = {}) => {
    const res = await fetch(new URL(path, opts.url), {
      method,
      headers: {
        authorization: `Bearer ${opts.token}`,
        ...(init.type ? { "content-type": init.type } : {}),
      },
      ...(init.body ? { body: init.body, duplex: "half" } : {}),
    });
    return res;
  };
  const json = async <T>(res: Response, what: string): Promise<T> => {
    const text = await res.text();
    if (!res.ok)
      throw new KilnError({
        code: "bootstrap_failed",
        message: `the hosted control plane refused to ${what} (HTTP ${res.status}): ${text.slice(0, 500)}`,
        hint: "its log: kiln logs kiln",
      });
    return JSON.parse(text) as T;
  };
  return {
    async waitHealthy(timeoutMs: number): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const ok = await fetch(new URL("/healthz", opts.url)).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) return;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new KilnError({
        code: "bootstrap_failed",
        message: `the hosted control plane did not answer at ${opts.url} within ${timeoutMs / 1000} s`,
        hint: "its log: kiln logs kiln",
      });
    },
    async ensureApp(name: string): Promise<void> {
      const res = await call("POST", "/v1/apps", {
        body: JSON.stringify({ name }),
        type: "application/json",
      });
      if (res.status !== 409) await json(res, `create the app ${name}`);
    },
    /** Uploads a source tarball, streams the build's output, and returns the finished build. */
    async build(
      app: string,
      tarball: string,
      o: { release: boolean; onLine: (line: string) => void },
    ): Promise<HostedBuild> {
      const a = encodeURIComponent(app);
      const started = await json<HostedBuild>(
        await call("POST", `/v1/apps/${a}/builds${o.release ? "" : "?release=false"}`, {
          body: await openAsBlob(tarball),
          type: "application/gzip",
        }),
        "take a build",
      );
      const out = await call("GET", started.output_stream_url);
      let rest = "";
      if (out.body) {
        for await (const chunk of out.body.pipeThrough(new TextDecoderStream())) {
          const lines = (rest + chunk).split("\n");
          rest = lines.pop() ?? "";
          for (const l of lines) o.onLine(l);
        }
      }
      if (rest) o.onLine(rest);
      const done = await json<HostedBuild>(
        await call("GET", `/v1/apps/${a}/builds/${started.id}`),
        "show the build",
      );
      if (done.status !== "succeeded")
        throw new KilnError({
          code: "bootstrap_failed",
          message: `the hosted build ${done.id} ${done.status}: ${done.failure_reason ?? ""}`,
          hint: "its log is above",
        });
      return done;
    },
  };
}
