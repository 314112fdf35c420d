//! The SQL of auth methods (`auth_mounts`, `auth_roles`, `approle_secret_ids`,
//! `oidc_requests`), written once for both databases like `sql.rs`.

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::rows::{Columns, auth_mount_from_row, auth_role_from_row, secret_id_from_row};
use super::sql::Backend;
use super::{AuthMountRecord, AuthRoleRecord, Result, SecretIdRecord, TokenRecord};
use crate::model::{MountPath, RoleName};

/// What the auth methods keep. Secret IDs are found by their hash only.
#[async_trait]
pub trait AuthStore: Send + Sync {
    /// Stores `t` only if the store has no token at all, however many servers try at once (a
    /// first start of several replicas, or `sys/init`): the first statement locks one meta row
    /// until the transaction ends, so the check and the insert are one step. False: there was one.
    async fn insert_token_if_none(&self, t: &TokenRecord) -> Result<bool>;
    /// False when the path is already an auth mount.
    async fn insert_auth_mount(&self, m: &AuthMountRecord) -> Result<bool>;
    async fn get_auth_mount(&self, path: &MountPath) -> Result<Option<AuthMountRecord>>;
    async fn list_auth_mounts(&self) -> Result<Vec<AuthMountRecord>>;
    /// Writes the mount's description, TTLs, configuration and sealed secret. False when gone.
    async fn update_auth_mount(&self, m: &AuthMountRecord) -> Result<bool>;
    /// Deletes the mount with its roles, secret IDs and pending sign-ins in one transaction,
    /// and answers its accessor. Its tokens stop authenticating at once (they are tied to the
    /// accessor); revoking them and their leases is the caller's next step, and the reaper's
    /// if the process dies first.
    async fn delete_auth_mount(&self, path: &MountPath) -> Result<Option<String>>;

    /// False when another role of the mount has the same `role_id`.
    async fn put_auth_role(&self, mount: &MountPath, role: &AuthRoleRecord) -> Result<bool>;
    async fn get_auth_role(
        &self,
        mount: &MountPath,
        name: &RoleName,
    ) -> Result<Option<AuthRoleRecord>>;
    async fn find_auth_role_by_role_id(
        &self,
        mount: &MountPath,
        role_id: &str,
    ) -> Result<Option<AuthRoleRecord>>;
    async fn list_auth_roles(&self, mount: &MountPath) -> Result<Vec<String>>;
    /// Deletes the role and its secret IDs.
    async fn delete_auth_role(&self, mount: &MountPath, name: &RoleName) -> Result<bool>;

    /// False when a secret ID with the same hash exists (a custom secret ID used twice).
    async fn insert_secret_id(&self, s: &SecretIdRecord) -> Result<bool>;
    async fn find_secret_id(&self, hash: &[u8]) -> Result<Option<SecretIdRecord>>;
    async fn find_secret_id_by_accessor(
        &self,
        mount: &MountPath,
        role: &RoleName,
        accessor: &str,
    ) -> Result<Option<SecretIdRecord>>;
    /// Takes one use of a live secret ID in one conditional statement (so two logins never
    /// share the last use) and answers it as it was before; a used-up one is deleted. `None`
    /// when it is unknown, expired or used up.
    async fn use_secret_id(&self, hash: &[u8], now: i64) -> Result<Option<SecretIdRecord>>;
    async fn delete_secret_id(
        &self,
        mount: &MountPath,
        role: &RoleName,
        accessor: &str,
    ) -> Result<bool>;
    async fn list_secret_id_accessors(
        &self,
        mount: &MountPath,
        role: &RoleName,
    ) -> Result<Vec<String>>;

    /// A sign-in waiting for its OIDC callback, keyed by the hash of its `state`.
    async fn put_oidc_request(
        &self,
        state_hash: &[u8],
        mount: &MountPath,
        sealed: &[u8],
        expire_at: i64,
    ) -> Result<()>;
    /// Takes (deletes and answers) a live sign-in: a `state` is good for one callback.
    async fn take_oidc_request(
        &self,
        state_hash: &[u8],
        mount: &MountPath,
        now: i64,
    ) -> Result<Option<Vec<u8>>>;

    /// Deletes expired and used-up secret IDs and expired sign-ins (the reaper's tidy).
    async fn tidy_auth(&self, now: i64) -> Result<u64>;
}

