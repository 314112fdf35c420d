//! The token tree, as Vault has it: every token but root tokens and orphans has a parent, and
//! revoking a token revokes its descendants and every lease any of them holds (the store does
//! the cascade in one transaction; the reaper revokes the leases in AWS). Creation with Vault's
//! settings (`num_uses`, `period`, `explicit_max_ttl`, `meta`, `renewable`, orphans), renewal
//! and use counting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::policy::{DEFAULT_POLICY, ROOT_POLICY};
use super::{AuthError, Caller, caller_from};
use crate::duration::Ttl;
use crate::seal::{ALNUM, random_string, token_hash};
use crate::store::{Store, StoreError, TokenRecord, TokenRevocation};

const TOKEN_PREFIX: &str = "ilt_";
/// Vault's default maximum token TTL (32 days).
const MAX_TOKEN_TTL: i64 = 768 * 3600;

/// What a new token is, whoever makes it.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub policies: Vec<String>,
    pub display_name: String,
    /// Seconds; `None` never expires (root tokens only).
    pub ttl: Option<i64>,
    pub parent_accessor: Option<String>,
    pub orphan: bool,
    pub num_uses: i64,
    pub period: Option<i64>,
    pub explicit_max_ttl: Option<i64>,
    pub meta: BTreeMap<String, String>,
    pub renewable: bool,
    pub path: String,
    /// The auth mount a login went through (its accessor).
    pub auth_accessor: Option<String>,
    /// The cap on renewals from creation (`token_max_ttl`).
    pub max_ttl: Option<i64>,
    pub bound_cidrs: Vec<String>,
}

impl TokenSpec {
    /// A root token: every permission, no parent, no expiry.
    pub fn root() -> Self {
        TokenSpec {
            policies: vec![ROOT_POLICY.to_owned()],
            display_name: "root".into(),
            ttl: None,
            parent_accessor: None,
            orphan: true,
            num_uses: 0,
            period: None,
            explicit_max_ttl: None,
            meta: BTreeMap::new(),
            renewable: false,
            path: "auth/token/root".into(),
            auth_accessor: None,
            max_ttl: None,
            bound_cidrs: Vec::new(),
        }
    }
}

/// Makes a new token, stores its hash and returns the token itself (shown once, never stored).
pub async fn create_token(
    store: &Arc<dyn Store>,
    spec: TokenSpec,
    now: i64,
) -> Result<(String, TokenRecord), StoreError> {
    let token = format!("{TOKEN_PREFIX}{}", random_string(40, ALNUM));
    let record = insert_token(store, &token, spec, now).await?;
    Ok((token, record))
}

/// A root token for a store that has no token yet (a first start, or `sys/init`): `None` when
/// there is one already, also when another server made it at the same moment.
pub async fn create_first_root_token(
    store: &Arc<dyn Store>,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let token = format!("{TOKEN_PREFIX}{}", random_string(40, ALNUM));
    let record = token_record(&token, TokenSpec::root(), now);
    Ok(store.insert_token_if_none(&record).await?.then_some(token))
}

/// Stores the hash of a token chosen by the operator (`--dev-root-token`). Idempotent.
pub async fn insert_token(
    store: &Arc<dyn Store>,
    token: &str,
    spec: TokenSpec,
    now: i64,
) -> Result<TokenRecord, StoreError> {
    let record = token_record(token, spec, now);
    store.insert_token(&record).await?;
    Ok(record)
}

fn token_record(token: &str, spec: TokenSpec, now: i64) -> TokenRecord {
    TokenRecord {
        hash: token_hash(token),
        accessor: random_string(24, ALNUM),
        policies: spec.policies,
        display_name: spec.display_name,
        created_at: now,
        expire_at: spec.ttl.map(|t| now + t),
        ttl: spec.ttl,
        parent_accessor: spec.parent_accessor,
        orphan: spec.orphan,
        num_uses: spec.num_uses,
        period: spec.period,
        explicit_max_ttl: spec.explicit_max_ttl,
        meta: spec.meta,
        renewable: spec.renewable,
        path: spec.path,
        auth_accessor: spec.auth_accessor,
        max_ttl: spec.max_ttl,
        bound_cidrs: spec.bound_cidrs,
    }
}

/// What `auth/token/create` and `create-orphan` ask for (Vault's fields).
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub policies: Vec<String>,
    pub ttl: Option<Ttl>,
    pub display_name: Option<String>,
    pub no_default_policy: bool,
    /// `no_parent` (root or sudo only) or the `create-orphan` path.
    pub orphan: bool,
    pub num_uses: i64,
    pub period: Option<Ttl>,
    pub explicit_max_ttl: Option<Ttl>,
    pub meta: BTreeMap<String, String>,
    pub renewable: bool,
    /// The path that creates it, as lookups report it.
    pub path: &'static str,
    /// The creator has `sudo` on that path: it may give policies it does not hold (not `root`).
    pub any_policies: bool,
}

impl Default for TokenRequest {
    fn default() -> Self {
        TokenRequest {
            policies: Vec::new(),
            ttl: None,
            display_name: None,
            no_default_policy: false,
            orphan: false,
            num_uses: 0,
            period: None,
            explicit_max_ttl: None,
            meta: BTreeMap::new(),
            renewable: true,
            path: "auth/token/create",
            any_policies: false,
        }
    }
}

