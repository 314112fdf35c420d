//! The shared store: PostgreSQL, for several replicas on one database. Every statement mirrors
//! `sqlite.rs`; replicas coordinate only through these rows (conditional updates, and
//! `FOR UPDATE SKIP LOCKED` claims with a deadline), never through each other.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, migrate::Migrator};

use super::{
    LeaseStats, MountRecord, Result, RootConfigRecord, Store, StoreError, TokenRecord,
    prefix_upper_bound,
};
use crate::model::{CredentialType, Lease, LeaseState, MountPath, RoleName};

// sqlx's migrator holds `pg_advisory_lock` (keyed by the database name) while it checks and
// applies migrations, so replicas that start at once apply each migration exactly once.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

const LEASE_COLUMNS: &str = "id, mount, role, credential_type, state, username, access_key_id, \
     issue_time, expire_time, max_expire_time, last_renewal, ttl, renewable, due_at, attempts, last_error, \
     token_accessor";

/// Connections per replica; PostgreSQL's default `max_connections` (100) fits several replicas.
const POOL_SIZE: u32 = 16;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl PostgresStore {
    /// Connects to the database at a `postgres://` URL (TLS through the URL's `sslmode`,
    /// `sslrootcert`, `sslcert`, `sslkey`) and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migrating the PostgreSQL schema: {e}")))?;
        Ok(PostgresStore { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Lost connections, a database shutting down or out of space, lock conflicts: conditions that
/// pass or an operator can fix, so 503 rather than 500.
fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // 08: connection exception; 53: insufficient resources; 57P0x: shutting down or
            // not accepting connections; 25006: read-only (a standby); 40: serialization/deadlock.
            if code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P0")
                || code == "25006"
                || code.starts_with("40")
            {
                StoreError::Unavailable(db.message().to_owned())
            } else {
                StoreError::Other(e.to_string())
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn lease_from_row(row: &PgRow) -> Result<Lease> {
    let get_str = |c: &str| row.try_get::<String, _>(c).map_err(|e| corrupt(c, e));
    let get_i64 = |c: &str| row.try_get::<i64, _>(c).map_err(|e| corrupt(c, e));
    let get_opt_str = |c: &str| {
        row.try_get::<Option<String>, _>(c)
            .map_err(|e| corrupt(c, e))
    };
    let state = get_str("state")?;
    let ctype = get_str("credential_type")?;
    Ok(Lease {
        id: get_str("id")?,
        mount: MountPath::parse(&get_str("mount")?).map_err(|e| corrupt("mount", e))?,
        role: RoleName::parse(&get_str("role")?).map_err(|e| corrupt("role", e))?,
        credential_type: serde_json::from_value::<CredentialType>(serde_json::Value::String(
            ctype.clone(),
        ))
        .map_err(|e| corrupt("credential_type", e))?,
        state: LeaseState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        username: get_opt_str("username")?,
        access_key_id: get_opt_str("access_key_id")?,
        issue_time: get_i64("issue_time")?,
        expire_time: get_i64("expire_time")?,
        max_expire_time: get_i64("max_expire_time")?,
        last_renewal: row
            .try_get::<Option<i64>, _>("last_renewal")
            .map_err(|e| corrupt("last_renewal", e))?,
        ttl: get_i64("ttl")?,
        renewable: row
            .try_get::<bool, _>("renewable")
            .map_err(|e| corrupt("renewable", e))?,
        due_at: get_i64("due_at")?,
        attempts: get_i64("attempts")?,
        last_error: get_opt_str("last_error")?,
        token_accessor: get_opt_str("token_accessor")?,
    })
}

fn token_from_row(r: &PgRow) -> Result<TokenRecord> {
    let policies: String = r.try_get("policies").map_err(|e| corrupt("policies", e))?;
    Ok(TokenRecord {
        hash: r.try_get("hash").map_err(|e| corrupt("hash", e))?,
        accessor: r.try_get("accessor").map_err(|e| corrupt("accessor", e))?,
        policies: serde_json::from_str(&policies).map_err(|e| corrupt("policies", e))?,
        display_name: r
            .try_get("display_name")
            .map_err(|e| corrupt("display_name", e))?,
        created_at: r
            .try_get("created_at")
            .map_err(|e| corrupt("created_at", e))?,
        expire_at: r
            .try_get("expire_at")
            .map_err(|e| corrupt("expire_at", e))?,
        ttl: r.try_get("ttl").map_err(|e| corrupt("ttl", e))?,
    })
}

fn mount_from_row(row: &PgRow) -> Result<MountRecord> {
    let opt = |c: &str| row.try_get::<Option<i64>, _>(c).map_err(|e| corrupt(c, e));
    Ok(MountRecord {
        path: MountPath::parse(
            &row.try_get::<String, _>("path")
                .map_err(|e| corrupt("path", e))?,
        )
        .map_err(|e| corrupt("path", e))?,
        kind: row.try_get("kind").map_err(|e| corrupt("kind", e))?,
        description: row
            .try_get("description")
            .map_err(|e| corrupt("description", e))?,
        default_lease_ttl: opt("default_lease_ttl")?,
        max_lease_ttl: opt("max_lease_ttl")?,
        lease_ttl: opt("lease_ttl")?,
        lease_max: opt("lease_max")?,
        created_at: row
            .try_get("created_at")
            .map_err(|e| corrupt("created_at", e))?,
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn close(&self) {
        PostgresStore::close(self).await;
    }

    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn put_meta_if_absent(&self, key: &str, value: &[u8]) -> Result<bool> {
        let done =
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_mount(&self, m: &MountRecord) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO mounts (path, kind, description, default_lease_ttl, max_lease_ttl, lease_ttl, lease_max, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(m.path.as_str())
        .bind(&m.kind)
        .bind(&m.description)
        .bind(m.default_lease_ttl)
        .bind(m.max_lease_ttl)
        .bind(m.lease_ttl)
        .bind(m.lease_max)
        .bind(m.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_mount(&self, path: &MountPath) -> Result<Option<MountRecord>> {
        sqlx::query("SELECT * FROM mounts WHERE path = $1")
            .bind(path.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(mount_from_row)
            .transpose()
    }

    async fn list_mounts(&self) -> Result<Vec<MountRecord>> {
        sqlx::query("SELECT * FROM mounts ORDER BY path")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
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
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_mount(&self, path: &MountPath) -> Result<bool> {
        // Roles and root config go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM mounts WHERE path = $1")
            .bind(path.as_str())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
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
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn get_root_config(&self, mount: &MountPath) -> Result<Option<RootConfigRecord>> {
        let row =
            sqlx::query("SELECT config, secret_sealed, version FROM root_configs WHERE mount = $1")
                .bind(mount.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(|r| {
            Ok(RootConfigRecord {
                config: r.try_get("config").map_err(|e| corrupt("config", e))?,
                secret_sealed: r
                    .try_get("secret_sealed")
                    .map_err(|e| corrupt("secret_sealed", e))?,
                version: r.try_get("version").map_err(|e| corrupt("version", e))?,
            })
        })
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
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn get_role(&self, mount: &MountPath, name: &RoleName) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT body FROM roles WHERE mount = $1 AND name = $2")
            .bind(mount.as_str())
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn list_roles(&self, mount: &MountPath) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM roles WHERE mount = $1 ORDER BY name")
            .bind(mount.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn delete_role(&self, mount: &MountPath, name: &RoleName) -> Result<bool> {
        let done = sqlx::query("DELETE FROM roles WHERE mount = $1 AND name = $2")
            .bind(mount.as_str())
            .bind(name.as_str())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_token(&self, t: &TokenRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (hash, accessor, policies, display_name, created_at, expire_at, ttl)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hash) DO NOTHING",
        )
        .bind(&t.hash)
        .bind(&t.accessor)
        .bind(serde_json::to_string(&t.policies).expect("strings serialise"))
        .bind(&t.display_name)
        .bind(t.created_at)
        .bind(t.expire_at)
        .bind(t.ttl)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn find_token(&self, hash: &[u8]) -> Result<Option<TokenRecord>> {
        sqlx::query("SELECT * FROM tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(token_from_row)
            .transpose()
    }

    async fn find_token_by_accessor(&self, accessor: &str) -> Result<Option<TokenRecord>> {
        sqlx::query("SELECT * FROM tokens WHERE accessor = $1")
            .bind(accessor)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(token_from_row)
            .transpose()
    }

    async fn delete_token(&self, accessor: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tokens WHERE accessor = $1")
            .bind(accessor)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_token_expiry(&self, accessor: &str, expire_at: i64) -> Result<()> {
        sqlx::query("UPDATE tokens SET expire_at = $2 WHERE accessor = $1")
            .bind(accessor)
            .bind(expire_at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn has_tokens(&self) -> Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tokens)")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn put_policy(&self, name: &str, body: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO policies (name, body) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET body = excluded.body",
        )
        .bind(name)
        .bind(body)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn get_policy(&self, name: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT body FROM policies WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn list_policies(&self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM policies ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn delete_policy(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM policies WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_lease(&self, l: &Lease) -> Result<()> {
        // A commit returns once the WAL is flushed (synchronous_commit=on, PostgreSQL's
        // default): the intent record is durable before the first AWS call.
        sqlx::query(&format!(
            "INSERT INTO leases ({LEASE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ))
        .bind(&l.id)
        .bind(l.mount.as_str())
        .bind(l.role.as_str())
        .bind(l.credential_type.as_str())
        .bind(l.state.as_str())
        .bind(&l.username)
        .bind(&l.access_key_id)
        .bind(l.issue_time)
        .bind(l.expire_time)
        .bind(l.max_expire_time)
        .bind(l.last_renewal)
        .bind(l.ttl)
        .bind(l.renewable)
        .bind(l.due_at)
        .bind(l.attempts)
        .bind(&l.last_error)
        .bind(&l.token_accessor)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn get_lease(&self, id: &str) -> Result<Option<Lease>> {
        sqlx::query(&format!("SELECT {LEASE_COLUMNS} FROM leases WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(lease_from_row)
            .transpose()
    }

    async fn activate_lease(
        &self,
        id: &str,
        access_key_id: Option<&str>,
        due_at: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE leases SET state = 'active', access_key_id = $2, due_at = $3
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(access_key_id)
        .bind(due_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn renew_lease(&self, id: &str, expire_time: i64, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE leases SET expire_time = $2, due_at = $2, last_renewal = $3
             WHERE id = $1 AND state = 'active'",
        )
        .bind(id)
        .bind(expire_time)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn lease_stats(&self, now: i64) -> Result<LeaseStats> {
        let counts = sqlx::query_as::<_, (String, String, String, i64)>(
            "SELECT mount, role, state, COUNT(*) FROM leases GROUP BY mount, role, state",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        // One step down the due_at index; a claimed lease counts once its claim has lapsed.
        let oldest_overdue = sqlx::query_scalar::<_, i64>(
            "SELECT due_at FROM leases WHERE due_at <= $1 ORDER BY due_at LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(LeaseStats {
            counts,
            oldest_overdue,
        })
    }

    async fn delete_leases(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM leases WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn recover_abandoned(&self, _now: i64) -> Result<u64> {
        // Other replicas may be in the middle of these leases right now; only their deadlines
        // (`pending_grace`, `claim_timeout`) can tell an abandoned one from a slow one.
        Ok(0)
    }

    async fn claim_lease(&self, id: &str, now: i64, deadline: i64) -> Result<Option<Lease>> {
        // A concurrent claimant of the same row waits for the first to commit, then PostgreSQL
        // re-checks the WHERE clause against the new row: only one of them gets it.
        sqlx::query(&format!(
            "UPDATE leases SET state = 'revoking', due_at = $3
             WHERE id = $1 AND (state != 'revoking' OR due_at <= $2)
             RETURNING {LEASE_COLUMNS}"
        ))
        .bind(id)
        .bind(now)
        .bind(deadline)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(lease_from_row)
        .transpose()
    }

    async fn claim_due(&self, now: i64, deadline: i64, limit: i64) -> Result<Vec<Lease>> {
        // SKIP LOCKED: replicas reaping at once take disjoint batches instead of queueing on the
        // same rows; a row another replica claimed meanwhile fails the re-checked `due_at`.
        sqlx::query(&format!(
            "UPDATE leases SET state = 'revoking', due_at = $2
             WHERE id IN (SELECT id FROM leases WHERE due_at <= $1 ORDER BY due_at LIMIT $3
                          FOR UPDATE SKIP LOCKED)
             RETURNING {LEASE_COLUMNS}"
        ))
        .bind(now)
        .bind(deadline)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
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
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn delete_lease(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn list_lease_ids(
        &self,
        prefix: &str,
        state: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT id FROM leases WHERE id >= $1 AND id < $2 AND id > $4
             AND ($3::text IS NULL OR state = $3) ORDER BY id LIMIT $5",
        )
        .bind(prefix)
        .bind(prefix_upper_bound(prefix))
        .bind(state)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }
}
