//! Tokens and ACL policies: tokens are created, hashed and checked here (the store keeps only
//! SHA-256 hashes, so a copy of the database holds no usable token), and each request's token
//! is turned into the ACL its policies grant.

mod acl_cache;
pub mod policy;

use std::collections::BTreeSet;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::duration::Ttl;
use crate::seal::{ALNUM, random_string, token_hash};
use crate::store::{Store, StoreError, TokenRecord};
use policy::{Acl, DEFAULT_POLICY, DEFAULT_POLICY_HCL, Policy, ROOT_POLICY};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who is calling: what the API knows about a request once its token checks out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub accessor: String,
    pub display_name: String,
    pub policies: Vec<String>,
    pub expire_at: Option<i64>,
    pub created_at: i64,
    pub ttl: Option<i64>,
    /// Shared: parsed once per set of policy texts (`acl_cache.rs`).
    pub acl: Arc<Acl>,
    /// The store's config epoch, read with the token in the same statement (before any
    /// configuration this request reads), so an issue needs no read of its own for it.
    pub config_epoch: Option<i64>,
}

impl Caller {
    pub fn is_root(&self) -> bool {
        self.acl.is_root()
    }
}

const TOKEN_PREFIX: &str = "ilt_";
/// Vault's default maximum token TTL (32 days).
const MAX_TOKEN_TTL: i64 = 768 * 3600;

/// Makes a new token, stores its hash and returns the token itself (shown once, never stored).
pub async fn create_token(
    store: &Arc<dyn Store>,
    policies: Vec<String>,
    display_name: &str,
    ttl_secs: Option<i64>,
    now: i64,
) -> Result<(String, TokenRecord), StoreError> {
    let token = format!("{TOKEN_PREFIX}{}", random_string(40, ALNUM));
    let record = insert_token(store, &token, policies, display_name, ttl_secs, now).await?;
    Ok((token, record))
}

/// Stores the hash of a token chosen by the operator (`--dev-root-token`). Idempotent.
pub async fn insert_token(
    store: &Arc<dyn Store>,
    token: &str,
    policies: Vec<String>,
    display_name: &str,
    ttl_secs: Option<i64>,
    now: i64,
) -> Result<TokenRecord, StoreError> {
    let record = TokenRecord {
        hash: token_hash(token),
        accessor: random_string(24, ALNUM),
        policies,
        display_name: display_name.to_owned(),
        created_at: now,
        expire_at: ttl_secs.map(|t| now + t),
        ttl: ttl_secs,
    };
    store.insert_token(&record).await?;
    Ok(record)
}

/// The caller behind `token`, or `None` when it is unknown or expired.
///
/// The lookup is by hash, so timing can at most reveal a prefix of a hash, never of the token;
/// the final comparison is constant-time all the same.
pub async fn authenticate(
    store: &Arc<dyn Store>,
    token: &str,
    now: i64,
) -> Result<Option<Caller>, AuthError> {
    if token.is_empty() || token.len() > 256 {
        return Ok(None);
    }
    let hash = token_hash(token);
    let (record, epoch) = store.find_token_and_epoch(&hash).await?;
    let Some(record) = record else {
        return Ok(None);
    };
    if !bool::from(record.hash.ct_eq(&hash)) || record.expire_at.is_some_and(|e| e <= now) {
        return Ok(None);
    }
    let mut caller = caller_from(store, record).await?;
    caller.config_epoch = Some(epoch);
    Ok(Some(caller))
}

async fn caller_from(store: &Arc<dyn Store>, record: TokenRecord) -> Result<Caller, AuthError> {
    let acl = acl_for(store, &record.policies).await?;
    Ok(Caller {
        config_epoch: None,
        accessor: record.accessor,
        display_name: record.display_name,
        policies: record.policies,
        expire_at: record.expire_at,
        created_at: record.created_at,
        ttl: record.ttl,
        acl,
    })
}

/// The merged ACL of the named policies. A policy that was deleted grants nothing. The texts
/// are read from the store on every request (so a change on any replica counts at once); the
/// parse is cached by text.
async fn acl_for(store: &Arc<dyn Store>, names: &[String]) -> Result<Arc<Acl>, AuthError> {
    if names.iter().any(|n| n == ROOT_POLICY) {
        return Ok(Arc::new(Acl::root()));
    }
    let mut texts = Vec::with_capacity(names.len());
    for name in names {
        let text = if name == DEFAULT_POLICY {
            Some(DEFAULT_POLICY_HCL.to_owned())
        } else {
            store.get_policy(name).await?
        };
        if let Some(text) = text {
            texts.push((name.as_str(), text));
        }
    }
    let texts: Vec<acl_cache::PolicyText<'_>> = texts
        .iter()
        .map(|(name, text)| acl_cache::PolicyText { name, text })
        .collect();
    Ok(acl_cache::acl_of(&texts))
}

/// What `auth/token/create` asks for.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub policies: Vec<String>,
    pub ttl: Option<Ttl>,
    pub display_name: Option<String>,
    pub no_default_policy: bool,
}

