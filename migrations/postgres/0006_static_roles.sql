-- Static roles (`{mount}/static-roles/{name}`): an existing IAM user whose access key iamlease
-- rotates every `rotation_period`. One row per role holds the schedule and the rotation's
-- progress, so any replica can resume it after a crash: the current key (its secret sealed
-- under the master key, never in clear), the previous key while its `overlap` runs
-- (`previous_until`), and `rotating_since`, written before CreateAccessKey, which marks a
-- key found on the user later and not recorded here as ours to delete. A claim is a token
-- and a deadline (`due_at`), as for leases: no replica ids, a dead claimant's work is resumed
-- when the deadline passes. Not part of the config epoch: the rows change with every
-- rotation, and every read of them goes to the store.

CREATE TABLE static_roles (
    mount                    TEXT COLLATE "C" NOT NULL REFERENCES mounts(path) ON DELETE CASCADE,
    name                     TEXT COLLATE "C" NOT NULL,
    username                 TEXT NOT NULL,
    rotation_period          BIGINT NOT NULL,
    overlap                  BIGINT NOT NULL DEFAULT 0,
    assume_role_arn          TEXT,
    assume_role_session_name TEXT,
    external_id              TEXT,
    access_key_id            TEXT,
    secret_sealed            BYTEA,
    previous_key_id          TEXT,
    previous_until           BIGINT,
    rotating_since           BIGINT,
    last_rotation            BIGINT,
    next_rotation            BIGINT NOT NULL,
    due_at                   BIGINT NOT NULL,
    claim                    TEXT,
    attempts                 BIGINT NOT NULL DEFAULT 0,
    last_error               TEXT,
    last_error_time          BIGINT,
    created_at               BIGINT NOT NULL,
    PRIMARY KEY (mount, name)
);

-- The rotator's search: roles whose due_at has passed.
CREATE INDEX static_roles_due_at ON static_roles (due_at);
