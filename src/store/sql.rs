//! The SQL both stores run: every statement and row decoder written once, as one `Store`
//! implementation generic over the sqlx driver. Placeholders are PostgreSQL's `$N`, which
//! sqlx's SQLite driver binds by number too. A backend supplies only what differs (`Backend`):
//! its pool, its error codes, the row locks of the reaper's claim, start-up recovery and
//! batch deletes.

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::auth_sql::{INSERT_TOKEN, TokenJson, bind_token};
use super::rows::{Columns, lease_from_row, mount_from_row, root_config_from_row, token_from_row};
use super::{
    LeaseStats, MountRecord, Result, RootConfigRecord, Store, StoreError, TokenRecord,
    TokenRevocation, TokenRoots, prefix_upper_bound,
};
use crate::model::{KeyRecord, Lease, MountPath, RoleName};

/// Every column of `leases`, in the order `bind_lease` binds them (a macro, so the statements
/// below can be `concat!`ed constants).
macro_rules! lease_columns {
    () => {
        "id, mount, role, credential_type, state, username, access_key_id, issue_time, \
         expire_time, max_expire_time, last_renewal, ttl, renewable, due_at, attempts, \
         last_error, token_accessor, owner"
    };
}

const LEASE_COLUMNS: &str = lease_columns!();

/// The intent record's statement, one row per execution (`bind_lease`). The row's `owner` is
/// the writing replica: a `pending` row is taken over when that replica stops beating.
pub(super) const INSERT_LEASE: &str = concat!(
    "INSERT INTO leases (",
    lease_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
);

/// The reaper's search, oldest first, on the `leases_due_at` index (a SQLite test checks the
/// plan), so a pass costs the same with a thousand or a million active leases. `$2` is the
/// claim's deadline, bound by `claim_due` around it.
pub(super) const DUE_IDS: &str =
    "SELECT id FROM leases WHERE due_at <= $1 ORDER BY due_at LIMIT $3";

/// What a store does its own way. Everything else is the one `Store` implementation below,
/// which every `Backend` gets.
#[async_trait]
pub(super) trait Backend: Send + Sync + 'static {
    type Db: Database;

    /// Appended to the reaper's claim subquery (`DUE_IDS`): how claimants running at once stay
    /// out of each other's way.
    const CLAIM_ROW_LOCKS: &'static str;

    fn pool(&self) -> &Pool<Self::Db>;

    /// This server's id: its row in `replicas`, and the `owner` of what it has in flight.
    fn replica(&self) -> &str;

    /// Which driver errors an operator can fix or that pass (`Unavailable`, a 503), and which
    /// are `Other`.
    fn map_err(e: sqlx::Error) -> StoreError;

    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;

    async fn close(&self);

    /// `Store::recover_abandoned`: whether this backend can know that no one else is working
    /// on a `pending` or `revoking` lease.
    async fn recover_abandoned(&self, now: i64) -> Result<u64>;

    /// `Store::delete_leases`: a list of ids in one statement, each driver's own way.
    async fn delete_leases(&self, ids: &[String]) -> Result<()>;

    /// `Store::insert_lease`, an issue's intent row (`INSERT_LEASE`): durable when it returns.
    async fn insert_intent(&self, lease: &Lease) -> Result<()>;

    /// `KeyHistoryStore::activate_lease`: the activation and the key's history row in one
    /// transaction. The issue path's other durable write, so each backend runs it its
    /// quickest way: SQLite on the request's thread, PostgreSQL in one statement.
    async fn activate(&self, key: &KeyRecord, due_at: i64) -> Result<bool>;
}

/// Binds `lease`, written by replica `owner`, to `INSERT_LEASE`.
pub(super) fn bind_lease<'q, DB: Database>(
    query: Query<'q, DB, DB::Arguments<'q>>,
    l: &'q Lease,
    owner: &'q str,
) -> Query<'q, DB, DB::Arguments<'q>>
where
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(l.id.as_str())
        .bind(l.mount.as_str())
        .bind(l.role.as_str())
        .bind(l.credential_type.as_str())
        .bind(l.state.as_str())
        .bind(l.username.as_deref())
        .bind(l.access_key_id.as_deref())
        .bind(l.issue_time)
        .bind(l.expire_time)
        .bind(l.max_expire_time)
        .bind(l.last_renewal)
        .bind(l.ttl)
        .bind(l.renewable)
        .bind(l.due_at)
        .bind(l.attempts)
        .bind(l.last_error.as_deref())
        .bind(l.token_accessor.as_deref())
        .bind(owner)
}

