//! `bench/run history`: the access-key history at scale. A store holding 1,000 active leases
//! and N rows of history of keys whose leases ended (within `key_history_retention`, so none
//! is forgotten), served by the real release binary: start-up time, RSS, and `whois`
//! (`GET {mount}/access-keys/{id}`) latency, side by side for N = 1,000 and 1,000,000.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use iamlease::model::{CredentialType, KeyRecord, LeaseState};
use iamlease::store::SqliteStore;
use serde_json::json;

use super::{MOUNT, Opts, TOKEN, bulk_lease, ms, ratio, rss_mib, serve_store, stats};

/// The history row of the `i`th ended lease: revoked a day ago, so within retention.
fn ended_key(i: usize, now: i64, meta: &BTreeMap<String, String>) -> KeyRecord {
    let lease = bulk_lease(i, LeaseState::Active, CredentialType::IamUser, now - 86_400);
    KeyRecord {
        revoke_time: Some(now - 86_400 + (i % 3600) as i64),
        ..KeyRecord::for_lease(&lease, &format!("AKIAH{i:015}"), "jwt-ci-pipeline", meta)
    }
}

pub async fn history(opts: &Opts) {
    let sizes = [
        opts.get("small", 1_000, 100),
        opts.get("large", 1_000_000, 5_000),
    ];
    let lookups = opts.get("lookups", 500, 10);
    let watch_secs = opts.get("watch-secs", 30, 2);
    println!(
        "\n## access-key history scale: the real binary over 1,000 active leases and N rows of ended keys' history\n"
    );
    println!(
        "| history rows | bulk load | start → sys/health ready | RSS after start | RSS after {watch_secs} s (reaper + whois) | whois median / p99 |"
    );
    println!("|---|---|---|---|---|---|");
    let mut ready_times = Vec::new();
    let mut rss = Vec::new();
    for &n in &sizes {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/iamlease.db", dir.path().display());
        let store = SqliteStore::open(&url).await.unwrap();
        let now = iamlease::clock::now();
        let far = now + 30 * 24 * 3600;
        let t = Instant::now();
        let meta = BTreeMap::from([("repo".to_owned(), "octo/app".to_owned())]);
        let chunk = 50_000;
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let keys: Vec<KeyRecord> = (start..end).map(|i| ended_key(i, now, &meta)).collect();
            store.insert_key_history_bulk(&keys).await.unwrap();
            start = end;
        }
        let load = t.elapsed();
        store.close().await;
        let store = SqliteStore::open(&url).await.unwrap();
        bulk_load_after(&store, n, far).await;
        store.close().await;

        let (mut child, address, ready) = serve_store(&url).await;
        let pid = child.id().unwrap();
        let http = reqwest::Client::new();
        ready_times.push(ready);
        let rss_start = rss_mib(pid);
        let watch_until = Instant::now() + Duration::from_secs(watch_secs as u64);
        // whois needs the mount the history names.
        let r = http
            .post(format!("{address}/v1/sys/mounts/{MOUNT}"))
            .header("X-Vault-Token", TOKEN)
            .json(&json!({"type": "aws"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "mount: {}", r.status());
        let mut latencies = Vec::new();
        for i in 0..lookups {
            let id = format!("AKIAH{:015}", (i * 7919) % n);
            let t = Instant::now();
            let r = http
                .get(format!("{address}/v1/{MOUNT}/access-keys/{id}"))
                .header("X-Vault-Token", TOKEN)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "whois {id}: {}", r.status());
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["data"]["state"], "revoked", "{body}");
            latencies.push(t.elapsed());
        }
        tokio::time::sleep_until(watch_until.into()).await;
        let rss_after = rss_mib(pid);
        rss.push(rss_after);
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        let l = stats(&latencies);
        println!(
            "| {n} | {:.1} s | {} | {rss_start:.1} MiB | {rss_after:.1} MiB | {} / {} |",
            load.as_secs_f64(),
            ms(ready),
            ms(l.median),
            ms(l.p99)
        );
    }
    println!(
        "\nstart-up at {} / at {} history rows: {:.2}x; RSS after {watch_secs} s: {:+.1} MiB",
        sizes[1],
        sizes[0],
        ratio(ready_times[1], ready_times[0]),
        rss[1] - rss[0]
    );
}

/// The 1,000 active leases every run holds, with ids after the history's.
async fn bulk_load_after(store: &SqliteStore, n: usize, far: i64) {
    let leases: Vec<_> = (n..n + 1_000)
        .map(|i| bulk_lease(i, LeaseState::Active, CredentialType::IamUser, far))
        .collect();
    store.insert_leases_bulk(&leases).await.unwrap();
}
