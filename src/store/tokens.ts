/**
 * API tokens: random 32 bytes shown once; only their SHA-256 is stored, so the state file leaks
 * nothing a client could use. (A fast hash is right here: the tokens are random, not passwords.)
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { KilnError } from "../errors.js";
import { type Db, stmt } from "./db.js";

export interface TokenInfo {
  id: string;
  name: string;
  admin: boolean;
  createdAt: string;
  lastUsedAt: string | null;
}

const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

/** Returns the token itself (never stored) and its record. */
export function createToken(
  db: Db,
  opts: { name: string; admin: boolean },
): { token: string; info: TokenInfo } {
  return addToken(db, { ...opts, token: `kiln_${randomBytes(32).toString("base64url")}` });
}

/** Records a token chosen elsewhere (configuration); only its hash is kept. */
export function addToken(
  db: Db,
  opts: { name: string; admin: boolean; token: string },
): { token: string; info: TokenInfo } {
  const { token } = opts;
  if (token.length < 24) {
    throw new KilnError({
      code: "invalid_token",
      message: "an API token must have at least 24 characters",
      hint: "generate one: openssl rand -base64 32",
    });
  }
  const info: TokenInfo = {
    id: randomUUID(),
    name: opts.name,
    admin: opts.admin,
    createdAt: new Date().toISOString(),
    lastUsedAt: null,
  };
  stmt(db, "INSERT INTO tokens (id, name, hash, admin, created_at) VALUES (?, ?, ?, ?, ?)").run(
    info.id,
    info.name,
    hashToken(token),
    info.admin ? 1 : 0,
    info.createdAt,
  );
  return { token, info };
}

/** The token's record when it is valid (and notes its use), else undefined. */
export function verifyToken(db: Db, token: string): TokenInfo | undefined {
  const row = stmt(db, "SELECT * FROM tokens WHERE hash = ?").get(hashToken(token)) as
    | { id: string; name: string; admin: number; created_at: string; last_used_at: string | null }
    | undefined;
  if (!row) return undefined;
  // "Last used" to the minute: a synced write on every request would cap the API's throughput.
  const now = new Date().toISOString();
  const last = row.last_used_at ? Date.parse(row.last_used_at) : 0;
  if (Date.now() - last > 60_000)
    stmt(db, "UPDATE tokens SET last_used_at = ? WHERE id = ?").run(now, row.id);
  return {
    id: row.id,
    name: row.name,
    admin: row.admin === 1,
    createdAt: row.created_at,
    lastUsedAt: Date.now() - last > 60_000 ? now : row.last_used_at,
  };
}

export function hasAdminToken(db: Db): boolean {
  return !!stmt(db, "SELECT 1 FROM tokens WHERE admin = 1 LIMIT 1").get();
}

export function listTokens(db: Db): TokenInfo[] {
  return (
    stmt(db, "SELECT * FROM tokens ORDER BY created_at").all() as {
      id: string;
      name: string;
      admin: number;
      created_at: string;
      last_used_at: string | null;
    }[]
  ).map((r) => ({
    id: r.id,
    name: r.name,
    admin: r.admin === 1,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
  }));
}

export function revokeToken(db: Db, id: string): boolean {
  return stmt(db, "DELETE FROM tokens WHERE id = ?").run(id).changes === 1;
}
