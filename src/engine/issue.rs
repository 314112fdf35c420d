//! Issuing: an `iam_user` credential (intent row first, then user and key, rollback on any
//! failure, optionally waiting until AWS accepts the key) or an STS one (one call, then a row).

use std::time::Duration;

use super::attribution;
use super::cache::Snapshot;
use super::role::{ASSUME_ROLE_MAX_TTL, FEDERATION_MAX_TTL, Role, STS_MIN_TTL};
use super::template::{self, RenderContext};
use super::{
    DEFAULT_LEASE_MAX, DEFAULT_LEASE_TTL, DEFAULT_STS_TTL, Engine, EngineError, Result, aws_failed,
};
use crate::auth::Caller;
use crate::aws::{
    AssumeRoleSpec, AwsAccount, FederationTokenSpec, IamUserSpec, LEASE_ID_TAG, MOUNT_TAG,
    ReadyCheck, SessionTokenSpec, StsCredentials,
};
use crate::clock::{now, rfc3339};
use crate::duration::Ttl;
use crate::model::{CredentialType, KeyRecord, Lease, MountPath, RoleName, lease_id_under};
use crate::seal::Secret;
use crate::store::MountRecord;

/// `wait_ready`: a new key is ready after this many accepted calls in a row, tried this often.
const WAIT_READY_SUCCESSES: u32 = 3;
const WAIT_READY_INTERVAL: Duration = Duration::from_millis(500);

/// What a credential request may ask for.
#[derive(Debug, Clone, Default)]
pub struct IssueRequest {
    pub ttl: Option<Ttl>,
    /// `assumed_role`: which of the role's `role_arns` to assume.
    pub role_arn: Option<String>,
    /// `assumed_role`: the session name instead of one rendered from the template.
    pub role_session_name: Option<String>,
    /// `session_token`: the current code of the role's MFA device.
    pub mfa_code: Option<Secret>,
    /// `iam_user`: answer only once AWS accepts the new key (IAM is eventually consistent).
    pub wait_ready: bool,
    /// Which path asked: `sts/` serves only STS credential types.
    pub via: IssuePath,
}

/// The two paths that issue: `{mount}/creds/{role}` serves every role, `{mount}/sts/{role}`
/// only roles whose credentials come from STS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IssuePath {
    #[default]
    Creds,
    Sts,
}

impl IssueRequest {
    /// Refuses request fields that mean nothing for the role's credential type, so a caller
    /// who thinks they chose a role ARN or passed an MFA code is not silently ignored.
    fn check_applies_to(&self, role_name: &RoleName, role: &Role) -> Result<()> {
        let t = role.credential_type;
        let refuse = |field: &str, allowed: &str| {
            Err(EngineError::Invalid(format!(
                "{field} only applies to {allowed} roles; role {role_name} issues {} credentials",
                t.as_str()
            )))
        };
        if t != CredentialType::AssumedRole {
            if self.role_arn.is_some() {
                return refuse("role_arn", "assumed_role");
            }
            if self.role_session_name.is_some() {
                return refuse("role_session_name", "assumed_role");
            }
        }
        if let Some(code) = &self.mfa_code {
            if t != CredentialType::SessionToken {
                return refuse("mfa_code", "session_token");
            }
            if role.mfa_serial_number.is_none() {
                return Err(EngineError::Invalid(format!(
                    "mfa_code was given but role {role_name} has no mfa_serial_number to use it with"
                )));
            }
            let code = code.expose();
            if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(EngineError::Invalid(
                    "mfa_code must be the 6 digits the MFA device shows".into(),
                ));
            }
        }
        Ok(())
    }
}

/// A credential handed out once. The secret lives only here and in the response.
#[derive(Debug, Clone)]
pub struct IssuedCredential {
    pub lease_id: String,
    pub lease_duration: i64,
    pub renewable: bool,
    pub access_key: String,
    pub secret_key: Secret,
    pub security_token: Option<Secret>,
    pub arn: String,
    pub username: Option<String>,
    pub expire_time: i64,
    /// The mount's AWS region, for clients that set up an environment (`exec`).
    pub region: Option<String>,
    /// The role's `key_map` (empty when it has none).
    pub key_map: std::collections::BTreeMap<String, String>,
}

