//! Static roles: an existing IAM user whose access key is rotated every `rotation_period`, the
//! previous key kept for `overlap` so running processes can pick the new one up.
//!
//! A rotation is a sequence of AWS calls and conditional store updates on a claim (see
//! `store::StaticRoleStore`), ordered so that a crash anywhere leaves at most two keys on the
//! user and a working current key in the store:
//! delete the previous key (its overlap is over) → record that → ListAccessKeys (a key the
//! store does not know is an interrupted rotation's, deleted only when `rotating_since` says a
//! rotation was under way) → record `rotating_since` → CreateAccessKey → record the new key,
//! sealed → (overlap 0) delete the old key → record that → release. Whoever claims the role
//! next resumes from what the row says.

use futures::StreamExt;

use super::role::{check_external_id, check_role_arn};
use super::{Engine, EngineError, REVOKE_CONCURRENCY, Result, aws_failed};
use crate::aws::AwsAccount;
use crate::clock::now;
use crate::duration::Ttl;
use crate::model::{
    IamUserName, MountPath, RoleName, RotationStep, StaticRoleConfig, StaticRoleRecord,
};
use crate::seal::{LOWER_ALNUM, Secret, random_string};

/// Roles the rotator claims per pass.
const ROTATE_BATCH: i64 = 64;

/// A write to `{mount}/static-roles/{name}`; a field left out keeps its stored value.
#[derive(Debug, Clone, Default)]
pub struct StaticRoleWrite {
    pub username: Option<String>,
    pub rotation_period: Option<Ttl>,
    pub overlap: Option<Ttl>,
    /// Empty unsets (as Vault's empty strings do).
    pub assume_role_arn: Option<String>,
    pub assume_role_session_name: Option<String>,
    pub external_id: Option<String>,
}

/// `{mount}/static-creds/{name}`: the current key and when it will be replaced.
#[derive(Debug, Clone)]
pub struct StaticCreds {
    pub access_key: String,
    pub secret_key: Secret,
    /// The next rotation, Unix seconds.
    pub expiration: i64,
}

/// What the sealed secret is bound to: this role's this key, so a sealed value copied to
/// another row or key does not open.
fn seal_context(mount: &MountPath, name: &RoleName, key_id: &str) -> String {
    crate::model::SealedValue::StaticRole {
        mount: mount.to_string(),
        name: name.to_string(),
        access_key_id: key_id.to_owned(),
    }
    .context()
}

/// AWS's rule for a RoleSessionName: 2 to 64 of `[\w+=,.@-]`.
fn check_session_name(s: &str) -> Result<()> {
    let ok = (2..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "assume_role_session_name {s:?} must be 2 to 64 characters of A-Z a-z 0-9 and + = , . @ _ -"
        )))
    }
}

fn non_empty(s: Option<String>) -> Option<Option<String>> {
    s.map(|v| Some(v.trim().to_owned()).filter(|v| !v.is_empty()))
}

/// Why a rotation attempt stopped.
#[derive(Debug)]
enum Stop {
    /// Someone else holds the role now (our claim ran out, or the role was deleted).
    LostClaim,
    Failed(EngineError),
}

impl From<EngineError> for Stop {
    fn from(e: EngineError) -> Self {
        Stop::Failed(e)
    }
}

impl From<crate::store::StoreError> for Stop {
    fn from(e: crate::store::StoreError) -> Self {
        Stop::Failed(e.into())
    }
}

