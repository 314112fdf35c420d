//! Durable state: the only module that runs SQL. A `Store` trait with one implementation per
//! database: SQLite (embedded, one server) and PostgreSQL (several replicas on one database).
//!
//! Every state change of a lease is one conditional statement, so two actors (a request and
//! the reaper, or two servers) can never both believe they moved the same lease. The
//! statements are written once (`sql.rs`); `sqlite.rs` and `postgres.rs` hold only what the
//! two databases do differently.

mod auth_sql;
mod cap_sql;
mod history_sql;
mod liveness_sql;
mod postgres;
mod reseal_sql;
mod rows;
mod session_sql;
mod sql;
mod sqlite;
mod sqlite_writer;
mod static_sql;

pub use auth_sql::AuthStore;
pub use cap_sql::LeaseCapStore;
pub use history_sql::KeyHistoryStore;
pub use liveness_sql::LivenessStore;
pub use postgres::{PostgresStore, is_postgres_url};
pub use reseal_sql::{Reseal, ResealStore};
pub use session_sql::ConsoleSessionStore;
pub use sqlite::SqliteStore;
pub use static_sql::StaticRoleStore;

use std::sync::Arc;

use async_trait::async_trait;

pub use crate::model::{
    AuthMountRecord, AuthRoleRecord, LeaseStats, MountRecord, ReplicaRecord, RootConfigRecord,
    SecretIdRecord, TakeOver, TokenRecord, TokenRevocation,
};
use crate::model::{Lease, MountPath, RoleName};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot take writes right now (disk full, read-only, locked); retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("storage error: {0}")]
    Other(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which tokens a revocation starts from.
#[derive(Debug, Clone, Copy)]
pub enum TokenRoots<'a> {
    /// One token, by accessor.
    Token(&'a str),
    /// Every token an auth mount issued (by the mount's accessor).
    AuthMount(&'a str),
}

/// A new replica id: random at every start, so a restarted server never inherits the claims
/// of its previous run (those are taken over like any silent replica's).
fn new_replica_id() -> Arc<str> {
    uuid::Uuid::new_v4().simple().to_string().into()
}

/// Opens the store a `storage` URL names: `postgres://`/`postgresql://`, else SQLite.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if is_postgres_url(url) {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else {
        Ok(Arc::new(SqliteStore::open(url).await?))
    }
}

