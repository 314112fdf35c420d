-- ACL policies (their source text, HCL or JSON), which token created each lease, and the
-- TTL a token was created with (renew-self extends by it).

CREATE TABLE policies (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);

ALTER TABLE leases ADD COLUMN token_accessor TEXT;
ALTER TABLE tokens ADD COLUMN ttl INTEGER;
