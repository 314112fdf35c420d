-- Static roles (`{mount}/static-roles/{name}`): an existing IAM user whose access key iamlease
-- rotates every `rotation_period`. One row per role holds the schedule and the rotation's
-- progress, so any server can resume it after a crash: the current key (its secret sealed
-- under the master key, never in clear), the previous key while its `overlap` runs
-- (`previous_until`), and `rotating_since`, written before CreateAccessKey, which marks a
-- key found on the user later and not recorded here as ours to delete. A claim is a token
-- and a deadline (`due_at`), as for leases: no replica ids, a dead claimant's work is resumed
-- when the deadline passes. Not part of the config epoch: the rows change with every
-- rotation, and every read of them goes to the store.

CREATE TABLE static_roles (
    mount                    TEXT NOT NULL REFERENCES mounts(path) ON DELETE CASCADE,
    name                     TEXT NOT NULL,
    username                 TEXT NOT NULL,
    rotation_period          INTEGER NOT NULL,
    overlap                  INTEGER NOT NULL DEFAULT 0,
    assume_role_arn          TEXT,
    assume_role_session_name TEXT,
    external_id              TEXT,
    access_key_id            TEXT,
    secret_sealed            BLOB,
    previous_key_id          TEXT,
    previous_until           INTEGER,
    rotating_since           INTEGER,
    last_rotation            INTEGER,
    next_rotation            INTEGER NOT NULL,
    due_at                   INTEGER NOT NULL,
    claim                    TEXT,
    attempts                 INTEGER NOT NULL DEFAULT 0,
    last_error               TEXT,
    last_error_time          INTEGER,
    created_at               INTEGER NOT NULL,
    PRIMARY KEY (mount, name)
);

-- The rotator's search: roles whose due_at has passed.
CREATE INDEX static_roles_due_at ON static_roles (due_at);