impl Engine {
    pub async fn issue(
        &self,
        mount: &MountPath,
        role_name: &str,
        request: IssueRequest,
        caller: &Caller,
    ) -> Result<IssuedCredential> {
        // One epoch (read with the caller's token) for the mount, the role and the root
        // config: all three come from memory while no replica has changed any configuration.
        let at = self.snapshot_with(caller.config_epoch).await?;
        let mount_record = self.mount_at(at, mount).await?;
        let role_name = RoleName::parse(role_name).map_err(EngineError::Invalid)?;
        let role = self.role_at(at, mount, &role_name).await?.ok_or_else(|| {
            // Vault's AWS engine answers a 400 here (a 404 is for reading a missing role).
            EngineError::Invalid(format!("Role \"{role_name}\" not found in {mount}/"))
        })?;
        if request.via == IssuePath::Sts && role.credential_type == CredentialType::IamUser {
            return Err(EngineError::Invalid(format!(
                "role {role_name} issues iam_user credentials; read {mount}/creds/{role_name} instead of {mount}/sts/{role_name}"
            )));
        }
        request.check_applies_to(&role_name, &role)?;
        if let Some(max) = role.max_leases {
            // A cheap early refusal; the exact check is the capped insert of the lease row
            // (`cap_refused`), which concurrent issues cannot overshoot.
            let held = self
                .store
                .count_leases_with_prefix(&format!("{mount}/creds/{role_name}/"))
                .await?
                + self
                    .store
                    .count_leases_with_prefix(&format!("{mount}/sts/{role_name}/"))
                    .await?;
            if held >= i64::from(max) {
                return Err(EngineError::LimitReached(format!(
                    "role {role_name} already has {held} leases, its max_leases; revoke one or wait for one to expire"
                )));
            }
        }
        match role.credential_type {
            CredentialType::IamUser => {
                self.issue_iam_user(at, &mount_record, &role_name, &role, request, caller)
                    .await
            }
            _ => {
                self.issue_sts(at, &mount_record, &role_name, &role, request, caller)
                    .await
            }
        }
    }

    /// Resolves an STS duration: request → role `default_sts_ttl` → 1 h, never above the role's
    /// `max_sts_ttl` or AWS's limit for the call, never below AWS's 900 s. Checked before any
    /// AWS call, so a duration AWS would refuse never becomes a 502.
    pub(super) fn sts_ttl(
        role_name: &RoleName,
        role: &Role,
        requested: Option<Ttl>,
    ) -> Result<u64> {
        let (aws_max, call) = match role.credential_type {
            CredentialType::AssumedRole => (ASSUME_ROLE_MAX_TTL, "sts:AssumeRole"),
            CredentialType::FederationToken => (FEDERATION_MAX_TTL, "sts:GetFederationToken"),
            _ => (FEDERATION_MAX_TTL, "sts:GetSessionToken"),
        };
        let (max, max_source) = match role.max_sts_ttl {
            Some(m) if m.as_secs() < aws_max => {
                (m.as_secs(), format!("role {role_name}'s max_sts_ttl"))
            }
            _ => (aws_max, format!("AWS limit for {call}")),
        };
        match requested {
            Some(t) if t.as_secs() < STS_MIN_TTL => Err(EngineError::Invalid(format!(
                "ttl is {}s; AWS requires at least {STS_MIN_TTL}s (15m) for STS credentials",
                t.as_secs()
            ))),
            Some(t) if t.as_secs() > max => Err(EngineError::Invalid(format!(
                "ttl is {}s ({t}), above the {max_source} of {max}s ({}); ask for {} or less",
                t.as_secs(),
                Ttl::from_secs(max),
                Ttl::from_secs(max)
            ))),
            Some(t) => Ok(t.as_secs()),
            // Role defaults were checked against these limits when the role was written.
            None => Ok(role
                .default_sts_ttl
                .map_or(DEFAULT_STS_TTL, Ttl::as_secs)
                .min(max)),
        }
    }

