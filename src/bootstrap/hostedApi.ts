/**
 * The few calls `kiln bootstrap` makes to the hosted control plane's API, as any client would:
 * over HTTP at the front door, with a bearer token. Every call takes the bootstrap's signal (its
 * silence bound, Ctrl-C), so none of them can outlast it.
 */
import { openAsBlob } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { z } from "zod";
import * as wire from "../api/wire.js";
import { KilnError } from "../errors.js";
import { describeIssues } from "../util/json.js";

export type HostedBuild = wire.Build;

export interface HostedApiOptions {
  url: string;
  token: string;
  signal: AbortSignal;
  /** A sign of progress (bytes sent, a log line): the bootstrap's silence bound restarts. */
  onProgress?: () => void;
}

export function createHostedApi(opts: HostedApiOptions) {
  const { signal } = opts;
  const call = async (method: string, path: string, init: { body?: BodyInit; type?: string } = {}) => {
    try {
      return await fetch(new URL(path, opts.url), {
        method,
        headers: {
          authorization: `Bearer ${opts.token}`,
          ...(init.type ? { "content-type": init.type } : {}),
        },
        ...(init.body ? { body: init.body, duplex: "half" } : {}),
        signal,
      });
    } catch (err) {
      // Aborted: the bootstrap's own reason (which stage stalled, or Ctrl-C) says more.
      signal.throwIfAborted();
      throw new KilnError({
        code: "bootstrap_failed",
        message: `the hosted control plane at ${opts.url} did not answer ${method} ${path}: ${(err as Error).message}`,
        hint: "its log: kiln logs kiln",
        cause: err,
      });
    }
  };
  /** The answer as `schema` (src/api/wire.ts) says it is. */
  const json = async <S extends z.ZodType>(schema: S, res: Response, what: string): Promise<z.output<S>> => {
    const text = await res.text();
    if (!res.ok)
      throw new KilnError({
        code: "bootstrap_failed",
        message: `the hosted control plane refused to ${what} (HTTP ${res.status}): ${text.slice(0, 500)}`,
        hint: "its log: kiln logs kiln",
      });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    const r = schema.safeParse(body);
    if (!r.success)
      throw new KilnError({
        code: "bootstrap_failed",
        message: `the hosted control plane's answer to ${what} is not kiln's API: ${describeIssues(r.error)}`,
        hint: "the hosted kiln and this one differ in version: its log: kiln logs kiln",
      });
    return r.data;
  };
  /** A file as a request body that reports each chunk sent. */
  const fileBody = async (file: string): Promise<ReadableStream<Uint8Array>> =>
    (await openAsBlob(file)).stream().pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, c) {
          opts.onProgress?.();
          c.enqueue(chunk);
        },
      }),
    );
  return {
    async waitHealthy(timeoutMs: number): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const ok = await fetch(new URL("/healthz", opts.url), { signal }).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) return;
        signal.throwIfAborted();
        await sleep(200, undefined, { signal }).catch(() => signal.throwIfAborted());
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
      if (res.status !== 409) await json(wire.app, res, `create the app ${name}`);
      else await res.text();
    },
    /** Uploads a source (a tarball's path, or a body as is): the build it started. */
    async upload(
      app: string,
      source: string | { body: BodyInit; type: string },
      o: { release: boolean },
    ): Promise<HostedBuild> {
      const a = encodeURIComponent(app);
      const body =
        typeof source === "string" ? { body: await fileBody(source), type: "application/gzip" } : source;
      return json(
        wire.build,
        await call("POST", `/v1/apps/${a}/builds${o.release ? "" : "?release=false"}`, body),
        "take a build",
      );
    },
    /** Streams a build's output until it ends; the finished build, or an error if it failed. */
    async follow(app: string, started: HostedBuild, onLine: (line: string) => void): Promise<HostedBuild> {
      const a = encodeURIComponent(app);
      const out = await call("GET", started.output_stream_url);
      let rest = "";
      try {
        if (out.body) {
          for await (const chunk of out.body.pipeThrough(new TextDecoderStream())) {
            opts.onProgress?.();
            const lines = (rest + chunk).split("\n");
            rest = lines.pop() ?? "";
            for (const l of lines) onLine(l);
          }
        }
      } catch (err) {
        signal.throwIfAborted();
        throw new KilnError({
          code: "bootstrap_failed",
          message: `the output of the hosted build ${started.id} broke off: ${(err as Error).message}`,
          hint: "its log: kiln logs kiln",
          cause: err,
        });
      }
      if (rest) onLine(rest);
      const done = await json(
        wire.build,
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
