//! The SQL of static roles (`static_roles`), written once for both databases like `sql.rs`.
//! A rotation moves through conditional updates on its claim (a random token the claimant
//! wrote with a deadline in `due_at`), so a claimant that lost its claim (it was too slow, or
//! the role was deleted) can change nothing, and exactly one replica acts on a role at a time.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::Result;
use super::StoreError;
use super::rows::Columns;
use super::sql::Backend;
use crate::model::{
    IamUserName, MountPath, RoleName, RotationStep, StaticRoleConfig, StaticRoleRecord,
};

/// What the store keeps and answers for static roles.
#[async_trait]
pub trait StaticRoleStore: Send + Sync {
    /// A new role; false when `mount`/`name` already exists.
    async fn insert_static_role(&self, role: &StaticRoleRecord) -> Result<bool>;
    /// Rewrites a role's settings. The schedule follows at once: the next rotation is the last
    /// one plus the new period, and the overlap of a previous key still alive is measured
    /// again; a role being rotated keeps its claim. False when the role does not exist.
    async fn update_static_role(
        &self,
        mount: &MountPath,
        name: &RoleName,
        config: &StaticRoleConfig,
    ) -> Result<bool>;
    async fn get_static_role(
        &self,
        mount: &MountPath,
        name: &RoleName,
    ) -> Result<Option<StaticRoleRecord>>;
    /// Every static role of a mount, by name.
    async fn list_static_roles(&self, mount: &MountPath) -> Result<Vec<StaticRoleRecord>>;
    async fn delete_static_role(&self, mount: &MountPath, name: &RoleName) -> Result<bool>;
    /// Up to `limit` roles whose `due_at` has passed, oldest first (the rotator's search).
    async fn due_static_roles(&self, now: i64, limit: i64) -> Result<Vec<(String, String)>>;
    /// Makes a role's rotation due now (a manual rotation). False when it does not exist.
    async fn rotate_static_role_now(
        &self,
        mount: &MountPath,
        name: &RoleName,
        now: i64,
    ) -> Result<bool>;
    /// Claims a due role for `claim` until `deadline`; `None` when it is not due (or gone, or
    /// claimed by someone whose deadline has not passed).
    async fn claim_static_role(
        &self,
        mount: &MountPath,
        name: &RoleName,
        claim: &str,
        now: i64,
        deadline: i64,
    ) -> Result<Option<StaticRoleRecord>>;
    /// Records one step of a rotation, only while `claim` still holds the role. False when it
    /// does not (nothing changed).
    async fn record_rotation_step(
        &self,
        mount: &MountPath,
        name: &RoleName,
        claim: &str,
        step: RotationStep<'_>,
    ) -> Result<bool>;
}

/// When a role is next due, given its next rotation `nr` and the previous key's end `pu`.
macro_rules! schedule {
    ($nr:expr, $pu:expr) => {
        concat!(
            "CASE WHEN previous_key_id IS NOT NULL AND ",
            $pu,
            " < ",
            $nr,
            " THEN ",
            $pu,
            " ELSE ",
            $nr,
            " END"
        )
    };
}

const INSERT: &str = "INSERT INTO static_roles (mount, name, username, rotation_period, overlap,
     assume_role_arn, assume_role_session_name, external_id, access_key_id, secret_sealed,
     previous_key_id, previous_until, rotating_since, last_rotation, next_rotation, due_at,
     claim, attempts, last_error, last_error_time, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
     $19, $20, $21) ON CONFLICT DO NOTHING";

const UPDATE_CONFIG: &str = concat!(
    "UPDATE static_roles SET rotation_period = $3, overlap = $4, assume_role_arn = $5,
         assume_role_session_name = $6, external_id = $7,
         next_rotation = COALESCE(last_rotation + $3, next_rotation),
         previous_until = CASE WHEN previous_key_id IS NULL THEN NULL
                               ELSE COALESCE(last_rotation, 0) + $4 END,
         due_at = CASE WHEN claim IS NOT NULL THEN due_at ELSE ",
    schedule!(
        "COALESCE(last_rotation + $3, next_rotation)",
        "(COALESCE(last_rotation, 0) + $4)"
    ),
    " END WHERE mount = $1 AND name = $2"
);

