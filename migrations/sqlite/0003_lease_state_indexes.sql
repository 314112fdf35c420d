-- Start-up recovery looks only at leases a crashed process left mid-issue or mid-revocation.
-- A partial index holds just those (normally a handful), so recovery stays instant with a
-- million active leases instead of scanning them all.
CREATE INDEX leases_in_flight_due_at ON leases (due_at) WHERE state IN ('pending', 'revoking');
