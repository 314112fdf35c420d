//! The reaper: a single background task that revokes expired leases, resumes abandoned
//! revocations, rolls back issues interrupted by a crash, and retries failures with backoff.
//! It keeps no per-lease state: each pass asks the store what is due.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Engine;

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
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
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
