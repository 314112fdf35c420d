//! Failover by liveness: a background task beats this replica's row fifteen times per
//! `failover_timeout` and, at each beat, makes due whatever a replica silent for that long had
//! in flight (`LivenessStore::take_over_silent`), then wakes the reaper to finish it. The beat
//! runs apart from the reaper and the requests, so a slow AWS call never delays it: only a
//! dead (or frozen, or cut-off) process goes silent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Engine, Result};
use crate::clock::{now, now_ms};
use crate::model::ReplicaRecord;

/// A replica as `sys/ha-status` shows it.
#[derive(Debug, Clone)]
pub struct ReplicaView {
    pub record: ReplicaRecord,
    /// Beaten within `failover_timeout`: its work is its own.
    pub alive: bool,
    /// The replica answering.
    pub is_self: bool,
}

/// Beats per `failover_timeout`: a replica is taken for dead after missing fourteen in a row,
/// and a survivor notices within one beat of its own, so from the last beat of a dead replica
/// to its takeover is at most `failover_timeout`.
const BEATS_PER_TIMEOUT: u32 = 15;
/// How long a silent replica's row is kept, for `sys/ha-status`, before it is forgotten.
const FORGET_AFTER_MS: i64 = 3_600_000;

/// Beats until the task is aborted; the first beat is `Engine::beat`'s caller's (at start-up).
/// No shutdown signal stops it: a stopping server beats on until its reaper and background
/// revocations are done, or another replica would take them over while they still run.
pub async fn run_heartbeat(engine: Arc<Engine>) {
    let every = engine.beat_interval();
    let mut last_beat = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match engine.beat().await {
            Ok(()) => {
                let silent = last_beat.elapsed();
                if silent >= engine.silence_taken_for_death() {
                    // Others may have taken our work over meanwhile; our claims' conditional
                    // updates will tell, and nothing runs twice at once from here on.
                    tracing::warn!(
                        silent_ms = silent.as_millis() as u64,
                        "this replica could not beat its heartbeat for about failover_timeout; other replicas may have taken over its work"
                    );
                }
                last_beat = Instant::now();
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; will try again"),
        }
    }
}

impl Engine {
    fn beat_interval(&self) -> Duration {
        self.settings.failover_timeout / BEATS_PER_TIMEOUT
    }

    /// How long a replica must have been silent to be taken for dead: one beat less than
    /// `failover_timeout`, since the survivor looks only once per beat.
    fn silence_taken_for_death(&self) -> Duration {
        self.settings.failover_timeout - self.beat_interval()
    }

    /// One beat: this replica is alive now, and whatever a silent one had in flight is due.
    pub async fn beat(&self) -> Result<()> {
        let now_ms = now_ms();
        self.store
            .heartbeat(now_ms, host(), i64::from(std::process::id()))
            .await?;
        let silent_since_ms = now_ms - self.silence_taken_for_death().as_millis() as i64;
        let found = self
            .store
            .take_over_silent(now(), silent_since_ms, now_ms - FORGET_AFTER_MS)
            .await?;
        if found.leases + found.static_roles > 0 {
            tracing::warn!(
                leases = found.leases,
                static_roles = found.static_roles,
                "took over the issues, revocations and rotations of a replica silent for failover_timeout"
            );
            metrics::counter!("iamlease_failover_takeovers_total")
                .increment(found.leases + found.static_roles);
            self.wake_reaper();
        }
        Ok(())
    }

    /// Every replica the store remembers, most recently beaten first.
    pub async fn replicas(&self) -> Result<Vec<ReplicaView>> {
        let silent_since_ms = now_ms() - self.silence_taken_for_death().as_millis() as i64;
        let me = self.store.replica_id().to_owned();
        Ok(self
            .store
            .replicas()
            .await?
            .into_iter()
            .map(|record| ReplicaView {
                alive: record.heartbeat_ms >= silent_since_ms,
                is_self: record.id == me,
                record,
            })
            .collect())
    }

    /// A graceful stop: this replica's row goes, so what it leaves is taken over at once.
    pub async fn retire(&self) -> Result<()> {
        Ok(self.store.retire().await?)
    }
}

/// This machine's name, as the kernel has it (shown in `sys/ha-status`).
fn host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".into())
    })
}
