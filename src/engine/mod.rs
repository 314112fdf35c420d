//! The AWS secrets engine: mounts, root config, roles, and the lease lifecycle (issue, renew,
//! revoke, expire). It decides; `store` remembers; `aws` acts. It knows nothing of HTTP.

pub mod lease;
mod reaper;
pub mod role;
mod setup;
pub mod sweep;
pub mod template;

pub use reaper::{run_reaper, run_sweeper};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Caller;
use crate::aws::{
    AssumeRoleSpec, AwsAccount, AwsError, ConnectionSettings, FederationTokenSpec, IamUserSpec,
    LEASE_ID_TAG, MOUNT_TAG, ReadyCheck, RetryMode, SessionTokenSpec, StsCredentials,
};
use crate::duration::Ttl;
use crate::fields::{FieldError, Fields};
use crate::seal::{SealError, Sealer, Secret};
use crate::store::{MountRecord, RootConfigRecord, Store, StoreError};
use lease::{Lease, LeaseState, new_lease_id, revoke_backoff_secs};
use role::{
    ASSUME_ROLE_MAX_TTL, CredentialType, FEDERATION_MAX_TTL, MountPath, Role, RoleName,
    STS_MIN_TTL, check_external_id, check_role_arn,
};
use template::RenderContext;

const DEFAULT_LEASE_TTL: u64 = 3600;
const DEFAULT_LEASE_MAX: u64 = 24 * 3600;
/// STS credentials live this long unless the request or the role says otherwise (as in AWS).
const DEFAULT_STS_TTL: u64 = 3600;
/// How long rotate-root waits for a new root key to authenticate before giving up on it.
const NEW_ROOT_KEY_WAIT: Duration = Duration::from_secs(30);
/// How many revocations run at once (AWS rate limits are per account, not per lease).
const REVOKE_CONCURRENCY: usize = 16;
/// `wait_ready`: a new key is ready after this many accepted calls in a row, tried this often.
const WAIT_READY_SUCCESSES: u32 = 3;
const WAIT_READY_INTERVAL: Duration = Duration::from_millis(500);
/// Leases the reaper claims (and forgets) per commit.
const REAP_BATCH: i64 = 256;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request was wrong; the message says how to put it right.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// AWS refused or failed after the SDK's retries.
    #[error("{0}")]
    Aws(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
    /// A cap was reached (a role's `max_leases`); the same request can succeed later.
    #[error("{0}")]
    LimitReached(String),
}

impl From<FieldError> for EngineError {
    fn from(e: FieldError) -> Self {
        EngineError::Invalid(e.0)
    }
}

impl From<SealError> for EngineError {
    fn from(e: SealError) -> Self {
        EngineError::Internal(e.to_string())
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub revoke_max_backoff: Ttl,
    /// How long a `pending` lease may stay so before recovery rolls it back.
    pub pending_grace: Duration,
    /// How long a revocation claim holds before someone else may resume it.
    pub claim_timeout: Duration,
    /// `wait_ready`: how long to wait for AWS to accept a new key before revoking it.
    pub wait_ready_timeout: Duration,
    /// URL prefixes a root config's endpoint overrides must start with; empty allows any.
    pub allowed_aws_endpoints: Vec<String>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            revoke_max_backoff: Ttl::from_secs(3600),
            pending_grace: Duration::from_secs(120),
            claim_timeout: Duration::from_secs(300),
            wait_ready_timeout: Duration::from_secs(30),
            allowed_aws_endpoints: Vec::new(),
        }
    }
}

/// An endpoint override, checked: an http(s) URL with a host and nothing else that could hide
/// where it goes (no user or password, query or fragment), within the operator's allow-list. A
/// bare host means `https://host`, as in Vault. Empty clears the override.
fn endpoint(key: &str, raw: &str, allowed: &[String]) -> Result<Option<String>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let text = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("https://{raw}")
    };
    let bad = |why: &str| {
        EngineError::Invalid(format!(
            "{key} {raw:?} {why}; use an http:// or https:// URL such as https://iam.amazonaws.com"
        ))
    };
    let url = url::Url::parse(&text).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("carries a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("has a query or fragment"));
    }
    let normalised = url.as_str().trim_end_matches('/').to_owned();
    if !allowed.is_empty()
        && !allowed
            .iter()
            .any(|p| normalised.starts_with(p.trim_end_matches('/')))
    {
        return Err(EngineError::Invalid(format!(
            "{key} {normalised:?} is not within the server's allowed_aws_endpoints ({})",
            allowed.join(", ")
        )));
    }
    Ok(Some(normalised))
}

/// The root config as stored: everything but the secret key, which is sealed apart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RootConfig {
    access_key: Option<String>,
    region: Option<String>,
    iam_endpoint: Option<String>,
    sts_endpoint: Option<String>,
    max_retries: Option<i64>,
    /// `adaptive` adds client-side rate limiting on throttling to the standard retries.
    #[serde(default)]
    retry_mode: Option<RetryMode>,
    role_arn: Option<String>,
    external_id: Option<String>,
}

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
}

