//! Metrics: the process-wide Prometheus recorder (the `metrics` crate's facade; any module
//! records with `metrics::counter!` etc.), and the lease gauges read from the store at scrape.
//!
//! Metric names (all prefixed `iamlease_`): `http_requests_total{method,route,status}`,
//! `http_request_duration_seconds{route}`, `issue_duration_seconds{credential_type,outcome}`,
//! `revoke_duration_seconds{outcome}`, `revocations_total{outcome}`,
//! `aws_calls_total{service,operation,status}`, `aws_errors_total{operation,code}`,
//! `rate_limited_total{by}`, `leases{mount,role,state}`, `leases_failed`, `reaper_lag_seconds`.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::{Store, StoreError};

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The recorder is global (the `metrics` facade allows one per process), so several servers in
/// one process (the tests) share it; label values such as the mount keep their series apart.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("buckets are not empty")
        };
        match builder().install_recorder() {
            Ok(handle) => handle,
            Err(e) => {
                // Someone else installed a recorder first; serve an empty exposition rather
                // than failing start-up over telemetry.
                tracing::warn!(error = %e, "cannot install the metrics recorder");
                builder().build_recorder().handle()
            }
        }
    })
}

/// Label sets of the lease gauges set at the previous scrape, so vanished ones go to 0.
static LEASE_SERIES: Mutex<Option<HashSet<(String, String, String)>>> = Mutex::new(None);

/// Refreshes the lease gauges from the store (one grouped COUNT, one index step), then renders
/// the Prometheus text exposition.
pub async fn render(store: &dyn Store, now: i64) -> Result<String, StoreError> {
    let stats = store.lease_stats(now).await?;
    let mut failed = 0;
    let mut seen = HashSet::new();
    for (mount, role, state, count) in stats.counts {
        if state == "failed" {
            failed += count;
        }
        metrics::gauge!("iamlease_leases", "mount" => mount.clone(), "role" => role.clone(), "state" => state.clone())
            .set(count as f64);
        seen.insert((mount, role, state));
    }
    {
        let mut previous = LEASE_SERIES.lock().unwrap_or_else(|p| p.into_inner());
        for (mount, role, state) in previous.take().unwrap_or_default().difference(&seen) {
            metrics::gauge!("iamlease_leases", "mount" => mount.clone(), "role" => role.clone(), "state" => state.clone())
                .set(0.0);
        }
        *previous = Some(seen);
    }
    metrics::gauge!("iamlease_leases_failed").set(failed as f64);
    let lag = stats.oldest_overdue.map_or(0, |due| (now - due).max(0));
    metrics::gauge!("iamlease_reaper_lag_seconds").set(lag as f64);
    Ok(prometheus().render())
}
