//! The embedded store: SQLite in WAL mode with `synchronous = FULL`, so a committed intent
//! record survives a power loss, not only a process crash.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, migrate::Migrator};

use super::{
    LeaseStats, MountRecord, Result, RootConfigRecord, Store, StoreError, TokenRecord,
    prefix_upper_bound,
};
use crate::model::{CredentialType, Lease, LeaseState, MountPath, RoleName};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

const LEASE_COLUMNS: &str = "id, mount, role, credential_type, state, username, access_key_id, \
     issue_time, expire_time, max_expire_time, last_renewal, ttl, renewable, due_at, attempts, last_error, \
     token_accessor";

/// Both hit an index (`leases_in_flight_due_at`, `leases_due_at`; a test checks the plans), so
/// start-up and each reaper pass cost the same with a thousand or a million active leases.
const RECOVER_ABANDONED_SQL: &str =
    "UPDATE leases SET due_at = ?1 WHERE state IN ('pending', 'revoking') AND due_at > ?1";
const DUE_IDS_SQL: &str = "SELECT id FROM leases WHERE due_at <= ?1 ORDER BY due_at LIMIT ?3";

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// An exclusive lock on `<database>.lock`, held while the store is open: one server per
    /// SQLite file, so at start-up every claim and intent in it is known to be abandoned.
    lock: Arc<Mutex<Option<File>>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at a `sqlite://PATH` URL or a plain path, and
    /// brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        let path = sqlite_path(url);
        // A directory we make for the store is the owner's alone.
        if let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
        }
        let lock = lock_database(&path)?;
        make_private(&path)?;
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| StoreError::Other(format!("bad SQLite URL {url:?}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migrating {}: {e}", path.display())))?;
        Ok(SqliteStore {
            pool,
            lock: Arc::new(Mutex::new(lock)),
        })
    }

    /// Inserts many leases in one transaction through one prepared statement (imports and the
    /// lease-scale benchmark), where a commit per row would be bound by fsync.
    pub async fn insert_leases_bulk(&self, leases: &[Lease]) -> Result<()> {
        let sql = insert_lease_sql();
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for l in leases {
            bind_lease(sqlx::query(&sql), l)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    pub async fn close(&self) {
        self.pool.close().await;
        // Dropping the file releases the lock for the next server on this database.
        self.lock.lock().expect("lock mutex").take();
    }
}

/// Takes the one-server-per-database lock, or says who to stop. In-memory databases have
/// nothing to share, so they need none.
/// The database holds sealed secrets, token hashes and every lease: only its owner may read it.
/// The file is created 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm` files the
/// database's mode), and files an older version left readable are tightened.
fn make_private(path: &Path) -> Result<()> {
    let name = path.to_string_lossy();
    if name.is_empty() || name.contains(":memory:") || name.contains("mode=memory") {
        return Ok(());
    }
    let unavailable = |p: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!("cannot make {} private: {e}", p.display()))
    };
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| unavailable(path, e))?;
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let p = PathBuf::from(format!("{name}{suffix}"));
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| unavailable(&p, e))?;
        }
    }
    Ok(())
}

