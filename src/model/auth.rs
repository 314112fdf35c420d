//! The rows the store keeps for auth methods: mounts under `auth/`, their roles, and
//! AppRole's secret IDs (hashes only).

use std::collections::BTreeMap;
use std::fmt;

use super::names::{MountPath, RoleName};

/// The auth methods iamlease serves besides the token store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    AppRole,
    Jwt,
    /// The JWT method mounted as `oidc` (Vault's two names for one plugin).
    Oidc,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::AppRole => "approle",
            AuthKind::Jwt => "jwt",
            AuthKind::Oidc => "oidc",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "approle" => Ok(AuthKind::AppRole),
            "jwt" => Ok(AuthKind::Jwt),
            "oidc" => Ok(AuthKind::Oidc),
            other => Err(format!(
                "auth method type {other:?} is not supported; use \"approle\", \"jwt\" or \"oidc\""
            )),
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            AuthKind::AppRole => "AppRole: role_id and secret_id for machines",
            AuthKind::Jwt | AuthKind::Oidc => "JWT and OIDC: signed identity tokens and SSO",
        }
    }
}

impl fmt::Display for AuthKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One enabled auth method (`sys/auth/{path}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMountRecord {
    pub path: MountPath,
    pub kind: AuthKind,
    /// `auth_{kind}_{random}`: what tokens issued through the mount remember.
    pub accessor: String,
    pub description: String,
    /// The method's configuration (JWT/OIDC `config`) as JSON; `{}` for AppRole.
    pub config: String,
    /// A secret of the configuration (`oidc_client_secret`), sealed apart from it.
    pub secret_sealed: Option<Vec<u8>>,
    pub default_lease_ttl: Option<i64>,
    pub max_lease_ttl: Option<i64>,
    pub created_at: i64,
}

/// A role of an auth mount: its settings as JSON, and AppRole's `role_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRoleRecord {
    pub name: RoleName,
    pub body: String,
    pub role_id: Option<String>,
}

/// An AppRole secret ID: only its hash is kept, never the secret ID itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretIdRecord {
    pub hash: Vec<u8>,
    pub accessor: String,
    pub mount: MountPath,
    pub role: RoleName,
    /// Logins left; 0 is unlimited, -1 used up (about to be deleted).
    pub uses_left: i64,
    /// Seconds it lives after creation; 0 never expires.
    pub ttl: i64,
    pub expire_at: Option<i64>,
    /// Where a login with it may come from (empty: anywhere).
    pub cidr_list: Vec<String>,
    /// The networks the tokens it logs in may be used from.
    pub token_bound_cidrs: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: i64,
    pub updated_at: i64,
}