impl Engine {
    /// Validates a write against the stored role (if any) into the settings to store.
    fn static_config(
        &self,
        old: Option<&StaticRoleConfig>,
        w: StaticRoleWrite,
    ) -> Result<StaticRoleConfig> {
        let username = match (w.username.filter(|u| !u.trim().is_empty()), old) {
            (Some(u), _) => IamUserName::parse(&u).map_err(EngineError::Invalid)?,
            (None, Some(o)) => o.username.clone(),
            (None, None) => {
                return Err(EngineError::Invalid(
                    "username is required: the IAM user whose access key this role rotates".into(),
                ));
            }
        };
        if let Some(o) = old
            && o.username != username
        {
            return Err(EngineError::Invalid(format!(
                "username cannot change from {:?} to {:?}: delete the static role and write it again",
                o.username.as_str(),
                username.as_str()
            )));
        }
        let min = self.settings.static_role_min_rotation.as_secs() as i64;
        let rotation_period = match (w.rotation_period, old) {
            (Some(t), _) => t.as_secs() as i64,
            (None, Some(o)) => o.rotation_period,
            (None, None) => {
                return Err(EngineError::Invalid(format!(
                    "rotation_period is required: how often to rotate the key, at least {}",
                    Ttl::from_secs(min as u64)
                )));
            }
        };
        if rotation_period < min {
            return Err(EngineError::Invalid(format!(
                "rotation_period is {}; it must be at least {}",
                Ttl::from_secs(rotation_period.max(0) as u64),
                Ttl::from_secs(min as u64)
            )));
        }
        let overlap = w
            .overlap
            .map(|t| t.as_secs() as i64)
            .or(old.map(|o| o.overlap))
            .unwrap_or(0);
        if overlap > rotation_period / 2 {
            return Err(EngineError::Invalid(format!(
                "overlap is {}; it may be at most half of rotation_period {} ({}), so the previous key is gone before the next rotation",
                Ttl::from_secs(overlap as u64),
                Ttl::from_secs(rotation_period as u64),
                Ttl::from_secs((rotation_period / 2) as u64)
            )));
        }
        let keep = |given: Option<String>, stored: Option<&Option<String>>| {
            non_empty(given).unwrap_or_else(|| stored.cloned().flatten())
        };
        let assume_role_arn = keep(w.assume_role_arn, old.map(|o| &o.assume_role_arn));
        let assume_role_session_name = keep(
            w.assume_role_session_name,
            old.map(|o| &o.assume_role_session_name),
        );
        let external_id = keep(w.external_id, old.map(|o| &o.external_id));
        if let Some(arn) = &assume_role_arn {
            check_role_arn(arn, "assume_role_arn")?;
        }
        if let Some(s) = &assume_role_session_name {
            check_session_name(s)?;
        }
        if let Some(id) = &external_id {
            check_external_id(id)?;
        }
        if assume_role_arn.is_none()
            && (external_id.is_some() || assume_role_session_name.is_some())
        {
            return Err(EngineError::Invalid(
                "external_id and assume_role_session_name are only used to assume assume_role_arn; set assume_role_arn too".into(),
            ));
        }
        Ok(StaticRoleConfig {
            username,
            rotation_period,
            overlap,
            assume_role_arn,
            assume_role_session_name,
            external_id,
        })
    }

    /// The clients that act on the role's user: the mount's own, or the role it assumes in the
    /// user's account.
    async fn static_account(
        &self,
        mount: &MountPath,
        name: &RoleName,
        c: &StaticRoleConfig,
    ) -> Result<AwsAccount> {
        let account = self.account(mount).await?;
        let Some(arn) = &c.assume_role_arn else {
            return Ok(account);
        };
        let mut session = c
            .assume_role_session_name
            .clone()
            .unwrap_or_else(|| format!("iamlease-{mount}-{name}"));
        session.truncate(64);
        account
            .assumed(arn, &session, c.external_id.as_deref())
            .await
            .map_err(|e| aws_failed(&format!("assuming {arn}"), &e))
    }

