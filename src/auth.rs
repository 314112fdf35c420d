//! Tokens: created, hashed and checked here. The store keeps only SHA-256 hashes, so a copy of
//! the database holds no usable token.

use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::seal::{ALNUM, random_string, token_hash};
use crate::store::{Store, StoreError, TokenRecord};

/// Who is calling: what the API knows about a request once its token checks out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub accessor: String,
    pub display_name: String,
    pub policies: Vec<String>,
    pub expire_at: Option<i64>,
    pub created_at: i64,
}

const TOKEN_PREFIX: &str = "ilt_";

/// Makes a new token, stores its hash and returns the token itself (shown once, never stored).
pub async fn create_token(
    store: &Arc<dyn Store>,
    policies: Vec<String>,
    display_name: &str,
    ttl_secs: Option<i64>,
    now: i64,
) -> Result<String, StoreError> {
    let token = format!("{TOKEN_PREFIX}{}", random_string(40, ALNUM));
    insert_token(store, &token, policies, display_name, ttl_secs, now).await?;
    Ok(token)
}

/// Stores the hash of a token chosen by the operator (`--dev-root-token`). Idempotent.
pub async fn insert_token(
    store: &Arc<dyn Store>,
    token: &str,
    policies: Vec<String>,
    display_name: &str,
    ttl_secs: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    store
        .insert_token(&TokenRecord {
            hash: token_hash(token),
            accessor: random_string(24, ALNUM),
            policies,
            display_name: display_name.to_owned(),
            created_at: now,
            expire_at: ttl_secs.map(|t| now + t),
        })
        .await
}

/// The caller behind `token`, or `None` when it is unknown or expired.
///
/// The lookup is by hash, so timing can at most reveal a prefix of a hash, never of the token;
/// the final comparison is constant-time all the same.
pub async fn authenticate(
    store: &Arc<dyn Store>,
    token: &str,
    now: i64,
) -> Result<Option<Caller>, StoreError> {
    if token.is_empty() || token.len() > 256 {
        return Ok(None);
    }
    let hash = token_hash(token);
    let Some(record) = store.find_token(&hash).await? else {
        return Ok(None);
    };
    if !bool::from(record.hash.ct_eq(&hash)) {
        return Ok(None);
    }
    if record.expire_at.is_some_and(|e| e <= now) {
        return Ok(None);
    }
    Ok(Some(Caller {
        accessor: record.accessor,
        display_name: record.display_name,
        policies: record.policies,
        expire_at: record.expire_at,
        created_at: record.created_at,
    }))
}