    /// `assumed_role`, `federation_token` and `session_token`: one STS call, then a lease row
    /// for lookup, listing and audit. The row is written after the call because nothing in AWS
    /// needs cleaning up if we crash in between: STS credentials expire on their own.
    pub(super) async fn issue_sts(
        &self,
        at: Snapshot,
        mount: &MountRecord,
        role_name: &RoleName,
        role: &Role,
        request: IssueRequest,
        caller: &Caller,
    ) -> Result<IssuedCredential> {
        let via = match request.via {
            IssuePath::Creds => "creds",
            IssuePath::Sts => "sts",
        };
        let ttl = Self::sts_ttl(role_name, role, request.ttl)?;
        let render = |issued_at| {
            role.name_template().render(&RenderContext {
                role: role_name.as_str(),
                mount: mount.path.as_str(),
                display_name: &caller.display_name,
                meta: &caller.token.meta,
                unix_time: issued_at,
            })
        };
        enum Call {
            AssumeRole(AssumeRoleSpec),
            FederationToken(FederationTokenSpec),
            SessionToken(SessionTokenSpec),
        }
        let call = match role.credential_type {
            CredentialType::AssumedRole => {
                let role_arn = choose_role_arn(role_name, role, request.role_arn.as_deref())?;
                let session_name = match request.role_session_name {
                    Some(name) => {
                        check_role_session_name(&name)?;
                        name
                    }
                    None => render(now()),
                };
                Call::AssumeRole(AssumeRoleSpec {
                    role_arn,
                    session_name,
                    duration_secs: ttl,
                    policy_document: role.policy_document.clone(),
                    policy_arns: role.policy_arns.clone(),
                    tags: attribution::session_tags(&role.session_tags, &caller.display_name),
                    external_id: role.external_id.clone(),
                    source_identity: Some(attribution::source_identity(&caller.display_name)),
                })
            }
            CredentialType::FederationToken => Call::FederationToken(FederationTokenSpec {
                name: render(now()),
                duration_secs: ttl,
                policy_document: role.policy_document.clone(),
                policy_arns: role.policy_arns.clone(),
            }),
            CredentialType::SessionToken => {
                let mfa = match (&role.mfa_serial_number, request.mfa_code) {
                    (Some(serial), Some(code)) => Some((serial.clone(), code)),
                    (Some(serial), None) => {
                        return Err(EngineError::Invalid(format!(
                            "mfa_code is required: role {role_name} needs the current code of the MFA device {serial}"
                        )));
                    }
                    (None, _) => None,
                };
                Call::SessionToken(SessionTokenSpec {
                    duration_secs: ttl,
                    mfa,
                })
            }
            CredentialType::IamUser => {
                return Err(EngineError::Internal(
                    "issue_sts called for an iam_user role".into(),
                ));
            }
        };

        let account = self.account_at(at, &mount.path).await?;
        let issued = match &call {
            Call::AssumeRole(spec) => account.assume_role(spec).await,
            Call::FederationToken(spec) => account.get_federation_token(spec).await,
            Call::SessionToken(spec) => account.get_session_token(spec).await,
        }
        .map_err(|e| aws_failed("issuing STS credentials", &e))?;
        let StsCredentials {
            access_key_id,
            secret_access_key,
            session_token,
            expiration,
            arn,
        } = issued;

        let issued_at = now();
        let lease = Lease::active_sts(
            mount.path.clone(),
            role_name.clone(),
            role.credential_type,
            access_key_id.clone(),
            issued_at,
            expiration,
        )
        .with_id(lease_id_under(&mount.path, via, role_name))
        .with_token_accessor(caller.accessor.clone());
        let history = KeyRecord::for_lease(
            &lease,
            &access_key_id,
            &caller.display_name,
            &caller.token.meta,
        );
        match role.max_leases {
            None => self.store.insert_active_lease(&lease, &history).await?,
            Some(max) => {
                if !self
                    .store
                    .insert_lease_capped(&lease, Some(&history), i64::from(max))
                    .await?
                {
                    // Never handed out: the session expires unused in AWS (STS cannot revoke).
                    return Err(cap_refused(role_name));
                }
            }
        }
        tracing::info!(
            lease_id = %lease.id,
            credential_type = role.credential_type.as_str(),
            arn = %arn,
            ttl,
            "issued STS credential"
        );
        Ok(IssuedCredential {
            lease_id: lease.id,
            lease_duration: (expiration - now()).max(0),
            renewable: false,
            access_key: access_key_id,
            secret_key: secret_access_key,
            security_token: Some(session_token),
            arn,
            username: None,
            expire_time: expiration,
            region: account.region(),
            key_map: role.key_map.clone(),
        })
    }