fn lock_database(path: &Path) -> Result<Option<File>> {
    let name = path.to_string_lossy();
    if name.is_empty() || name.contains(":memory:") || name.contains("mode=memory") {
        return Ok(None);
    }
    let lock_path = PathBuf::from(format!("{name}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", lock_path.display()))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "{} is in use by another iamlease server; stop it first (several servers need \
             storage = \"postgres://…\")",
            path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

/// `sqlite://./data/x.db?mode=rwc` → `./data/x.db`; a plain path is taken as it is.
fn sqlite_path(url: &str) -> PathBuf {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let rest = rest.split('?').next().unwrap_or(rest);
    Path::new(rest).to_path_buf()
}

/// Disk full, read-only and lock timeouts are conditions an operator can fix: 503, not 500.
fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let primary = db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            match primary {
                // BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN
                Some(5 | 6 | 8 | 10 | 13 | 14) => StoreError::Unavailable(db.message().to_owned()),
                _ => StoreError::Other(e.to_string()),
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

fn insert_lease_sql() -> String {
    format!(
        "INSERT INTO leases ({LEASE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    )
}

fn bind_lease<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    l: &'q Lease,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
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
        .bind(l.renewable as i64)
        .bind(l.due_at)
        .bind(l.attempts)
        .bind(&l.last_error)
        .bind(&l.token_accessor)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn lease_from_row(row: &SqliteRow) -> Result<Lease> {
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
        renewable: get_i64("renewable")? != 0,
        due_at: get_i64("due_at")?,
        attempts: get_i64("attempts")?,
        last_error: get_opt_str("last_error")?,
        token_accessor: get_opt_str("token_accessor")?,
    })
}

fn token_from_row(r: &SqliteRow) -> Result<TokenRecord> {
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

fn mount_from_row(row: &SqliteRow) -> Result<MountRecord> {
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
impl Store for SqliteStore {
    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn put_meta_if_absent(&self, key: &str, value: &[u8]) -> Result<bool> {
        let done =
            sqlx::query("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
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
        sqlx::query("SELECT * FROM mounts WHERE path = ?1")
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
        let done = sqlx::query("UPDATE mounts SET lease_ttl = ?2, lease_max = ?3 WHERE path = ?1")
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
        let done = sqlx::query("DELETE FROM mounts WHERE path = ?1")
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
            "INSERT INTO root_configs (mount, config, secret_sealed, version) VALUES (?1, ?2, ?3, 1)
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
            sqlx::query("SELECT config, secret_sealed, version FROM root_configs WHERE mount = ?1")
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
            "INSERT INTO roles (mount, name, body) VALUES (?1, ?2, ?3)
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
        sqlx::query_scalar("SELECT body FROM roles WHERE mount = ?1 AND name = ?2")
            .bind(mount.as_str())
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn list_roles(&self, mount: &MountPath) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM roles WHERE mount = ?1 ORDER BY name")
            .bind(mount.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn delete_role(&self, mount: &MountPath, name: &RoleName) -> Result<bool> {
        let done = sqlx::query("DELETE FROM roles WHERE mount = ?1 AND name = ?2")
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (hash) DO NOTHING",
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
        sqlx::query("SELECT * FROM tokens WHERE hash = ?1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(token_from_row)
            .transpose()
    }

    async fn find_token_by_accessor(&self, accessor: &str) -> Result<Option<TokenRecord>> {
        sqlx::query("SELECT * FROM tokens WHERE accessor = ?1")
            .bind(accessor)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(token_from_row)
            .transpose()
    }

    async fn delete_token(&self, accessor: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tokens WHERE accessor = ?1")
            .bind(accessor)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_token_expiry(&self, accessor: &str, expire_at: i64) -> Result<()> {
        sqlx::query("UPDATE tokens SET expire_at = ?2 WHERE accessor = ?1")
            .bind(accessor)
            .bind(expire_at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn put_policy(&self, name: &str, body: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO policies (name, body) VALUES (?1, ?2)
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
        sqlx::query_scalar("SELECT body FROM policies WHERE name = ?1")
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
        let done = sqlx::query("DELETE FROM policies WHERE name = ?1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn has_tokens(&self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tokens)")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n != 0)
    }

    async fn insert_lease(&self, l: &Lease) -> Result<()> {
        bind_lease(sqlx::query(&insert_lease_sql()), l)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn get_lease(&self, id: &str) -> Result<Option<Lease>> {
        sqlx::query(&format!("SELECT {LEASE_COLUMNS} FROM leases WHERE id = ?1"))
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
            "UPDATE leases SET state = 'active', access_key_id = ?2, due_at = ?3
             WHERE id = ?1 AND state = 'pending'",
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
            "UPDATE leases SET expire_time = ?2, due_at = ?2, last_renewal = ?3
             WHERE id = ?1 AND state = 'active'",
        )
        .bind(id)
        .bind(expire_time)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn recover_abandoned(&self, now: i64) -> Result<u64> {
        // The lock file makes this the only server on the database, so no one can still be
        // working on a pending or revoking lease: all of them are due now, not at their deadline.
        let done = sqlx::query(RECOVER_ABANDONED_SQL)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn claim_lease(&self, id: &str, now: i64, deadline: i64) -> Result<Option<Lease>> {
        sqlx::query(&format!(
            "UPDATE leases SET state = 'revoking', due_at = ?3
             WHERE id = ?1 AND (state != 'revoking' OR due_at <= ?2)
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
        sqlx::query(&format!(
            "UPDATE leases SET state = 'revoking', due_at = ?2
             WHERE id IN ({DUE_IDS_SQL})
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
            "UPDATE leases SET state = 'failed', last_error = ?2, due_at = ?3, attempts = attempts + 1
             WHERE id = ?1 AND state = 'revoking'",
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
        sqlx::query("DELETE FROM leases WHERE id = ?1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn delete_leases(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = serde_json::to_string(ids).map_err(|e| StoreError::Other(e.to_string()))?;
        sqlx::query("DELETE FROM leases WHERE id IN (SELECT value FROM json_each(?1))")
            .bind(ids)
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
            "SELECT id FROM leases WHERE id >= ?1 AND id < ?2 AND id > ?4
             AND (?3 IS NULL OR state = ?3) ORDER BY id LIMIT ?5",
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

    async fn count_leases_with_prefix(&self, prefix: &str) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM leases WHERE id >= ?1 AND id < ?2")
            .bind(prefix)
            .bind(prefix_upper_bound(prefix))
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn lease_stats(&self, now: i64) -> Result<LeaseStats> {
        let counts = sqlx::query_as::<_, (String, String, String, i64)>(
            "SELECT mount, role, state, COUNT(*) FROM leases GROUP BY mount, role, state",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        // One step down the due_at index. A lease being revoked has its claim deadline as
        // due_at, so it counts only once its claimant is presumed dead.
        let oldest_overdue = sqlx::query_scalar::<_, i64>(
            "SELECT due_at FROM leases WHERE due_at <= ?1 ORDER BY due_at LIMIT 1",
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
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        (dir, s)
    }

    fn lease(id: &str, state: LeaseState, due_at: i64) -> Lease {
        Lease::pending_iam_user(
            MountPath::parse("aws").unwrap(),
            RoleName::parse("dev").unwrap(),
            "u".into(),
            0,
            100,
            1000,
            due_at,
        )
        .with_id(id)
        .with_state(state, due_at)
    }

    #[tokio::test]
    async fn one_server_per_database_file() {
        let (dir, s) = store().await;
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let err = SqliteStore::open(&url).await.unwrap_err().to_string();
        assert!(err.contains("in use by another iamlease server"), "{err}");
        s.close().await;
        SqliteStore::open(&url).await.expect("free once closed");
    }

    #[tokio::test]
    async fn recovery_makes_abandoned_work_due_now() {
        let (_d, s) = store().await;
        s.insert_lease(&lease("aws/creds/dev/p", LeaseState::Pending, 500))
            .await
            .unwrap();
        s.insert_lease(&lease("aws/creds/dev/a", LeaseState::Active, 500))
            .await
            .unwrap();
        s.insert_lease(&lease("aws/creds/dev/r", LeaseState::Active, 500))
            .await
            .unwrap();
        s.claim_lease("aws/creds/dev/r", 10, 400).await.unwrap();
        assert_eq!(s.recover_abandoned(20).await.unwrap(), 2);
        let mut due: Vec<String> = s
            .claim_due(20, 80, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect();
        due.sort();
        assert_eq!(due, ["aws/creds/dev/p", "aws/creds/dev/r"]);
    }

    #[tokio::test]
    async fn lease_state_machine_transitions_are_conditional() {
        let (_d, s) = store().await;
        s.insert_lease(&lease("aws/creds/dev/a", LeaseState::Pending, 50))
            .await
            .unwrap();
        // pending → active once; a second activation is refused.
        assert!(
            s.activate_lease("aws/creds/dev/a", Some("AKIA1"), 100)
                .await
                .unwrap()
        );
        assert!(
            !s.activate_lease("aws/creds/dev/a", Some("AKIA1"), 100)
                .await
                .unwrap()
        );
        assert!(s.renew_lease("aws/creds/dev/a", 200, 10).await.unwrap());
        let l = s.get_lease("aws/creds/dev/a").await.unwrap().unwrap();
        assert_eq!(
            (l.expire_time, l.due_at, l.last_renewal),
            (200, 200, Some(10))
        );

        // Claimed once; a second claimant gets nothing until the deadline passes.
        let claimed = s
            .claim_lease("aws/creds/dev/a", 10, 70)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.state, LeaseState::Revoking);
        assert!(
            s.claim_lease("aws/creds/dev/a", 20, 80)
                .await
                .unwrap()
                .is_none()
        );
        assert!(!s.renew_lease("aws/creds/dev/a", 300, 20).await.unwrap());
        assert!(
            s.claim_lease("aws/creds/dev/a", 70, 90)
                .await
                .unwrap()
                .is_some()
        );

        s.fail_lease("aws/creds/dev/a", "boom", 120).await.unwrap();
        let l = s.get_lease("aws/creds/dev/a").await.unwrap().unwrap();
        assert_eq!(l.state, LeaseState::Failed);
        assert_eq!(l.attempts, 1);
        assert_eq!(l.last_error.as_deref(), Some("boom"));
        s.delete_lease("aws/creds/dev/a").await.unwrap();
        assert!(s.get_lease("aws/creds/dev/a").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn claim_due_takes_only_what_is_due_and_each_once() {
        let (_d, s) = store().await;
        s.insert_lease(&lease("aws/creds/dev/1", LeaseState::Active, 5))
            .await
            .unwrap();
        s.insert_lease(&lease("aws/creds/dev/2", LeaseState::Failed, 9))
            .await
            .unwrap();
        s.insert_lease(&lease("aws/creds/dev/3", LeaseState::Active, 50))
            .await
            .unwrap();
        let mut got: Vec<String> = s
            .claim_due(10, 40, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect();
        got.sort();
        assert_eq!(got, ["aws/creds/dev/1", "aws/creds/dev/2"]);
        assert!(s.claim_due(10, 40, 100).await.unwrap().is_empty());
        // After the claim deadline, an abandoned claim is due again (crash recovery).
        assert_eq!(s.claim_due(45, 90, 100).await.unwrap().len(), 2);
        assert_eq!(s.claim_due(60, 90, 1).await.unwrap().len(), 1);
        s.delete_leases(&["aws/creds/dev/1".into(), "aws/creds/dev/3".into()])
            .await
            .unwrap();
        assert!(s.get_lease("aws/creds/dev/1").await.unwrap().is_none());
        assert!(s.get_lease("aws/creds/dev/2").await.unwrap().is_some());
        assert!(s.get_lease("aws/creds/dev/3").await.unwrap().is_none());
    }

    /// Start-up recovery used to scan every lease; with a million active ones that was the
    /// whole start-up time. Both it and the reaper's query must stay index searches.
    #[tokio::test]
    async fn recovery_and_reaper_queries_search_an_index() {
        let (_d, s) = store().await;
        for (sql, index) in [
            (RECOVER_ABANDONED_SQL, "leases_in_flight_due_at"),
            (DUE_IDS_SQL, "leases_due_at"),
        ] {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
            let params = if sql.contains("?3") { 3 } else { 1 };
            for p in 0..params {
                query = query.bind(p);
            }
            let rows = query.fetch_all(&s.pool).await.unwrap();
            let plan: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
            assert!(
                plan.iter()
                    .any(|p| p.contains(&format!("USING INDEX {index}"))),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|p| p.starts_with("SCAN leases")),
                "{sql}: {plan:?}"
            );
        }
    }

    #[tokio::test]
    async fn prefix_listing_pages() {
        let (_d, s) = store().await;
        for id in [
            "aws/creds/dev/a",
            "aws/creds/dev/b",
            "aws/creds/devx/c",
            "aws2/creds/dev/d",
        ] {
            s.insert_lease(&lease(id, LeaseState::Active, 100))
                .await
                .unwrap();
        }
        assert_eq!(
            s.list_lease_ids("aws/creds/dev/", None, None, 10)
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            s.list_lease_ids("aws/", None, None, 10)
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            s.list_lease_ids("", Some("failed"), None, 10)
                .await
                .unwrap()
                .len(),
            0
        );
        let page1 = s.list_lease_ids("aws", None, None, 2).await.unwrap();
        assert_eq!(page1, ["aws/creds/dev/a", "aws/creds/dev/b"]);
        let page2 = s
            .list_lease_ids("aws", None, Some(&page1[1]), 2)
            .await
            .unwrap();
        assert_eq!(page2, ["aws/creds/devx/c", "aws2/creds/dev/d"]);
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            sqlite_path("sqlite://./d/x.db?mode=rwc"),
            PathBuf::from("./d/x.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db"),
            PathBuf::from("/tmp/x.db")
        );
        assert_eq!(sqlite_path("/tmp/y.db"), PathBuf::from("/tmp/y.db"));
    }
}
