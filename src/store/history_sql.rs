//! The SQL of the access-key history (`key_history`), written once for both databases like
//! `sql.rs`. A key's row is written in the transaction that hands the key out (activating an
//! `iam_user` lease, inserting an STS lease), so no key is ever held without a record of who
//! holds it; a trigger on `leases` stamps its end (migration `key_history`).

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::Result;
use super::rows::{Columns, key_history_from_row, lease_from_row};
use super::sql::{self, Backend};
use crate::model::{AccessKeyId, KeyHistory, KeyRecord, Lease, MountPath};

/// What the access-key history keeps and answers.
#[async_trait]
pub trait KeyHistoryStore: Send + Sync {
    /// `key.lease_id` `pending` → `active`, recording who holds `key`, in one transaction and
    /// one call to the database. False (and nothing recorded) when someone else claimed the
    /// lease meanwhile. A lease whose token was revoked while it was being issued becomes due
    /// at once, not at `due_at`.
    async fn activate_lease(&self, key: &KeyRecord, due_at: i64) -> Result<bool>;
    /// An STS lease, born `active` after its STS call, with its key's history row.
    async fn insert_active_lease(&self, lease: &Lease, key: &KeyRecord) -> Result<()>;
    /// The newest key with this id that `mount` handed out, with its lease if it still lives.
    async fn key_history(
        &self,
        mount: &MountPath,
        access_key_id: &AccessKeyId,
    ) -> Result<Option<KeyHistory>>;
    /// A lease with the requester of the key it handed out (`None` before it has one), in one
    /// read: what a lease lookup shows.
    async fn lease_with_requester(&self, id: &str) -> Result<Option<(Lease, Option<String>)>>;
    /// Deletes up to `limit` rows of keys revoked before `revoked_before`, oldest first (the
    /// reaper's retention sweep, bounded per pass). Returns how many it deleted.
    async fn forget_keys(&self, revoked_before: i64, limit: i64) -> Result<u64>;
}

/// An INSERT of every column of `key_history`, in the order `bind_key` binds them (a macro,
/// so the statements below can be `concat!`ed constants).
macro_rules! insert_key_columns {
    () => {
        "INSERT INTO key_history (lease_id, access_key_id, mount, role, credential_type, \
         username, requester, token_accessor, meta, issue_time, expire_time, revoke_time) "
    };
}

pub(super) const INSERT_KEY: &str = concat!(
    insert_key_columns!(),
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
);

/// The activation's UPDATE: `$1` the lease (= the key's lease id), `$2` its key, `$13` when
/// it becomes due. A token revoked while its lease was being issued has already made the
/// lease due (or is about to, in the same transaction that deletes it): then it stays due.
macro_rules! activate_update {
    () => {
        "UPDATE leases SET state = 'active', access_key_id = $2,
             due_at = CASE WHEN token_accessor IS NULL
                             OR EXISTS (SELECT 1 FROM tokens WHERE accessor = leases.token_accessor)
                           THEN $13 ELSE issue_time END
         WHERE id = $1 AND state = 'pending'"
    };
}

/// The activation's UPDATE on its own, as SQLite's issue writer runs it (`sqlite_writer.rs`).
pub(super) const ACTIVATE_UPDATE: &str = activate_update!();

/// `activate_lease` on PostgreSQL (`postgres.rs`): one statement, the UPDATE as a
/// data-modifying CTE whose returned row (none when the lease was claimed meanwhile) feeds the
/// history INSERT.
pub(super) const ACTIVATE_CTE: &str = concat!(
    "WITH activated AS (",
    activate_update!(),
    " RETURNING id) ",
    insert_key_columns!(),
    "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM activated RETURNING lease_id"
);

/// `whois`: a search of the `key_history_access_key_id` index (a SQLite test checks the plan),
/// so an answer costs the same over a million rows as over ten.
pub(super) const KEY_HISTORY: &str =
    "SELECT h.*, l.state AS lease_state, l.expire_time AS lease_expire_time
     FROM key_history h LEFT JOIN leases l ON l.id = h.lease_id
     WHERE h.access_key_id = $1 AND h.mount = $2
     ORDER BY h.issue_time DESC LIMIT 1";

