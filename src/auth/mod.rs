//! Tokens and ACL policies: tokens are created, hashed and checked here (the store keeps only
//! SHA-256 hashes, so a copy of the database holds no usable token), and each request's token
//! is turned into the ACL its policies grant. The console's sessions, which hold a token, are
//! here too (`console_session`).

mod acl_cache;
pub mod approle;
pub mod console_session;
pub mod jwt;
mod login;
pub mod mounts;
pub mod policy;
mod token;

pub use login::{Cidr, LoginIdentity, TokenSettings, allowed_from, login_token, parse_cidrs};

pub use token::{
    TokenRequest, TokenSpec, Use, create_child, create_first_root_token, create_token,
    insert_token, lookup_accessor, renew, revoke, spend_use,
};

use std::collections::BTreeSet;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::seal::token_hash;
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
    /// Something iamlease depends on (an identity provider) failed; not the caller's fault.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who is calling: what the API knows about a request once its token checks out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub accessor: String,
    pub display_name: String,
    pub policies: Vec<String>,
    /// Everything stored about the token (its hash included, never the token itself).
    pub token: TokenRecord,
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
    // A token whose last use is spent (`num_uses` -1) is dead even before its revocation lands.
    if !bool::from(record.hash.ct_eq(&hash))
        || record.expire_at.is_some_and(|e| e <= now)
        || record.num_uses < 0
    {
        return Ok(None);
    }
    let mut caller = caller_from(store, record).await?;
    caller.config_epoch = Some(epoch);
    Ok(Some(caller))
}

/// Whether a token may be used from `peer` (its `token_bound_cidrs`, when it has any).
pub fn usable_from(token: &TokenRecord, peer: Option<std::net::IpAddr>) -> bool {
    let cidrs: Vec<Cidr> = token
        .bound_cidrs
        .iter()
        .filter_map(|c| Cidr::parse(c).ok())
        .collect();
    // A binding that no longer parses binds to nothing rather than to everything.
    if cidrs.len() != token.bound_cidrs.len() {
        return false;
    }
    allowed_from(&cidrs, peer)
}

pub(crate) async fn caller_from(
    store: &Arc<dyn Store>,
    record: TokenRecord,
) -> Result<Caller, AuthError> {
    let acl = acl_for(store, &record.policies).await?;
    Ok(Caller {
        config_epoch: None,
        accessor: record.accessor.clone(),
        display_name: record.display_name.clone(),
        policies: record.policies.clone(),
        token: record,
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
