//! A console session as the store keeps it: found by the hash of its id, its token sealed,
//! with the one-shot message the next page shows.

/// A message for the next console page (a form's outcome), shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleFlash {
    pub ok: bool,
    pub text: String,
}

/// One `console_sessions` row. Neither the session id nor the token is in it: `id_hash` is the
/// id's SHA-256, `token_sealed` the token sealed under `SealedValue::ConsoleSession`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionRecord {
    pub id_hash: Vec<u8>,
    pub token_sealed: Vec<u8>,
    pub token_accessor: String,
    pub display_name: String,
    pub flash: Option<ConsoleFlash>,
    pub created_at: i64,
    pub expire_at: i64,
}