/// The retention sweep: a range scan of the partial index of revoked rows
/// (`key_history_revoke_time`), `$2` at a time, so a sweep over a million expired rows is many
/// short statements, never one long one.
pub(super) const FORGET_KEYS: &str = "DELETE FROM key_history WHERE lease_id IN (
     SELECT lease_id FROM key_history
     WHERE revoke_time IS NOT NULL AND revoke_time < $1
     ORDER BY revoke_time LIMIT $2)";

/// Binds `key` (its meta already as JSON) to `INSERT_KEY`.
pub(super) fn bind_key<'q, DB: Database>(
    query: Query<'q, DB, DB::Arguments<'q>>,
    k: &'q KeyRecord,
    meta: &'q str,
) -> Query<'q, DB, DB::Arguments<'q>>
where
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(k.lease_id.as_str())
        .bind(k.access_key_id.as_str())
        .bind(k.mount.as_str())
        .bind(k.role.as_str())
        .bind(k.credential_type.as_str())
        .bind(k.username.as_deref())
        .bind(k.requester.as_str())
        .bind(k.token_accessor.as_deref())
        .bind(meta)
        .bind(k.issue_time)
        .bind(k.expire_time)
        .bind(k.revoke_time)
}

/// A lease born active for a token revoked while its STS call ran (the revocation's cascade
/// did not see the row yet) is due at once, so it does not outlive its token in the store.
pub(super) async fn due_now_if_token_gone<B>(
    tx: &mut sqlx::Transaction<'_, B::Db>,
    lease_id: &str,
) -> Result<()>
where
    B: Backend,
    for<'e> &'e mut <B::Db as Database>::Connection: Executor<'e, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
{
    sqlx::query(
        "UPDATE leases SET due_at = issue_time
         WHERE id = $1 AND token_accessor IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM tokens WHERE accessor = leases.token_accessor)",
    )
    .bind(lease_id)
    .execute(&mut **tx)
    .await
    .map_err(B::map_err)?;
    Ok(())
}

pub(super) fn meta_json(k: &KeyRecord) -> String {
    serde_json::to_string(&k.meta).expect("strings serialise")
}

