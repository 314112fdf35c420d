-- Console sessions (`/ui/`), in the store so any server on the database serves any session.
-- A row is found by the SHA-256 of the session id (the cookie's value, never stored); the token
-- is sealed under the master key, bound to that hash; the CSRF token is derived from the id, so
-- it has no column. The token's accessor finds every session of a token ("sign out
-- everywhere"), and the foreign key deletes them in the statement that deletes the token, so
-- a revoked token's sessions end in the revocation's own transaction, whatever revoked it.

CREATE TABLE console_sessions (
    id_hash        BLOB PRIMARY KEY,
    token_sealed   BLOB NOT NULL,
    token_accessor TEXT NOT NULL REFERENCES tokens(accessor) ON DELETE CASCADE,
    display_name   TEXT NOT NULL,
    flash_text     TEXT,
    flash_ok       INTEGER,
    created_at     INTEGER NOT NULL,
    expire_at      INTEGER NOT NULL
);

-- Sign-out everywhere and the cascade from `tokens`; the tidy's search for expired rows.
CREATE INDEX console_sessions_token_accessor ON console_sessions (token_accessor);
CREATE INDEX console_sessions_expire_at ON console_sessions (expire_at);
