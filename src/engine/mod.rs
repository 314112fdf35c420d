//! The AWS secrets engine: the `Engine` type, its errors and settings. The work is split by
//! job: `config` (mounts, lease config, roles), `root` (root config and its rotation),
//! `accounts` (the SDK client cache), `issue`, `lease` (renew, revoke, revoke-prefix), `reaper`
//! (the pass and its loop), `liveness` (the heartbeat and the takeover of a silent replica's
//! work), `static_role` (static roles and their rotation), `sweep` and
//! `setup`. It decides; `store` remembers; `aws` acts. It knows nothing of HTTP.

mod accounts;
mod attribution;
mod cache;
mod config;
mod history;
mod issue;
pub mod lease;
mod liveness;
mod quota;
mod reaper;
pub mod role;
mod root;
mod setup;
mod static_role;
pub mod sweep;
pub mod template;

pub use config::{LeaseConfig, LeaseConfigUpdate, MountRequest, MountTune};
pub use issue::{IssuePath, IssueRequest, IssuedCredential};
pub use lease::Renewed;
pub use quota::{QuotaReading, QuotaView};
pub use root::{RootConfigUpdate, RootConfigView};
pub use setup::{CallerIdentity, SetupPlan, SetupRequest};
pub use static_role::{StaticCreds, StaticRoleWrite};

pub use liveness::{ReplicaView, run_heartbeat};
pub use reaper::{run_reaper, run_sweeper};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit::LeaseEvent;
use crate::aws::{AwsAccount, AwsError};
use crate::duration::Ttl;
use crate::model::{Lease, MountPath};
use crate::seal::{SealError, Sealer};
use crate::store::{Store, StoreError};

const DEFAULT_LEASE_TTL: u64 = 3600;
const DEFAULT_LEASE_MAX: u64 = 24 * 3600;
/// STS credentials live this long unless the request or the role says otherwise (as in AWS).
const DEFAULT_STS_TTL: u64 = 3600;
/// How many revocations run at once (AWS rate limits are per account, not per lease).
const REVOKE_CONCURRENCY: usize = 16;
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
    /// Refused for the account's sake until something changes (the IAM user quota's reserve).
    #[error("{0}")]
    Unavailable(String),
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
    /// How long a revocation claim holds before someone else may resume it, even from a
    /// replica that still beats (the backstop for one that is alive but stuck).
    pub claim_timeout: Duration,
    /// How long a replica may go without a heartbeat before another takes over its work.
    pub failover_timeout: Duration,
    /// `wait_ready`: how long to wait for AWS to accept a new key before revoking it.
    pub wait_ready_timeout: Duration,
    /// URL prefixes a root config's endpoint overrides must start with; empty allows any.
    pub allowed_aws_endpoints: Vec<String>,
    /// How long an access key's history is kept after its lease ends.
    pub key_history_retention: Duration,
    /// The shortest `rotation_period` a static role may have (Vault's 1 minute).
    pub static_role_min_rotation: Duration,
    /// The fraction of the account's IAM user quota kept free: `iam_user` issues are refused
    /// beyond it.
    pub iam_user_quota_reserve: f64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            revoke_max_backoff: Ttl::from_secs(3600),
            pending_grace: Duration::from_secs(120),
            claim_timeout: Duration::from_secs(300),
            failover_timeout: Duration::from_secs(15),
            wait_ready_timeout: Duration::from_secs(30),
            allowed_aws_endpoints: Vec::new(),
            key_history_retention: Duration::from_secs(90 * 86_400),
            static_role_min_rotation: Duration::from_secs(60),
            iam_user_quota_reserve: 0.05,
        }
    }
}

type QuotaEntry = (
    std::time::Instant,
    Option<QuotaReading>,
    i64,
    Option<String>,
);

pub struct Engine {
    store: Arc<dyn Store>,
    sealer: Sealer,
    settings: EngineSettings,
    /// SDK clients per mount, tagged with the root-config version they were built from.
    accounts: Mutex<HashMap<MountPath, (i64, AwsAccount)>>,
    /// Mounts, roles and root configs, valid while the store's config epoch stands still.
    config: cache::ConfigCache,
    /// Per mount: when its account's user quota was last read, the reading (`None`: AWS would
    /// not say), its Unix time and the error if any.
    quota: Mutex<HashMap<MountPath, QuotaEntry>>,
    /// Wakes the reaper before its next tick (a token revocation made leases due).
    reaper_wake: tokio::sync::Notify,
    /// Where lease events the server does on its own (reaper revocations) are audited.
    audit: std::sync::OnceLock<Arc<crate::audit::AuditLog>>,
    /// Revocations answered before they finished (`sync: false`), which a graceful stop
    /// waits for (`finish_background`).
    background: tokio_util::task::TaskTracker,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, sealer: Sealer, settings: EngineSettings) -> Self {
        Engine {
            store,
            sealer,
            settings,
            accounts: Mutex::new(HashMap::new()),
            quota: Mutex::new(HashMap::new()),
            config: cache::ConfigCache::default(),
            reaper_wake: tokio::sync::Notify::new(),
            audit: std::sync::OnceLock::new(),
            background: tokio_util::task::TaskTracker::new(),
        }
    }

    /// Waits until every revocation running in the background has finished. A stopping
    /// server calls it after its last request: an answered revocation left behind would keep
    /// its lease claimed, and its IAM user alive, until another server takes the claim over
    /// (at once when this one retires, else after `failover_timeout`).
    pub async fn finish_background(&self) {
        self.background.close();
        self.background.wait().await;
    }

    /// Audits revocations from now on (set once at start-up).
    pub fn set_audit_log(&self, log: Arc<crate::audit::AuditLog>) {
        let _ = self.audit.set(log);
    }

    pub(super) fn audit_lease(&self, event: LeaseEvent<'_>, lease: &Lease) {
        if let Some(log) = self.audit.get() {
            log.lease_event(event, &lease.id, lease.mount.as_str(), lease.role.as_str());
        }
    }

    /// Asks the reaper for a pass now rather than at its next tick.
    pub fn wake_reaper(&self) {
        self.reaper_wake.notify_one();
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// What auth methods seal their secrets (an OIDC client secret, a sign-in's verifier) with.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
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
}

fn aws_failed(doing: &str, e: &AwsError) -> EngineError {
    EngineError::Aws(format!("AWS failed while {doing}: {e}"))
}