    /// Resolves the lease TTL (request → role → mount → 1h) and its ceiling (role → mount → 24h),
    /// never above the mount's tuned `max_lease_ttl`: as in Vault, a role or `config/lease`
    /// cannot outlast the mount's own maximum.
    pub(super) fn lease_ttls(
        mount: &MountRecord,
        role_name: &RoleName,
        role: &Role,
        requested: Option<Ttl>,
    ) -> Result<(u64, u64)> {
        let (mut max, mut max_source) =
            match (role.max_ttl, mount.lease_max.or(mount.max_lease_ttl)) {
                (Some(m), _) => (m.as_secs(), format!("role {role_name}'s max_ttl")),
                (None, Some(m)) => (m as u64, format!("{}/config/lease lease_max", mount.path)),
                (None, None) => (DEFAULT_LEASE_MAX, "default maximum".into()),
            };
        if let Some(cap) = mount.max_lease_ttl.map(|m| m as u64)
            && cap < max
        {
            max = cap;
            max_source = format!("{}/ mount's max_lease_ttl", mount.path);
        }
        let default = role
            .default_ttl
            .map(Ttl::as_secs)
            .or(mount
                .lease_ttl
                .or(mount.default_lease_ttl)
                .map(|t| t as u64))
            .unwrap_or(DEFAULT_LEASE_TTL);
        let ttl = match requested {
            Some(t) if t.as_secs() > max => {
                return Err(EngineError::Invalid(format!(
                    "ttl {t} exceeds the {max_source} of {}; ask for {} or less",
                    Ttl::from_secs(max),
                    Ttl::from_secs(max)
                )));
            }
            Some(t) => t.as_secs(),
            None => default.min(max),
        };
        Ok((ttl, max))
    }

