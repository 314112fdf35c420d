-- Times are unix seconds. Secrets are never stored in clear: root secret keys are sealed
-- (AES-256-GCM), tokens are SHA-256 hashes, issued secret keys are not stored at all.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE mounts (
    path              TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    default_lease_ttl INTEGER,
    max_lease_ttl     INTEGER,
    lease_ttl         INTEGER,
    lease_max         INTEGER,
    created_at        INTEGER NOT NULL
);

CREATE TABLE root_configs (
    mount         TEXT PRIMARY KEY REFERENCES mounts(path) ON DELETE CASCADE,
    config        TEXT NOT NULL,
    secret_sealed BLOB,
    version       INTEGER NOT NULL
);

CREATE TABLE roles (
    mount TEXT NOT NULL REFERENCES mounts(path) ON DELETE CASCADE,
    name  TEXT NOT NULL,
    body  TEXT NOT NULL,
    PRIMARY KEY (mount, name)
);

CREATE TABLE tokens (
    hash         BLOB PRIMARY KEY,
    accessor     TEXT NOT NULL UNIQUE,
    policies     TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expire_at    INTEGER
);

CREATE TABLE leases (
    id              TEXT PRIMARY KEY,
    mount           TEXT NOT NULL,
    role            TEXT NOT NULL,
    credential_type TEXT NOT NULL,
    state           TEXT NOT NULL,
    username        TEXT,
    access_key_id   TEXT,
    issue_time      INTEGER NOT NULL,
    expire_time     INTEGER NOT NULL,
    max_expire_time INTEGER NOT NULL,
    last_renewal    INTEGER,
    ttl             INTEGER NOT NULL,
    renewable       INTEGER NOT NULL,
    due_at          INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT
);

-- The reaper's only query: rows whose due_at has passed, oldest first.
CREATE INDEX leases_due_at ON leases (due_at);
