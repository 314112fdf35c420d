//! An issue's two durable writes on SQLite — its intent row and its activation — run on the
//! request's own thread. sqlx's SQLite driver runs every statement on a worker thread per
//! connection, so each commit meant waking that thread and then the request's task again;
//! here the statement, its commit and its fsync run where the request already is (inside
//! `block_in_place`, so the runtime's other tasks move to another thread meanwhile): 0.19 ms
//! each back to back, where sqlx took 0.32 and 0.45 ms (bench/RESULTS.md). The SQL is
//! `sql.rs`'s and `history_sql.rs`'s; only the binding is this driver's (rusqlite, on the
//! same libsqlite3 as sqlx).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::ToSql;
use rusqlite::{CachedStatement, Connection, TransactionBehavior, named_params, params};
use tokio::runtime::{Handle, RuntimeFlavor};

use super::history_sql::{ACTIVATE_UPDATE, INSERT_KEY, meta_json};
use super::sql::INSERT_LEASE;
use super::sqlite::operator_can_fix;
use super::{Result, StoreError};
use crate::model::{KeyRecord, Lease};

/// One connection: SQLite takes one writer at a time, so writers queue on its mutex instead
/// of sleeping in SQLite's busy handler (a millisecond and up) while another commits.
#[derive(Debug, Clone)]
pub(super) struct IssueWriter {
    /// `None` once the store is closed.
    conn: Arc<Mutex<Option<Connection>>>,
}

impl IssueWriter {
    /// A connection to the database that `SqliteStore::open` has already created and migrated,
    /// with that store's durability settings (WAL is the file's; the rest are per connection).
    pub(super) fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(map_err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(map_err)?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(map_err)?;
        Ok(IssueWriter {
            conn: Arc::new(Mutex::new(Some(conn))),
        })
    }

    /// `Store::insert_lease`: one statement, its own transaction, durable when it returns.
    pub(super) fn insert_lease(&self, l: &Lease, owner: &str) -> Result<()> {
        self.with(|conn| {
            // The order of `sql::bind_lease`, which binds the same statement for sqlx.
            execute_numbered(
                &mut conn.prepare_cached(INSERT_LEASE)?,
                params![
                    l.id,
                    l.mount.as_str(),
                    l.role.as_str(),
                    l.credential_type.as_str(),
                    l.state.as_str(),
                    l.username,
                    l.access_key_id,
                    l.issue_time,
                    l.expire_time,
                    l.max_expire_time,
                    l.last_renewal,
                    l.ttl,
                    l.renewable,
                    l.due_at,
                    l.attempts,
                    l.last_error,
                    l.token_accessor,
                    owner,
                ],
            )?;
            Ok(())
        })
    }

    /// `KeyHistoryStore::activate_lease`: the UPDATE and, when it won the pending lease, the
    /// key's history row, in one transaction.
    pub(super) fn activate_lease(&self, k: &KeyRecord, due_at: i64) -> Result<bool> {
        let meta = meta_json(k);
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let won = tx.prepare_cached(ACTIVATE_UPDATE)?.execute(named_params! {
                "$1": k.lease_id,
                "$2": k.access_key_id,
                "$13": due_at,
            })? == 1;
            if won {
                // The order of `history_sql::bind_key`.
                execute_numbered(
                    &mut tx.prepare_cached(INSERT_KEY)?,
                    params![
                        k.lease_id,
                        k.access_key_id,
                        k.mount.as_str(),
                        k.role.as_str(),
                        k.credential_type.as_str(),
                        k.username,
                        k.requester,
                        k.token_accessor,
                        meta,
                        k.issue_time,
                        k.expire_time,
                        k.revoke_time,
                    ],
                )?;
                tx.commit()?;
            }
            // Dropped without a commit, the transaction rolls back.
            Ok(won)
        })
    }

    /// Closes the connection (the store is closing; its lock file goes next).
    pub(super) fn close(&self) {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Runs `f` on this thread with the connection. On tokio's multi-threaded runtime the
    /// worker hands its other tasks to another thread for the duration; a current-thread
    /// runtime (unit tests) just waits the fraction of a millisecond a commit takes.
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let run = || {
            let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            let conn = conn
                .as_mut()
                .ok_or_else(|| StoreError::Unavailable("the store is closed".into()))?;
            f(conn).map_err(map_err)
        };
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(run),
            _ => run(),
        }
    }
}

/// Binds `values[i]` to the parameter named `$i+1` and runs the statement. SQLite numbers
/// `$N` parameters by first appearance, not by `N`; sqlx binds them by name, and so does this.
fn execute_numbered(
    stmt: &mut CachedStatement<'_>,
    values: &[&dyn ToSql],
) -> rusqlite::Result<usize> {
    for (i, value) in values.iter().enumerate() {
        let name = format!("${}", i + 1);
        let index = stmt
            .parameter_index(&name)?
            .ok_or(rusqlite::Error::InvalidParameterName(name))?;
        stmt.raw_bind_parameter(index, value)?;
    }
    stmt.raw_execute()
}

/// The same classes as the sqlx driver's errors (`sqlite::operator_can_fix`).
fn map_err(e: rusqlite::Error) -> StoreError {
    let primary = e.sqlite_error().map(|f| i64::from(f.extended_code) & 0xff);
    if primary.is_some_and(operator_can_fix) {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Other(e.to_string())
    }
}