#[async_trait]
pub trait Store:
    AuthStore
    + ConsoleSessionStore
    + KeyHistoryStore
    + LeaseCapStore
    + LivenessStore
    + ResealStore
    + StaticRoleStore
    + Send
    + Sync
    + 'static
{
    /// Closes the connections (graceful shutdown).
    async fn close(&self);

    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Writes `value` unless `key` already has one; returns whether it wrote.
    async fn put_meta_if_absent(&self, key: &str, value: &[u8]) -> Result<bool>;

    /// The configuration's epoch: one number in the database that strictly increases with
    /// every insert, update or delete of a mount (its lease config included), a role or a root
    /// config, in the same transaction as the change, whichever replica made it (database
    /// triggers). Leases, tokens, policies and meta do not move it. One primary-key read.
    ///
    /// The rule for anything that caches those records: read the epoch *before* reading the
    /// records, tag the cache with that epoch, and treat the cache as valid only while
    /// `config_epoch()` still returns the same value. Reading it *after* the records could tag
    /// stale data with a new epoch: a change committed between the two reads would be missed
    /// until the next one.
    async fn config_epoch(&self) -> Result<i64>;

    /// Returns false when the path is already mounted.
    async fn insert_mount(&self, mount: &MountRecord) -> Result<bool>;
    async fn get_mount(&self, path: &MountPath) -> Result<Option<MountRecord>>;
    async fn list_mounts(&self) -> Result<Vec<MountRecord>>;
    async fn set_mount_lease_config(
        &self,
        path: &MountPath,
        lease_ttl: Option<i64>,
        lease_max: Option<i64>,
    ) -> Result<bool>;
    /// `sys/mounts/{path}/tune`: the mount's description and TTLs, as `m` has them.
    async fn tune_mount(&self, m: &MountRecord) -> Result<bool>;
    /// Deletes the mount with its roles and root config. Its leases must be gone first.
    async fn delete_mount(&self, path: &MountPath) -> Result<bool>;

    async fn put_root_config(
        &self,
        mount: &MountPath,
        config: &str,
        secret_sealed: Option<&[u8]>,
    ) -> Result<()>;
    async fn get_root_config(&self, mount: &MountPath) -> Result<Option<RootConfigRecord>>;

    async fn put_role(&self, mount: &MountPath, name: &RoleName, body: &str) -> Result<()>;
    async fn get_role(&self, mount: &MountPath, name: &RoleName) -> Result<Option<String>>;
    async fn list_roles(&self, mount: &MountPath) -> Result<Vec<String>>;
    async fn delete_role(&self, mount: &MountPath, name: &RoleName) -> Result<bool>;

    async fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    /// The token with this hash, if any, and the config epoch (`config_epoch`), in one
    /// statement: what every request reads first, so an issue needs no second read before it
    /// takes mount, role and root config from the engine's cache.
    async fn find_token_and_epoch(&self, hash: &[u8]) -> Result<(Option<TokenRecord>, i64)>;
    async fn find_token_by_accessor(&self, accessor: &str) -> Result<Option<TokenRecord>>;
    /// Revokes tokens and all their descendants in one transaction: the tokens are gone when
    /// it commits, and every `pending` or `active` lease any of them holds is made due at `now`,
    /// so the reaper revokes it in AWS with its usual retries. With `orphan_children`, only the
    /// roots go; their children become orphans (`revoke-orphan`). Bounded: one statement per
    /// table over indexes, however many leases the trees hold. Unknown roots revoke nothing.
    async fn revoke_token_trees(
        &self,
        roots: TokenRoots<'_>,
        now: i64,
        orphan_children: bool,
    ) -> Result<TokenRevocation>;
    /// `revoke_token_trees` for one token.
    async fn revoke_token_tree(
        &self,
        accessor: &str,
        now: i64,
        orphan_children: bool,
    ) -> Result<TokenRevocation> {
        self.revoke_token_trees(TokenRoots::Token(accessor), now, orphan_children)
            .await
    }
    /// Takes one use of a token with `num_uses`; returns the uses left, `Some(-1)` when that was
    /// its last (the token is used up: revoke it), or `None` when it has no use left to take or
    /// no limit. A used-up token never authenticates again.
    async fn use_token(&self, accessor: &str) -> Result<Option<i64>>;
    /// Up to `limit` tokens whose `expire_at` has passed or whose uses are spent (for the
    /// reaper to revoke).
    async fn expired_tokens(&self, now: i64, limit: i64) -> Result<Vec<String>>;
    async fn set_token_expiry(&self, accessor: &str, expire_at: i64) -> Result<()>;
    async fn has_tokens(&self) -> Result<bool>;

    async fn put_policy(&self, name: &str, body: &str) -> Result<()>;
    async fn get_policy(&self, name: &str) -> Result<Option<String>>;
    async fn list_policies(&self) -> Result<Vec<String>>;
    async fn delete_policy(&self, name: &str) -> Result<bool>;

    /// The intent record: committed durably before the first AWS call for the lease.
    async fn insert_lease(&self, lease: &Lease) -> Result<()>;
    async fn get_lease(&self, id: &str) -> Result<Option<Lease>>;
    // Activating a lease and inserting an STS lease also record who holds its key: they are
    // `KeyHistoryStore::{activate_lease, insert_active_lease}`.
    /// Moves an `active` lease's expiry. False when the lease is not active.
    async fn renew_lease(&self, id: &str, expire_time: i64, now: i64) -> Result<bool>;
    /// Run once at start-up, before the reaper: makes leases that a crashed process was in the
    /// middle of (`pending`, `revoking`) due at once when this store can know that no other
    /// live process still owns them. Returns how many it found.
    async fn recover_abandoned(&self, now: i64) -> Result<u64>;
    /// Claims one lease for revocation (`pending`, `active` or `failed` → `revoking` until
    /// `deadline`). `None` when it does not exist or is being revoked by someone else.
    async fn claim_lease(&self, id: &str, now: i64, deadline: i64) -> Result<Option<Lease>>;
    /// Claims up to `limit` leases whose `due_at` has passed, oldest first.
    async fn claim_due(&self, now: i64, deadline: i64, limit: i64) -> Result<Vec<Lease>>;
    /// `revoking` → `failed`, remembering why, to be retried at `retry_at`.
    async fn fail_lease(&self, id: &str, error: &str, retry_at: i64) -> Result<()>;
    /// The end of a lease: everything in AWS is gone. Its key's history row, if any, is stamped
    /// revoked in the same statement (a trigger) and kept for `key_history_retention`.
    async fn delete_lease(&self, id: &str) -> Result<()>;
    /// `delete_lease` for a reaper batch, in one commit: one
    /// fsync per batch instead of one per lease is most of the reaper's own cost.
    async fn delete_leases(&self, ids: &[String]) -> Result<()>;
    /// Up to `limit` ids under `prefix` that sort after `after`, in order, optionally only
    /// those in one state (keyset pagination: each page is a range scan).
    async fn list_lease_ids(
        &self,
        prefix: &str,
        state: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>>;

    /// How many leases (in any state) have an id under `prefix`. The default pages through
    /// `list_lease_ids`; backends override it with one COUNT.
    async fn count_leases_with_prefix(&self, prefix: &str) -> Result<i64> {
        let (mut count, mut after) = (0i64, None::<String>);
        loop {
            let page = self
                .list_lease_ids(prefix, None, after.as_deref(), 1000)
                .await?;
            count += page.len() as i64;
            if page.len() < 1000 {
                return Ok(count);
            }
            after = page.last().cloned();
        }
    }

    /// Lease counts by mount, role and state, and the oldest overdue `due_at` (for metrics).
    async fn lease_stats(&self, now: i64) -> Result<LeaseStats>;
}

/// The smallest string greater than every string starting with `prefix` (ids are ASCII),
/// so a prefix scan is a range scan on the primary key.
pub(crate) fn prefix_upper_bound(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}