#[async_trait]
impl<B> KeyHistoryStore for B
where
    B: Backend,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    <B::Db as Database>::Row: Columns,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'r> String: Decode<'r, B::Db> + Type<B::Db>,
    for<'r> Vec<u8>: Decode<'r, B::Db> + Type<B::Db>,
{
    async fn activate_lease(&self, key: &KeyRecord, due_at: i64) -> Result<bool> {
        self.activate(key, due_at).await
    }

    async fn insert_active_lease(&self, lease: &Lease, key: &KeyRecord) -> Result<()> {
        let meta = meta_json(key);
        let mut tx = self.pool().begin().await.map_err(B::map_err)?;
        sql::bind_lease(sqlx::query(sql::INSERT_LEASE), lease, self.replica())
            .execute(&mut *tx)
            .await
            .map_err(B::map_err)?;
        due_now_if_token_gone::<B>(&mut tx, &lease.id).await?;
        bind_key(sqlx::query(INSERT_KEY), key, &meta)
            .execute(&mut *tx)
            .await
            .map_err(B::map_err)?;
        tx.commit().await.map_err(B::map_err)
    }

    async fn key_history(
        &self,
        mount: &MountPath,
        access_key_id: &AccessKeyId,
    ) -> Result<Option<KeyHistory>> {
        sqlx::query(KEY_HISTORY)
            .bind(access_key_id.as_str())
            .bind(mount.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)?
            .as_ref()
            .map(key_history_from_row)
            .transpose()
    }

    async fn lease_with_requester(&self, id: &str) -> Result<Option<(Lease, Option<String>)>> {
        let row = sqlx::query(
            "SELECT l.*, h.requester AS requester FROM leases l
             LEFT JOIN key_history h ON h.lease_id = l.id WHERE l.id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(B::map_err)?;
        match row {
            Some(row) => Ok(Some((lease_from_row(&row)?, row.opt_text("requester")?))),
            None => Ok(None),
        }
    }

    async fn forget_keys(&self, revoked_before: i64, limit: i64) -> Result<u64> {
        let done = sqlx::query(FORGET_KEYS)
            .bind(revoked_before)
            .bind(limit)
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(B::rows_affected(&done))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::KeyHistoryStore;
    use crate::model::{
        AccessKeyId, CredentialType, KeyRecord, Lease, LeaseState, MountPath, RoleName,
    };
    use crate::store::{SqliteStore, Store};

    fn unix_now() -> i64 {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        since.unwrap().as_secs() as i64
    }

    fn aws() -> MountPath {
        MountPath::parse("aws").unwrap()
    }

    fn key_id(s: &str) -> AccessKeyId {
        AccessKeyId::parse(s).unwrap()
    }

    /// A token revoked while its STS call ran: the revocation's cascade could not see the lease
    /// row yet, so the row is born due and the reaper ends it at once; with a live token (or
    /// none) the row is due at its expiry.
    #[tokio::test]
    async fn an_sts_lease_of_a_token_already_gone_is_born_due() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        let now = unix_now();
        let sts = |key: &str| {
            Lease::active_sts(
                aws(),
                RoleName::parse("ops").unwrap(),
                CredentialType::FederationToken,
                key.to_owned(),
                now,
                now + 3600,
            )
        };
        let gone = sts("ASIAGONE000000000001").with_token_accessor("no-such-accessor");
        let none = sts("ASIANONE000000000001");
        for lease in [&gone, &none] {
            let key = KeyRecord::for_lease(
                lease,
                lease.access_key_id.as_deref().unwrap(),
                "ops",
                &BTreeMap::new(),
            );
            s.insert_active_lease(lease, &key).await.unwrap();
        }
        let due = |id: String| {
            let s = &s;
            async move { s.get_lease(&id).await.unwrap().unwrap().due_at }
        };
        assert_eq!(due(gone.id.clone()).await, now);
        assert_eq!(due(none.id.clone()).await, none.due_at);
    }

    #[tokio::test]
    async fn a_key_is_recorded_when_handed_out_and_kept_after_its_lease() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        let lease = Lease::pending_iam_user(
            aws(),
            RoleName::parse("dev").unwrap(),
            "iamlease-dev-x".into(),
            1_000,
            100,
            1_000,
            1_050,
        );
        s.insert_lease(&lease).await.unwrap();
        let meta = BTreeMap::from([("repo".to_owned(), "octo/app".to_owned())]);
        let key = KeyRecord::for_lease(&lease, "AKIAHISTORY000000001", "jwt-ci", &meta);
        // Nothing is recorded before the key is handed out.
        let id = key_id("AKIAHISTORY000000001");
        assert!(s.key_history(&aws(), &id).await.unwrap().is_none());
        assert_eq!(
            s.lease_with_requester(&lease.id).await.unwrap().unwrap().1,
            None
        );
        assert!(s.activate_lease(&key, 1_100).await.unwrap());
        let (active, requester) = s.lease_with_requester(&lease.id).await.unwrap().unwrap();
        assert_eq!(
            (active.state, requester.as_deref()),
            (LeaseState::Active, Some("jwt-ci"))
        );

        let live = s
            .key_history(&aws(), &key_id("AKIAHISTORY000000001"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(live.key, key);
        assert_eq!(live.state().as_str(), "active");
        // Another mount never answers for this mount's key.
        let other = MountPath::parse("aws2").unwrap();
        assert!(
            s.key_history(&other, &key_id("AKIAHISTORY000000001"))
                .await
                .unwrap()
                .is_none()
        );

        // A renewal moves the expiry the history shows; revocation keeps the last one.
        assert!(s.renew_lease(&lease.id, 1_500, 1_010).await.unwrap());
        assert_eq!(
            s.key_history(&aws(), &key_id("AKIAHISTORY000000001"))
                .await
                .unwrap()
                .unwrap()
                .expire_time(),
            1_500
        );
        s.delete_leases(std::slice::from_ref(&lease.id))
            .await
            .unwrap();
        let gone = s
            .key_history(&aws(), &key_id("AKIAHISTORY000000001"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(gone.state().as_str(), "revoked");
        assert_eq!(gone.expire_time(), 1_500);
        let revoked_at = gone.key.revoke_time.expect("stamped on delete");
        assert!(revoked_at >= unix_now() - 60, "{revoked_at}");
        assert_eq!(gone.key.requester, "jwt-ci");
        assert_eq!(gone.key.meta, meta);

        // Retention: kept until it is older than the cut-off, then forgotten.
        assert_eq!(s.forget_keys(revoked_at, 10).await.unwrap(), 0);
        assert_eq!(s.forget_keys(revoked_at + 1, 10).await.unwrap(), 1);
        assert!(s.key_history(&aws(), &id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn sts_keys_are_recorded_with_their_lease_and_forgetting_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        for i in 0..5 {
            let id = format!("ASIAHISTORY00000000{i}");
            let lease = Lease::active_sts(
                aws(),
                RoleName::parse("deploy").unwrap(),
                CredentialType::AssumedRole,
                id.clone(),
                1_000,
                1_900,
            )
            .with_token_accessor("acc");
            let key = KeyRecord::for_lease(&lease, &id, "approle", &BTreeMap::new());
            s.insert_active_lease(&lease, &key).await.unwrap();
            assert_eq!(
                s.get_lease(&lease.id).await.unwrap().unwrap().state,
                LeaseState::Active
            );
            s.delete_lease(&lease.id).await.unwrap();
        }
        let h = s
            .key_history(&aws(), &key_id("ASIAHISTORY000000003"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(h.key.credential_type, CredentialType::AssumedRole);
        assert_eq!(h.key.token_accessor.as_deref(), Some("acc"));
        let cutoff = unix_now() + 10;
        assert_eq!(s.forget_keys(cutoff, 2).await.unwrap(), 2);
        assert_eq!(s.forget_keys(cutoff, 2).await.unwrap(), 2);
        assert_eq!(s.forget_keys(cutoff, 2).await.unwrap(), 1);
        assert_eq!(s.forget_keys(cutoff, 2).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_activation_that_fails_midway_changes_nothing_and_leaves_no_transaction_open() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let s = SqliteStore::open(&url).await.unwrap();
        let pending = |name: &str| {
            Lease::pending_iam_user(
                aws(),
                RoleName::parse("dev").unwrap(),
                name.into(),
                1_000,
                100,
                1_000,
                1_050,
            )
        };
        let lease = pending("iamlease-dev-fails");
        s.insert_lease(&lease).await.unwrap();
        let key = KeyRecord::for_lease(&lease, "AKIAFAILS00000000001", "root", &BTreeMap::new());
        // A history row already there: the activation's INSERT fails after its UPDATE ran.
        s.insert_key_history_bulk(std::slice::from_ref(&key))
            .await
            .unwrap();
        assert!(s.activate_lease(&key, 1_100).await.is_err());
        // Later writes commit and survive a reopen: nothing was left inside the failed
        // activation's transaction (it would hold the write lock, or swallow these).
        let later: Vec<Lease> = (0..20).map(|i| pending(&format!("later-{i}"))).collect();
        for l in &later {
            s.insert_lease(l).await.unwrap();
        }
        s.close().await;
        let s = SqliteStore::open(&url).await.unwrap();
        let after = s.get_lease(&lease.id).await.unwrap().unwrap();
        assert_eq!(
            (after.state, after.access_key_id),
            (LeaseState::Pending, None)
        );
        for l in &later {
            assert!(s.get_lease(&l.id).await.unwrap().is_some(), "{} lost", l.id);
        }
    }
}