    pub(super) async fn issue_iam_user(
        &self,
        at: Snapshot,
        mount: &MountRecord,
        role_name: &RoleName,
        role: &Role,
        request: IssueRequest,
        caller: &Caller,
    ) -> Result<IssuedCredential> {
        let (ttl, max_ttl) = Self::lease_ttls(mount, role_name, role, request.ttl)?;
        let account = self.account_at(at, &mount.path).await?;
        self.check_user_quota(&mount.path, &account).await?;
        let issued_at = now();
        let username = role.name_template().render(&RenderContext {
            role: role_name.as_str(),
            mount: mount.path.as_str(),
            display_name: &caller.display_name,
            meta: &caller.token.meta,
            unix_time: issued_at,
        });
        let expire_time = issued_at + ttl as i64;
        let lease = Lease::pending_iam_user(
            mount.path.clone(),
            role_name.clone(),
            username.clone(),
            issued_at,
            ttl as i64,
            max_ttl as i64,
            issued_at + self.settings.pending_grace.as_secs() as i64,
        )
        .with_token_accessor(caller.accessor.clone());
        // Intent first: if we crash after this line, recovery knows which user to delete.
        match role.max_leases {
            None => self.store.insert_lease(&lease).await?,
            Some(max) => {
                if !self
                    .store
                    .insert_lease_capped(&lease, None, i64::from(max))
                    .await?
                {
                    return Err(cap_refused(role_name));
                }
            }
        }

        let mut tags = vec![
            (LEASE_ID_TAG.to_owned(), lease.id.clone()),
            (MOUNT_TAG.to_owned(), mount.path.to_string()),
            ("iamlease:role".to_owned(), role_name.to_string()),
            ("iamlease:expires-at".to_owned(), rfc3339(expire_time)),
        ];
        tags.extend(role.iam_tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        // Who asked, in CreateUser itself: a user never exists without it.
        tags.extend(attribution::user_tags(
            &caller.display_name,
            &caller.token.meta,
            tags.len(),
        ));
        let spec = IamUserSpec {
            username: username.clone(),
            path: role.user_path(&mount.path, role_name),
            permissions_boundary_arn: role.permissions_boundary_arn.clone(),
            tags,
            policy_arns: role.policy_arns.clone(),
            policy_document: role.policy_document.clone(),
            groups: role.iam_groups.clone(),
            lease_id: lease.id.clone(),
        };
        let key = match account.create_iam_user(&spec).await {
            Ok(key) => key,
            Err(failure) => {
                self.roll_back_issue(&lease, &account, failure.user_may_exist)
                    .await;
                return Err(aws_failed("issuing credentials", &failure.error));
            }
        };
        // Who holds the key is recorded in the transaction that hands it out.
        let history = KeyRecord::for_lease(
            &lease,
            &key.access_key_id,
            &caller.display_name,
            &caller.token.meta,
        );
        let activated = match self.store.activate_lease(&history, expire_time).await {
            Ok(activated) => activated,
            Err(e) => {
                // The store cannot take the write (disk full, read-only): the caller will never
                // get this key, so delete the user now rather than leave it until recovery.
                // The pending row, if it stays, only makes recovery delete a missing user.
                match account.delete_iam_user(&username).await {
                    Ok(()) => {
                        let _ = self.store.delete_lease(&lease.id).await;
                    }
                    Err(aws) => {
                        tracing::warn!(lease_id = %lease.id, error = %aws, "cleanup after a failed store write failed; recovery will retry")
                    }
                }
                return Err(e.into());
            }
        };
        if !activated {
            // Someone claimed the pending lease (a revoke-prefix, or recovery after a very slow
            // AWS); they own the row now and will delete the user. Make sure of it ourselves.
            if let Err(e) = account.delete_iam_user(&username).await {
                tracing::warn!(lease_id = %lease.id, error = %e, "cleanup after a lost claim failed; the owner will retry");
            }
            return Err(EngineError::Internal(
                "the lease was revoked while it was being issued; ask again".into(),
            ));
        }
        if request.wait_ready {
            self.wait_ready(&account, &lease.id, &key).await?;
        }
        tracing::info!(lease_id = %lease.id, username = %username, ttl, "issued iam_user credential");
        Ok(IssuedCredential {
            lease_id: lease.id,
            // The TTL asked for, as Vault answers; after wait_ready, what is left of it.
            lease_duration: if request.wait_ready {
                (expire_time - now()).max(0)
            } else {
                ttl as i64
            },
            renewable: true,
            access_key: key.access_key_id,
            secret_key: key.secret_access_key,
            security_token: None,
            arn: key.user_arn,
            username: Some(username),
            expire_time,
            region: account.region(),
            key_map: role.key_map.clone(),
        })
    }

    /// `wait_ready`: returns once AWS accepts the new key, or revokes the lease (deleting the
    /// user) and says why. The lease is already active, so a crash here leaves it to expire.
    pub(super) async fn wait_ready(
        &self,
        account: &AwsAccount,
        lease_id: &str,
        key: &crate::aws::IssuedAccessKey,
    ) -> Result<()> {
        let check = ReadyCheck {
            successes: WAIT_READY_SUCCESSES,
            interval: WAIT_READY_INTERVAL,
            timeout: self.settings.wait_ready_timeout,
        };
        let started = std::time::Instant::now();
        match account
            .wait_until_key_works(&key.access_key_id, &key.secret_access_key, None, check)
            .await
        {
            Ok(ready) => {
                tracing::info!(
                    lease_id,
                    attempts = ready.attempts,
                    waited_ms = started.elapsed().as_millis() as u64,
                    "new key accepted by AWS"
                );
                Ok(())
            }
            Err(e) => {
                tracing::warn!(lease_id, error = %e, "new key not accepted in time; revoking");
                let revoked = match self.revoke_one(lease_id.to_owned()).await {
                    Ok(()) => "the lease was revoked and its IAM user deleted".to_owned(),
                    Err(r) => {
                        format!("revoking the lease failed and is retried in the background ({r})")
                    }
                };
                Err(EngineError::Aws(format!(
                    "wait_ready: {}; {revoked}. IAM may be slow to propagate right now: ask again, or without wait_ready",
                    e.message
                )))
            }
        }
    }

    /// Undoes a half-made issue. If the cleanup itself fails, the lease row stays (as `failed`)
    /// and the reaper keeps retrying, so nothing is ever left in AWS without a record.
    pub(super) async fn roll_back_issue(
        &self,
        lease: &Lease,
        account: &AwsAccount,
        user_may_exist: bool,
    ) {
        let Some(claimed) = self
            .store
            .claim_lease(&lease.id, now(), now() + self.settings.claim_timeout.as_secs() as i64)
            .await
            .unwrap_or_else(|e| {
                tracing::error!(lease_id = %lease.id, error = %e, "cannot claim lease for rollback; recovery will");
                None
            })
        else {
            return;
        };
        if !user_may_exist {
            if let Err(e) = self.store.delete_lease(&claimed.id).await {
                tracing::error!(lease_id = %claimed.id, error = %e, "cannot drop lease row; recovery will");
            }
            return;
        }
        self.finish_revocation(&claimed, Some(account)).await.ok();
    }
}

/// The role ARN an `assumed_role` request assumes: the one the request names, which must be
/// one of the role's; or the role's only one.
fn choose_role_arn(role_name: &RoleName, role: &Role, requested: Option<&str>) -> Result<String> {
    match (requested, role.role_arns.as_slice()) {
        (Some(arn), arns) if arns.iter().any(|a| a == arn) => Ok(arn.to_owned()),
        (Some(arn), arns) => Err(EngineError::Invalid(format!(
            "role_arn {arn:?} is not one of role {role_name}'s role_arns ({}); ask for one of those",
            arns.join(", ")
        ))),
        (None, [only]) => Ok(only.clone()),
        (None, arns) => Err(EngineError::Invalid(format!(
            "role {role_name} has {} role_arns; choose one with role_arn ({})",
            arns.len(),
            arns.join(", ")
        ))),
    }
}

/// AWS's RoleSessionName rule: 2 to 64 characters of `[\w+=,.@-]`.
fn check_role_session_name(name: &str) -> Result<()> {
    let ok = (2..=64).contains(&name.len()) && name.chars().all(template::is_iam_name_char);
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "role_session_name {name:?} must be 2 to 64 characters of A-Z a-z 0-9 and + = , . @ _ -"
        )))
    }
}

