/**
 * The web dashboard, server-rendered on the API's port at `/`: its own encapsulated fastify plugin
 * (cookies, form bodies, HTML errors and security headers stay inside it). Sign in with an API
 * token; a session then acts as that token, through the same permission model as the API.
 * Pages work without JavaScript; the live parts (build log, app log) are server-sent events.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fastifyCookie from "@fastify/cookie";
import fastifyFormbody from "@fastify/formbody";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { RouteDeps } from "../api/deps.js";
import { renderMetrics } from "../api/metrics.js";
import { appFor, visibleApps } from "../api/tenancy.js";
import { followLog } from "../dyno/logs.js";
import { isKilnError, KilnError, statusOf } from "../errors.js";
import { getBuild } from "../store/builds.js";
import { createSession, deleteSession } from "../store/sessions.js";
import { verifyToken } from "../store/tokens.js";
import {
  type Act,
  cancelFromForm,
  configFromForm,
  createFromForm,
  parseForm,
  restartFromForm,
  revealForm,
  rollbackFromForm,
  scaleFromForm,
} from "./actions.js";
import { appBuild, appPage, appSummaries, buildQueue, parseMetrics } from "./model.js";
import {
  assertCsrf,
  assertOneSessionCookie,
  assertSameOrigin,
  clearSessionCookie,
  SESSION_TTL_MS,
  type SignedIn,
  setSessionCookie,
  signedIn,
} from "./session.js";
import { lineSplitter, openEventStream } from "./sse.js";
import { createViews, DASHBOARD_DIR, helpers } from "./views.js";

/** A build page shows at most this much of the log (its end); the API's output has it all. */
const BUILD_LOG_PAGE_BYTES = 512 * 1024;

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
};

const ASSETS: Record<string, string> = {
  "dashboard.css": "text/css; charset=utf-8",
  "dashboard.js": "text/javascript; charset=utf-8",
  "favicon.svg": "image/svg+xml",
};

/** What a notice in the query says after an action (a fixed set: no text from the URL is shown). */
const NOTICES: Record<string, (q: Record<string, string | undefined>) => string> = {
  released: (q) => `Released v${Number(q.v) || "?"}.`,
  scaled: () => "Scaled. The dynos follow the new formation.",
  created: () => "App created. Deploy it with kiln deploy or git push.",
  config: (q) =>
    Number(q.v)
      ? `Config changed. Released v${Number(q.v)}.`
      : "Config changed (the first release will use it).",
  restarted: (q) => `Restarted ${Number(q.n) || 0} ${Number(q.n) === 1 ? "dyno" : "dynos"}.`,
  cancelled: () => "Build cancelled.",
};

const notSignedIn = () =>
  new KilnError({ code: "unauthorized", message: "sign in first", hint: "sign in with an API token" });