/// Every column of `tokens`, in the order `bind_token` binds them.
pub(super) const INSERT_TOKEN: &str =
    "INSERT INTO tokens (hash, accessor, policies, display_name, created_at, expire_at, ttl,
                         parent_accessor, orphan, num_uses, period, explicit_max_ttl, meta,
                         renewable, path, auth_accessor, max_ttl, bound_cidrs)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
     ON CONFLICT (hash) DO NOTHING";

/// A token's list and map columns as the JSON the store keeps.
pub(super) struct TokenJson {
    policies: String,
    meta: String,
    cidrs: String,
}

impl TokenJson {
    pub(super) fn of(t: &TokenRecord) -> Self {
        TokenJson {
            policies: serde_json::to_string(&t.policies).expect("strings serialise"),
            meta: serde_json::to_string(&t.meta).expect("strings serialise"),
            cidrs: serde_json::to_string(&t.bound_cidrs).expect("strings serialise"),
        }
    }
}

/// Binds `t` (its JSON columns in `json`) to `INSERT_TOKEN`.
pub(super) fn bind_token<'q, DB: Database>(
    query: Query<'q, DB, DB::Arguments<'q>>,
    t: &'q TokenRecord,
    json: &'q TokenJson,
) -> Query<'q, DB, DB::Arguments<'q>>
where
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(t.hash.as_slice())
        .bind(t.accessor.as_str())
        .bind(json.policies.as_str())
        .bind(t.display_name.as_str())
        .bind(t.created_at)
        .bind(t.expire_at)
        .bind(t.ttl)
        .bind(t.parent_accessor.as_deref())
        .bind(t.orphan)
        .bind(t.num_uses)
        .bind(t.period)
        .bind(t.explicit_max_ttl)
        .bind(json.meta.as_str())
        .bind(t.renewable)
        .bind(t.path.as_str())
        .bind(t.auth_accessor.as_deref())
        .bind(t.max_ttl)
        .bind(json.cidrs.as_str())
}

