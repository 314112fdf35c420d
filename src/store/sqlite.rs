//! The embedded store: SQLite in WAL mode with `synchronous = FULL`, so a committed intent
//! record survives a power loss, not only a process crash. What only SQLite does lives here:
//! opening the file (0600, in a 0700 directory), the one-server-per-file lock, its error
//! codes, start-up recovery and batch deletes; every other statement is `sql.rs`'s.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};

use super::sqlite_writer::IssueWriter;
use super::{Result, StoreError};
use super::{history_sql, sql};
use crate::model::{KeyRecord, Lease};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Searches the partial index `leases_in_flight_due_at` (a test checks the plan, as for
/// `sql::DUE_IDS`), so start-up costs the same with a thousand or a million active leases.
const RECOVER_ABANDONED_SQL: &str =
    "UPDATE leases SET due_at = $1 WHERE state IN ('pending', 'revoking') AND due_at > $1";

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// An issue's intent row and activation, on the request's thread (`sqlite_writer.rs`).
    writer: IssueWriter,
    /// An exclusive lock on `<database>.lock`, held while the store is open: one server per
    /// SQLite file, so at start-up every claim and intent in it is known to be abandoned.
    lock: Arc<Mutex<Option<File>>>,
    /// This server's id in `replicas` and on the rows it has in flight (`liveness_sql.rs`).
    replica: Arc<str>,
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
            // An embedded connection cannot drop the way a network one can; pinging it before
            // every statement would be one more hop to its worker thread per statement.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migrating {}: {e}", path.display())))?;
        let writer = IssueWriter::open(&path)?;
        Ok(SqliteStore {
            pool,
            writer,
            lock: Arc::new(Mutex::new(lock)),
            replica: super::new_replica_id(),
        })
    }

    /// Inserts many leases in one transaction through one prepared statement (imports and the
    /// lease-scale benchmark), where a commit per row would be bound by fsync.
    pub async fn insert_leases_bulk(&self, leases: &[Lease]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for l in leases {
            sql::bind_lease(sqlx::query(sql::INSERT_LEASE), l, &self.replica)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    /// Inserts many access-key history rows in one transaction (the history-scale benchmark).
    pub async fn insert_key_history_bulk(&self, keys: &[KeyRecord]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for k in keys {
            let meta = history_sql::meta_json(k);
            history_sql::bind_key(sqlx::query(history_sql::INSERT_KEY), k, &meta)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close();
        // Dropping the file releases the lock for the next server on this database.
        self.lock.lock().expect("lock mutex").take();
    }
}

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
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            // Absent, or just deleted by the last connection of a store closing a moment ago
            // (SQLite removes `-wal` and `-shm` then): nothing to tighten; SQLite makes new
            // ones with the database's mode.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            done => done.map_err(|e| unavailable(&p, e))?,
        }
    }
    Ok(())
}

/// Takes the one-server-per-database lock, or says who to stop. In-memory databases have
/// nothing to share, so they need none.
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

/// Whether a SQLite primary result code is one an operator can fix or that passes (a 503, not
/// a 500): BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN. Both drivers' errors go by it.
pub(super) fn operator_can_fix(primary_code: i64) -> bool {
    matches!(primary_code, 5 | 6 | 8 | 10 | 13 | 14)
}

