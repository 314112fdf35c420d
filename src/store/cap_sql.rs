//! A role's `max_leases`, exact however many issues run at once (on any replicas), written once
//! for both databases like `sql.rs`: the count and the insert are one transaction whose first
//! statement locks one row per role, so a second issue of the same role waits for the first to
//! commit and then counts its lease.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::Result;
use super::history_sql::{INSERT_KEY, bind_key, due_now_if_token_gone, meta_json};
use super::prefix_upper_bound;
use super::rows::Columns;
use super::sql::{self, Backend};
use crate::model::{KeyRecord, Lease};

#[async_trait]
pub trait LeaseCapStore: Send + Sync {
    /// Inserts `lease` (and, for a lease born active, its key's history row) unless its role
    /// already holds `cap` leases (through `creds/` and `sts/`); false then, and nothing written.
    async fn insert_lease_capped(
        &self,
        lease: &Lease,
        key: Option<&KeyRecord>,
        cap: i64,
    ) -> Result<bool>;
}

#[async_trait]
impl<B> LeaseCapStore for B
where
    B: Backend,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    <B::Db as Database>::Row: Columns,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q [u8]: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Type<B::Db>,
{
    async fn insert_lease_capped(
        &self,
        lease: &Lease,
        key: Option<&KeyRecord>,
        cap: i64,
    ) -> Result<bool> {
        let (mount, role) = (lease.mount.as_str(), lease.role.as_str());
        let lock = format!("lease_cap:{mount}/{role}");
        let creds = format!("{mount}/creds/{role}/");
        let sts = format!("{mount}/sts/{role}/");
        let (creds_end, sts_end) = (prefix_upper_bound(&creds), prefix_upper_bound(&sts));
        let mut tx = self.pool().begin().await.map_err(B::map_err)?;
        // A write first: PostgreSQL's row lock, SQLite's write lock, held to the commit.
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(lock.as_str())
        .bind(&[][..])
        .execute(&mut *tx)
        .await
        .map_err(B::map_err)?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM leases
             WHERE (id >= $1 AND id < $2) OR (id >= $3 AND id < $4)",
        )
        .bind(creds.as_str())
        .bind(creds_end.as_str())
        .bind(sts.as_str())
        .bind(sts_end.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(B::map_err)?;
        if row.int("n")? >= cap {
            return Ok(false);
        }
        sql::bind_lease(sqlx::query(sql::INSERT_LEASE), lease, self.replica())
            .execute(&mut *tx)
            .await
            .map_err(B::map_err)?;
        if let Some(key) = key {
            let meta = meta_json(key);
            bind_key(sqlx::query(INSERT_KEY), key, &meta)
                .execute(&mut *tx)
                .await
                .map_err(B::map_err)?;
            due_now_if_token_gone::<B>(&mut tx, &lease.id).await?;
        }
        tx.commit().await.map_err(B::map_err)?;
        Ok(true)
    }
}
