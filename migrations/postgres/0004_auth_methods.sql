-- The same tables as migrations/sqlite/0006_auth_methods.sql, in PostgreSQL's types.
-- Auth methods (Vault's AppRole and JWT/OIDC): the mounts under auth/, their roles, AppRole's
-- secret IDs (only their SHA-256 hashes), and OIDC sign-ins waiting for their callback (sealed).
-- Tokens remember the auth mount that issued them (its accessor): a token whose mount is gone
-- never authenticates, and the reaper revokes it with its leases.

CREATE TABLE auth_mounts (
    path              TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    accessor          TEXT NOT NULL UNIQUE,
    description       TEXT NOT NULL DEFAULT '',
    config            TEXT NOT NULL DEFAULT '{}',
    secret_sealed     BYTEA,
    default_lease_ttl BIGINT,
    max_lease_ttl     BIGINT,
    created_at        BIGINT NOT NULL
);

CREATE TABLE auth_roles (
    mount   TEXT NOT NULL,
    name    TEXT NOT NULL,
    body    TEXT NOT NULL,
    role_id TEXT,
    PRIMARY KEY (mount, name)
);
CREATE UNIQUE INDEX auth_roles_role_id ON auth_roles (mount, role_id) WHERE role_id IS NOT NULL;

CREATE TABLE approle_secret_ids (
    hash              BYTEA PRIMARY KEY,
    accessor          TEXT NOT NULL UNIQUE,
    mount             TEXT NOT NULL,
    role              TEXT NOT NULL,
    uses_left         BIGINT NOT NULL,
    ttl               BIGINT NOT NULL,
    expire_at         BIGINT,
    cidr_list         TEXT NOT NULL DEFAULT '[]',
    token_bound_cidrs TEXT NOT NULL DEFAULT '[]',
    metadata          TEXT NOT NULL DEFAULT '{}',
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX approle_secret_ids_role ON approle_secret_ids (mount, role);
CREATE INDEX approle_secret_ids_expire_at ON approle_secret_ids (expire_at) WHERE expire_at IS NOT NULL;

CREATE TABLE oidc_requests (
    state_hash BYTEA PRIMARY KEY,
    mount      TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    expire_at  BIGINT NOT NULL
);
CREATE INDEX oidc_requests_expire_at ON oidc_requests (expire_at);

ALTER TABLE tokens ADD COLUMN auth_accessor TEXT;
ALTER TABLE tokens ADD COLUMN max_ttl BIGINT;
ALTER TABLE tokens ADD COLUMN bound_cidrs TEXT NOT NULL DEFAULT '[]';
CREATE INDEX tokens_auth_accessor ON tokens (auth_accessor) WHERE auth_accessor IS NOT NULL;