impl IssueRequest {
    pub fn parse(fields: &mut Fields) -> Result<Self> {
        Ok(IssueRequest {
            ttl: fields.ttl("ttl")?.filter(|t| !t.is_zero()),
            role_arn: fields
                .non_empty_string("role_arn")?
                .map(|s| s.trim().to_owned()),
            role_session_name: fields
                .non_empty_string("role_session_name")?
                .map(|s| s.trim().to_owned()),
            mfa_code: fields
                .non_empty_string("mfa_code")?
                .map(|s| Secret::new(s.trim())),
            wait_ready: fields.bool("wait_ready")?.unwrap_or(false),
        })
    }
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

/// The outcome of a renewal.
#[derive(Debug, Clone)]
pub struct Renewed {
    pub lease: Lease,
    pub lease_duration: i64,
    pub warnings: Vec<String>,
}

pub struct Engine {
    store: Arc<dyn Store>,
    sealer: Sealer,
    settings: EngineSettings,
    /// SDK clients per mount, tagged with the root-config version they were built from.
    accounts: Mutex<HashMap<MountPath, (i64, AwsAccount)>>,
    /// Where lease events the server does on its own (reaper revocations) are audited.
    audit: std::sync::OnceLock<Arc<crate::audit::AuditLog>>,
}

pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn root_context(mount: &MountPath) -> String {
    format!("root_config:{mount}")
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, sealer: Sealer, settings: EngineSettings) -> Self {
        Engine {
            store,
            sealer,
            settings,
            accounts: Mutex::new(HashMap::new()),
            audit: std::sync::OnceLock::new(),
        }
    }

    /// Audits revocations from now on (set once at start-up).
    pub fn set_audit_log(&self, log: Arc<crate::audit::AuditLog>) {
        let _ = self.audit.set(log);
    }

