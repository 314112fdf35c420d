//! The lease record and its state machine.
//!
//! ```text
//!            insert (before any AWS call)
//!                 │
//!             ┌───▼───┐  all AWS steps done   ┌────────┐
//!             │pending├──────────────────────►│ active │
//!             └───┬───┘                       └───┬────┘
//!   issue failed, │ crash (grace passed)          │ expired, revoked
//!                 ▼                               ▼
//!             ┌────────┐   cleanup done     ┌──────────┐
//!             │revoking├───────────────────►│ (deleted)│
//!             └──┬──▲──┘                    └──────────┘
//!   cleanup failed│  │ backoff passed / claim deadline passed (crash)
//!             ┌──▼──┴──┐
//!             │ failed │   (last error kept; retried forever, never dropped)
//!             └────────┘
//! ```
//!
//! Every row carries `due_at`: the moment someone must next act on it (expiry for `active`,
//! the end of the grace period for `pending`, the claim deadline for `revoking`, the next
//! retry for `failed`). The reaper only ever asks the store for rows whose `due_at` has
//! passed, so nothing is held in memory per lease and a crash at any point is picked up.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::role::{CredentialType, MountPath, RoleName};
use crate::seal::{ALNUM, random_below, random_string};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Written before the first AWS call; not yet handed out.
    Pending,
    /// Handed out; revoked when `expire_time` passes.
    Active,
    /// Claimed by someone who is deleting it in AWS right now (until `due_at`).
    Revoking,
    /// Revocation failed; retried at `due_at`.
    Failed,
}

impl LeaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Pending => "pending",
            LeaseState::Active => "active",
            LeaseState::Revoking => "revoking",
            LeaseState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(LeaseState::Pending),
            "active" => Some(LeaseState::Active),
            "revoking" => Some(LeaseState::Revoking),
            "failed" => Some(LeaseState::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One issued credential as the store keeps it. There is no field for a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub mount: MountPath,
    pub role: RoleName,
    pub credential_type: CredentialType,
    pub state: LeaseState,
    /// The IAM user name for `iam_user` leases; what revocation deletes.
    pub username: Option<String>,
    pub access_key_id: Option<String>,
    /// Unix seconds.
    pub issue_time: i64,
    pub expire_time: i64,
    pub max_expire_time: i64,
    pub last_renewal: Option<i64>,
    /// The TTL granted at issue; a renewal without an increment extends by this much.
    pub ttl: i64,
    pub renewable: bool,
    pub due_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The token that asked for it: only it may renew, look up or revoke the lease, unless a
    /// policy grants `sys/leases/*`.
    pub token_accessor: Option<String>,
}

/// `{mount}/creds/{role}/{random}`, as Vault shapes lease ids.
pub fn new_lease_id(mount: &MountPath, role: &RoleName) -> String {
    format!("{mount}/creds/{role}/{}", random_string(24, ALNUM))
}

/// Delay before retry `attempt` (1-based) of a failed revocation: exponential from 1 s, capped
/// at `max_secs`, with full jitter so that many failures after an outage do not retry in step.
pub fn revoke_backoff_secs(attempt: i64, max_secs: u64) -> u64 {
    let exp = 1u64 << attempt.clamp(0, 20);
    let ceiling = exp.min(max_secs.max(1));
    // Never less than one second, never more than the cap.
    1 + random_below(ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in [
            LeaseState::Pending,
            LeaseState::Active,
            LeaseState::Revoking,
            LeaseState::Failed,
        ] {
            assert_eq!(LeaseState::parse(s.as_str()), Some(s));
        }
        assert_eq!(LeaseState::parse("revoked"), None);
    }

    #[test]
    fn lease_ids_have_vault_shape() {
        let id = new_lease_id(
            &MountPath::parse("aws").unwrap(),
            &RoleName::parse("dev").unwrap(),
        );
        let suffix = id.strip_prefix("aws/creds/dev/").unwrap();
        assert_eq!(suffix.len(), 24);
        assert!(suffix.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..40 {
            let d = revoke_backoff_secs(attempt, 3600);
            assert!((1..=3600).contains(&d), "attempt {attempt}: {d}");
        }
        // Early attempts stay short.
        assert!(revoke_backoff_secs(1, 3600) <= 2);
        // With jitter, late attempts spread across the whole window.
        let late: Vec<u64> = (0..200).map(|_| revoke_backoff_secs(30, 60)).collect();
        assert!(late.iter().all(|d| *d <= 60));
        assert!(late.iter().any(|d| *d > 30));
    }
}
