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
];