/// Disk full, read-only and lock timeouts are conditions an operator can fix: 503, not 500.
fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let primary = db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            if primary.is_some_and(operator_can_fix) {
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

#[async_trait]
impl sql::Backend for SqliteStore {
    type Db = Sqlite;

    /// None: SQLite runs one writer at a time, so a claim's UPDATE already excludes others.
    const CLAIM_ROW_LOCKS: &'static str = "";

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn replica(&self) -> &str {
        &self.replica
    }

    fn map_err(e: sqlx::Error) -> StoreError {
        map_err(e)
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    async fn recover_abandoned(&self, now: i64) -> Result<u64> {
        // The lock file makes this the only server on the database, so no one can still be
        // working on a pending or revoking lease: all of them are due now, not at their deadline.
        let done = sqlx::query(RECOVER_ABANDONED_SQL)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        // The same for static-role rotations a crashed run had claimed.
        sqlx::query("UPDATE static_roles SET due_at = $1, claim = NULL WHERE claim IS NOT NULL")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn delete_leases(&self, ids: &[String]) -> Result<()> {
        let ids = serde_json::to_string(ids).map_err(|e| StoreError::Other(e.to_string()))?;
        sqlx::query("DELETE FROM leases WHERE id IN (SELECT value FROM json_each($1))")
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn insert_intent(&self, lease: &Lease) -> Result<()> {
        self.writer.insert_lease(lease, &self.replica)
    }

    async fn activate(&self, key: &KeyRecord, due_at: i64) -> Result<bool> {
        self.writer.activate_lease(key, due_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyRecord, LeaseState, MountPath, RoleName};
    use crate::store::{KeyHistoryStore, Store};

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

    fn token(accessor: &str, parent: Option<&str>) -> crate::model::TokenRecord {
        crate::model::TokenRecord::plain(accessor.as_bytes().to_vec(), accessor, parent)
    }

    /// A token tree holding 20,000 leases is revoked in one call that reads none of them into
    /// memory: every lease of the tree is made due, the tokens are gone, a bystander untouched.
    #[tokio::test]
    async fn a_token_tree_with_many_leases_is_revoked_in_one_transaction() {
        let (_d, s) = store().await;
        for (a, parent) in [
            ("p", None),
            ("c", Some("p")),
            ("g", Some("c")),
            ("other", None),
        ] {
            s.insert_token(&token(a, parent)).await.unwrap();
        }
        let far = 1_000_000;
        let leases: Vec<Lease> = (0..20_000)
            .map(|i| {
                let owner = ["p", "c", "g", "other"][i % 4];
                lease(&format!("aws/creds/dev/{i:08}"), LeaseState::Active, far)
                    .with_token_accessor(owner)
            })
            .collect();
        s.insert_leases_bulk(&leases).await.unwrap();
        let done = s.revoke_token_tree("p", 500, false).await.unwrap();
        assert_eq!(done.tokens, 3);
        assert_eq!(done.leases, 15_000);
        assert!(s.find_token_by_accessor("g").await.unwrap().is_none());
        assert!(s.find_token_by_accessor("other").await.unwrap().is_some());
        let due = s.claim_due(500, 600, 100_000).await.unwrap();
        assert_eq!(due.len(), 15_000, "exactly the tree's leases are due");
        assert!(
            due.iter()
                .all(|l| l.token_accessor.as_deref() != Some("other"))
        );
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
        let pending = s.get_lease("aws/creds/dev/a").await.unwrap().unwrap();
        let key = KeyRecord::for_lease(&pending, "AKIA1", "root", &Default::default());
        assert!(s.activate_lease(&key, 100).await.unwrap());
        assert!(!s.activate_lease(&key, 100).await.unwrap());
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

    /// A silent replica's in-flight leases become due; a live one's, this replica's own, and
    /// rows that are not in flight keep their `due_at`.
    #[tokio::test]
    async fn a_silent_replicas_in_flight_leases_are_taken_over() {
        use crate::store::LivenessStore;
        let (_d, s) = store().await;
        for (id, state, owner) in [
            ("aws/creds/dev/live", LeaseState::Pending, "live"),
            ("aws/creds/dev/silent-p", LeaseState::Pending, "silent"),
            ("aws/creds/dev/silent-r", LeaseState::Revoking, "silent"),
            ("aws/creds/dev/silent-a", LeaseState::Active, "silent"),
            ("aws/creds/dev/gone", LeaseState::Revoking, "never-beat"),
            ("aws/creds/dev/mine", LeaseState::Pending, ""),
        ] {
            s.insert_lease(&lease(id, state, 500)).await.unwrap();
            if !owner.is_empty() {
                sqlx::query("UPDATE leases SET owner = $1 WHERE id = $2")
                    .bind(owner)
                    .bind(id)
                    .execute(&s.pool)
                    .await
                    .unwrap();
            }
        }
        for (id, beat) in [("live", 100), ("silent", 80), ("long-gone", 10)] {
            sqlx::query(
                "INSERT INTO replicas (id, host, pid, started_at, heartbeat_ms)
                 VALUES ($1, 'h', 1, 0, $2)",
            )
            .bind(id)
            .bind(beat)
            .execute(&s.pool)
            .await
            .unwrap();
        }
        s.heartbeat(100, "h", 2).await.unwrap();
        // Silent since 90 (now 100): "silent" beat at 80, "never-beat" has no row.
        let found = s.take_over_silent(100, 90, 50).await.unwrap();
        assert_eq!(found.leases, 2 + 1);
        for (id, due_at) in [
            ("silent-p", 100),
            ("silent-r", 100),
            ("gone", 100),
            ("live", 500),
            ("silent-a", 500),
            ("mine", 500),
        ] {
            let l = s.get_lease(&format!("aws/creds/dev/{id}")).await.unwrap();
            assert_eq!(l.unwrap().due_at, due_at, "{id}");
        }
        // A second takeover finds nothing left to move; the long-silent row was forgotten.
        assert_eq!(s.take_over_silent(100, 90, 50).await.unwrap().leases, 0);
        let ids: Vec<String> = s
            .replicas()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(!ids.contains(&"long-gone".to_owned()));
        assert!(ids.contains(&s.replica_id().to_owned()));
        // Retired, this replica's own rows are another's to take over at once.
        s.retire().await.unwrap();
        assert!(
            !s.replicas()
                .await
                .unwrap()
                .iter()
                .any(|r| r.id == s.replica_id())
        );
    }

    /// Start-up recovery used to scan every lease; with a million active ones that was the
    /// whole start-up time. Both it and the reaper's query must stay index searches.
    #[tokio::test]
    async fn recovery_and_reaper_queries_search_an_index() {
        let (_d, s) = store().await;
        for (sql, index) in [
            (RECOVER_ABANDONED_SQL, "leases_in_flight_due_at"),
            (
                crate::store::liveness_sql::TAKE_OVER_LEASES,
                "leases_in_flight_due_at",
            ),
            (sql::DUE_IDS, "leases_due_at"),
            (
                crate::store::history_sql::KEY_HISTORY,
                "key_history_access_key_id",
            ),
            (
                crate::store::history_sql::FORGET_KEYS,
                "key_history_revoke_time",
            ),
        ] {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
            let params = (1..=3i64)
                .filter(|n| sql.contains(&format!("${n}")))
                .count() as i64;
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
                !plan
                    .iter()
                    .any(|p| p.starts_with("SCAN leases") || p.starts_with("SCAN key_history")),
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
