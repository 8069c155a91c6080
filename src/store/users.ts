/**
 * Users: who a token acts for. The user "admin" (made by migration 4) is the platform admin; an
 * admin may make more users, admins among them. Apps belong to users (src/store/apps.ts).
 */
import { randomUUID } from "node:crypto";
import { bug, KilnError } from "../errors.js";
import { type Db, stmt } from "./db.js";

export interface User {
  id: string;
  name: string;
  admin: boolean;
  createdAt: string;
}

interface UserRow {
  id: string;
  name: string;
  admin: number;
  created_at: string;
}

/** A login-like name (an e-mail address fits); case-folded so "Bob" and "bob" are one user. */
const USER_NAME = /^[a-z0-9][a-z0-9._@+-]{0,63}$/;

const toUser = (r: UserRow): User => ({
  id: r.id,
  name: r.name,
  admin: r.admin === 1,
  createdAt: r.created_at,
});

export function createUser(db: Db, opts: { name: string; admin?: boolean }): User {
  if (!USER_NAME.test(opts.name)) {
    throw new KilnError({
      code: "invalid_user_name",
      message: `"${opts.name}" is not a valid user name`,
      hint: "use lowercase letters, digits and . _ @ + -, starting with a letter or digit (at most 64 characters)",
    });
  }
  const user: User = {
    id: randomUUID(),
    name: opts.name,
    admin: opts.admin === true,
    createdAt: new Date().toISOString(),
  };
  try {
    stmt(db, "INSERT INTO users (id, name, admin, created_at) VALUES (?, ?, ?, ?)").run(
      user.id,
      user.name,
      user.admin ? 1 : 0,
      user.createdAt,
    );
  } catch (err) {
    if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") {
      throw new KilnError({
        code: "conflict",
        message: `a user called "${opts.name}" already exists`,
        hint: "choose another name, or make a token for the existing user",
      });
    }
    throw err;
  }
  return user;
}

export function findUser(db: Db, nameOrId: string): User | undefined {
  const row = stmt(db, "SELECT * FROM users WHERE name = ? OR id = ?").get(nameOrId, nameOrId) as
    | UserRow
    | undefined;
  return row ? toUser(row) : undefined;
}

/** By name or id; an unknown user is a KilnError `unknown_user` (404 in the API). */
export function getUser(db: Db, nameOrId: string): User {
  const user = findUser(db, nameOrId);
  if (!user) {
    throw new KilnError({
      code: "unknown_user",
      message: `no user called "${nameOrId}"`,
      hint: "an admin lists users with kiln users and makes one with kiln users:create NAME",
    });
  }
  return user;
}

export function listUsers(db: Db): User[] {
  return (stmt(db, "SELECT * FROM users ORDER BY created_at, name").all() as UserRow[]).map(toUser);
}

/** The platform admin: the first admin user (migration 4 makes it, so there always is one). */
export function platformAdmin(db: Db): User {
  const row = stmt(db, "SELECT * FROM users WHERE admin = 1 ORDER BY created_at, name LIMIT 1").get() as
    | UserRow
    | undefined;
  if (!row) bug("kiln's state file has no admin user");
  return toUser(row);
}