#[async_trait]
impl<B> Store for B
where
    B: Backend,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    <B::Db as Database>::Row: Columns,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q [u8]: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<&'q [u8]>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'r> String: Decode<'r, B::Db> + Type<B::Db>,
    for<'r> Vec<u8>: Decode<'r, B::Db> + Type<B::Db>,
{
    async fn close(&self) {
        Backend::close(self).await;
    }

    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)
    }

    async fn put_meta_if_absent(&self, key: &str, value: &[u8]) -> Result<bool> {
        let done =
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(self.pool())
                .await
                .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn config_epoch(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT value FROM config_epoch WHERE id = 1")
            .fetch_one(self.pool())
            .await
            .map_err(B::map_err)
    }

    async fn insert_mount(&self, m: &MountRecord) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO mounts (path, kind, description, default_lease_ttl, max_lease_ttl, lease_ttl, lease_max, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(m.path.as_str())
        .bind(m.kind.as_str())
        .bind(m.description.as_str())
        .bind(m.default_lease_ttl)
        .bind(m.max_lease_ttl)
        .bind(m.lease_ttl)
        .bind(m.lease_max)
        .bind(m.created_at)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn get_mount(&self, path: &MountPath) -> Result<Option<MountRecord>> {
        sqlx::query("SELECT * FROM mounts WHERE path = $1")
            .bind(path.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)?
            .as_ref()
            .map(mount_from_row)
            .transpose()
    }

    async fn list_mounts(&self) -> Result<Vec<MountRecord>> {
        sqlx::query("SELECT * FROM mounts ORDER BY path")
            .fetch_all(self.pool())
            .await
            .map_err(B::map_err)?
            .iter()
            .map(mount_from_row)
            .collect()
    }

    async fn set_mount_lease_config(
        &self,
        path: &MountPath,
        lease_ttl: Option<i64>,
        lease_max: Option<i64>,
    ) -> Result<bool> {
        let done = sqlx::query("UPDATE mounts SET lease_ttl = $2, lease_max = $3 WHERE path = $1")
            .bind(path.as_str())
            .bind(lease_ttl)
            .bind(lease_max)
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn tune_mount(&self, m: &MountRecord) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE mounts SET description = $2, default_lease_ttl = $3, max_lease_ttl = $4
             WHERE path = $1",
        )
        .bind(m.path.as_str())
        .bind(m.description.as_str())
        .bind(m.default_lease_ttl)
        .bind(m.max_lease_ttl)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn delete_mount(&self, path: &MountPath) -> Result<bool> {
        // Roles and root config go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM mounts WHERE path = $1")
            .bind(path.as_str())
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn put_root_config(
        &self,
        mount: &MountPath,
        config: &str,
        secret_sealed: Option<&[u8]>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO root_configs (mount, config, secret_sealed, version) VALUES ($1, $2, $3, 1)
             ON CONFLICT (mount) DO UPDATE SET config = excluded.config,
                 secret_sealed = excluded.secret_sealed, version = root_configs.version + 1",
        )
        .bind(mount.as_str())
        .bind(config)
        .bind(secret_sealed)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(())
    }

    async fn get_root_config(&self, mount: &MountPath) -> Result<Option<RootConfigRecord>> {
        sqlx::query("SELECT config, secret_sealed, version FROM root_configs WHERE mount = $1")
            .bind(mount.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)?
            .as_ref()
            .map(root_config_from_row)
            .transpose()
    }

    async fn put_role(&self, mount: &MountPath, name: &RoleName, body: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO roles (mount, name, body) VALUES ($1, $2, $3)
             ON CONFLICT (mount, name) DO UPDATE SET body = excluded.body",
        )
        .bind(mount.as_str())
        .bind(name.as_str())
        .bind(body)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(())
    }

    async fn get_role(&self, mount: &MountPath, name: &RoleName) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT body FROM roles WHERE mount = $1 AND name = $2")
            .bind(mount.as_str())
            .bind(name.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)
    }

    async fn list_roles(&self, mount: &MountPath) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM roles WHERE mount = $1 ORDER BY name")
            .bind(mount.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(B::map_err)
    }

    async fn delete_role(&self, mount: &MountPath, name: &RoleName) -> Result<bool> {
        let done = sqlx::query("DELETE FROM roles WHERE mount = $1 AND name = $2")
            .bind(mount.as_str())
            .bind(name.as_str())
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn insert_token(&self, t: &TokenRecord) -> Result<()> {
        let json = TokenJson::of(t);
        bind_token(sqlx::query(INSERT_TOKEN), t, &json)
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(())
    }

    async fn find_token_and_epoch(&self, hash: &[u8]) -> Result<(Option<TokenRecord>, i64)> {
        let row = sqlx::query(
            // A token issued by a login lives only as long as its auth mount.
            "SELECT e.value AS config_epoch, t.* FROM config_epoch e
             LEFT JOIN tokens t ON t.hash = $1 AND (t.auth_accessor IS NULL OR EXISTS
                 (SELECT 1 FROM auth_mounts a WHERE a.accessor = t.auth_accessor))
             WHERE e.id = 1",
        )
        .bind(hash)
        .fetch_one(self.pool())
        .await
        .map_err(B::map_err)?;
        let epoch = row.int("config_epoch")?;
        let token = match row.opt_bytes("hash")? {
            Some(_) => Some(token_from_row(&row)?),
            None => None,
        };
        Ok((token, epoch))
    }

    async fn find_token_by_accessor(&self, accessor: &str) -> Result<Option<TokenRecord>> {
        sqlx::query(
            "SELECT * FROM tokens t WHERE accessor = $1 AND (t.auth_accessor IS NULL OR EXISTS
                 (SELECT 1 FROM auth_mounts a WHERE a.accessor = t.auth_accessor))",
        )
        .bind(accessor)
        .fetch_optional(self.pool())
        .await
        .map_err(B::map_err)?
        .as_ref()
        .map(token_from_row)
        .transpose()
    }

    async fn revoke_token_trees(
        &self,
        roots: TokenRoots<'_>,
        now: i64,
        orphan_children: bool,
    ) -> Result<TokenRevocation> {
        let (column, key) = match roots {
            TokenRoots::Token(accessor) => ("accessor", accessor),
            TokenRoots::AuthMount(accessor) => ("auth_accessor", accessor),
        };
        // The roots and, unless their children are orphaned, every descendant: parents are
        // created before their children, so the links never form a cycle.
        let tree = if orphan_children {
            format!(
                "WITH RECURSIVE tree(accessor) AS (SELECT accessor FROM tokens WHERE {column} = $1)"
            )
        } else {
            format!(
                "WITH RECURSIVE tree(accessor) AS (
                 SELECT accessor FROM tokens WHERE {column} = $1
                 UNION ALL
                 SELECT t.accessor FROM tokens t JOIN tree ON t.parent_accessor = tree.accessor)"
            )
        };
        let mut tx = self.pool().begin().await.map_err(B::map_err)?;
        let leases = sqlx::query(&format!(
            "{tree} UPDATE leases SET due_at = $2
             WHERE token_accessor IN (SELECT accessor FROM tree)
               AND state IN ('pending', 'active') AND due_at > $2"
        ))
        .bind(key)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(B::map_err)?;
        if orphan_children {
            sqlx::query(&format!(
                "{tree} UPDATE tokens SET parent_accessor = NULL, orphan = $2
                 WHERE parent_accessor IN (SELECT accessor FROM tree)"
            ))
            .bind(key)
            .bind(true)
            .execute(&mut *tx)
            .await
            .map_err(B::map_err)?;
        }
        let tokens = sqlx::query(&format!(
            "{tree} DELETE FROM tokens WHERE accessor IN (SELECT accessor FROM tree)"
        ))
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(B::map_err)?;
        tx.commit().await.map_err(B::map_err)?;
        Ok(TokenRevocation {
            tokens: B::rows_affected(&tokens),
            leases: B::rows_affected(&leases),
        })
    }

    async fn use_token(&self, accessor: &str) -> Result<Option<i64>> {
        sqlx::query_scalar(
            // The last use leaves -1 (used up), never 0, which would mean unlimited.
            "UPDATE tokens SET num_uses = CASE WHEN num_uses = 1 THEN -1 ELSE num_uses - 1 END
             WHERE accessor = $1 AND num_uses > 0 RETURNING num_uses",
        )
        .bind(accessor)
        .fetch_optional(self.pool())
        .await
        .map_err(B::map_err)
    }

    async fn expired_tokens(&self, now: i64, limit: i64) -> Result<Vec<String>> {
        sqlx::query_scalar(
            // Expired, used up (a revocation after the last use that did not land), or issued
            // by an auth mount that is gone (a login that raced the mount's disabling).
            "SELECT accessor FROM tokens WHERE expire_at <= $1
             UNION SELECT accessor FROM tokens WHERE num_uses < 0
             UNION SELECT accessor FROM tokens t WHERE t.auth_accessor IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM auth_mounts a WHERE a.accessor = t.auth_accessor)
             LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(B::map_err)
    }

    async fn set_token_expiry(&self, accessor: &str, expire_at: i64) -> Result<()> {
        sqlx::query("UPDATE tokens SET expire_at = $2 WHERE accessor = $1")
            .bind(accessor)
            .bind(expire_at)
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(())
    }

    async fn has_tokens(&self) -> Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tokens)")
            .fetch_one(self.pool())
            .await
            .map_err(B::map_err)
    }

    async fn put_policy(&self, name: &str, body: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO policies (name, body) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET body = excluded.body",
        )
        .bind(name)
        .bind(body)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(())
    }

    async fn get_policy(&self, name: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT body FROM policies WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)
    }

    async fn list_policies(&self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM policies ORDER BY name")
            .fetch_all(self.pool())
            .await
            .map_err(B::map_err)
    }

    async fn delete_policy(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM policies WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn insert_lease(&self, l: &Lease) -> Result<()> {
        self.insert_intent(l).await
    }

    async fn get_lease(&self, id: &str) -> Result<Option<Lease>> {
        const GET_LEASE: &str = concat!("SELECT ", lease_columns!(), " FROM leases WHERE id = $1");
        sqlx::query(GET_LEASE)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)?
            .as_ref()
            .map(lease_from_row)
            .transpose()
    }

    async fn renew_lease(&self, id: &str, expire_time: i64, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE leases SET expire_time = $2, due_at = $2, last_renewal = $3
             WHERE id = $1 AND state = 'active'",
        )
        .bind(id)
        .bind(expire_time)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn recover_abandoned(&self, now: i64) -> Result<u64> {
        Backend::recover_abandoned(self, now).await
    }

    async fn claim_lease(&self, id: &str, now: i64, deadline: i64) -> Result<Option<Lease>> {
        // Two claimants of one row: SQLite runs one writer at a time; PostgreSQL makes the
        // second wait for the first to commit, then re-checks the WHERE clause against the new
        // row. Either way only one of them gets it.
        const CLAIM_LEASE: &str = concat!(
            "UPDATE leases SET state = 'revoking', due_at = $3, owner = $4
             WHERE id = $1 AND (state != 'revoking' OR due_at <= $2)
             RETURNING ",
            lease_columns!()
        );
        sqlx::query(CLAIM_LEASE)
            .bind(id)
            .bind(now)
            .bind(deadline)
            .bind(self.replica())
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)?
            .as_ref()
            .map(lease_from_row)
            .transpose()
    }

    async fn claim_due(&self, now: i64, deadline: i64, limit: i64) -> Result<Vec<Lease>> {
        let sql = format!(
            "UPDATE leases SET state = 'revoking', due_at = $2, owner = $4
             WHERE id IN ({DUE_IDS} {})
             RETURNING {LEASE_COLUMNS}",
            B::CLAIM_ROW_LOCKS
        );
        sqlx::query(&sql)
            .bind(now)
            .bind(deadline)
            .bind(limit)
            .bind(self.replica())
            .fetch_all(self.pool())
            .await
            .map_err(B::map_err)?
            .iter()
            .map(lease_from_row)
            .collect()
    }

    async fn fail_lease(&self, id: &str, error: &str, retry_at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE leases SET state = 'failed', last_error = $2, due_at = $3, attempts = attempts + 1
             WHERE id = $1 AND state = 'revoking'",
        )
        .bind(id)
        .bind(error)
        .bind(retry_at)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(())
    }

    async fn delete_lease(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(())
    }

    async fn delete_leases(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        Backend::delete_leases(self, ids).await
    }

    async fn list_lease_ids(
        &self,
        prefix: &str,
        state: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>> {
        let upper = prefix_upper_bound(prefix);
        sqlx::query_scalar(
            "SELECT id FROM leases WHERE id >= $1 AND id < $2 AND id > $4
             AND (CAST($3 AS TEXT) IS NULL OR state = $3) ORDER BY id LIMIT $5",
        )
        .bind(prefix)
        .bind(upper.as_str())
        .bind(state)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(B::map_err)
    }

    async fn count_leases_with_prefix(&self, prefix: &str) -> Result<i64> {
        let upper = prefix_upper_bound(prefix);
        sqlx::query_scalar("SELECT COUNT(*) FROM leases WHERE id >= $1 AND id < $2")
            .bind(prefix)
            .bind(upper.as_str())
            .fetch_one(self.pool())
            .await
            .map_err(B::map_err)
    }

    async fn lease_stats(&self, now: i64) -> Result<LeaseStats> {
        let counts = sqlx::query_as::<_, (String, String, String, i64)>(
            "SELECT mount, role, state, COUNT(*) FROM leases GROUP BY mount, role, state",
        )
        .fetch_all(self.pool())
        .await
        .map_err(B::map_err)?;
        // One step down the due_at index. A lease being revoked has its claim deadline as
        // due_at, so it counts only once its claimant is presumed dead.
        let oldest_overdue = sqlx::query_scalar::<_, i64>(
            "SELECT due_at FROM leases WHERE due_at <= $1 ORDER BY due_at LIMIT 1",
        )
        .bind(now)
        .fetch_optional(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(LeaseStats {
            counts,
            oldest_overdue,
        })
    }
}