/// A role at its `max_leases`, found by the capped insert (another issue took the last place).
fn cap_refused(role_name: &RoleName) -> EngineError {
    EngineError::LimitReached(format!(
        "role {role_name} already has its max_leases of leases; revoke one or wait for one to expire"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#;

    fn mount(lease_ttl: Option<i64>, lease_max: Option<i64>) -> MountRecord {
        MountRecord {
            path: MountPath::parse("aws").unwrap(),
            kind: "aws".into(),
            description: String::new(),
            default_lease_ttl: None,
            max_lease_ttl: None,
            lease_ttl,
            lease_max,
            created_at: 0,
        }
    }

    /// A role of type `t` with nothing set, for tests to fill in; `valid` checks the result.
    fn blank(t: CredentialType) -> Role {
        Role {
            credential_type: t,
            policy_arns: Vec::new(),
            policy_document: None,
            iam_groups: Vec::new(),
            iam_tags: Default::default(),
            user_path: None,
            permissions_boundary_arn: None,
            username_template: None,
            default_ttl: None,
            max_ttl: None,
            role_arns: Vec::new(),
            default_sts_ttl: None,
            max_sts_ttl: None,
            session_tags: Default::default(),
            external_id: None,
            mfa_serial_number: None,
            key_map: Default::default(),
            max_leases: None,
        }
    }

    fn valid(role: Role) -> Role {
        role.validate().unwrap();
        role
    }

    fn role(default_ttl: Option<u64>, max_ttl: Option<u64>) -> Role {
        valid(Role {
            policy_arns: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
            default_ttl: default_ttl.map(Ttl::from_secs),
            max_ttl: max_ttl.map(Ttl::from_secs),
            ..blank(CredentialType::IamUser)
        })
    }

    fn assumed(arns: &[&str]) -> Role {
        valid(Role {
            role_arns: arns.iter().map(|a| (*a).to_owned()).collect(),
            ..blank(CredentialType::AssumedRole)
        })
    }

    #[test]
    fn sts_ttl_resolution_and_limits() {
        let n = RoleName::parse("r").unwrap();
        let arn = "arn:aws:iam::123456789012:role/a";
        let assumed = assumed(&[arn]);
        let fed = valid(Role {
            policy_document: Some(DOC.into()),
            ..blank(CredentialType::FederationToken)
        });
        let capped = valid(Role {
            default_sts_ttl: Some(Ttl::from_secs(20 * 60)),
            max_sts_ttl: Some(Ttl::from_secs(30 * 60)),
            ..blank(CredentialType::SessionToken)
        });
        let secs = |s| Some(Ttl::from_secs(s));
        assert_eq!(Engine::sts_ttl(&n, &assumed, None).unwrap(), 3600);
        assert_eq!(Engine::sts_ttl(&n, &capped, None).unwrap(), 1200);
        assert_eq!(Engine::sts_ttl(&n, &fed, secs(36 * 3600)).unwrap(), 129600);
        let e = Engine::sts_ttl(&n, &fed, secs(899))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ttl is 899s") && e.contains("900s"), "{e}");
        let e = Engine::sts_ttl(&n, &assumed, secs(43201))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sts:AssumeRole of 43200s"), "{e}");
        let e = Engine::sts_ttl(&n, &capped, secs(1801))
            .unwrap_err()
            .to_string();
        assert!(e.contains("role r's max_sts_ttl of 1800s"), "{e}");
    }

    #[test]
    fn role_arn_choice() {
        let n = RoleName::parse("r").unwrap();
        let (a, b) = (
            "arn:aws:iam::123456789012:role/a",
            "arn:aws:iam::123456789012:role/b",
        );
        let one = assumed(&[a]);
        let two = assumed(&[a, b]);
        assert_eq!(choose_role_arn(&n, &one, None).unwrap(), a);
        assert_eq!(choose_role_arn(&n, &one, Some(a)).unwrap(), a);
        assert!(choose_role_arn(&n, &one, Some(b)).is_err());
        assert!(choose_role_arn(&n, &two, None).is_err());
        assert_eq!(choose_role_arn(&n, &two, Some(b)).unwrap(), b);
    }

    #[test]
    fn ttl_resolution_order() {
        let n = RoleName::parse("dev").unwrap();
        // Nothing set: 1h, capped at 24h.
        assert_eq!(
            Engine::lease_ttls(&mount(None, None), &n, &role(None, None), None).unwrap(),
            (3600, 86400)
        );
        // Mount config/lease applies when the role says nothing.
        assert_eq!(
            Engine::lease_ttls(&mount(Some(600), Some(1200)), &n, &role(None, None), None).unwrap(),
            (600, 1200)
        );
        // Role beats mount; request beats role.
        assert_eq!(
            Engine::lease_ttls(
                &mount(Some(600), Some(1200)),
                &n,
                &role(Some(60), Some(120)),
                None
            )
            .unwrap(),
            (60, 120)
        );
        assert_eq!(
            Engine::lease_ttls(
                &mount(None, None),
                &n,
                &role(Some(60), Some(120)),
                Some(Ttl::from_secs(90))
            )
            .unwrap(),
            (90, 120)
        );
        // Asking for more than the ceiling is refused with the limit in the message.
        let e = Engine::lease_ttls(
            &mount(None, None),
            &n,
            &role(None, Some(120)),
            Some(Ttl::from_secs(121)),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("exceeds the role dev's max_ttl of 2m0s"),
            "{e}"
        );
        // A default above a mount's ceiling is capped rather than refused.
        assert_eq!(
            Engine::lease_ttls(&mount(Some(7200), Some(3600)), &n, &role(None, None), None)
                .unwrap(),
            (3600, 3600)
        );
        // The mount's tuned max_lease_ttl caps a role's max_ttl and config/lease, as in Vault.
        let tuned = MountRecord {
            max_lease_ttl: Some(1800),
            ..mount(Some(600), Some(7200))
        };
        assert_eq!(
            Engine::lease_ttls(&tuned, &n, &role(Some(3600), Some(7200)), None).unwrap(),
            (1800, 1800)
        );
        assert_eq!(
            Engine::lease_ttls(&tuned, &n, &role(None, None), None).unwrap(),
            (600, 1800)
        );
        let e = Engine::lease_ttls(
            &tuned,
            &n,
            &role(None, Some(7200)),
            Some(Ttl::from_secs(3600)),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("mount's max_lease_ttl of 30m0s"),
            "{e}"
        );
    }
}
