//! The rows the store keeps for mounts, root configurations and tokens, and lease counts.

use std::collections::BTreeMap;

use super::names::MountPath;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRecord {
    pub path: MountPath,
    pub kind: String,
    pub description: String,
    pub default_lease_ttl: Option<i64>,
    pub max_lease_ttl: Option<i64>,
    /// `config/lease`: `lease` and `lease_max`.
    pub lease_ttl: Option<i64>,
    pub lease_max: Option<i64>,
    pub created_at: i64,
}

/// A mount's root configuration: settings as JSON, the secret key sealed apart from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootConfigRecord {
    pub config: String,
    pub secret_sealed: Option<Vec<u8>>,
    /// Bumped on every write, so cached AWS clients know when they are stale.
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// SHA-256 of the token; the token itself is never stored.
    pub hash: Vec<u8>,
    pub accessor: String,
    pub policies: Vec<String>,
    pub display_name: String,
    pub created_at: i64,
    pub expire_at: Option<i64>,
    /// The TTL the token was created with; `None` for tokens that never expire.
    pub ttl: Option<i64>,
    /// The token that created this one; `None` for root tokens and orphans. Revoking a token
    /// revokes its descendants and every lease any of them holds.
    pub parent_accessor: Option<String>,
    /// Created without a parent (`create-orphan`, `no_parent`) or left by `revoke-orphan`.
    pub orphan: bool,
    /// Uses left; 0 is unlimited. The token is revoked after its last use.
    pub num_uses: i64,
    /// A periodic token: each renewal sets its TTL to this, with no maximum.
    pub period: Option<i64>,
    /// A hard limit on the token's life from its creation, whatever renewals ask.
    pub explicit_max_ttl: Option<i64>,
    /// Vault's `meta`: free-form key/value pairs, shown by lookups and in the audit log.
    pub meta: BTreeMap<String, String>,
    pub renewable: bool,
    /// The path that created it (`auth/token/create`, `auth/approle/login`, …).
    pub path: String,
    /// The accessor of the auth mount that issued it by a login (`None` for the token store):
    /// a token whose mount is disabled never authenticates again.
    pub auth_accessor: Option<String>,
    /// The longest it may live from creation through renewals (an auth role's
    /// `token_max_ttl`); `None`: the system maximum.
    pub max_ttl: Option<i64>,
    /// Networks the token may be used from (`token_bound_cidrs`); empty: anywhere.
    pub bound_cidrs: Vec<String>,
}

impl TokenRecord {
    /// A plain `auth/token/create` token with the `default` policy and no limits, the child of
    /// `parent` (an orphan without one): where tests and tools start, changing what they need.
    pub fn plain(hash: Vec<u8>, accessor: &str, parent: Option<&str>) -> Self {
        TokenRecord {
            hash,
            accessor: accessor.into(),
            policies: vec!["default".into()],
            display_name: "token".into(),
            created_at: 0,
            expire_at: None,
            ttl: None,
            parent_accessor: parent.map(str::to_owned),
            orphan: parent.is_none(),
            num_uses: 0,
            period: None,
            explicit_max_ttl: None,
            meta: BTreeMap::new(),
            renewable: true,
            path: "auth/token/create".into(),
            auth_accessor: None,
            max_ttl: None,
            bound_cidrs: Vec::new(),
        }
    }
}

/// What a token revocation did: the tokens gone at once, and how many leases it made due
/// for the reaper to revoke in AWS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenRevocation {
    pub tokens: u64,
    pub leases: u64,
}

/// What the metrics endpoint reports about leases, computed by the store in two queries.
#[derive(Debug, Default, Clone)]
pub struct LeaseStats {
    /// (mount, role, state, count)
    pub counts: Vec<(String, String, String, i64)>,
    /// The smallest `due_at` that has passed: how far behind the reaper is.
    pub oldest_overdue: Option<i64>,
}

/// A replica (a running server) as its heartbeat row describes it (`sys/ha-status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRecord {
    /// Random at every start.
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub started_at: i64,
    /// The last heartbeat, in Unix milliseconds.
    pub heartbeat_ms: i64,
}

/// What one takeover found: rows of silent replicas made due now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TakeOver {
    pub leases: u64,
    pub static_roles: u64,
}
