-- The same schema as migrations/sqlite, in PostgreSQL's types. Times are unix seconds. Secrets
-- are never stored in clear: root secret keys are sealed (AES-256-GCM), tokens are SHA-256
-- hashes, issued secret keys are not stored at all.
--
-- Ids and paths use the "C" collation: prefix listings are range scans on the primary key
-- (`id >= prefix AND id < prefix || U+10FFFF`), which need byte order, not the locale's.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE mounts (
    path              TEXT COLLATE "C" PRIMARY KEY,
    kind              TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    default_lease_ttl BIGINT,
    max_lease_ttl     BIGINT,
    lease_ttl         BIGINT,
    lease_max         BIGINT,
    created_at        BIGINT NOT NULL
);

CREATE TABLE root_configs (
    mount         TEXT COLLATE "C" PRIMARY KEY REFERENCES mounts(path) ON DELETE CASCADE,
    config        TEXT NOT NULL,
    secret_sealed BYTEA,
    version       BIGINT NOT NULL
);

CREATE TABLE roles (
    mount TEXT COLLATE "C" NOT NULL REFERENCES mounts(path) ON DELETE CASCADE,
    name  TEXT COLLATE "C" NOT NULL,
    body  TEXT NOT NULL,
    PRIMARY KEY (mount, name)
);

CREATE TABLE tokens (
    hash         BYTEA PRIMARY KEY,
    accessor     TEXT NOT NULL UNIQUE,
    policies     TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expire_at    BIGINT,
    ttl          BIGINT
);

CREATE TABLE policies (
    name TEXT COLLATE "C" PRIMARY KEY,
    body TEXT NOT NULL
);

CREATE TABLE leases (
    id              TEXT COLLATE "C" PRIMARY KEY,
    mount           TEXT NOT NULL,
    role            TEXT NOT NULL,
    credential_type TEXT NOT NULL,
    state           TEXT NOT NULL,
    username        TEXT,
    access_key_id   TEXT,
    issue_time      BIGINT NOT NULL,
    expire_time     BIGINT NOT NULL,
    max_expire_time BIGINT NOT NULL,
    last_renewal    BIGINT,
    ttl             BIGINT NOT NULL,
    renewable       BOOLEAN NOT NULL,
    due_at          BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    token_accessor  TEXT
);

-- The reaper's only query: rows whose due_at has passed, oldest first.
CREATE INDEX leases_due_at ON leases (due_at);
