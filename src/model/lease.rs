//! The lease record and its state machine, with the constructors every writer uses.
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

use super::names::{CredentialType, MountPath, RoleName};
use crate::seal::{ALNUM, random_string};

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
    lease_id_under(mount, "creds", role)
}

/// `{mount}/{path}/{role}/{random}`: a lease is named after the path that issued it (`creds`
/// or `sts`), as in Vault, so a revoke-prefix on that path finds it.
pub fn lease_id_under(mount: &MountPath, path: &str, role: &RoleName) -> String {
    format!("{mount}/{path}/{role}/{}", random_string(24, ALNUM))
}

impl Lease {
    /// The intent row of an `iam_user` lease, written before the first AWS call: `pending`
    /// until its user and key exist, due at `due_at` (the end of the grace period) so that a
    /// crash in between is cleaned up. `ttl` and `max_ttl` are seconds from `issued_at`.
    pub fn pending_iam_user(
        mount: MountPath,
        role: RoleName,
        username: String,
        issued_at: i64,
        ttl: i64,
        max_ttl: i64,
        due_at: i64,
    ) -> Lease {
        Lease {
            id: new_lease_id(&mount, &role),
            mount,
            role,
            credential_type: CredentialType::IamUser,
            state: LeaseState::Pending,
            username: Some(username),
            access_key_id: None,
            issue_time: issued_at,
            expire_time: issued_at + ttl,
            max_expire_time: issued_at + max_ttl,
            last_renewal: None,
            ttl,
            renewable: true,
            due_at,
            attempts: 0,
            last_error: None,
            token_accessor: None,
        }
    }

    /// An STS lease, `active` from the start: its row is written after the STS call, and at
    /// `expiration` the reaper only forgets it (STS credentials cannot be revoked early).
    pub fn active_sts(
        mount: MountPath,
        role: RoleName,
        credential_type: CredentialType,
        access_key_id: String,
        issued_at: i64,
        expiration: i64,
    ) -> Lease {
        Lease {
            id: new_lease_id(&mount, &role),
            mount,
            role,
            credential_type,
            state: LeaseState::Active,
            username: None,
            access_key_id: Some(access_key_id),
            issue_time: issued_at,
            expire_time: expiration,
            max_expire_time: expiration,
            last_renewal: None,
            ttl: (expiration - issued_at).max(0),
            renewable: false,
            due_at: expiration,
            attempts: 0,
            last_error: None,
            token_accessor: None,
        }
    }

    pub fn with_id(mut self, id: impl Into<String>) -> Lease {
        self.id = id.into();
        self
    }

    /// The token that asked for it.
    pub fn with_token_accessor(mut self, accessor: impl Into<String>) -> Lease {
        self.token_accessor = Some(accessor.into());
        self
    }

    /// Puts the lease in `state`, next due at `due_at` (for tests, benchmarks and bulk loads).
    pub fn with_state(mut self, state: LeaseState, due_at: i64) -> Lease {
        self.state = state;
        self.due_at = due_at;
        self
    }

    pub fn with_access_key_id(mut self, access_key_id: impl Into<String>) -> Lease {
        self.access_key_id = Some(access_key_id.into());
        self
    }
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
}
