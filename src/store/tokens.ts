/**
 * API tokens: random 32 bytes shown once; only their SHA-256 is stored, so the state file leaks
 * nothing a client could use. (A fast hash is right here: the tokens are random, not passwords.)
 * Every token belongs to a user and acts as that user; it is an admin token when its user is an
 * admin.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { KilnError } from "../errors.js";
import { type Db, stmt } from "./db.js";
import { platformAdmin } from "./users.js";

export interface TokenInfo {
  id: string;
  name: string;
  userId: string;
  /** The user's name. */
  user: string;
  /** The user's: an admin user's tokens are admin tokens. */
  admin: boolean;
  createdAt: string;
  lastUsedAt: string | null;
}

interface TokenRow {
  id: string;
  name: string;
  user_id: string;
  user_name: string;
  user_admin: number;
  created_at: string;
  last_used_at: string | null;
}

const SELECT = `SELECT t.id, t.name, t.user_id, u.name AS user_name, u.admin AS user_admin, t.created_at,
  t.last_used_at FROM tokens t JOIN users u ON u.id = t.user_id`;

const toToken = (r: TokenRow): TokenInfo => ({
  id: r.id,
  name: r.name,
  userId: r.user_id,
  user: r.user_name,
  admin: r.user_admin === 1,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
});

const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

/** Whose token: a user's id, or `admin: true` for the platform admin. */
export type TokenOwner = { userId: string } | { admin: true };

/** Returns the token itself (never stored) and its record. */
export function createToken(db: Db, opts: { name: string } & TokenOwner): { token: string; info: TokenInfo } {
  return addToken(db, { ...opts, token: `kiln_${randomBytes(32).toString("base64url")}` });
}

/** Records a token chosen elsewhere (configuration); only its hash is kept. */
export function addToken(
  db: Db,
  opts: { name: string; token: string } & TokenOwner,
): { token: string; info: TokenInfo } {
  const { token } = opts;
  if (token.length < 24) {
    throw new KilnError({
      code: "invalid_token",
      message: "an API token must have at least 24 characters",
      hint: "generate one: openssl rand -base64 32",
    });
  }
  const userId = "userId" in opts ? opts.userId : platformAdmin(db).id;
  const id = randomUUID();
  stmt(db, "INSERT INTO tokens (id, user_id, name, hash, created_at) VALUES (?, ?, ?, ?, ?)").run(
    id,
    userId,
    opts.name,
    hashToken(token),
    new Date().toISOString(),
  );
  return { token, info: getToken(db, id) as TokenInfo };
}

/** A token's record by its id (sessions act as the token they were opened with). */
export function getToken(db: Db, id: string): TokenInfo | undefined {
  const row = stmt(db, `${SELECT} WHERE t.id = ?`).get(id) as TokenRow | undefined;
  return row ? toToken(row) : undefined;
}

/** The token's record when it is valid (and notes its use), else undefined. */
export function verifyToken(db: Db, token: string): TokenInfo | undefined {
  const row = stmt(db, `${SELECT} WHERE t.hash = ?`).get(hashToken(token)) as TokenRow | undefined;
  if (!row) return undefined;
  // "Last used" to the minute: a synced write on every request would cap the API's throughput.
  const now = new Date().toISOString();
  const last = row.last_used_at ? Date.parse(row.last_used_at) : 0;
  if (Date.now() - last > 60_000) {
    stmt(db, "UPDATE tokens SET last_used_at = ? WHERE id = ?").run(now, row.id);
    row.last_used_at = now;
  }
  return toToken(row);
}

export function hasAdminToken(db: Db): boolean {
  return !!stmt(
    db,
    "SELECT 1 FROM tokens t JOIN users u ON u.id = t.user_id WHERE u.admin = 1 LIMIT 1",
  ).get();
}

/** Every token, or one user's. */
export function listTokens(db: Db, opts: { userId?: string } = {}): TokenInfo[] {
  const rows = (
    opts.userId
      ? stmt(db, `${SELECT} WHERE t.user_id = ? ORDER BY t.created_at`).all(opts.userId)
      : stmt(db, `${SELECT} ORDER BY t.created_at`).all()
  ) as TokenRow[];
  return rows.map(toToken);
}

/** Revokes a token (only one of `userId`'s when given); false when there is no such token. */
export function revokeToken(db: Db, id: string, opts: { userId?: string } = {}): boolean {
  const r = opts.userId
    ? stmt(db, "DELETE FROM tokens WHERE id = ? AND user_id = ?").run(id, opts.userId)
    : stmt(db, "DELETE FROM tokens WHERE id = ?").run(id);
  return r.changes === 1;
}