    fn audit_lease(&self, event: &str, lease: &Lease, extra: serde_json::Value) {
        if let Some(log) = self.audit.get() {
            log.lease_event(
                event,
                &lease.id,
                lease.mount.as_str(),
                lease.role.as_str(),
                extra,
            );
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Fails when the master key is not the one this store's secrets were sealed with.
    pub async fn check_master_key(&self) -> Result<()> {
        const KEY: &str = "seal_check";
        let probe = self.sealer.seal(KEY, b"iamlease")?;
        self.store.put_meta_if_absent(KEY, &probe).await?;
        let stored = self
            .store
            .get_meta(KEY)
            .await?
            .ok_or_else(|| EngineError::Internal("seal check vanished".into()))?;
        self.sealer.open(KEY, &stored).map_err(|_| {
            EngineError::Internal(
                "the master key does not match the one this store was created with; \
                 set IAMLEASE_MASTER_KEY or master_key_file to the original key"
                    .into(),
            )
        })?;
        Ok(())
    }

    // ---- mounts -------------------------------------------------------------------------

    pub async fn enable_mount(&self, path: &str, mut input: Fields) -> Result<Vec<String>> {
        let path = MountPath::parse(path).map_err(EngineError::Invalid)?;
        let kind = input.string("type")?.unwrap_or_else(|| "aws".into());
        if kind != "aws" {
            return Err(EngineError::Invalid(format!(
                "mount type {kind:?} is not supported; iamlease serves the \"aws\" secrets engine"
            )));
        }
        let description = input.string("description")?.unwrap_or_default();
        let mut config = match input.into_map().remove("config") {
            Some(Value::Object(m)) => Fields::new(m),
            None | Some(Value::Null) => Fields::default(),
            Some(_) => return Err(EngineError::Invalid("config must be an object".into())),
        };
        let default_lease_ttl = config.ttl("default_lease_ttl")?.filter(|t| !t.is_zero());
        let max_lease_ttl = config.ttl("max_lease_ttl")?.filter(|t| !t.is_zero());
        if let (Some(d), Some(m)) = (default_lease_ttl, max_lease_ttl)
            && d > m
        {
            return Err(EngineError::Invalid(format!(
                "default_lease_ttl ({d}) must not exceed max_lease_ttl ({m})"
            )));
        }
        let warnings = config.unknown_field_warnings();
        let record = MountRecord {
            path: path.clone(),
            kind,
            description,
            default_lease_ttl: default_lease_ttl.map(|t| t.as_secs() as i64),
            max_lease_ttl: max_lease_ttl.map(|t| t.as_secs() as i64),
            lease_ttl: None,
            lease_max: None,
            created_at: now(),
        };
        if !self.store.insert_mount(&record).await? {
            return Err(EngineError::Invalid(format!(
                "path is already in use at {path}/"
            )));
        }
        Ok(warnings)
    }

    pub async fn list_mounts(&self) -> Result<Vec<MountRecord>> {
        Ok(self.store.list_mounts().await?)
    }

    async fn mount(&self, path: &MountPath) -> Result<MountRecord> {
        self.store.get_mount(path).await?.ok_or_else(|| {
            EngineError::NotFound(format!("no secrets engine is mounted at {path}/"))
        })
    }

    /// Revokes every lease of the mount in AWS, then forgets the mount, its roles and config.
    pub async fn disable_mount(&self, path: &str) -> Result<()> {
        let path = MountPath::parse(path).map_err(EngineError::Invalid)?;
        if self.store.get_mount(&path).await?.is_none() {
            return Ok(());
        }
        self.revoke_prefix(&format!("{path}/")).await?;
        self.store.delete_mount(&path).await?;
        self.accounts.lock().expect("accounts lock").remove(&path);
        Ok(())
    }

    // ---- config/root and config/lease ------------------------------------------------

    pub async fn write_root_config(
        &self,
        mount: &MountPath,
        mut input: Fields,
    ) -> Result<Vec<String>> {
        self.mount(mount).await?;
        let existing = self.store.get_root_config(mount).await?;
        let mut config: RootConfig = match &existing {
            Some(r) => serde_json::from_str(&r.config)
                .map_err(|e| EngineError::Internal(format!("stored root config: {e}")))?,
            None => RootConfig::default(),
        };
        // An explicitly empty access_key forgets the static keys, so the mount falls back to
        // the default credential chain.
        let (access_key, clear_keys) = match input.string("access_key")? {
            Some(k) if k.trim().is_empty() => (None, true),
            Some(k) => (Some(k.trim().to_owned()), false),
            None => (None, false),
        };
        let secret_key = input.non_empty_string("secret_key")?;
        if let Some(region) = input.non_empty_string("region")? {
            if !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(EngineError::Invalid(format!(
                    "region {region:?} is not an AWS region name such as us-east-1"
                )));
            }
            config.region = Some(region);
        }
        for (key, slot) in [
            ("iam_endpoint", &mut config.iam_endpoint),
            ("sts_endpoint", &mut config.sts_endpoint),
        ] {
            if let Some(raw) = input.string(key)? {
                *slot = endpoint(key, &raw, &self.settings.allowed_aws_endpoints)?;
            }
        }
        if let Some(n) = input.int("max_retries")? {
            if !(-1..=20).contains(&n) {
                return Err(EngineError::Invalid(format!(
                    "max_retries is {n}; use -1 for the SDK default or 0 to 20"
                )));
            }
            config.max_retries = Some(n);
        }
        if let Some(mode) = input.non_empty_string("retry_mode")? {
            config.retry_mode = Some(match mode.trim() {
                "standard" => RetryMode::Standard,
                "adaptive" => RetryMode::Adaptive,
                other => {
                    return Err(EngineError::Invalid(format!(
                        "retry_mode {other:?} is not one of standard, adaptive"
                    )));
                }
            });
        }
        // An empty string unsets either of these, as in Vault.
        if let Some(arn) = input.string("role_arn")? {
            let arn = arn.trim().to_owned();
            if !arn.is_empty() {
                check_role_arn(&arn, "role_arn")?;
            }
            config.role_arn = Some(arn).filter(|a| !a.is_empty());
        }
        if let Some(id) = input.string("external_id")? {
            let id = id.trim().to_owned();
            if !id.is_empty() {
                check_external_id(&id)?;
            }
            config.external_id = Some(id).filter(|a| !a.is_empty());
        }
        if config.external_id.is_some() && config.role_arn.is_none() {
            return Err(EngineError::Invalid(
                "external_id is only used to assume role_arn; set role_arn too, or leave external_id empty".into(),
            ));
        }
        let sealed = match (&access_key, &secret_key) {
            (Some(_), Some(secret)) => {
                Some(self.sealer.seal(&root_context(mount), secret.as_bytes())?)
            }
            (None, None) if clear_keys => None,
            (None, None) => existing.and_then(|r| r.secret_sealed),
            _ => {
                return Err(EngineError::Invalid(
                    "access_key and secret_key must be given together (or neither, to use the AWS default credential chain)".into(),
                ));
            }
        };
        if access_key.is_some() || clear_keys {
            config.access_key = access_key;
        }
        let warnings = input.unknown_field_warnings();
        let text = serde_json::to_string(&config).expect("config serialises");
        self.store
            .put_root_config(mount, &text, sealed.as_deref())
            .await?;
        Ok(warnings)
    }

    /// The root config without its secret key.
    pub async fn read_root_config(&self, mount: &MountPath) -> Result<Value> {
        self.mount(mount).await?;
        let record = self.store.get_root_config(mount).await?.ok_or_else(|| {
            EngineError::NotFound(format!("{mount}/config/root has not been written"))
        })?;
        let c: RootConfig = serde_json::from_str(&record.config)
            .map_err(|e| EngineError::Internal(format!("stored root config: {e}")))?;
        Ok(json!({
            "access_key": c.access_key.unwrap_or_default(),
            "region": c.region.unwrap_or_else(|| "us-east-1".into()),
            "iam_endpoint": c.iam_endpoint.unwrap_or_default(),
            "sts_endpoint": c.sts_endpoint.unwrap_or_default(),
            "max_retries": c.max_retries.unwrap_or(-1),
            "retry_mode": c.retry_mode.unwrap_or_default(),
            "role_arn": c.role_arn.unwrap_or_default(),
            "external_id": c.external_id.unwrap_or_default(),
        }))
    }

    /// Replaces the root config's access key with a new one for the same IAM user and deletes
    /// the old one. The order makes a crash at any point safe: the new key is stored (sealed,
    /// with a new config version so cached clients are rebuilt) before the old one is deleted,
    /// so the stored key always works. A crash between CreateAccessKey and the store leaves an
    /// unused second key on the user, and the next rotation says so (IAM's LimitExceeded).
    pub async fn rotate_root(&self, mount: &MountPath) -> Result<String> {
        self.mount(mount).await?;
        let record = self.store.get_root_config(mount).await?.ok_or_else(|| {
            EngineError::Invalid(format!(
                "{mount}/config/root has not been written; there is no key to rotate"
            ))
        })?;
        let mut config: RootConfig = serde_json::from_str(&record.config)
            .map_err(|e| EngineError::Internal(format!("stored root config: {e}")))?;
        let old_key = match (&config.access_key, &record.secret_sealed) {
            (Some(key), Some(_)) => key.clone(),
            _ => {
                return Err(EngineError::Invalid(format!(
                    "{mount}/config/root has no static access_key to rotate: the mount uses the AWS default credential chain; rotate those credentials where they come from"
                )));
            }
        };
        // The key belongs to an IAM user, not to the role the mount may assume with it, so
        // rotation talks to IAM with the keys themselves.
        let mut settings = self.connection_settings(mount, &record)?;
        settings.role_arn = None;
        settings.external_id = None;
        let old = AwsAccount::connect(&settings).await;
        let new_key = old
            .create_root_access_key()
            .await
            .map_err(|e| aws_failed("creating the new root access key", &e))?;

        settings.access_key = Some(new_key.access_key_id.clone());
        settings.secret_key = Some(new_key.secret_access_key.clone());
        let new = AwsAccount::connect(&settings).await;
        if let Err(e) = new.wait_until_authenticated(NEW_ROOT_KEY_WAIT).await {
            // Never switch to a key that does not work; take it away again.
            if let Err(cleanup) = old
                .delete_access_key(&new_key.user_name, &new_key.access_key_id)
                .await
            {
                tracing::warn!(error = %cleanup, "could not delete the unusable new root key");
            }
            return Err(aws_failed("checking the new root access key", &e));
        }

        let sealed = self.sealer.seal(
            &root_context(mount),
            new_key.secret_access_key.expose().as_bytes(),
        )?;
        config.access_key = Some(new_key.access_key_id.clone());
        let text = serde_json::to_string(&config).expect("config serialises");
        self.store
            .put_root_config(mount, &text, Some(&sealed))
            .await?;
        tracing::info!(%mount, new_access_key = %new_key.access_key_id, "rotated the root access key");

        // Deleted with the new key: if that works, the switch is proven end to end.
        new.delete_access_key(&new_key.user_name, &old_key)
            .await
            .map_err(|e| {
                EngineError::Aws(format!(
                    "the new root access key {} is stored and in use, but deleting the old key {old_key} failed; delete it by hand: {e}",
                    new_key.access_key_id
                ))
            })?;
        Ok(new_key.access_key_id)
    }

    pub async fn write_lease_config(
        &self,
        mount: &MountPath,
        mut input: Fields,
    ) -> Result<Vec<String>> {
        let current = self.mount(mount).await?;
        let lease = input
            .ttl("lease")?
            .map(|t| t.as_secs() as i64)
            .or(current.lease_ttl);
        let lease_max = input
            .ttl("lease_max")?
            .map(|t| t.as_secs() as i64)
            .or(current.lease_max);
        if let (Some(l), Some(m)) = (lease, lease_max)
            && l > m
        {
            return Err(EngineError::Invalid(format!(
                "lease ({}) must not exceed lease_max ({})",
                Ttl::from_secs(l as u64),
                Ttl::from_secs(m as u64)
            )));
        }
        let warnings = input.unknown_field_warnings();
        self.store
            .set_mount_lease_config(mount, lease, lease_max)
            .await?;
        Ok(warnings)
    }

    pub async fn read_lease_config(&self, mount: &MountPath) -> Result<Value> {
        let m = self.mount(mount).await?;
        let lease = m
            .lease_ttl
            .or(m.default_lease_ttl)
            .unwrap_or(DEFAULT_LEASE_TTL as i64);
        let max = m
            .lease_max
            .or(m.max_lease_ttl)
            .unwrap_or(DEFAULT_LEASE_MAX as i64);
        Ok(json!({
            "lease": Ttl::from_secs(lease as u64).to_go_string(),
            "lease_max": Ttl::from_secs(max as u64).to_go_string(),
        }))
    }

    // ---- roles --------------------------------------------------------------------------

    pub async fn write_role(
        &self,
        mount: &MountPath,
        name: &str,
        input: Fields,
    ) -> Result<Vec<String>> {
        self.mount(mount).await?;
        let name = RoleName::parse(name).map_err(EngineError::Invalid)?;
        let existing = self.load_role(mount, &name).await?;
        let (role, warnings) = Role::parse(existing.as_ref(), input)?;
        let body = serde_json::to_string(&role).expect("role serialises");
        self.store.put_role(mount, &name, &body).await?;
        Ok(warnings)
    }

    async fn load_role(&self, mount: &MountPath, name: &RoleName) -> Result<Option<Role>> {
        match self.store.get_role(mount, name).await? {
            None => Ok(None),
            Some(body) => serde_json::from_str(&body)
                .map(Some)
                .map_err(|e| EngineError::Internal(format!("stored role {name}: {e}"))),
        }
    }

    async fn role(&self, mount: &MountPath, name: &str) -> Result<(RoleName, Role)> {
        self.mount(mount).await?;
        let name = RoleName::parse(name).map_err(EngineError::Invalid)?;
        let role = self.load_role(mount, &name).await?.ok_or_else(|| {
            EngineError::NotFound(format!("role \"{name}\" does not exist in {mount}/"))
        })?;
        Ok((name, role))
    }

    pub async fn read_role(&self, mount: &MountPath, name: &str) -> Result<Value> {
        let (name, role) = self.role(mount, name).await?;
        Ok(role.to_read_data(mount, &name))
    }

    pub async fn list_roles(&self, mount: &MountPath) -> Result<Vec<String>> {
        self.mount(mount).await?;
        Ok(self.store.list_roles(mount).await?)
    }

    /// Deleting a role leaves its leases alone: they still expire and revoke normally.
    pub async fn delete_role(&self, mount: &MountPath, name: &str) -> Result<()> {
        self.mount(mount).await?;
        let name = RoleName::parse(name).map_err(EngineError::Invalid)?;
        self.store.delete_role(mount, &name).await?;
        Ok(())
    }

    // ---- AWS clients --------------------------------------------------------------------

    async fn account(&self, mount: &MountPath) -> Result<AwsAccount> {
        let record = self.store.get_root_config(mount).await?.ok_or_else(|| {
            EngineError::Invalid(format!(
                "{mount}/ has no AWS connection yet: write {mount}/config/root first"
            ))
        })?;
        if let Some((version, account)) = self.accounts.lock().expect("accounts lock").get(mount)
            && *version == record.version
        {
            return Ok(account.clone());
        }
        let account = AwsAccount::connect(&self.connection_settings(mount, &record)?).await;
        self.accounts
            .lock()
            .expect("accounts lock")
            .insert(mount.clone(), (record.version, account.clone()));
        Ok(account)
    }

    /// The root config as the SDK needs it, the secret key unsealed.
    fn connection_settings(
        &self,
        mount: &MountPath,
        record: &RootConfigRecord,
    ) -> Result<ConnectionSettings> {
        let c: RootConfig = serde_json::from_str(&record.config)
            .map_err(|e| EngineError::Internal(format!("stored root config: {e}")))?;
        let secret_key = match &record.secret_sealed {
            Some(sealed) => Some(Secret::new(
                String::from_utf8(self.sealer.open(&root_context(mount), sealed)?)
                    .map_err(|_| EngineError::Internal("sealed secret is not UTF-8".into()))?,
            )),
            None => None,
        };
        // RoleSessionName allows 64 characters; mount paths are already in its character set.
        let mut role_session_name = format!("iamlease-{mount}");
        role_session_name.truncate(64);
        Ok(ConnectionSettings {
            access_key: c.access_key,
            secret_key,
            region: c.region.unwrap_or_else(|| "us-east-1".into()),
            iam_endpoint: c.iam_endpoint,
            sts_endpoint: c.sts_endpoint,
            max_retries: c.max_retries.and_then(|n| u32::try_from(n).ok()),
            retry_mode: c.retry_mode.unwrap_or_default(),
            role_arn: c.role_arn,
            external_id: c.external_id,
            role_session_name,
        })
    }

    // ---- issue --------------------------------------------------------------------------

    pub async fn issue(
        &self,
        mount: &MountPath,
        role_name: &str,
        request: IssueRequest,
        caller: &Caller,
    ) -> Result<IssuedCredential> {
        let mount_record = self.mount(mount).await?;
        let (role_name, role) = self.role(mount, role_name).await?;
        request.check_applies_to(&role_name, &role)?;
        if let Some(max) = role.max_leases {
            // Counted before the lease row is written, so concurrent issues can overshoot the
            // cap by the number running at once; the cap bounds growth, not an exact count.
            let held = self
                .store
                .count_leases_with_prefix(&format!("{mount}/creds/{role_name}/"))
                .await?;
            if held >= i64::from(max) {
                return Err(EngineError::LimitReached(format!(
                    "role {role_name} already has {held} leases, its max_leases; revoke one or wait for one to expire"
                )));
            }
        }
        match role.credential_type {
            CredentialType::IamUser => {
                self.issue_iam_user(&mount_record, &role_name, &role, request, caller)
                    .await
            }
            _ => {
                self.issue_sts(&mount_record, &role_name, &role, request, caller)
                    .await
            }
        }
    }

    /// Resolves an STS duration: request → role `default_sts_ttl` → 1 h, never above the role's
    /// `max_sts_ttl` or AWS's limit for the call, never below AWS's 900 s. Checked before any
    /// AWS call, so a duration AWS would refuse never becomes a 502.
    fn sts_ttl(role_name: &RoleName, role: &Role, requested: Option<Ttl>) -> Result<u64> {
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
    async fn issue_sts(
        &self,
        mount: &MountRecord,
        role_name: &RoleName,
        role: &Role,
        request: IssueRequest,
        caller: &Caller,
    ) -> Result<IssuedCredential> {
        let ttl = Self::sts_ttl(role_name, role, request.ttl)?;
        let render = |issued_at| {
            role.name_template().render(&RenderContext {
                role: role_name.as_str(),
                mount: mount.path.as_str(),
                display_name: &caller.display_name,
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
                    tags: role
                        .session_tags
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    external_id: role.external_id.clone(),
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

        let account = self.account(&mount.path).await?;
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
        let lease = Lease {
            id: new_lease_id(&mount.path, role_name),
            mount: mount.path.clone(),
            role: role_name.clone(),
            credential_type: role.credential_type,
            state: LeaseState::Active,
            username: None,
            access_key_id: Some(access_key_id.clone()),
            issue_time: issued_at,
            expire_time: expiration,
            max_expire_time: expiration,
            last_renewal: None,
            ttl: (expiration - issued_at).max(0),
            renewable: false,
            // At expiry the reaper only forgets the row: there is nothing to delete in AWS.
            due_at: expiration,
            attempts: 0,
            last_error: None,
            token_accessor: Some(caller.accessor.clone()),
        };
        self.store.insert_lease(&lease).await?;
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

    /// Resolves the lease TTL (request → role → mount → 1h) and its ceiling (role → mount → 24h).
    fn lease_ttls(
        mount: &MountRecord,
        role_name: &RoleName,
        role: &Role,
        requested: Option<Ttl>,
    ) -> Result<(u64, u64)> {
        let (max, max_source) = match (role.max_ttl, mount.lease_max.or(mount.max_lease_ttl)) {
            (Some(m), _) => (m.as_secs(), format!("role {role_name}'s max_ttl")),
            (None, Some(m)) => (m as u64, format!("{}/config/lease lease_max", mount.path)),
            (None, None) => (DEFAULT_LEASE_MAX, "default maximum".into()),
        };
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

    async fn issue_iam_user(
        &self,
        mount: &MountRecord,
        role_name: &RoleName,
        role: &Role,
        request: IssueRequest,
        caller: &Caller,
    ) -> Result<IssuedCredential> {
        let (ttl, max_ttl) = Self::lease_ttls(mount, role_name, role, request.ttl)?;
        let account = self.account(&mount.path).await?;
        let issued_at = now();
        let username = role.name_template().render(&RenderContext {
            role: role_name.as_str(),
            mount: mount.path.as_str(),
            display_name: &caller.display_name,
            unix_time: issued_at,
        });
        let expire_time = issued_at + ttl as i64;
        let lease = Lease {
            id: new_lease_id(&mount.path, role_name),
            mount: mount.path.clone(),
            role: role_name.clone(),
            credential_type: CredentialType::IamUser,
            state: LeaseState::Pending,
            username: Some(username.clone()),
            access_key_id: None,
            issue_time: issued_at,
            expire_time,
            max_expire_time: issued_at + max_ttl as i64,
            last_renewal: None,
            ttl: ttl as i64,
            renewable: true,
            due_at: issued_at + self.settings.pending_grace.as_secs() as i64,
            attempts: 0,
            last_error: None,
            token_accessor: Some(caller.accessor.clone()),
        };
        // Intent first: if we crash after this line, recovery knows which user to delete.
        self.store.insert_lease(&lease).await?;

        let mut tags = vec![
            (LEASE_ID_TAG.to_owned(), lease.id.clone()),
            (MOUNT_TAG.to_owned(), mount.path.to_string()),
            ("iamlease:role".to_owned(), role_name.to_string()),
            ("iamlease:expires-at".to_owned(), rfc3339(expire_time)),
        ];
        tags.extend(role.iam_tags.iter().map(|(k, v)| (k.clone(), v.clone())));
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
        let activated = match self
            .store
            .activate_lease(&lease.id, Some(&key.access_key_id), expire_time)
            .await
        {
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
    async fn wait_ready(
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
    async fn roll_back_issue(&self, lease: &Lease, account: &AwsAccount, user_may_exist: bool) {
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

    // ---- leases -------------------------------------------------------------------------

    pub async fn lookup(&self, lease_id: &str) -> Result<Lease> {
        self.store
            .get_lease(lease_id.trim())
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("lease {lease_id:?} does not exist")))
    }

    /// Vault-style listing: the next path segment under `prefix`, folders ending in `/`.
    pub async fn list_lease_keys(
        &self,
        prefix: &str,
        state: Option<LeaseState>,
    ) -> Result<Vec<String>> {
        let prefix = &directory_prefix(prefix);
        let mut keys: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_lease_ids(
                    prefix,
                    state.map(LeaseState::as_str),
                    after.as_deref(),
                    1000,
                )
                .await?;
            for id in &page {
                let rest = &id[prefix.len()..];
                let key = match rest.find('/') {
                    Some(i) => &rest[..=i],
                    None => rest,
                };
                if keys.last().map(String::as_str) != Some(key) {
                    keys.push(key.to_owned());
                }
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.clone()),
                _ => break,
            }
        }
        Ok(keys)
    }

    pub async fn renew(&self, lease_id: &str, increment: Option<Ttl>) -> Result<Renewed> {
        let lease = self.lookup(lease_id).await?;
        if !lease.renewable {
            return Err(EngineError::Invalid(format!(
                "lease {} is not renewable: {} credentials expire in AWS",
                lease.id,
                lease.credential_type.as_str()
            )));
        }
        if lease.state != LeaseState::Active {
            return Err(EngineError::Invalid(format!(
                "lease {} is {} and can no longer be renewed",
                lease.id, lease.state
            )));
        }
        let now = now();
        let increment = increment
            .filter(|t| !t.is_zero())
            .map(|t| t.as_secs() as i64)
            .unwrap_or(lease.ttl);
        let wanted = now.saturating_add(increment);
        let new_expire = wanted.min(lease.max_expire_time).max(lease.expire_time);
        let mut warnings = Vec::new();
        if wanted > lease.max_expire_time {
            warnings.push(format!(
                "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
                Ttl::from_secs(increment as u64),
                Ttl::from_secs((lease.max_expire_time - now).max(0) as u64)
            ));
        }
        if let Some(username) = &lease.username {
            let account = self.account(&lease.mount).await?;
            account
                .tag_user_expiry(username, &rfc3339(new_expire))
                .await
                .map_err(|e| aws_failed("renewing the lease", &e))?;
        }
        if !self.store.renew_lease(&lease.id, new_expire, now).await? {
            return Err(EngineError::Invalid(format!(
                "lease {} is being revoked and can no longer be renewed",
                lease.id
            )));
        }
        let lease = self.lookup(&lease.id).await?;
        Ok(Renewed {
            lease_duration: (new_expire - now).max(0),
            lease,
            warnings,
        })
    }

    /// Revokes one lease. With `sync`, answers after AWS has deleted everything; without, the
    /// revocation runs in the background (and, through the claim deadline, survives a crash).
    /// An unknown lease is already revoked, as in Vault.
    pub async fn revoke(self: &Arc<Self>, lease_id: &str, sync: bool) -> Result<()> {
        let now = now();
        let Some(lease) = self
            .store
            .claim_lease(
                lease_id.trim(),
                now,
                now + self.settings.claim_timeout.as_secs() as i64,
            )
            .await?
        else {
            return Ok(());
        };
        if sync {
            self.finish_revocation(&lease, None).await
        } else {
            let engine = Arc::clone(self);
            tokio::spawn(async move { engine.finish_revocation(&lease, None).await });
            Ok(())
        }
    }

    /// Revokes every lease whose id starts with `prefix`; each is tried once here, and failures
    /// stay `failed` for the reaper to retry.
    pub async fn revoke_prefix(&self, prefix: &str) -> Result<()> {
        let prefix = &directory_prefix(prefix);
        let mut after: Option<String> = None;
        let mut failed = 0usize;
        let mut first_error = None;
        loop {
            let page = self
                .store
                .list_lease_ids(prefix, None, after.as_deref(), 500)
                .await?;
            let results: Vec<Result<()>> = futures::stream::iter(page.clone())
                .map(|id| self.revoke_one(id))
                .buffer_unordered(REVOKE_CONCURRENCY)
                .collect()
                .await;
            for r in results {
                if let Err(e) = r {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
            match page.last() {
                Some(last) if page.len() == 500 => after = Some(last.clone()),
                _ => break,
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(EngineError::Aws(format!(
                "{failed} revocation(s) under {prefix:?} failed and will be retried; first error: {e}"
            ))),
        }
    }

    /// Claims one lease by id and revokes it; nothing to do when someone else holds it.
    async fn revoke_one(&self, id: String) -> Result<()> {
        let now = now();
        let deadline = now + self.settings.claim_timeout.as_secs() as i64;
        match self.store.claim_lease(&id, now, deadline).await? {
            Some(lease) => self.finish_revocation(&lease, None).await,
            None => Ok(()),
        }
    }

    /// Does the AWS side of a claimed lease and then forgets it; on failure records the error
    /// and schedules a retry with backoff. Never drops a lease that still has something in AWS.
    async fn finish_revocation(&self, lease: &Lease, account: Option<&AwsAccount>) -> Result<()> {
        match self.revoke_in_aws(lease, account).await {
            Ok(()) => {
                self.store.delete_lease(&lease.id).await?;
                tracing::info!(lease_id = %lease.id, "revoked");
                self.audit_revoked(lease);
                Ok(())
            }
            Err(e) => self.record_revoke_failure(lease, e).await,
        }
    }

    /// Audits a lease that is gone from the store, as expired or revoked.
    fn audit_revoked(&self, lease: &Lease) {
        let expired = lease.expire_time <= now();
        self.audit_lease(
            if expired { "expired" } else { "revoked" },
            lease,
            serde_json::json!({"username": lease.username}),
        );
    }

    /// The AWS side of a revocation, timed and counted.
    async fn revoke_in_aws(&self, lease: &Lease, account: Option<&AwsAccount>) -> Result<()> {
        let started = std::time::Instant::now();
        let result = self.delete_in_aws(lease, account).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::histogram!("iamlease_revoke_duration_seconds", "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("iamlease_revocations_total", "outcome" => outcome).increment(1);
        result
    }

    async fn delete_in_aws(&self, lease: &Lease, account: Option<&AwsAccount>) -> Result<()> {
        match (&lease.credential_type, &lease.username) {
            (CredentialType::IamUser, Some(username)) => {
                let account = match account {
                    Some(a) => a.clone(),
                    None => self.account(&lease.mount).await?,
                };
                account
                    .delete_iam_user(username)
                    .await
                    .map_err(|e| aws_failed("revoking", &e))
            }
            // STS credentials cannot be revoked in AWS; they expire there on their own.
            _ => Ok(()),
        }
    }

    /// Schedules a retry with backoff and hands the error back.
    async fn record_revoke_failure(&self, lease: &Lease, e: EngineError) -> Result<()> {
        let attempt = lease.attempts + 1;
        let delay = revoke_backoff_secs(attempt, self.settings.revoke_max_backoff.as_secs());
        tracing::warn!(lease_id = %lease.id, attempt, retry_in_secs = delay, error = %e, "revocation failed; will retry");
        self.audit_lease(
            "revoke_failed",
            lease,
            serde_json::json!({"attempt": attempt, "retry_in_secs": delay, "error": e.to_string()}),
        );
        self.store
            .fail_lease(&lease.id, &e.to_string(), now() + delay as i64)
            .await?;
        Err(e)
    }

    /// One reaper pass: claims due leases in batches and finishes each. Returns how many it
    /// handled, so callers (and tests) can tell an idle pass from a busy one.
    ///
    /// A batch's revoked leases are forgotten in one commit rather than one each: with
    /// `synchronous = FULL` every commit is an fsync, which was most of the reaper's own cost.
    /// A crash before that commit leaves them `revoking`; recovery revokes them again, and
    /// AWS's NoSuchEntity counts as done, so nothing is lost or left behind.
    pub async fn reap_due(&self) -> Result<usize> {
        let mut handled = 0;
        loop {
            let now = now();
            let batch = self
                .store
                .claim_due(
                    now,
                    now + self.settings.claim_timeout.as_secs() as i64,
                    REAP_BATCH,
                )
                .await?;
            if batch.is_empty() {
                return Ok(handled);
            }
            handled += batch.len();
            let full = batch.len() as i64 == REAP_BATCH;
            let revoked: Vec<Lease> = futures::stream::iter(batch)
                .map(|lease| async move {
                    match self.revoke_in_aws(&lease, None).await {
                        Ok(()) => Some(lease),
                        // Failures are recorded on the lease; the batch goes on.
                        Err(e) => {
                            let _ = self.record_revoke_failure(&lease, e).await;
                            None
                        }
                    }
                })
                .buffer_unordered(REVOKE_CONCURRENCY)
                .filter_map(|id| async move { id })
                .collect()
                .await;
            let ids: Vec<String> = revoked.iter().map(|l| l.id.clone()).collect();
            self.store.delete_leases(&ids).await?;
            tracing::info!(leases = revoked.len(), "revoked expired leases");
            for lease in &revoked {
                self.audit_revoked(lease);
            }
            if !full {
                return Ok(handled);
            }
        }
    }
}

/// Prefixes are directories, as in Vault: `aws/creds/dev` means `aws/creds/dev/`, so it never
/// reaches `aws/creds/dev2/`. (Clients such as hvac strip the trailing slash.)
fn directory_prefix(prefix: &str) -> String {
    let p = prefix.trim();
    if p.is_empty() || p.ends_with('/') {
        p.to_owned()
    } else {
        format!("{p}/")
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

fn aws_failed(doing: &str, e: &AwsError) -> EngineError {
    EngineError::Aws(format!("AWS failed while {doing}: {e}"))
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

    fn role(default_ttl: Option<u64>, max_ttl: Option<u64>) -> Role {
        let mut f = serde_json::Map::new();
        f.insert("credential_type".into(), "iam_user".into());
        f.insert(
            "policy_arns".into(),
            "arn:aws:iam::aws:policy/ReadOnlyAccess".into(),
        );
        if let Some(d) = default_ttl {
            f.insert("default_ttl".into(), d.into());
        }
        if let Some(m) = max_ttl {
            f.insert("max_ttl".into(), m.into());
        }
        Role::parse(None, Fields::new(f)).unwrap().0
    }

    fn sts_role(fields: Value) -> Role {
        Role::parse(None, Fields::new(fields.as_object().unwrap().clone()))
            .unwrap()
            .0
    }

    #[test]
    fn sts_ttl_resolution_and_limits() {
        let n = RoleName::parse("r").unwrap();
        let arn = "arn:aws:iam::123456789012:role/a";
        let assumed = sts_role(json!({"credential_type": "assumed_role", "role_arns": arn}));
        let fed = sts_role(json!({"credential_type": "federation_token", "policy_document": DOC}));
        let capped = sts_role(
            json!({"credential_type": "session_token", "default_sts_ttl": "20m", "max_sts_ttl": "30m"}),
        );
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
        let one = sts_role(json!({"credential_type": "assumed_role", "role_arns": [a]}));
        let two = sts_role(json!({"credential_type": "assumed_role", "role_arns": [a, b]}));
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
    }
}