#[async_trait]
impl<B> AuthStore for B
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
    for<'r> String: Decode<'r, B::Db> + Type<B::Db>,
    for<'r> Vec<u8>: Decode<'r, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Type<B::Db>,
{
    async fn insert_token_if_none(&self, t: &TokenRecord) -> Result<bool> {
        let json = TokenJson::of(t);
        let mut tx = self.pool().begin().await.map_err(B::map_err)?;
        // A write first: on PostgreSQL the row lock, on SQLite the database's write lock, is
        // held to the commit, so a second server's check waits and then sees our token.
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('first_token_lock', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(&[][..])
        .execute(&mut *tx)
        .await
        .map_err(B::map_err)?;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM (SELECT 1 FROM tokens LIMIT 1) t")
            .fetch_one(&mut *tx)
            .await
            .map_err(B::map_err)?;
        if row.int("n")? > 0 {
            return Ok(false);
        }
        bind_token(sqlx::query(INSERT_TOKEN), t, &json)
            .execute(&mut *tx)
            .await
            .map_err(B::map_err)?;
        tx.commit().await.map_err(B::map_err)?;
        Ok(true)
    }

    async fn insert_auth_mount(&self, m: &AuthMountRecord) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO auth_mounts (path, kind, accessor, description, config, secret_sealed,
                                      default_lease_ttl, max_lease_ttl, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (path) DO NOTHING",
        )
        .bind(m.path.as_str())
        .bind(m.kind.as_str())
        .bind(m.accessor.as_str())
        .bind(m.description.as_str())
        .bind(m.config.as_str())
        .bind(m.secret_sealed.as_deref())
        .bind(m.default_lease_ttl)
        .bind(m.max_lease_ttl)
        .bind(m.created_at)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn get_auth_mount(&self, path: &MountPath) -> Result<Option<AuthMountRecord>> {
        sqlx::query("SELECT * FROM auth_mounts WHERE path = $1")
            .bind(path.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)?
            .as_ref()
            .map(auth_mount_from_row)
            .transpose()
    }

    async fn list_auth_mounts(&self) -> Result<Vec<AuthMountRecord>> {
        sqlx::query("SELECT * FROM auth_mounts ORDER BY path")
            .fetch_all(self.pool())
            .await
            .map_err(B::map_err)?
            .iter()
            .map(auth_mount_from_row)
            .collect()
    }

    async fn update_auth_mount(&self, m: &AuthMountRecord) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE auth_mounts SET description = $2, config = $3, secret_sealed = $4,
                                    default_lease_ttl = $5, max_lease_ttl = $6
             WHERE path = $1",
        )
        .bind(m.path.as_str())
        .bind(m.description.as_str())
        .bind(m.config.as_str())
        .bind(m.secret_sealed.as_deref())
        .bind(m.default_lease_ttl)
        .bind(m.max_lease_ttl)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn delete_auth_mount(&self, path: &MountPath) -> Result<Option<String>> {
        let mut tx = self.pool().begin().await.map_err(B::map_err)?;
        let accessor: Option<String> =
            sqlx::query_scalar("DELETE FROM auth_mounts WHERE path = $1 RETURNING accessor")
                .bind(path.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(B::map_err)?;
        for table in ["auth_roles", "approle_secret_ids", "oidc_requests"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE mount = $1"))
                .bind(path.as_str())
                .execute(&mut *tx)
                .await
                .map_err(B::map_err)?;
        }
        tx.commit().await.map_err(B::map_err)?;
        Ok(accessor)
    }

    async fn put_auth_role(&self, mount: &MountPath, role: &AuthRoleRecord) -> Result<bool> {
        let mut tx = self.pool().begin().await.map_err(B::map_err)?;
        if let Some(role_id) = &role.role_id {
            let taken: Option<String> = sqlx::query_scalar(
                "SELECT name FROM auth_roles WHERE mount = $1 AND role_id = $2 AND name <> $3",
            )
            .bind(mount.as_str())
            .bind(role_id.as_str())
            .bind(role.name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(B::map_err)?;
            if taken.is_some() {
                return Ok(false);
            }
        }
        sqlx::query(
            "INSERT INTO auth_roles (mount, name, body, role_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (mount, name) DO UPDATE SET body = excluded.body,
                                                     role_id = excluded.role_id",
        )
        .bind(mount.as_str())
        .bind(role.name.as_str())
        .bind(role.body.as_str())
        .bind(role.role_id.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(B::map_err)?;
        tx.commit().await.map_err(B::map_err)?;
        Ok(true)
    }

    async fn get_auth_role(
        &self,
        mount: &MountPath,
        name: &RoleName,
    ) -> Result<Option<AuthRoleRecord>> {
        sqlx::query("SELECT name, body, role_id FROM auth_roles WHERE mount = $1 AND name = $2")
            .bind(mount.as_str())
            .bind(name.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)?
            .as_ref()
            .map(auth_role_from_row)
            .transpose()
    }

    async fn find_auth_role_by_role_id(
        &self,
        mount: &MountPath,
        role_id: &str,
    ) -> Result<Option<AuthRoleRecord>> {
        sqlx::query("SELECT name, body, role_id FROM auth_roles WHERE mount = $1 AND role_id = $2")
            .bind(mount.as_str())
            .bind(role_id)
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)?
            .as_ref()
            .map(auth_role_from_row)
            .transpose()
    }

    async fn list_auth_roles(&self, mount: &MountPath) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM auth_roles WHERE mount = $1 ORDER BY name")
            .bind(mount.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(B::map_err)
    }

    async fn delete_auth_role(&self, mount: &MountPath, name: &RoleName) -> Result<bool> {
        let mut tx = self.pool().begin().await.map_err(B::map_err)?;
        let done = sqlx::query("DELETE FROM auth_roles WHERE mount = $1 AND name = $2")
            .bind(mount.as_str())
            .bind(name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(B::map_err)?;
        sqlx::query("DELETE FROM approle_secret_ids WHERE mount = $1 AND role = $2")
            .bind(mount.as_str())
            .bind(name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(B::map_err)?;
        tx.commit().await.map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn insert_secret_id(&self, s: &SecretIdRecord) -> Result<bool> {
        let cidrs = serde_json::to_string(&s.cidr_list).expect("strings serialise");
        let token_cidrs = serde_json::to_string(&s.token_bound_cidrs).expect("strings serialise");
        let metadata = serde_json::to_string(&s.metadata).expect("strings serialise");
        let done = sqlx::query(
            "INSERT INTO approle_secret_ids (hash, accessor, mount, role, uses_left, ttl,
                 expire_at, cidr_list, token_bound_cidrs, metadata, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT DO NOTHING",
        )
        .bind(s.hash.as_slice())
        .bind(s.accessor.as_str())
        .bind(s.mount.as_str())
        .bind(s.role.as_str())
        .bind(s.uses_left)
        .bind(s.ttl)
        .bind(s.expire_at)
        .bind(cidrs.as_str())
        .bind(token_cidrs.as_str())
        .bind(metadata.as_str())
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn find_secret_id(&self, hash: &[u8]) -> Result<Option<SecretIdRecord>> {
        sqlx::query("SELECT * FROM approle_secret_ids WHERE hash = $1")
            .bind(hash)
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)?
            .as_ref()
            .map(secret_id_from_row)
            .transpose()
    }

    async fn find_secret_id_by_accessor(
        &self,
        mount: &MountPath,
        role: &RoleName,
        accessor: &str,
    ) -> Result<Option<SecretIdRecord>> {
        sqlx::query(
            "SELECT * FROM approle_secret_ids WHERE accessor = $1 AND mount = $2 AND role = $3",
        )
        .bind(accessor)
        .bind(mount.as_str())
        .bind(role.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(B::map_err)?
        .as_ref()
        .map(secret_id_from_row)
        .transpose()
    }

    async fn use_secret_id(&self, hash: &[u8], now: i64) -> Result<Option<SecretIdRecord>> {
        // The last use leaves -1 (used up), never 0, which would mean unlimited.
        let row = sqlx::query(
            "UPDATE approle_secret_ids
             SET uses_left = CASE WHEN uses_left = 1 THEN -1
                                  WHEN uses_left > 1 THEN uses_left - 1 ELSE 0 END,
                 updated_at = $2
             WHERE hash = $1 AND uses_left >= 0 AND (expire_at IS NULL OR expire_at > $2)
             RETURNING *",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await
        .map_err(B::map_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut record = secret_id_from_row(&row)?;
        if record.uses_left < 0 {
            sqlx::query("DELETE FROM approle_secret_ids WHERE hash = $1")
                .bind(hash)
                .execute(self.pool())
                .await
                .map_err(B::map_err)?;
            record.uses_left = 1;
        } else if record.uses_left > 0 {
            record.uses_left += 1;
        }
        Ok(Some(record))
    }

    async fn delete_secret_id(
        &self,
        mount: &MountPath,
        role: &RoleName,
        accessor: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM approle_secret_ids WHERE accessor = $1 AND mount = $2 AND role = $3",
        )
        .bind(accessor)
        .bind(mount.as_str())
        .bind(role.as_str())
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn list_secret_id_accessors(
        &self,
        mount: &MountPath,
        role: &RoleName,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT accessor FROM approle_secret_ids WHERE mount = $1 AND role = $2
             ORDER BY accessor",
        )
        .bind(mount.as_str())
        .bind(role.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(B::map_err)
    }

    async fn put_oidc_request(
        &self,
        state_hash: &[u8],
        mount: &MountPath,
        sealed: &[u8],
        expire_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO oidc_requests (state_hash, mount, sealed, expire_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(state_hash)
        .bind(mount.as_str())
        .bind(sealed)
        .bind(expire_at)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(())
    }

    async fn take_oidc_request(
        &self,
        state_hash: &[u8],
        mount: &MountPath,
        now: i64,
    ) -> Result<Option<Vec<u8>>> {
        let sealed: Option<(Vec<u8>, i64)> = sqlx::query_as(
            "DELETE FROM oidc_requests WHERE state_hash = $1 AND mount = $2
             RETURNING sealed, expire_at",
        )
        .bind(state_hash)
        .bind(mount.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(sealed
            .filter(|(_, expire_at)| *expire_at > now)
            .map(|(s, _)| s))
    }

    async fn tidy_auth(&self, now: i64) -> Result<u64> {
        let ids =
            sqlx::query("DELETE FROM approle_secret_ids WHERE uses_left < 0 OR expire_at <= $1")
                .bind(now)
                .execute(self.pool())
                .await
                .map_err(B::map_err)?;
        let requests = sqlx::query("DELETE FROM oidc_requests WHERE expire_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(B::rows_affected(&ids) + B::rows_affected(&requests))
    }
}