    /// Writes a static role. A new role is checked against AWS first (the user exists and
    /// holds at most one key) and rotated at once; a rotation that fails then is retried in
    /// the background and named in the answer's warnings. Rewriting a role changes its
    /// schedule at once.
    pub async fn write_static_role(
        &self,
        mount: &MountPath,
        name: &str,
        w: StaticRoleWrite,
    ) -> Result<(StaticRoleRecord, Vec<String>)> {
        self.mount(mount).await?;
        let name = RoleName::parse(name).map_err(EngineError::Invalid)?;
        let existing = self.store.get_static_role(mount, &name).await?;
        let config = self.static_config(existing.as_ref().map(|r| &r.config), w)?;
        if existing.is_some() {
            if !self.store.update_static_role(mount, &name, &config).await? {
                return Err(EngineError::NotFound(format!(
                    "static role \"{name}\" was deleted meanwhile; write it again"
                )));
            }
            let role = self.read_static_role(mount, name.as_str()).await?;
            return Ok((role, Vec::new()));
        }
        let user = config.username.as_str();
        let account = self.static_account(mount, &name, &config).await?;
        let keys = account.list_user_access_keys(user).await.map_err(|e| {
            if e.is_no_such_entity() {
                EngineError::Invalid(format!(
                    "IAM user \"{user}\" does not exist{}",
                    match &config.assume_role_arn {
                        Some(arn) => format!(" in the account of {arn}"),
                        None => String::new(),
                    }
                ))
            } else {
                aws_failed(&format!("listing the access keys of IAM user {user}"), &e)
            }
        })?;
        if keys.len() >= 2 {
            let ids: Vec<&str> = keys.iter().map(|k| k.access_key_id.as_str()).collect();
            return Err(EngineError::Invalid(format!(
                "IAM user \"{user}\" already holds two access keys ({}); IAM allows two and a rotation needs room for a new one: delete the one no longer in use, then write the role again",
                ids.join(", ")
            )));
        }
        let now = now();
        let record = StaticRoleRecord {
            mount: mount.clone(),
            name: name.clone(),
            config,
            // A key the user already has is the current one until the first rotation
            // replaces it (then it keeps working for the overlap, like any previous key).
            access_key_id: keys.first().map(|k| k.access_key_id.clone()),
            secret_sealed: None,
            previous_key_id: None,
            previous_until: None,
            rotating_since: None,
            last_rotation: None,
            next_rotation: now,
            due_at: now,
            claim: None,
            attempts: 0,
            last_error: None,
            last_error_time: None,
            created_at: now,
        };
        if !self.store.insert_static_role(&record).await? {
            return Err(EngineError::Invalid(format!(
                "static role \"{name}\" was created by another request meanwhile; read it, or write it again to update it"
            )));
        }
        let warnings = match self.rotate_claimable(mount, &name).await {
            Some(Err(e)) => vec![format!(
                "the first rotation failed and will be retried: {e}"
            )],
            _ => Vec::new(),
        };
        let role = self.read_static_role(mount, name.as_str()).await?;
        Ok((role, warnings))
    }

    pub async fn read_static_role(
        &self,
        mount: &MountPath,
        name: &str,
    ) -> Result<StaticRoleRecord> {
        self.mount(mount).await?;
        let name = RoleName::parse(name).map_err(EngineError::Invalid)?;
        self.store
            .get_static_role(mount, &name)
            .await?
            .ok_or_else(|| {
                EngineError::NotFound(format!("static role \"{name}\" does not exist in {mount}/"))
            })
    }

    pub async fn list_static_roles(&self, mount: &MountPath) -> Result<Vec<StaticRoleRecord>> {
        self.mount(mount).await?;
        Ok(self.store.list_static_roles(mount).await?)
    }

    /// Deletes the role and, as Vault does, the keys it created (the current one and a
    /// previous one still in its overlap); a key the user had before the role stays. The keys
    /// go first, so a failure leaves the role to delete again. A rotation racing this finds
    /// its claim gone and deletes the key it made.
    pub async fn delete_static_role(&self, mount: &MountPath, name: &str) -> Result<()> {
        self.mount(mount).await?;
        let name = RoleName::parse(name).map_err(EngineError::Invalid)?;
        let Some(role) = self.store.get_static_role(mount, &name).await? else {
            return Ok(());
        };
        let user = role.config.username.as_str();
        let ours = [
            role.previous_key_id.as_deref(),
            role.secret_sealed
                .as_ref()
                .and(role.access_key_id.as_deref()),
        ];
        if ours.iter().any(Option::is_some) {
            let account = self.static_account(mount, &name, &role.config).await?;
            for key in ours.into_iter().flatten() {
                account.delete_access_key(user, key).await.map_err(|e| {
                    aws_failed(&format!("deleting access key {key} of IAM user {user}"), &e)
                })?;
            }
        }
        self.store.delete_static_role(mount, &name).await?;
        Ok(())
    }

