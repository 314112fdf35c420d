-- Failover by liveness: every running server (replica) beats its row in `replicas` (Unix
-- milliseconds) fifteen times per `failover_timeout`, and writes its id as `owner` on the leases it is issuing
-- (`pending`) or revoking (`revoking`) and on the static roles it is rotating. When a
-- replica's row has not been beaten for nearly `failover_timeout`, any other replica makes that
-- owner's in-flight rows due at once; the ordinary claims (conditional updates) then decide
-- who finishes them. The deadlines (`pending_grace`, `claim_timeout`) stay as the backstop
-- for a replica that is alive but stuck. Rows written before this migration have no owner and
-- are left to those deadlines.

CREATE TABLE replicas (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL
);

ALTER TABLE leases ADD COLUMN owner TEXT;
ALTER TABLE static_roles ADD COLUMN owner TEXT;

-- The takeover's search: only in-flight rows, a handful however many leases are active
-- (SQLite has `leases_in_flight_due_at` for it).
CREATE INDEX leases_in_flight_owner ON leases (owner) WHERE state IN ('pending', 'revoking');
