/**
 * Who is signed in to the dashboard, and the CSRF token of their session.
 *
 * The cookie holds a random secret (HttpOnly, SameSite=Strict); the store keeps only its hash
 * (src/store/sessions.ts). The CSRF token is an HMAC of that secret: a page can carry it in its
 * forms without the secret itself ever being in the HTML, nothing more is stored, and it is
 * different for every session. Every POST but the sign-in needs it; the sign-in, which has no
 * session yet, is guarded by the Origin check instead (no login CSRF from another site).
 *
 * Cookie tossing: a tenant's app on a sibling subdomain (evil.DOMAIN beside kiln.DOMAIN, the
 * hosted setup) can set a cookie for the parent domain with a longer Path; the browser then sends
 * it first, and the victim would act as the attacker's session. Over https the cookie is
 * `__Host-kiln_session`, which browsers accept only from this host itself (Secure, Path=/, no
 * Domain). Over http no name is safe: a request naming the session cookie twice is refused, which
 * catches the toss whenever the victim was signed in; the dashboard should then not share a
 * registrable domain with tenant apps.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { KilnError } from "../errors.js";
import type { Db } from "../store/db.js";
import { findSession, type Session } from "../store/sessions.js";

export const SESSION_COOKIE = "kiln_session";
/** The session cookie's name over https: no other host can set a `__Host-` cookie (RFC 6265bis). */
export const HOST_SESSION_COOKIE = "__Host-kiln_session";
/** How long a sign-in lasts: a working day, then the token is asked for again. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

export interface SignedIn {
  session: Session;
  csrf: string;
}

const csrfOf = (secret: string) =>
  createHmac("sha256", secret).update("kiln-dashboard-csrf").digest("base64url");

// The socket's own scheme (kiln sets no trustProxy, so a client's X-Forwarded-Proto is not taken).
const cookieName = (req: FastifyRequest) => (req.protocol === "https" ? HOST_SESSION_COOKIE : SESSION_COOKIE);

/** More than one cookie of the session's name: one was set by another host (cookie tossing). */
function tossed(req: FastifyRequest): boolean {
  const name = cookieName(req);
  const header = req.headers.cookie ?? "";
  return header.split(";").filter((c) => c.trim().split("=")[0] === name).length > 1;
}

/** Refuses a request whose session cookie is doubled (see the file's comment), saying what to do. */
export function assertOneSessionCookie(req: FastifyRequest): void {
  if (!tossed(req)) return;
  throw new KilnError({
    code: "forbidden",
    message:
      "this browser sent two dashboard session cookies: another site under a parent domain set one (cookie tossing), so neither is used",
    hint: "clear this site's cookies and its parent domain's, then sign in again; serve the dashboard over https, or on a domain no tenant app shares",
  });
}

/** The request's session, when its cookie names a live one (never when the cookie is doubled). */
export function signedIn(db: Db, req: FastifyRequest): SignedIn | undefined {
  if (tossed(req)) return undefined;
  const secret = req.cookies[cookieName(req)];
  if (!secret) return undefined;
  const session = findSession(db, secret);
  return session ? { session, csrf: csrfOf(secret) } : undefined;
}

export function setSessionCookie(req: FastifyRequest, reply: FastifyReply, secret: string): void {
  void reply.setCookie(cookieName(req), secret, {
    httpOnly: true,
    sameSite: "strict",
    secure: req.protocol === "https",
    path: "/",
    maxAge: SESSION_TTL_MS / 1000,
  });
}

export function clearSessionCookie(req: FastifyRequest, reply: FastifyReply): void {
  void reply.clearCookie(cookieName(req), {
    path: "/",
    httpOnly: true,
    sameSite: "strict",
    secure: req.protocol === "https",
  });
}

const forbidden = (message: string) =>
  new KilnError({
    code: "forbidden",
    message,
    hint: "reload the page and submit the form again (a form from another site is refused)",
  });

/** A form POST must carry its session's CSRF token (403 when it is missing or wrong). */
export function assertCsrf(who: SignedIn, sent: unknown): void {
  const want = Buffer.from(who.csrf);
  const got = Buffer.from(typeof sent === "string" ? sent : "");
  if (got.length !== want.length || !timingSafeEqual(got, want)) {
    throw forbidden("this form's CSRF token is missing or does not belong to your session");
  }
}

/**
 * A browser names the page a POST came from in Origin (Fetch standard); one from another site is
 * refused. Clients that send no Origin are not browsers submitting another site's form.
 */
export function assertSameOrigin(req: FastifyRequest): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  let host: string | undefined;
  try {
    host = new URL(origin).host;
  } catch {
    host = undefined;
  }
  if (host !== req.headers.host) throw forbidden(`a form posted from ${origin} is not this dashboard's`);
}
