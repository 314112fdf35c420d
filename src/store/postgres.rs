//! The shared store: PostgreSQL, for several replicas on one database. Replicas coordinate only
//! through its rows (conditional updates, and `FOR UPDATE SKIP LOCKED` claims with a deadline),
//! never through each other. What only PostgreSQL does lives here: connecting, its error codes,
//! the claim's row locks, recovery left to deadlines, batch deletes by array; every other
//! statement is `sql.rs`'s.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult, Postgres};

use super::{Result, StoreError};
use super::{history_sql, sql};
use crate::model::{KeyRecord, Lease};

// sqlx's migrator holds `pg_advisory_lock` (keyed by the database name) while it checks and
// applies migrations, so replicas that start at once apply each migration exactly once.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per replica; PostgreSQL's default `max_connections` (100) fits several replicas.
const POOL_SIZE: u32 = 16;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// This replica's id in `replicas` and on the rows it has in flight (`liveness_sql.rs`).
    replica: Arc<str>,
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
        Ok(PostgresStore {
            pool,
            replica: super::new_replica_id(),
        })
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

#[async_trait]
impl sql::Backend for PostgresStore {
    type Db = Postgres;

    /// SKIP LOCKED: replicas reaping at once take disjoint batches instead of queueing on the
    /// same rows; a row another replica claimed meanwhile fails the re-checked `due_at`.
    const CLAIM_ROW_LOCKS: &'static str = "FOR UPDATE SKIP LOCKED";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn replica(&self) -> &str {
        &self.replica
    }

    fn map_err(e: sqlx::Error) -> StoreError {
        map_err(e)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn close(&self) {
        PostgresStore::close(self).await;
    }

    async fn recover_abandoned(&self, _now: i64) -> Result<u64> {
        // Other replicas may be in the middle of these leases right now: a dead one's are
        // taken over by liveness (`LivenessStore::take_over_silent`), not at start-up.
        Ok(0)
    }

    async fn delete_leases(&self, ids: &[String]) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn insert_intent(&self, lease: &Lease) -> Result<()> {
        // One statement, its own transaction: with synchronous_commit=on (the default) the
        // commit returns once it is durable, so the intent is on disk before the first AWS call.
        sql::bind_lease(sqlx::query(sql::INSERT_LEASE), lease, &self.replica)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn activate(&self, key: &KeyRecord, due_at: i64) -> Result<bool> {
        let meta = history_sql::meta_json(key);
        let recorded = history_sql::bind_key(sqlx::query(history_sql::ACTIVATE_CTE), key, &meta)
            .bind(due_at)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(!recorded.is_empty())
    }
}
