/**
 * Talking to a kiln server: where it is and which token to send (flags, then KILN_SERVER /
 * KILN_TOKEN, then ~/.config/kiln/client.json, then this machine's own server and its admin token
 * file), and JSON requests whose
 * errors come back as the server's own code, message and hint.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import * as wire from "../api/wire.js";
import type { Config } from "../config/config.js";
import { KilnError, relayedError } from "../errors.js";
import { describeIssues } from "../util/json.js";

export interface ClientOptions {
  server?: string;
  token?: string;
}

/** Where the CLI's defaults come from: KILN_SERVER, KILN_TOKEN, the client file, the data dir (all in Config). */
export type ClientSettings = Pick<Config, "server" | "token" | "clientConfigFile" | "dataDir">;

export interface Client {
  server: string;
  /** The token sent (git's credential helper hands it to git); none: the server answers 401. */
  token: string | undefined;
  /** A JSON request whose answer must be what `schema` (one of src/api/wire.ts) says. */
  request<S extends z.ZodType>(schema: S, method: string, path: string, body?: unknown): Promise<z.output<S>>;
  /** A raw request (uploads, streams). */
  fetch(path: string, init?: RequestInit): Promise<Response>;
}

export const DEFAULT_SERVER = "http://127.0.0.1:5080";

/** ~/.config/kiln/client.json (Config's clientConfigFile): `{"server": URL, "token": T}`, both optional. */
function readClientConfig(file: string): { server?: string; token?: string } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return {};
  }
  const r = clientConfigSchema.safeParse(
    (() => {
      try {
        return JSON.parse(text);
      } catch {
        return undefined;
      }
    })(),
  );
  if (!r.success) {
    throw new KilnError({
      code: "invalid_config",
      message: `${file} is not valid: ${r.error.issues.map((i) => i.message).join("; ")}`,
      hint: 'write it as {"server": "http://HOST:5080", "token": "kiln_…"}',
    });
  }
  return r.data;
}

const clientConfigSchema = z
  .object({ server: z.string().url().optional(), token: z.string().optional() })
  .strict();

/** Flags, then KILN_SERVER / KILN_TOKEN, then the client config file, then this machine's server. */
export function createClient(opts: ClientOptions, settings: ClientSettings): Client {
  const file = readClientConfig(settings.clientConfigFile);
  const server = (opts.server ?? settings.server ?? file.server ?? DEFAULT_SERVER).replace(/\/+$/, "");
  let token = opts.token ?? settings.token ?? file.token;
  if (!token) {
    try {
      token = readFileSync(join(settings.dataDir, "admin-token"), "utf8").trim() || undefined;
    } catch {
      // no local server's token: the server will say 401 with a hint
    }
  }
  const headers = (extra: HeadersInit = {}) => ({
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...extra,
  });
  const doFetch = async (path: string, init: RequestInit = {}) => {
    try {
      return await fetch(`${server}${path}`, { ...init, headers: headers(init.headers) });
    } catch (err) {
      throw new KilnError({
        code: "server_unreachable",
        message: `cannot reach the kiln server at ${server}: ${((err as Error).cause as Error)?.message ?? (err as Error).message}`,
        hint: "start one with kiln serve, or point at yours with --server URL (or KILN_SERVER)",
      });
    }
  };
  return {
    server,
    token,
    fetch: doFetch,
    async request(schema, method, path, body) {
      const res = await doFetch(path, {
        method,
        ...(body !== undefined
          ? { body: JSON.stringify(body), headers: { "content-type": "application/json" } }
          : {}),
      });
      return parseAnswer(schema, await readResponse(res), { server, what: `${method} ${path}` });
    },
  };
}

/** A 2xx body as `schema` says it is, or an error that says the server speaks another API. */
export function parseAnswer<S extends z.ZodType>(
  schema: S,
  json: unknown,
  at: { server: string; what: string },
): z.output<S> {
  const r = schema.safeParse(json);
  if (r.success) return r.data;
  throw new KilnError({
    code: "unexpected_response",
    message: `the server at ${at.server} answered ${at.what} with a body this kiln does not understand: ${describeIssues(r.error)}`,
    hint: "the server and this CLI are different versions of kiln: use the CLI of the server's version",
  });
}

/** A response's JSON body; a 4xx/5xx becomes the server's own error (code, message, hint). */
export async function readResponse(res: Response): Promise<unknown> {
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const parsed = wire.error.safeParse(json);
    const e = parsed.success ? parsed.data.error : undefined;
    throw relayedError({
      code: e?.code ?? `http_${res.status}`,
      message: e?.message ?? `the server answered ${res.status}: ${text.slice(0, 200)}`,
      ...(e?.hint ? { hint: e.hint } : res.status === 401 ? { hint: "pass --token (or KILN_TOKEN)" } : {}),
    });
  }
  return json;
}