const RELEASE: &str = concat!(
    "UPDATE static_roles SET claim = NULL, due_at = ",
    schedule!("next_rotation", "previous_until"),
    " WHERE mount = $1 AND name = $2 AND claim = $3"
);

fn role_from_row<R: Columns>(row: &R) -> Result<StaticRoleRecord> {
    let bad = |e: String| StoreError::Corrupt(format!("static role: {e}"));
    Ok(StaticRoleRecord {
        mount: MountPath::parse(&row.text("mount")?).map_err(bad)?,
        name: RoleName::parse(&row.text("name")?).map_err(bad)?,
        config: StaticRoleConfig {
            username: IamUserName::parse(&row.text("username")?).map_err(bad)?,
            rotation_period: row.int("rotation_period")?,
            overlap: row.int("overlap")?,
            assume_role_arn: row.opt_text("assume_role_arn")?,
            assume_role_session_name: row.opt_text("assume_role_session_name")?,
            external_id: row.opt_text("external_id")?,
        },
        access_key_id: row.opt_text("access_key_id")?,
        secret_sealed: row.opt_bytes("secret_sealed")?,
        previous_key_id: row.opt_text("previous_key_id")?,
        previous_until: row.opt_int("previous_until")?,
        rotating_since: row.opt_int("rotating_since")?,
        last_rotation: row.opt_int("last_rotation")?,
        next_rotation: row.int("next_rotation")?,
        due_at: row.int("due_at")?,
        claim: row.opt_text("claim")?,
        attempts: row.int("attempts")?,
        last_error: row.opt_text("last_error")?,
        last_error_time: row.opt_int("last_error_time")?,
        created_at: row.int("created_at")?,
    })
}

