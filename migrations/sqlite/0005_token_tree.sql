-- The token tree and Vault's token settings: each token's parent (NULL for root tokens and
-- orphans), uses left (0: unlimited), period, explicit max TTL, metadata (a JSON object), and
-- whether it may be renewed. Indexes for the cascade (children of a token, leases of a token)
-- and for the reaper's search for expired and used-up tokens.

ALTER TABLE tokens ADD COLUMN parent_accessor TEXT;
ALTER TABLE tokens ADD COLUMN orphan INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN num_uses INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN period INTEGER;
ALTER TABLE tokens ADD COLUMN explicit_max_ttl INTEGER;
ALTER TABLE tokens ADD COLUMN meta TEXT NOT NULL DEFAULT '{}';
ALTER TABLE tokens ADD COLUMN renewable INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tokens ADD COLUMN path TEXT NOT NULL DEFAULT 'auth/token/create';

CREATE INDEX tokens_parent_accessor ON tokens (parent_accessor);
CREATE INDEX tokens_expire_at ON tokens (expire_at) WHERE expire_at IS NOT NULL;
CREATE INDEX leases_token_accessor ON leases (token_accessor);
CREATE INDEX tokens_used_up ON tokens (accessor) WHERE num_uses < 0;