export async function dashboardRoutes(app: FastifyInstance, deps: RouteDeps): Promise<void> {
  const { db } = deps;
  const views = createViews();
  const assets = new Map(
    Object.keys(ASSETS).map((f) => [f, readFileSync(join(DASHBOARD_DIR, "assets", f))] as const),
  );

  await app.register(fastifyCookie);
  await app.register(fastifyFormbody, { bodyLimit: 64 * 1024 });
  app.addHook("onSend", async (_req, reply, payload) => {
    void reply.headers(SECURITY_HEADERS);
    return payload;
  });

  const render = (reply: FastifyReply, view: string, data: Record<string, unknown>, status = 200) =>
    reply
      .status(status)
      .type("text/html; charset=utf-8")
      .send(views.render(view, { h: helpers, who: undefined, ...data }));

  app.setErrorHandler((err: FastifyError | Error, req, reply) => {
    const kiln = isKilnError(err);
    const status = kiln ? statusOf(err.code) : ((err as FastifyError).statusCode ?? 500);
    if (status >= 500) req.log.error({ err }, "dashboard request failed");
    // A page asked for without a session: the sign-in page (nothing else is said).
    if (kiln && err.code === "unauthorized" && req.method === "GET" && !isStream(req))
      return reply.redirect("/", 303);
    const who = signedIn(db, req);
    return render(
      reply,
      "./error",
      {
        who,
        title: status === 404 ? "Not found" : `Error ${status}`,
        status,
        message: kiln || status < 500 ? err.message : "internal error (logged on the server)",
        hint: kiln ? err.hint : undefined,
      },
      status,
    );
  });

  const session = (req: FastifyRequest): SignedIn => {
    assertOneSessionCookie(req);
    const who = signedIn(db, req);
    if (!who) throw notSignedIn();
    return who;
  };
  /** A form POST: a session, and its CSRF token in the form. */
  const formPost = (req: FastifyRequest): SignedIn & { body: Record<string, unknown> } => {
    const who = session(req);
    const body = (req.body ?? {}) as Record<string, unknown>;
    assertCsrf(who, body.csrf);
    return { ...who, body };
  };

  app.get("/assets/:file", async (req, reply) => {
    const { file } = req.params as { file: string };
    const body = assets.get(file);
    if (!body) throw new KilnError({ code: "unknown_asset", message: `no asset ${file}` });
    return reply
      .type(ASSETS[file] as string)
      .header("cache-control", "no-cache")
      .send(body);
  });

  // Browsers ask for it whatever the page says: the same icon, not the API's 401.
  app.get("/favicon.ico", async (_req, reply) =>
    reply.type("image/svg+xml").header("cache-control", "max-age=86400").send(assets.get("favicon.svg")),
  );

  // The app list, or the sign-in form.
  app.get("/", async (req, reply) => {
    assertOneSessionCookie(req);
    const who = signedIn(db, req);
    if (!who) return render(reply, "./signin", { title: "Sign in" });
    return render(reply, "./apps", {
      who,
      title: "Apps",
      nav: "apps",
      apps: appSummaries(db, who.session.token, deps.dynos),
      dynosRun: deps.dynos !== undefined,
    });
  });

  app.post("/session", async (req, reply) => {
    assertSameOrigin(req);
    const token = (req.body as { token?: unknown } | undefined)?.token;
    const info = typeof token === "string" && token.length > 0 ? verifyToken(db, token.trim()) : undefined;
    if (!info) {
      return render(
        reply,
        "./signin",
        { title: "Sign in", error: "That token is not valid. Use an API token (kiln tokens:create)." },
        401,
      );
    }
    const { secret } = createSession(db, { tokenId: info.id, ttlMs: SESSION_TTL_MS });
    setSessionCookie(req, reply, secret);
    return reply.redirect("/", 303);
  });

  app.post("/session/delete", async (req, reply) => {
    const who = formPost(req);
    deleteSession(db, who.session.id);
    clearSessionCookie(req, reply);
    return reply.redirect("/", 303);
  });

  const showApp = async (
    req: FastifyRequest,
    reply: FastifyReply,
    opts: { who: SignedIn; name: string; reveal?: Set<string> },
  ) => {
    const page = await appPage({
      db,
      caller: opts.who.session.token,
      app: opts.name,
      dataDir: deps.dataDir,
      dynos: deps.dynos,
      webUrl: deps.webUrl,
      ...(opts.reveal ? { reveal: opts.reveal } : {}),
    });
    return render(reply, "./app", {
      who: opts.who,
      title: page.app.name,
      nav: "apps",
      page,
      notice: notice(req),
      dynosRun: deps.dynos !== undefined,
    });
  };

  app.get<{ Params: { app: string } }>("/apps/:app", async (req, reply) =>
    showApp(req, reply, { who: session(req), name: req.params.app }),
  );

  // Revealing a config var is a POST (a value is never in a page a link or a prefetch can fetch).
  app.post<{ Params: { app: string } }>("/apps/:app/config/reveal", async (req, reply) => {
    const who = formPost(req);
    const { key } = parseForm(revealForm, who.body);
    return showApp(req, reply, { who, name: req.params.app, reveal: new Set([key]) });
  });

  /** An app's action: a session, its CSRF token, then the API's own function (./actions.ts). */
  const act = (req: FastifyRequest<{ Params: { app: string } }>): Act => {
    const who = formPost(req);
    return { deps, caller: who.session.token, app: req.params.app, body: who.body };
  };
  const back = (name: string, query: string, hash = "") => `${helpers.url("apps", name)}?${query}${hash}`;

  app.post("/apps", async (req, reply) => {
    const who = formPost(req);
    const created = createFromForm(deps, who.session.token, who.body);
    return reply.redirect(back(created.name, "notice=created"), 303);
  });

  app.post<{ Params: { app: string } }>("/apps/:app/rollback", async (req, reply) => {
    const v = await rollbackFromForm(act(req));
    return reply.redirect(back(req.params.app, `notice=released&v=${v}`), 303);
  });

  app.post<{ Params: { app: string } }>("/apps/:app/formation", async (req, reply) => {
    await scaleFromForm(act(req));
    return reply.redirect(back(req.params.app, "notice=scaled", "#formation"), 303);
  });

  app.post<{ Params: { app: string } }>("/apps/:app/config", async (req, reply) => {
    const v = await configFromForm(act(req));
    return reply.redirect(back(req.params.app, `notice=config&v=${v ?? 0}`, "#config"), 303);
  });

  app.post<{ Params: { app: string } }>("/apps/:app/config/unset", async (req, reply) => {
    const v = await configFromForm({ ...act(req), unset: true });
    return reply.redirect(back(req.params.app, `notice=config&v=${v ?? 0}`, "#config"), 303);
  });

  app.post<{ Params: { app: string } }>("/apps/:app/dynos/restart", async (req, reply) => {
    const n = await restartFromForm(act(req));
    return reply.redirect(back(req.params.app, `notice=restarted&n=${n}`, "#dynos"), 303);
  });

  app.post<{ Params: { app: string; id: string } }>("/apps/:app/builds/:id/cancel", async (req, reply) => {
    await cancelFromForm({ ...act(req), build: req.params.id });
    const page = `${helpers.url("apps", req.params.app, "builds", req.params.id)}?notice=cancelled`;
    return reply.redirect(page, 303);
  });

  app.get<{ Params: { app: string; id: string } }>("/apps/:app/builds/:id", async (req, reply) => {
    const who = session(req);
    const { app: a, build, checks } = appBuild(db, who.session.token, req.params.app, req.params.id);
    const log = await deps.logs.tail(build.id, BUILD_LOG_PAGE_BYTES);
    return render(reply, "./build", {
      who,
      notice: notice(req),
      title: `Build ${helpers.short(build.id)}`,
      nav: "apps",
      app: a,
      build,
      checks,
      log,
    });
  });

  // The build's log as events: its tail so far (as the page shows it), then live until the build ends ("end").
  app.get<{ Params: { app: string; id: string } }>("/apps/:app/builds/:id/events", async (req, reply) => {
    const who = session(req);
    const { build } = appBuild(db, who.session.token, req.params.app, req.params.id);
    const stream = openEventStream(req, reply);
    // Each connection replays the log's tail: the page starts over (a reconnect duplicates nothing).
    stream.send("", "reset");
    // A pending build has no log yet: wait for it to start (or end), as the API's output does.
    while (getBuild(db, build.id).status === "pending" && !stream.closed.aborted)
      await new Promise((r) => setTimeout(r, 250));
    const lines = lineSplitter((l) => stream.send(l));
    await deps.logs.follow(build.id, (t) => lines.push(t), stream.closed, {
      tailBytes: BUILD_LOG_PAGE_BYTES,
    });
    lines.flush();
    stream.send(getBuild(db, build.id).status, "end");
    stream.end();
  });

  // The app's log lines as they are written (the page has the recent ones).
  app.get<{ Params: { app: string } }>("/apps/:app/logs/events", async (req, reply) => {
    const who = session(req);
    const a = appFor(db, who.session.token, req.params.app, "read");
    const stream = openEventStream(req, reply);
    await followLog(deps.dataDir, a.name, (l) => stream.send(JSON.stringify(l)), stream.closed);
    stream.end();
  });

  app.get("/platform", async (req, reply) => {
    const who = session(req);
    // A tenant sees the numbers over their own apps; the platform's are the admin's (as /metrics).
    const admin = who.session.token.admin;
    const scope = admin ? undefined : visibleApps(db, who.session.token).map((a) => a.id);
    const metrics = parseMetrics(
      renderMetrics(db, deps.queue, admin ? (deps.dynos?.all() ?? []) : [], scope),
    );
    return render(reply, "./platform", {
      who,
      title: "Platform",
      nav: "platform",
      queue: buildQueue(db, who.session.token),
      metrics: Object.fromEntries(metrics),
      dynosRun: admin && deps.dynos !== undefined,
    });
  });
}

function notice(req: FastifyRequest): string | undefined {
  const q = req.query as Record<string, string | undefined>;
  return q.notice ? NOTICES[q.notice]?.(q) : undefined;
}

const isStream = (req: FastifyRequest) => req.url.endsWith("/events");
