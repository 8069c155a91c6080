/**
 * Dashboard sessions: a random secret in the browser's cookie, only its SHA-256 here (a stolen
 * state file opens no session). A session acts as the API token it was opened with, so it can
 * never do more than that token, and revoking the token (or deleting its user) ends it.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { type Db, stmt } from "./db.js";
import { getToken, type TokenInfo } from "./tokens.js";

export interface Session {
  id: string;
  token: TokenInfo;
  createdAt: string;
  expiresAt: string;
}

interface SessionRow {
  id: string;
  token_id: string;
  created_at: string;
  expires_at: string;
}

const hashSecret = (secret: string) => createHash("sha256").update(secret).digest("hex");

/** Opens a session for a token; returns the secret (never stored) for the cookie. */
export function createSession(
  db: Db,
  opts: { tokenId: string; ttlMs: number },
): { secret: string; session: Session } {
  const secret = randomBytes(32).toString("base64url");
  const id = randomUUID();
  const now = Date.now();
  // Sessions past their time are removed as new ones open: the table stays the size of the live ones.
  stmt(db, "DELETE FROM sessions WHERE expires_at < ?").run(new Date(now).toISOString());
  stmt(db, "INSERT INTO sessions (id, hash, token_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)").run(
    id,
    hashSecret(secret),
    opts.tokenId,
    new Date(now).toISOString(),
    new Date(now + opts.ttlMs).toISOString(),
  );
  return { secret, session: findSession(db, secret) as Session };
}

/** The live session whose secret this is, else undefined (unknown, expired, or its token revoked). */
export function findSession(db: Db, secret: string): Session | undefined {
  const row = stmt(db, "SELECT id, token_id, created_at, expires_at FROM sessions WHERE hash = ?").get(
    hashSecret(secret),
  ) as SessionRow | undefined;
  if (!row || Date.parse(row.expires_at) <= Date.now()) return undefined;
  const token = getToken(db, row.token_id);
  if (!token) return undefined;
  return { id: row.id, token, createdAt: row.created_at, expiresAt: row.expires_at };
}

export function deleteSession(db: Db, id: string): void {
  stmt(db, "DELETE FROM sessions WHERE id = ?").run(id);
}
