//! What every auth method shares: Vault's `token_*` role settings, the token a login makes
//! from them (tied to the auth mount, so disabling the mount revokes it), and CIDR bindings.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::AuthError;
use super::policy::{DEFAULT_POLICY, ROOT_POLICY};
use super::token::{TokenSpec, create_token};
use crate::model::AuthMountRecord;
use crate::store::{Store, TokenRecord};

/// Vault's default and maximum token TTL (32 days) when neither role nor mount sets one.
const SYSTEM_MAX_TTL: i64 = 768 * 3600;

/// A network a login or a token is bound to, parsed once (`10.0.0.0/8`, or one address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn parse(raw: &str) -> Result<Cidr, AuthError> {
        let raw = raw.trim();
        let net = raw
            .parse::<IpNet>()
            .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| {
                AuthError::Invalid(format!(
                    "{raw:?} is not a CIDR block or IP address (for example 10.0.0.0/8 or 192.0.2.7)"
                ))
            })?;
        Ok(Cidr(net))
    }

    /// Whether every address of `other` is in this block.
    pub fn covers(&self, other: &Cidr) -> bool {
        self.0.contains(&other.0)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client may reach us as an IPv4-mapped IPv6 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Cidr::parse(&s).map_err(|e| e.to_string())
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.0.to_string()
    }
}

/// Parses a list of CIDR blocks (a request field).
pub fn parse_cidrs(raw: &[String]) -> Result<Vec<Cidr>, AuthError> {
    raw.iter().map(|r| Cidr::parse(r)).collect()
}

/// Whether `ip` may use something bound to `cidrs` (no binding: anyone; no known address:
/// only when unbound).
pub fn allowed_from(cidrs: &[Cidr], ip: Option<IpAddr>) -> bool {
    cidrs.is_empty() || ip.is_some_and(|ip| cidrs.iter().any(|c| c.contains(ip)))
}

/// Vault's token settings of an auth role (`token_policies`, `token_ttl`, …). Seconds; 0 is
/// "not set" as in Vault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenSettings {
    pub token_policies: Vec<String>,
    pub token_ttl: i64,
    pub token_max_ttl: i64,
    pub token_explicit_max_ttl: i64,
    pub token_period: i64,
    pub token_num_uses: i64,
    pub token_no_default_policy: bool,
    pub token_bound_cidrs: Vec<Cidr>,
}

impl TokenSettings {
    /// The rules across fields, checked when a role is written so a login never meets them.
    pub fn validate(&self) -> Result<(), AuthError> {
        let negative = [
            ("token_ttl", self.token_ttl),
            ("token_max_ttl", self.token_max_ttl),
            ("token_explicit_max_ttl", self.token_explicit_max_ttl),
            ("token_period", self.token_period),
            ("token_num_uses", self.token_num_uses),
        ];
        if let Some((name, _)) = negative.iter().find(|(_, v)| *v < 0) {
            return Err(AuthError::Invalid(format!("{name} must not be negative")));
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(AuthError::Invalid(
                "token_ttl must not be greater than token_max_ttl".into(),
            ));
        }
        if let Some(p) = self
            .token_policies
            .iter()
            .find(|p| p.as_str() == ROOT_POLICY)
        {
            return Err(AuthError::Invalid(format!(
                "token_policies: an auth method cannot hand out the {p:?} policy"
            )));
        }
        Ok(())
    }
}

/// Who logged in, as the method established it.
pub struct LoginIdentity {
    /// `role name` for AppRole, the user claim for JWT: the token's display name after the mount.
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    /// Policies the login adds beyond the role's (none today; groups map here later).
    pub extra_policies: Vec<String>,
    /// Bindings from the secret ID on top of the role's.
    pub extra_bound_cidrs: Vec<Cidr>,
}

/// Makes the token a login answers: the role's policies (plus `default`), TTLs as Vault
/// computes them from role and mount, tied to the auth mount by its accessor.
pub async fn login_token(
    store: &Arc<dyn Store>,
    mount: &AuthMountRecord,
    settings: &TokenSettings,
    who: LoginIdentity,
    now: i64,
) -> Result<(String, TokenRecord), AuthError> {
    let mut policies: BTreeSet<String> = settings
        .token_policies
        .iter()
        .chain(&who.extra_policies)
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if !settings.token_no_default_policy {
        policies.insert(DEFAULT_POLICY.to_owned());
    }
    let positive = |v: i64| (v > 0).then_some(v);
    let mount_max = mount
        .max_lease_ttl
        .and_then(positive)
        .unwrap_or(SYSTEM_MAX_TTL);
    let max_ttl = positive(settings.token_max_ttl)
        .unwrap_or(mount_max)
        .min(mount_max);
    let period = positive(settings.token_period);
    let explicit_max = positive(settings.token_explicit_max_ttl);
    let mut ttl = period
        .or(positive(settings.token_ttl))
        .or(mount.default_lease_ttl.and_then(positive))
        .unwrap_or(max_ttl);
    if period.is_none() {
        ttl = ttl.min(max_ttl);
    }
    if let Some(max) = explicit_max {
        ttl = ttl.min(max);
    }
    let mut bound: Vec<String> = settings
        .token_bound_cidrs
        .iter()
        .chain(&who.extra_bound_cidrs)
        .map(|c| String::from(c.clone()))
        .collect();
    bound.dedup();
    let meta = who.metadata;
    let spec = TokenSpec {
        policies: policies.into_iter().collect(),
        display_name: format!("{}-{}", mount.path, who.name),
        ttl: Some(ttl),
        parent_accessor: None,
        // Login tokens have no parent token, as in Vault.
        orphan: true,
        num_uses: settings.token_num_uses,
        period,
        explicit_max_ttl: explicit_max,
        meta,
        renewable: true,
        path: format!("auth/{}/login", mount.path),
        auth_accessor: Some(mount.accessor.clone()),
        max_ttl: Some(max_ttl),
        bound_cidrs: bound,
    };
    Ok(create_token(store, spec, now).await?)
}
