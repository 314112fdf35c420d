//! The reaper: a single background task that revokes expired leases, resumes abandoned
//! revocations, rolls back issues interrupted by a crash, retries failures with backoff, and
//! runs the static roles' due rotations.
//! It keeps no per-lease state: each pass asks the store what is due.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use futures::StreamExt;

use super::{Engine, EngineError, REAP_BATCH, REVOKE_CONCURRENCY, Result};
use crate::clock::now;
use crate::model::Lease;

pub async fn run_reaper(
    engine: Arc<Engine>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match engine.reap_due().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(handled = n, "reaper pass"),
            Err(e) => tracing::warn!(error = %e, "reaper pass failed; will try again"),
        }
        // Static roles ride the same loop: what is due is in the store, like leases.
        match engine.rotate_due_static_roles().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(handled = n, "static role pass"),
            Err(e) => tracing::warn!(error = %e, "static role pass failed; will try again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            // A token revocation made leases due: revoke them now, not at the next tick.
            _ = engine.reaper_wake.notified() => {}
            _ = shutdown.changed() => {
                tracing::debug!("reaper stopped");
                return;
            }
        }
    }
}

/// The optional periodic sweeper (`sweep_interval`): looks for orphaned IAM users in every
/// connected mount. Only a safety net; recovery and the reaper are what keep AWS clean.
pub async fn run_sweeper(
    engine: Arc<Engine>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        match engine.sweep_all().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(deleted = n, "periodic sweep deleted orphaned IAM users"),
            Err(e) => tracing::warn!(error = %e, "periodic sweep failed; will try again"),
        }
    }
}

impl Engine {
    /// One reaper pass: claims due leases in batches and finishes each. Returns how many it
    /// handled, so callers (and tests) can tell an idle pass from a busy one.
    ///
    /// A batch's revoked leases are forgotten in one commit rather than one each: with
    /// `synchronous = FULL` every commit is an fsync, which was most of the reaper's own cost.
    /// A crash before that commit leaves them `revoking`; recovery revokes them again, and
    /// AWS's NoSuchEntity counts as done, so nothing is lost or left behind.
    pub async fn reap_due(&self) -> Result<usize> {
        let mut handled = self.revoke_expired_tokens().await?;
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

    /// Tokens whose TTL has run out are revoked as `revoke` would: with their descendants, and
    /// their leases made due (revoked below in this same pass). Returns how many it revoked.
    async fn revoke_expired_tokens(&self) -> Result<usize> {
        let mut revoked = 0;
        loop {
            let now = now();
            let expired = self.store.expired_tokens(now, REAP_BATCH).await?;
            for accessor in &expired {
                crate::auth::revoke(&self.store, accessor, now, false)
                    .await
                    .map_err(|e| {
                        EngineError::Internal(format!("revoking an expired token: {e}"))
                    })?;
            }
            revoked += expired.len();
            if (expired.len() as i64) < REAP_BATCH {
                // AppRole secret IDs past their TTL, OIDC sign-ins never completed, console
                // sessions past their end, and a batch of access-key history past its retention.
                self.store.tidy_auth(now).await?;
                self.store.delete_expired_console_sessions(now).await?;
                self.forget_old_keys(now).await?;
                return Ok(revoked);
            }
        }
    }
}