/// Creates a child token. A non-root parent can only hand out policies it holds itself and a
/// lifetime within its own, as in Vault.
pub async fn create_child(
    store: &Arc<dyn Store>,
    parent: &Caller,
    request: TokenRequest,
    now: i64,
) -> Result<(String, TokenRecord), AuthError> {
    let mut policies: BTreeSet<String> = request
        .policies
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if !parent.is_root() {
        let held: BTreeSet<&str> = parent.policies.iter().map(String::as_str).collect();
        if let Some(extra) = policies
            .iter()
            .find(|p| p.as_str() != DEFAULT_POLICY && !held.contains(p.as_str()))
        {
            return Err(AuthError::Forbidden(format!(
                "permission denied: cannot give a child token policy {extra:?}, which the parent token does not have"
            )));
        }
    }
    if policies.is_empty() {
        // A token without policies inherits its parent's, as in Vault.
        policies.extend(parent.policies.iter().cloned());
    }
    if !request.no_default_policy && !policies.contains(ROOT_POLICY) {
        policies.insert(DEFAULT_POLICY.to_owned());
    }
    let mut ttl = request
        .ttl
        .map(|t| t.as_secs() as i64)
        .filter(|t| *t > 0)
        .unwrap_or(MAX_TOKEN_TTL)
        .min(MAX_TOKEN_TTL);
    if let Some(parent_expiry) = parent.expire_at {
        ttl = ttl.min((parent_expiry - now).max(1));
    }
    let ttl = if policies.contains(ROOT_POLICY) && request.ttl.is_none() {
        None
    } else {
        Some(ttl)
    };
    let display_name = match request.display_name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => format!("token-{name}"),
        _ => "token".to_owned(),
    };
    Ok(create_token(
        store,
        policies.into_iter().collect(),
        &display_name,
        ttl,
        now,
    )
    .await?)
}

/// Extends the caller's token by `increment` (or its original TTL), up to 32 days after creation.
pub async fn renew(
    store: &Arc<dyn Store>,
    caller: &Caller,
    increment: Option<Ttl>,
    now: i64,
) -> Result<Option<i64>, AuthError> {
    let Some(ttl) = caller.ttl else {
        return Ok(None); // a token without a TTL never expires
    };
    let increment = increment
        .map(|t| t.as_secs() as i64)
        .filter(|t| *t > 0)
        .unwrap_or(ttl);
    let expire_at = (now + increment).min(caller.created_at + MAX_TOKEN_TTL);
    store.set_token_expiry(&caller.accessor, expire_at).await?;
    Ok(Some(expire_at))
}

pub async fn lookup_accessor(store: &Arc<dyn Store>, accessor: &str) -> Result<Caller, AuthError> {
    let record = store
        .find_token_by_accessor(accessor.trim())
        .await?
        .ok_or_else(|| AuthError::NotFound(format!("no token has accessor {accessor:?}")))?;
    caller_from(store, record).await
}

pub async fn revoke_accessor(store: &Arc<dyn Store>, accessor: &str) -> Result<(), AuthError> {
    store.delete_token(accessor.trim()).await?;
    Ok(())
}

fn policy_name(raw: &str) -> Result<String, AuthError> {
    let name = raw.trim().to_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(name)
    } else {
        Err(AuthError::Invalid(format!(
            "policy name {raw:?} must be 1 to 128 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// Stores a policy after checking that it parses and says only what we can enforce.
pub async fn write_policy(store: &Arc<dyn Store>, name: &str, text: &str) -> Result<(), AuthError> {
    let name = policy_name(name)?;
    if name == ROOT_POLICY || name == DEFAULT_POLICY {
        return Err(AuthError::Invalid(format!(
            "the {name} policy is built in and cannot be changed"
        )));
    }
    Policy::parse(text).map_err(AuthError::Invalid)?;
    store.put_policy(&name, text).await?;
    Ok(())
}

pub async fn read_policy(
    store: &Arc<dyn Store>,
    name: &str,
) -> Result<(String, String), AuthError> {
    let name = policy_name(name)?;
    if name == DEFAULT_POLICY {
        return Ok((name, DEFAULT_POLICY_HCL.to_owned()));
    }
    let text = store
        .get_policy(&name)
        .await?
        .ok_or_else(|| AuthError::NotFound(format!("no policy named {name:?}")))?;
    Ok((name, text))
}

/// Every policy name, the built-in `default` and `root` included.
pub async fn list_policies(store: &Arc<dyn Store>) -> Result<Vec<String>, AuthError> {
    let mut names: BTreeSet<String> = store.list_policies().await?.into_iter().collect();
    names.insert(DEFAULT_POLICY.to_owned());
    names.insert(ROOT_POLICY.to_owned());
    Ok(names.into_iter().collect())
}

pub async fn delete_policy(store: &Arc<dyn Store>, name: &str) -> Result<(), AuthError> {
    let name = policy_name(name)?;
    if name == ROOT_POLICY || name == DEFAULT_POLICY {
        return Err(AuthError::Invalid(format!(
            "the {name} policy is built in and cannot be deleted"
        )));
    }
    store.delete_policy(&name).await?;
    Ok(())
}
