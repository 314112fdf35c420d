//! Which replicas are alive, and the takeover of what a silent one had in flight, written once
//! for both databases like `sql.rs`. A replica beats its row in `replicas`; its `pending` and
//! `revoking` leases and its static-role claims carry its id as `owner`. Another replica that
//! finds an owner silent for `failover_timeout` makes those rows due now, and the ordinary
//! claims (one conditional update each) decide who finishes them, so a takeover can never hand
//! one lease to two replicas.

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use super::Result;
use super::sql::Backend;
use crate::model::{ReplicaRecord, TakeOver};

/// Rows owned by another replica (`$3` is this one) that has not beaten since `$2` (Unix
/// milliseconds), or has no row at all. A macro, so the statements below can be `concat!`ed constants.
macro_rules! silent_owner {
    () => {
        "owner IS NOT NULL AND owner != $3 AND NOT EXISTS (
             SELECT 1 FROM replicas r WHERE r.id = owner AND r.heartbeat_ms >= $2)"
    };
}

/// The takeover of leases: on a partial index of the in-flight rows (a SQLite test checks the
/// plan), so a beat costs the same with a thousand or a million active leases.
pub(super) const TAKE_OVER_LEASES: &str = concat!(
    "UPDATE leases SET due_at = $1
     WHERE state IN ('pending', 'revoking') AND due_at > $1 AND ",
    silent_owner!()
);

const TAKE_OVER_STATIC_ROLES: &str = concat!(
    "UPDATE static_roles SET due_at = $1 WHERE claim IS NOT NULL AND due_at > $1 AND ",
    silent_owner!()
);

#[async_trait]
pub trait LivenessStore: Send + Sync {
    /// This server's replica id (random at every start): the `owner` of what it has in flight.
    fn replica_id(&self) -> &str;
    /// Records that this replica is alive at `now_ms`, creating its row when it has none (the
    /// first beat, or after others forgot it as long silent).
    async fn heartbeat(&self, now_ms: i64, host: &str, pid: i64) -> Result<()>;
    /// Makes due at `now` (seconds, as every `due_at`) every `pending` and `revoking` lease and
    /// every static-role claim whose owner is another replica that has not beaten since
    /// `silent_since_ms` (or has no row), and forgets replicas silent since `forget_before_ms`.
    async fn take_over_silent(
        &self,
        now: i64,
        silent_since_ms: i64,
        forget_before_ms: i64,
    ) -> Result<TakeOver>;
    /// A graceful stop: removes this replica's row, so whatever it still has in flight is
    /// taken over at the next beat of another, not after `failover_timeout`.
    async fn retire(&self) -> Result<()>;
    /// Every replica with a row, most recently beaten first.
    async fn replicas(&self) -> Result<Vec<ReplicaRecord>>;
}

#[async_trait]
impl<B> LivenessStore for B
where
    B: Backend,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    <B::Db as Database>::Row: super::rows::Columns,
    usize: sqlx::ColumnIndex<<B::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + Type<B::Db>,
    for<'r> String: sqlx::Decode<'r, B::Db> + Type<B::Db>,
{
    fn replica_id(&self) -> &str {
        self.replica()
    }

    async fn heartbeat(&self, now_ms: i64, host: &str, pid: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO replicas (id, host, pid, started_at, heartbeat_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms",
        )
        .bind(self.replica())
        .bind(host)
        .bind(pid)
        .bind(now_ms / 1000)
        .bind(now_ms)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(())
    }

    async fn take_over_silent(
        &self,
        now: i64,
        silent_since_ms: i64,
        forget_before_ms: i64,
    ) -> Result<TakeOver> {
        // No transaction: each statement stands alone, and one that runs twice (two replicas
        // taking over at once) finds nothing left to move the second time.
        let mut moved = [0; 2];
        for (n, sql) in moved
            .iter_mut()
            .zip([TAKE_OVER_LEASES, TAKE_OVER_STATIC_ROLES])
        {
            let done = sqlx::query(sql)
                .bind(now)
                .bind(silent_since_ms)
                .bind(self.replica())
                .execute(self.pool())
                .await
                .map_err(B::map_err)?;
            *n = B::rows_affected(&done);
        }
        sqlx::query("DELETE FROM replicas WHERE heartbeat_ms < $1 AND id != $2")
            .bind(forget_before_ms)
            .bind(self.replica())
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(TakeOver {
            leases: moved[0],
            static_roles: moved[1],
        })
    }

    async fn retire(&self) -> Result<()> {
        sqlx::query("DELETE FROM replicas WHERE id = $1")
            .bind(self.replica())
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(())
    }

    async fn replicas(&self) -> Result<Vec<ReplicaRecord>> {
        use super::rows::Columns;
        sqlx::query("SELECT * FROM replicas ORDER BY heartbeat_ms DESC, id")
            .fetch_all(self.pool())
            .await
            .map_err(B::map_err)?
            .iter()
            .map(|row| {
                Ok(ReplicaRecord {
                    id: row.text("id")?,
                    host: row.text("host")?,
                    pid: row.int("pid")?,
                    started_at: row.int("started_at")?,
                    heartbeat_ms: row.int("heartbeat_ms")?,
                })
            })
            .collect()
    }
}
