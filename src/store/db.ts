/**
 * kiln's state: one SQLite file (better-sqlite3, the one home of that dependency), WAL mode,
 * foreign keys on, versioned migrations applied at open.
 *
 * Durability: `synchronous = FULL` makes every commit reach the disk before it returns, so whatever
 * kiln has acknowledged to a client (a response sent after a commit) survives kill -9 and power
 * loss; a transaction in flight is rolled back by SQLite's WAL on the next open, never half-applied.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { KilnError } from "../errors.js";
import { MIGRATIONS } from "./migrations.js";

export type Db = Database.Database;

export const STORE_FILE = "kiln.sqlite";

export function openStore(file: string): Db {
  mkdirSync(dirname(file), { recursive: true });
  let db: Db;
  try {
    db = new Database(file);
  } catch (err) {
    throw new KilnError({
      code: "store_unavailable",
      message: `cannot open kiln's state file ${file}: ${(err as Error).message}`,
      hint: "check the data directory's permissions and free space (--data-dir / KILN_DATA_DIR)",
    });
  }
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
  // Another kiln process (the CLI next to a running server) may hold the write lock briefly.
  db.pragma("busy_timeout = 5000");
  migrate(db);
  return db;
}

/** Applies every migration newer than the file's user_version, each in its own transaction. */
export function migrate(db: Db): number {
  const current = db.pragma("user_version", { simple: true }) as number;
  const latest = MIGRATIONS.length;
  if (current > latest) {
    throw new KilnError({
      code: "store_too_new",
      message: `kiln's state file is at schema version ${current}, newer than this kiln knows (${latest})`,
      hint: "run the kiln that wrote it (or a newer one); an older kiln must not change it",
    });
  }
  for (let v = current; v < latest; v++) {
    const step = MIGRATIONS[v] as string;
    db.transaction(() => {
      db.exec(step);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return latest;
}

/** Runs `fn` in one transaction (BEGIN IMMEDIATE: the write lock is taken up front). */
export function tx<T>(db: Db, fn: () => T): T {
  return db.transaction(fn).immediate();
}

const statements = new WeakMap<Db, Map<string, Database.Statement>>();

/** A prepared statement, prepared once per database (parsing SQL on every request costs more than running it). */
export function stmt(db: Db, sql: string): Database.Statement {
  let cache = statements.get(db);
  if (!cache) {
    cache = new Map();
    statements.set(db, cache);
  }
  let s = cache.get(sql);
  if (!s) {
    s = db.prepare(sql);
    cache.set(sql, s);
  }
  return s;
}