    /// The current key. Served from the store, so it keeps working while rotations fail.
    pub async fn static_creds(&self, mount: &MountPath, name: &str) -> Result<StaticCreds> {
        let role = self.read_static_role(mount, name).await?;
        match (&role.access_key_id, &role.secret_sealed) {
            (Some(id), Some(sealed)) => {
                let secret = self
                    .sealer
                    .open(&seal_context(mount, &role.name, id), sealed)?;
                let secret = String::from_utf8(secret)
                    .map_err(|_| EngineError::Internal("sealed secret is not UTF-8".into()))?;
                Ok(StaticCreds {
                    access_key: id.clone(),
                    secret_key: Secret::new(secret),
                    expiration: role.next_rotation,
                })
            }
            _ => Err(EngineError::Aws(format!(
                "static role \"{}\" has no key of its own yet: {}",
                role.name,
                role.last_error
                    .as_deref()
                    .unwrap_or("its first rotation has not finished")
            ))),
        }
    }

    /// Rotates now (`{mount}/static-roles/{name}/rotate`): makes the role due and, unless
    /// another server is rotating it, rotates it in this request. A previous key still in its
    /// overlap is deleted first.
    pub async fn rotate_static_role(
        &self,
        mount: &MountPath,
        name: &str,
    ) -> Result<StaticRoleRecord> {
        self.mount(mount).await?;
        let name = RoleName::parse(name).map_err(EngineError::Invalid)?;
        if !self
            .store
            .rotate_static_role_now(mount, &name, now())
            .await?
        {
            return Err(EngineError::NotFound(format!(
                "static role \"{name}\" does not exist in {mount}/"
            )));
        }
        if let Some(Err(e)) = self.rotate_claimable(mount, &name).await {
            return Err(e);
        }
        self.read_static_role(mount, name.as_str()).await
    }

    /// The rotator's pass: claims every due role and acts on it. Returns how many it claimed.
    pub async fn rotate_due_static_roles(&self) -> Result<usize> {
        let due = self.store.due_static_roles(now(), ROTATE_BATCH).await?;
        let handled = futures::stream::iter(due)
            .map(|(m, n)| async move {
                let (Ok(mount), Ok(name)) = (MountPath::parse(&m), RoleName::parse(&n)) else {
                    return false;
                };
                self.rotate_claimable(&mount, &name).await.is_some()
            })
            .buffer_unordered(REVOKE_CONCURRENCY)
            .filter(|claimed| std::future::ready(*claimed))
            .count()
            .await;
        Ok(handled)
    }

    /// Claims the role if it is due and runs what is due. `None` when it was not claimable
    /// (not due, or another server holds it); else the attempt's outcome, already recorded.
    async fn rotate_claimable(&self, mount: &MountPath, name: &RoleName) -> Option<Result<()>> {
        let token = random_string(24, LOWER_ALNUM);
        let now = now();
        let deadline = now + self.settings.claim_timeout.as_secs() as i64;
        let role = match self
            .store
            .claim_static_role(mount, name, &token, now, deadline)
            .await
        {
            Ok(Some(role)) => role,
            Ok(None) => return None,
            Err(e) => return Some(Err(e.into())),
        };
        let outcome = self.rotation_steps(&role, &token).await;
        let step = |s| self.store.record_rotation_step(mount, name, &token, s);
        Some(match outcome {
            Ok(()) => step(RotationStep::Release)
                .await
                .map(|_| ())
                .map_err(Into::into),
            Err(Stop::LostClaim) => Ok(()),
            Err(Stop::Failed(e)) => {
                let now = crate::clock::now();
                let delay = super::lease::revoke_backoff_secs(
                    role.attempts + 1,
                    self.settings.revoke_max_backoff.as_secs(),
                )
                .max(1);
                let error = e.to_string();
                metrics::counter!("iamlease_static_role_rotation_failures_total", "mount" => mount.to_string())
                    .increment(1);
                tracing::warn!(%mount, role = %name, attempt = role.attempts + 1, retry_in_secs = delay, error = %error, "static role rotation failed; will retry");
                let failed = RotationStep::Failed {
                    error: &error,
                    now,
                    retry_at: now + delay as i64,
                };
                if let Err(store) = step(failed).await {
                    tracing::warn!(error = %store, "could not record the failed rotation");
                }
                Err(e)
            }
        })
    }