#[async_trait]
impl<B> StaticRoleStore for B
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
{
    async fn insert_static_role(&self, r: &StaticRoleRecord) -> Result<bool> {
        let c = &r.config;
        let done = sqlx::query(INSERT)
            .bind(r.mount.as_str())
            .bind(r.name.as_str())
            .bind(c.username.as_str())
            .bind(c.rotation_period)
            .bind(c.overlap)
            .bind(c.assume_role_arn.as_deref())
            .bind(c.assume_role_session_name.as_deref())
            .bind(c.external_id.as_deref())
            .bind(r.access_key_id.as_deref())
            .bind(r.secret_sealed.as_deref())
            .bind(r.previous_key_id.as_deref())
            .bind(r.previous_until)
            .bind(r.rotating_since)
            .bind(r.last_rotation)
            .bind(r.next_rotation)
            .bind(r.due_at)
            .bind(r.claim.as_deref())
            .bind(r.attempts)
            .bind(r.last_error.as_deref())
            .bind(r.last_error_time)
            .bind(r.created_at)
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn update_static_role(
        &self,
        mount: &MountPath,
        name: &RoleName,
        c: &StaticRoleConfig,
    ) -> Result<bool> {
        let done = sqlx::query(UPDATE_CONFIG)
            .bind(mount.as_str())
            .bind(name.as_str())
            .bind(c.rotation_period)
            .bind(c.overlap)
            .bind(c.assume_role_arn.as_deref())
            .bind(c.assume_role_session_name.as_deref())
            .bind(c.external_id.as_deref())
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn get_static_role(
        &self,
        mount: &MountPath,
        name: &RoleName,
    ) -> Result<Option<StaticRoleRecord>> {
        sqlx::query("SELECT * FROM static_roles WHERE mount = $1 AND name = $2")
            .bind(mount.as_str())
            .bind(name.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)?
            .as_ref()
            .map(role_from_row)
            .transpose()
    }

    async fn list_static_roles(&self, mount: &MountPath) -> Result<Vec<StaticRoleRecord>> {
        sqlx::query("SELECT * FROM static_roles WHERE mount = $1 ORDER BY name")
            .bind(mount.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(B::map_err)?
            .iter()
            .map(role_from_row)
            .collect()
    }

    async fn delete_static_role(&self, mount: &MountPath, name: &RoleName) -> Result<bool> {
        let done = sqlx::query("DELETE FROM static_roles WHERE mount = $1 AND name = $2")
            .bind(mount.as_str())
            .bind(name.as_str())
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn due_static_roles(&self, now: i64, limit: i64) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT mount, name FROM static_roles WHERE due_at <= $1 ORDER BY due_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(B::map_err)?;
        rows.iter()
            .map(|r| Ok((r.text("mount")?, r.text("name")?)))
            .collect()
    }

    async fn rotate_static_role_now(
        &self,
        mount: &MountPath,
        name: &RoleName,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE static_roles SET next_rotation = $3,
                 due_at = CASE WHEN claim IS NULL THEN $3 ELSE due_at END
             WHERE mount = $1 AND name = $2",
        )
        .bind(mount.as_str())
        .bind(name.as_str())
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn claim_static_role(
        &self,
        mount: &MountPath,
        name: &RoleName,
        claim: &str,
        now: i64,
        deadline: i64,
    ) -> Result<Option<StaticRoleRecord>> {
        sqlx::query(
            "UPDATE static_roles SET claim = $3, due_at = $4, owner = $6
             WHERE mount = $1 AND name = $2 AND due_at <= $5 RETURNING *",
        )
        .bind(mount.as_str())
        .bind(name.as_str())
        .bind(claim)
        .bind(deadline)
        .bind(now)
        .bind(self.replica())
        .fetch_optional(self.pool())
        .await
        .map_err(B::map_err)?
        .as_ref()
        .map(role_from_row)
        .transpose()
    }

    async fn record_rotation_step(
        &self,
        mount: &MountPath,
        name: &RoleName,
        claim: &str,
        step: RotationStep<'_>,
    ) -> Result<bool> {
        let base = |sql: &'static str| {
            sqlx::query(sql)
                .bind(mount.as_str())
                .bind(name.as_str())
                .bind(claim)
        };
        let query = match step {
            RotationStep::PreviousDeleted => base(
                "UPDATE static_roles SET previous_key_id = NULL, previous_until = NULL
                 WHERE mount = $1 AND name = $2 AND claim = $3",
            ),
            RotationStep::Creating { now } => base(
                "UPDATE static_roles SET rotating_since = $4
                 WHERE mount = $1 AND name = $2 AND claim = $3",
            )
            .bind(now),
            // Only over a deleted previous key: a key is never forgotten while it may exist.
            RotationStep::Rotated {
                access_key_id,
                secret_sealed,
                now,
            } => base(
                "UPDATE static_roles SET previous_key_id = access_key_id,
                     previous_until = CASE WHEN access_key_id IS NULL THEN NULL ELSE $6 + overlap END,
                     access_key_id = $4, secret_sealed = $5, rotating_since = NULL,
                     last_rotation = $6, next_rotation = $6 + rotation_period, attempts = 0,
                     last_error = NULL, last_error_time = NULL
                 WHERE mount = $1 AND name = $2 AND claim = $3 AND previous_key_id IS NULL",
            )
            .bind(access_key_id)
            .bind(secret_sealed)
            .bind(now),
            RotationStep::Release => base(RELEASE),
            RotationStep::Failed {
                error,
                now,
                retry_at,
            } => base(
                "UPDATE static_roles SET claim = NULL, attempts = attempts + 1,
                     last_error = $4, last_error_time = $5, due_at = $6
                 WHERE mount = $1 AND name = $2 AND claim = $3",
            )
            .bind(error)
            .bind(now)
            .bind(retry_at),
        };
        let done = query.execute(self.pool()).await.map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::StaticRoleStore;
    use crate::model::{
        IamUserName, MountPath, RoleName, RotationStep, StaticRoleConfig, StaticRoleRecord,
    };
    use crate::store::{MountRecord, SqliteStore, Store};

    /// Two claimants of one due role: exactly one gets it, and only its claim moves the row.
    #[tokio::test]
    async fn one_claimant_at_a_time_and_only_its_steps_count() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        let mount = MountPath::parse("aws").unwrap();
        let name = RoleName::parse("app").unwrap();
        s.insert_mount(&MountRecord {
            path: mount.clone(),
            kind: "aws".into(),
            description: String::new(),
            default_lease_ttl: None,
            max_lease_ttl: None,
            lease_ttl: None,
            lease_max: None,
            created_at: 1,
        })
        .await
        .unwrap();
        let role = StaticRoleRecord {
            mount: mount.clone(),
            name: name.clone(),
            config: StaticRoleConfig {
                username: IamUserName::parse("u").unwrap(),
                rotation_period: 100,
                overlap: 10,
                assume_role_arn: None,
                assume_role_session_name: None,
                external_id: None,
            },
            access_key_id: Some("AKIAOLD".into()),
            secret_sealed: None,
            previous_key_id: None,
            previous_until: None,
            rotating_since: None,
            last_rotation: None,
            next_rotation: 1_000,
            due_at: 1_000,
            claim: None,
            attempts: 0,
            last_error: None,
            last_error_time: None,
            created_at: 1_000,
        };
        assert!(s.insert_static_role(&role).await.unwrap());
        assert!(!s.insert_static_role(&role).await.unwrap(), "once");
        assert!(
            s.claim_static_role(&mount, &name, "a", 999, 1_300)
                .await
                .unwrap()
                .is_none(),
            "not due yet"
        );
        assert!(
            s.claim_static_role(&mount, &name, "a", 1_000, 1_300)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            s.claim_static_role(&mount, &name, "b", 1_001, 1_301)
                .await
                .unwrap()
                .is_none(),
            "claimed"
        );
        let rotated = RotationStep::Rotated {
            access_key_id: "AKIANEW",
            secret_sealed: b"sealed",
            now: 1_001,
        };
        assert!(
            !s.record_rotation_step(&mount, &name, "b", rotated.clone())
                .await
                .unwrap()
        );
        assert!(
            s.record_rotation_step(&mount, &name, "a", rotated)
                .await
                .unwrap()
        );
        let r = s.get_static_role(&mount, &name).await.unwrap().unwrap();
        assert_eq!(
            (r.access_key_id.as_deref(), r.previous_key_id.as_deref()),
            (Some("AKIANEW"), Some("AKIAOLD"))
        );
        assert_eq!((r.previous_until, r.next_rotation), (Some(1_011), 1_101));
        // A schedule change while claimed keeps the claim's deadline.
        let mut config = r.config.clone();
        config.rotation_period = 200;
        assert!(s.update_static_role(&mount, &name, &config).await.unwrap());
        let r = s.get_static_role(&mount, &name).await.unwrap().unwrap();
        assert_eq!((r.next_rotation, r.due_at), (1_201, 1_300));
        // Released: due at the end of the previous key's overlap, then at the next rotation.
        assert!(
            s.record_rotation_step(&mount, &name, "a", RotationStep::Release)
                .await
                .unwrap()
        );
        assert_eq!(
            s.get_static_role(&mount, &name)
                .await
                .unwrap()
                .unwrap()
                .due_at,
            1_011
        );
        // A lapsed claim is anyone's: after its deadline another claimant takes over.
        assert!(
            s.claim_static_role(&mount, &name, "c", 1_011, 1_400)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            !s.record_rotation_step(&mount, &name, "a", RotationStep::Release)
                .await
                .unwrap()
        );
        assert!(
            s.record_rotation_step(&mount, &name, "c", RotationStep::PreviousDeleted)
                .await
                .unwrap()
        );
        assert!(
            s.record_rotation_step(&mount, &name, "c", RotationStep::Release)
                .await
                .unwrap()
        );
        assert_eq!(
            s.get_static_role(&mount, &name)
                .await
                .unwrap()
                .unwrap()
                .due_at,
            1_201
        );
        // A claim of this replica's stays through a takeover; a silent replica's is due at once
        // and anyone's to claim, long before its deadline.
        use crate::store::LivenessStore;
        assert!(
            s.claim_static_role(&mount, &name, "d", 1_201, 1_500)
                .await
                .unwrap()
                .is_some()
        );
        s.heartbeat(1_250, "h", 1).await.unwrap();
        assert_eq!(
            s.take_over_silent(1_250, 1_240, 0)
                .await
                .unwrap()
                .static_roles,
            0
        );
        sqlx::query("UPDATE static_roles SET owner = 'silent'")
            .execute(super::Backend::pool(&s))
            .await
            .unwrap();
        assert_eq!(
            s.take_over_silent(1_250, 1_240, 0)
                .await
                .unwrap()
                .static_roles,
            1
        );
        assert!(
            s.claim_static_role(&mount, &name, "e", 1_250, 1_550)
                .await
                .unwrap()
                .is_some(),
            "taken over"
        );
        assert!(
            !s.record_rotation_step(&mount, &name, "d", RotationStep::Release)
                .await
                .unwrap(),
            "the silent claimant's steps no longer count"
        );
    }
}