/// Creates a child token (or an orphan). A non-root parent can only hand out policies it holds
/// itself unless it has `sudo` on the create path, and only a root token can give `root`, as in
/// Vault; a use-limited token cannot create tokens; the TTL is capped by the
/// explicit max TTL, the system maximum (32 days) and the parent's own expiry.
pub async fn create_child(
    store: &Arc<dyn Store>,
    parent: &Caller,
    request: TokenRequest,
    now: i64,
) -> Result<(String, TokenRecord), AuthError> {
    if parent.token.num_uses > 0 {
        return Err(AuthError::Invalid(
            "a token with num_uses cannot create tokens; use a token without a use limit".into(),
        ));
    }
    if request.num_uses < 0 {
        return Err(AuthError::Invalid(format!(
            "num_uses is {}; use 0 for unlimited or a positive count",
            request.num_uses
        )));
    }
    let mut policies: BTreeSet<String> = request
        .policies
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if !parent.is_root() && policies.contains(ROOT_POLICY) {
        return Err(AuthError::Forbidden(
            "permission denied: only a root token can create a token with the root policy".into(),
        ));
    }
    if !parent.is_root() && !request.any_policies {
        let held: BTreeSet<&str> = parent.policies.iter().map(String::as_str).collect();
        if let Some(extra) = policies
            .iter()
            .find(|p| p.as_str() != DEFAULT_POLICY && !held.contains(p.as_str()))
        {
            return Err(AuthError::Forbidden(format!(
                "permission denied: cannot give a child token policy {extra:?}, which the parent token does not have (sudo on {} allows it)",
                request.path
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
    let secs = |t: Option<Ttl>| t.map(|t| t.as_secs() as i64).filter(|t| *t > 0);
    let period = secs(request.period);
    let explicit_max = secs(request.explicit_max_ttl);
    let mut ttl = period
        .or(secs(request.ttl))
        .unwrap_or(MAX_TOKEN_TTL)
        .min(MAX_TOKEN_TTL);
    if let Some(max) = explicit_max {
        ttl = ttl.min(max);
    }
    if let Some(parent_expiry) = parent.token.expire_at
        && !request.orphan
    {
        ttl = ttl.min((parent_expiry - now).max(1));
    }
    let never_expires = policies.contains(ROOT_POLICY)
        && request.ttl.is_none()
        && period.is_none()
        && explicit_max.is_none();
    let display_name = match request.display_name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => format!("token-{name}"),
        _ => "token".to_owned(),
    };
    let spec = TokenSpec {
        policies: policies.into_iter().collect(),
        display_name,
        ttl: (!never_expires).then_some(ttl),
        parent_accessor: (!request.orphan).then(|| parent.accessor.clone()),
        orphan: request.orphan,
        num_uses: request.num_uses,
        period,
        explicit_max_ttl: explicit_max,
        meta: request.meta,
        renewable: request.renewable,
        path: request.path.to_owned(),
        auth_accessor: None,
        max_ttl: None,
        bound_cidrs: Vec::new(),
    };
    Ok(create_token(store, spec, now).await?)
}

/// Extends a token, as Vault does: a periodic token by its period, any other to `increment`
/// (or its original TTL) from now, never past its explicit max TTL or 32 days after creation.
/// Answers the new expiry; `None` for a token that never expires.
pub async fn renew(
    store: &Arc<dyn Store>,
    token: &TokenRecord,
    increment: Option<Ttl>,
    now: i64,
) -> Result<Option<i64>, AuthError> {
    let Some(ttl) = token.ttl else {
        return Ok(None); // a token without a TTL never expires
    };
    if !token.renewable {
        return Err(AuthError::Invalid(
            "the token is not renewable (it was created with renewable=false)".into(),
        ));
    }
    let wanted = match token.period {
        Some(period) => period,
        None => increment
            .map(|t| t.as_secs() as i64)
            .filter(|t| *t > 0)
            .unwrap_or(ttl),
    };
    let mut expire_at = now + wanted;
    if token.period.is_none() {
        let max = token.max_ttl.unwrap_or(MAX_TOKEN_TTL).min(MAX_TOKEN_TTL);
        expire_at = expire_at.min(token.created_at + max);
    }
    if let Some(max) = token.explicit_max_ttl {
        expire_at = expire_at.min(token.created_at + max);
    }
    store.set_token_expiry(&token.accessor, expire_at).await?;
    Ok(Some(expire_at))
}

pub async fn lookup_accessor(store: &Arc<dyn Store>, accessor: &str) -> Result<Caller, AuthError> {
    let record = store
        .find_token_by_accessor(accessor.trim())
        .await?
        .ok_or_else(|| AuthError::Invalid(format!("invalid accessor {accessor:?}")))?;
    caller_from(store, record).await
}

/// Revokes a token: with its descendants (Vault's `revoke`, `revoke-self`, `revoke-accessor`,
/// expiry), or alone with its children left as orphans (`revoke-orphan`). The tokens stop
/// working when this returns; their leases are due, for the reaper to revoke in AWS.
pub async fn revoke(
    store: &Arc<dyn Store>,
    accessor: &str,
    now: i64,
    orphan_children: bool,
) -> Result<TokenRevocation, AuthError> {
    let done = store
        .revoke_token_tree(accessor.trim(), now, orphan_children)
        .await?;
    if done.tokens > 0 {
        tracing::info!(
            tokens = done.tokens,
            leases = done.leases,
            orphan_children,
            "revoked a token"
        );
    }
    Ok(done)
}

/// One request's use of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// No use limit, or uses left after this one.
    Granted,
    /// This was the token's last use: serve the request, then revoke the token.
    Last,
    /// The token has no use left (another request took the last one).
    Exhausted,
}

/// Counts one use of a token with `num_uses` (a conditional decrement, so two requests can
/// never share the last use).
pub async fn spend_use(store: &Arc<dyn Store>, caller: &Caller) -> Result<Use, AuthError> {
    if caller.token.num_uses == 0 {
        return Ok(Use::Granted);
    }
    Ok(match store.use_token(&caller.accessor).await? {
        Some(left) if left < 0 => Use::Last,
        Some(_) => Use::Granted,
        None => Use::Exhausted,
    })
}