    /// One claimed attempt: retire the previous key if its overlap is over, and rotate if the
    /// rotation is due. Each step is recorded before the next AWS call that depends on it.
    async fn rotation_steps(&self, role: &StaticRoleRecord, token: &str) -> Result<(), Stop> {
        let (mount, name) = (&role.mount, &role.name);
        let user = role.config.username.as_str();
        let now = now();
        let rotate = role.next_rotation <= now;
        let retire = role.previous_key_id.is_some()
            && (rotate || role.previous_until.is_none_or(|t| t <= now));
        if !rotate && !retire {
            return Ok(());
        }
        let step = |s| self.store.record_rotation_step(mount, name, token, s);
        let account = self.static_account(mount, name, &role.config).await?;
        if retire && let Some(previous) = &role.previous_key_id {
            account
                .delete_access_key(user, previous)
                .await
                .map_err(|e| {
                    aws_failed(
                        &format!("deleting the previous access key {previous} of IAM user {user}"),
                        &e,
                    )
                })?;
            if !step(RotationStep::PreviousDeleted).await? {
                return Err(Stop::LostClaim);
            }
        }
        if !rotate {
            return Ok(());
        }
        let keys = account.list_user_access_keys(user).await.map_err(|e| {
            if e.is_no_such_entity() {
                EngineError::Invalid(format!("IAM user \"{user}\" no longer exists"))
            } else {
                aws_failed(&format!("listing the access keys of IAM user {user}"), &e)
            }
        })?;
        let current = role.access_key_id.as_deref();
        for key in keys
            .iter()
            .filter(|k| Some(k.access_key_id.as_str()) != current)
        {
            // Only a rotation that was under way can have left a key this row does not know;
            // any other is someone else's, and is never deleted.
            if role.rotating_since.is_none() {
                return Err(Stop::Failed(EngineError::Invalid(format!(
                    "IAM user \"{user}\" holds access key {} that this role did not create; a rotation needs room for a new key: delete that key or the role",
                    key.access_key_id
                ))));
            }
            account
                .delete_access_key(user, &key.access_key_id)
                .await
                .map_err(|e| {
                    aws_failed(
                        &format!(
                            "deleting the unrecorded access key {} of an interrupted rotation",
                            key.access_key_id
                        ),
                        &e,
                    )
                })?;
            tracing::info!(%mount, role = %name, access_key = %key.access_key_id, "deleted the key of an interrupted rotation");
        }
        if !step(RotationStep::Creating { now }).await? {
            return Err(Stop::LostClaim);
        }
        let new = account
            .create_user_access_key(user)
            .await
            .map_err(|e| aws_failed(&format!("creating an access key for IAM user {user}"), &e))?;
        let sealed = self
            .sealer
            .seal(
                &seal_context(mount, name, &new.access_key_id),
                new.secret_access_key.expose().as_bytes(),
            )
            .map_err(EngineError::from);
        let recorded = match &sealed {
            Ok(sealed) => {
                step(RotationStep::Rotated {
                    access_key_id: &new.access_key_id,
                    secret_sealed: sealed,
                    now,
                })
                .await
            }
            Err(_) => Ok(false),
        };
        if !matches!(recorded, Ok(true)) {
            // Not recorded, so never served: take it away again (the next claimant would too).
            if let Err(e) = account.delete_access_key(user, &new.access_key_id).await {
                tracing::warn!(error = %e, access_key = %new.access_key_id, "could not delete an unrecorded new key");
            }
            sealed?;
            recorded?;
            return Err(Stop::LostClaim);
        }
        metrics::counter!("iamlease_static_role_rotations_total", "mount" => mount.to_string())
            .increment(1);
        tracing::info!(%mount, role = %name, access_key = %new.access_key_id, "rotated a static role's access key");
        if role.config.overlap == 0
            && let Some(old) = current
        {
            account.delete_access_key(user, old).await.map_err(|e| {
                aws_failed(
                    &format!("deleting the replaced access key {old} of IAM user {user}"),
                    &e,
                )
            })?;
            if !step(RotationStep::PreviousDeleted).await? {
                return Err(Stop::LostClaim);
            }
        }
        Ok(())
    }
}
