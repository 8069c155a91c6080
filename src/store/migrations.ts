/**
 * The schema, as numbered migrations: MIGRATIONS[n] takes the file from user_version n to n+1.
 * Never edit a migration that has shipped; add the next one.
 */
export const MIGRATIONS: string[] = [
  // 1: apps, config, builds, releases, formation, dynos, tokens.
  `
  CREATE TABLE apps (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
  );

  CREATE TABLE config_vars (
    app_id  TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (app_id, key)
  );

  CREATE TABLE builds (
    id              TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'building', 'succeeded', 'failed', 'cancelled')),
    failure_reason  TEXT,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    source_sha256   TEXT NOT NULL,
    source_path     TEXT NOT NULL,
    slug_sha256     TEXT,
    slug_path       TEXT,
    manifest_path   TEXT,
    log_path        TEXT NOT NULL
  );
  CREATE INDEX builds_by_app ON builds (app_id, created_at);
  CREATE INDEX builds_by_status ON builds (status);

  CREATE TABLE releases (
    id                  TEXT PRIMARY KEY,
    app_id              TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    version             INTEGER NOT NULL,
    build_id            TEXT REFERENCES builds(id) ON DELETE SET NULL,
    slug_sha256         TEXT,
    slug_path           TEXT,
    process_types_json  TEXT NOT NULL,
    config_json         TEXT NOT NULL,
    description         TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    UNIQUE (app_id, version)
  );

  CREATE TABLE formation (
    app_id    TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    type      TEXT NOT NULL,
    quantity  INTEGER NOT NULL CHECK (quantity >= 0),
    size      TEXT NOT NULL,
    PRIMARY KEY (app_id, type)
  );

  CREATE TABLE dynos (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    release_id  TEXT NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    type        TEXT NOT NULL,
    state       TEXT NOT NULL,
    restarts    INTEGER NOT NULL DEFAULT 0,
    last_exit   TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
  );

  CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    hash          TEXT NOT NULL UNIQUE,
    admin         INTEGER NOT NULL CHECK (admin IN (0, 1)),
    created_at    TEXT NOT NULL,
    last_used_at  TEXT
  );
  `,
  // 2: a build may be for checking only (POST …/builds?release=false): it makes no release.
  `
  ALTER TABLE builds ADD COLUMN release INTEGER NOT NULL DEFAULT 1 CHECK (release IN (0, 1));
  `,
  // 3: reproducibility checks of builds (kiln check; POST …/builds/{id}/checks).
  `
  CREATE TABLE checks (
    id           TEXT PRIMARY KEY,
    build_id     TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    status       TEXT NOT NULL CHECK (status IN ('running', 'reproducible', 'not_reproducible', 'build_failed', 'error')),
    error        TEXT,
    builds       INTEGER NOT NULL,
    variations   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    finished_at  TEXT,
    report_path  TEXT
  );
  CREATE INDEX checks_by_build ON checks (build_id, created_at);
  `,
  // 4: tenancy. Users own tokens; an app has an owner (and collaborators); a build records who
  // started it (per-user build quotas). Existing data is kept: a user "admin" (the platform admin)
  // gets every admin token and owns every existing app; each non-admin token becomes a user of its
  // own (named after it, plus its id's first 8 digits, since token names were never unique), which
  // owns nothing: before this, such a token could change every app.
  `
  CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    admin       INTEGER NOT NULL CHECK (admin IN (0, 1)),
    created_at  TEXT NOT NULL
  );
  INSERT INTO users (id, name, admin, created_at) VALUES (
    lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2)
      || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2)
      || '-' || lower(hex(randomblob(6))),
    'admin', 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
  INSERT INTO users (id, name, admin, created_at)
    SELECT id, name || '-' || substr(id, 1, 8), 0, created_at FROM tokens WHERE admin = 0;

  CREATE TABLE tokens_v4 (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    hash          TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT
  );
  INSERT INTO tokens_v4 (id, user_id, name, hash, created_at, last_used_at)
    SELECT id, CASE admin WHEN 1 THEN (SELECT id FROM users WHERE name = 'admin') ELSE id END,
           name, hash, created_at, last_used_at
    FROM tokens;
  DROP TABLE tokens;
  ALTER TABLE tokens_v4 RENAME TO tokens;
  CREATE INDEX tokens_by_user ON tokens (user_id);

  -- SQLite cannot add a NOT NULL reference to a table with rows: the triggers hold that line.
  ALTER TABLE apps ADD COLUMN owner_id TEXT REFERENCES users(id);
  ALTER TABLE apps ADD COLUMN platform INTEGER NOT NULL DEFAULT 0 CHECK (platform IN (0, 1));
  UPDATE apps SET owner_id = (SELECT id FROM users WHERE name = 'admin');
  CREATE INDEX apps_by_owner ON apps (owner_id);
  CREATE TRIGGER apps_insert_needs_owner BEFORE INSERT ON apps WHEN NEW.owner_id IS NULL
    BEGIN SELECT RAISE(ABORT, 'an app needs an owner'); END;
  CREATE TRIGGER apps_update_needs_owner BEFORE UPDATE OF owner_id ON apps WHEN NEW.owner_id IS NULL
    BEGIN SELECT RAISE(ABORT, 'an app needs an owner'); END;

  CREATE TABLE collaborators (
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (app_id, user_id)
  );
  CREATE INDEX collaborators_by_user ON collaborators (user_id);

  ALTER TABLE builds ADD COLUMN user_id TEXT REFERENCES users(id) ON DELETE SET NULL;
  CREATE INDEX builds_by_user ON builds (user_id, status);
  `,
  // 5: git push. The commit a build was made from (null: an upload) and the release made of it;
  // the branch whose pushes deploy (null: main or master, as on Heroku).
  `
  ALTER TABLE builds ADD COLUMN commit_id TEXT;
  ALTER TABLE releases ADD COLUMN commit_id TEXT;
  ALTER TABLE apps ADD COLUMN deploy_branch TEXT;
  `,
  // 6: dashboard sign-ins. Only the SHA-256 of a session's secret is kept (as with tokens); a
  // session acts as the token it was opened with, so revoking the token ends its sessions.
  `
  CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    token_id    TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
  );
  CREATE INDEX sessions_by_token ON sessions (token_id);
  `,
  // 7: remote builders. Where a succeeded build's derivations ran: a JSON array of "local" and
  // builders' URIs ([] when everything was already built or substituted).
  `
  ALTER TABLE builds ADD COLUMN built_on TEXT;
  `,
  // 8: git push, part 2: the buildpacks a build was asked for (JSON list; null: detection or the
  // app's .buildpacks), recorded so a build resumed after a restart uses them too; and the hint
  // of a failed build's error, shown to the pusher beside its reason.
  `
  ALTER TABLE builds ADD COLUMN buildpacks TEXT;
  ALTER TABLE builds ADD COLUMN failure_hint TEXT;
  `,
];
