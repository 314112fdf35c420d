//! Who held an access key: the key history a mount answers for (`whois`), kept after the lease
//! for `key_history_retention` and forgotten by the reaper in bounded batches after that.

use super::{Engine, EngineError, Result};
use crate::model::{AccessKeyId, KeyHistory, Lease, MountPath};

/// Rows of expired history one reaper pass deletes at most: a million rows past retention go
/// in many short statements, never one that holds the database.
pub(super) const FORGET_BATCH: i64 = 1000;

impl Engine {
    /// The key `access_key_id` that `mount` handed out: who asked, for which lease, and where
    /// it stands now. The mount need not exist any more: its keys' history outlives it.
    pub async fn whois(
        &self,
        mount: &MountPath,
        access_key_id: &AccessKeyId,
    ) -> Result<KeyHistory> {
        self.store
            .key_history(mount, access_key_id)
            .await?
            .ok_or_else(|| {
                EngineError::NotFound(format!(
                    "{mount}/ has no record of access key {access_key_id}: it was not issued by this mount, or it ended more than key_history_retention ({}) ago",
                    retention_text(self.settings.key_history_retention.as_secs())
                ))
            })
    }

    /// `lookup`, with the requester of the lease's key (`None` before it has one), in one read.
    pub async fn lookup_with_requester(&self, lease_id: &str) -> Result<(Lease, Option<String>)> {
        self.store
            .lease_with_requester(lease_id.trim())
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("lease {lease_id:?} does not exist")))
    }

    /// One bounded batch of the retention sweep: history of keys that ended more than
    /// `key_history_retention` before `now`.
    pub(super) async fn forget_old_keys(&self, now: i64) -> Result<u64> {
        let retention = self.settings.key_history_retention.as_secs() as i64;
        let forgotten = self
            .store
            .forget_keys(now.saturating_sub(retention), FORGET_BATCH)
            .await?;
        if forgotten > 0 {
            tracing::info!(
                rows = forgotten,
                "forgot access-key history past key_history_retention"
            );
        }
        Ok(forgotten)
    }
}

/// `90d` for whole days, else Go's form (`36h0m0s`).
fn retention_text(secs: u64) -> String {
    if secs > 0 && secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else {
        crate::duration::Ttl::from_secs(secs).to_go_string()
    }
}
