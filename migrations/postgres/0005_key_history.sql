-- Who held each access key (`GET {mount}/access-keys/{id}`, `iamlease whois`): one row per
-- lease that handed a key out, written in the same transaction that hands it out, and kept
-- after the lease for `key_history_retention`. No secret is kept: an access key id is what
-- CloudTrail shows. While the lease lives, its state and expiry are read from `leases`; when
-- the lease row goes (however it goes, on whichever replica), the trigger below stamps the
-- revocation time and the final expiry in the same transaction.

CREATE TABLE key_history (
    lease_id        TEXT PRIMARY KEY,
    access_key_id   TEXT NOT NULL,
    mount           TEXT NOT NULL,
    role            TEXT NOT NULL,
    credential_type TEXT NOT NULL,
    username        TEXT,
    requester       TEXT NOT NULL,
    token_accessor  TEXT,
    meta            TEXT NOT NULL DEFAULT '{}',
    issue_time      BIGINT NOT NULL,
    expire_time     BIGINT NOT NULL,
    revoke_time     BIGINT
);
CREATE INDEX key_history_access_key_id ON key_history (access_key_id);
-- The retention sweep's search: only rows already revoked.
CREATE INDEX key_history_revoke_time ON key_history (revoke_time) WHERE revoke_time IS NOT NULL;

CREATE FUNCTION stamp_key_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE key_history SET revoke_time = CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT),
                           expire_time = OLD.expire_time
    WHERE lease_id = OLD.id AND revoke_time IS NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER leases_delete_stamps_key_history AFTER DELETE ON leases
    FOR EACH ROW EXECUTE FUNCTION stamp_key_history();
