/**
 * The router: HTTP by Host header, `<app>.<domain>` → that app's web dynos, round-robin across the
 * ones that are up, through their relay sockets. Proxying is @fastify/reply-from's (node's own
 * http client, which reaches Unix sockets); the original Host is kept, and `Forwarded` and
 * X-Forwarded-* are the router's own: what a client sends in them is replaced, never passed on, so
 * an app can trust them (the router is the only way in).
 * No dyno up: a clear 503 page; a dyno that fails mid-request: 502.
 */
import replyFrom from "@fastify/reply-from";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import type { Logger } from "../log/logger.js";

export interface RouterDeps {
  domain: string;
  log: Logger;
  /** Relay sockets of the app's web dynos that are up. */
  webSockets(app: string): string[];
  appExists(app: string): boolean;
  /**
   * Route every request to this one app, whatever its Host: a front door at a fixed address (the
   * hosted control plane's API at kiln's usual API port, so every client works unchanged).
   */
  fixedApp?: string;
  /** A proxied request whose connection is silent this long ends with 504 (default 55 s, Heroku's). */
  idleTimeoutMs?: number;
}

function page(status: number, title: string, text: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${status} ${title}</title></head><body><h1>${title}</h1><p>${text}</p><p><small>kiln router</small></p></body></html>\n`;
}

/**
 * What the router saw, in both forms apps read (RFC 7239 and the de-facto X-Forwarded-*). These
 * replace any the client sent: passing a client's through would let it claim any address.
 */
export function forwardedHeaders(seen: { ip: string; host: string; port: number }): Record<string, string> {
  // RFC 7239: an IPv6 address is bracketed and quoted; a value that is not a token is quoted.
  const node = seen.ip.includes(":") ? `"[${seen.ip}]"` : seen.ip;
  const quoted = (v: string) =>
    /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(v) ? v : `"${v.replace(/["\\]/g, "\\$&")}"`;
  return {
    forwarded: `for=${node};proto=http;host=${quoted(seen.host)}`,
    "x-forwarded-for": seen.ip,
    "x-forwarded-proto": "http",
    "x-forwarded-host": seen.host,
    "x-forwarded-port": String(seen.port),
  };
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export async function createRouter(deps: RouterDeps): Promise<FastifyInstance> {
  const router = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  // `http: {}` selects node's own http client, the one that reaches Unix sockets.
  // Connections to the relays are kept alive: socat forks a process per connection.
  await router.register(replyFrom, {
    http: {
      agentOptions: { keepAlive: true, maxSockets: 256 },
      requestOptions: { timeout: deps.idleTimeoutMs ?? 55_000 },
    },
  });
  // Bodies go through untouched, whatever their type.
  router.removeAllContentTypeParsers();
  router.addContentTypeParser("*", (_req, payload, done) => done(null, payload));
  const turn = new Map<string, number>();
  const suffix = `.${deps.domain}`;

  router.all("/*", (req, reply) => {
    const host = (req.headers.host ?? "").replace(/:\d+$/, "").toLowerCase();
    const app = deps.fixedApp ?? (host.endsWith(suffix) ? host.slice(0, -suffix.length) : "");
    if (!app || app.includes(".") || !deps.appExists(app)) {
      void reply
        .status(404)
        .type("text/html")
        .send(
          page(
            404,
            "No such app",
            `kiln routes <code>APP${escapeHtml(suffix)}</code>; this request was for ${escapeHtml(host || "no host")}.`,
          ),
        );
      return;
    }
    const sockets = deps.webSockets(app);
    if (sockets.length === 0) {
      void reply
        .status(503)
        .header("retry-after", "5")
        .type("text/html")
        .send(
          page(
            503,
            "No web dyno is up",
            `The app <b>${escapeHtml(app)}</b> has no running web dyno. Scale it up (kiln ps:scale web=1) or check its logs (kiln logs ${escapeHtml(app)}).`,
          ),
        );
      return;
    }
    const i = (turn.get(app) ?? 0) % sockets.length;
    turn.set(app, i + 1);
    void reply.from(`unix+http://${encodeURIComponent(sockets[i] as string)}${req.url}`, {
      rewriteRequestHeaders: (original, headers) => ({
        ...headers,
        host: original.headers.host ?? host,
        ...forwardedHeaders({
          ip: original.ip,
          host: original.headers.host ?? host,
          port: original.socket.localPort ?? 0,
        }),
      }),
      onError: (r) => {
        void r
          .status(502)
          .type("text/html")
          .send(page(502, "Bad gateway", `A web dyno of <b>${escapeHtml(app)}</b> did not answer.`));
      },
    });
  });
  return router;
}
