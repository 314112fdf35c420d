//! Chaos: the server killed with -9 at random moments, AWS failing a fifth of all calls, the disk
//! full — each during concurrent issue / renew / revoke / expiry load. Afterwards AWS (moto) and
//! the store must agree exactly: no IAM user without a live lease, no live lease without its
//! user, nothing past its expiry left anywhere.
//!
//! Sizes come from the environment (`CHAOS_KILLS`, `CHAOS_FAULT_SECS`, `CHAOS_WORKERS`,
//! `CHAOS_SEED`), so `bench/chaos` runs these same tests longer; the defaults fit the suite.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::process::ServerProcess;
use crate::support::proxy::{Faults, start_proxy};
use crate::support::{Options, Resp, TestApp, moto, random_name, storage};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the load saw. `unclean` collects every answer that broke the contract.
#[derive(Default)]
struct Tally {
    issued: AtomicU64,
    renewed: AtomicU64,
    revoked: AtomicU64,
    failed_cleanly: AtomicU64,
    connection_errors: AtomicU64,
    unclean: Mutex<Vec<String>>,
}

impl Tally {
    fn requests(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
            + self.renewed.load(Ordering::Relaxed)
            + self.revoked.load(Ordering::Relaxed)
            + self.failed_cleanly.load(Ordering::Relaxed)
            + self.connection_errors.load(Ordering::Relaxed)
    }

    /// Success, or an error a client can act on: a 4xx or 502/503 with `{"errors":[…]}`.
    fn check(&self, what: &str, r: &Result<Resp, String>) -> bool {
        match r {
            Err(_) => {
                self.connection_errors.fetch_add(1, Ordering::Relaxed);
                false
            }
            Ok(r) if r.status.is_success() => true,
            Ok(r) => {
                let clean = matches!(r.status.as_u16(), 400..=499 | 502 | 503)
                    && r.body["errors"]
                        .as_array()
                        .is_some_and(|e| !e.is_empty() && e.iter().all(Value::is_string));
                if clean {
                    self.failed_cleanly.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.unclean
                        .lock()
                        .unwrap()
                        .push(format!("{what}: {} {}", r.status, r.body));
                }
                false
            }
        }
    }

    fn summary(&self) -> String {
        format!(
            "issued {}, renewed {}, revoked {}, clean errors {}, connection errors {}",
            self.issued.load(Ordering::Relaxed),
            self.renewed.load(Ordering::Relaxed),
            self.revoked.load(Ordering::Relaxed),
            self.failed_cleanly.load(Ordering::Relaxed),
            self.connection_errors.load(Ordering::Relaxed),
        )
    }
}

/// One client: issues credentials with short TTLs (one in ten lives an hour), then renews,
/// revokes, or leaves each to expire, until told to stop.
async fn load(app: Arc<TestApp>, role: String, seed: u64, stop: Arc<AtomicBool>, t: Arc<Tally>) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        let keeper = rng.gen_bool(0.1);
        let ttl = if keeper {
            "1h".to_owned()
        } else {
            format!("{}s", rng.gen_range(2..6))
        };
        let r = app
            .try_call(
                "POST",
                &format!("{}/creds/{role}", app.mount),
                Some(json!({ "ttl": ttl })),
            )
            .await;
        if !t.check("issue", &r) {
            tokio::time::sleep(Duration::from_millis(30)).await;
            continue;
        }
        t.issued.fetch_add(1, Ordering::Relaxed);
        let lease_id = r.unwrap().body["lease_id"].as_str().unwrap().to_owned();
        if keeper {
            continue;
        }
        match rng.gen_range(0..3) {
            0 => {
                let r = app
                    .try_call(
                        "PUT",
                        "sys/leases/renew",
                        Some(json!({"lease_id": lease_id, "increment": "3s"})),
                    )
                    .await;
                if t.check("renew", &r) {
                    t.renewed.fetch_add(1, Ordering::Relaxed);
                }
            }
            1 => {
                let r = app
                    .try_call(
                        "PUT",
                        "sys/leases/revoke",
                        Some(json!({"lease_id": lease_id})),
                    )
                    .await;
                if t.check("revoke", &r) {
                    t.revoked.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {} // left to expire
        }
    }
}

fn start_load(app: &Arc<TestApp>, role: &str, seed: u64, tally: &Arc<Tally>) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let workers = (0..setting("CHAOS_WORKERS", 6))
        .map(|i| {
            tokio::spawn(load(
                app.clone(),
                role.to_owned(),
                seed.wrapping_add(i),
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();
    Load { stop, workers }
}

struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
    }
}

/// Every lease under the mount, as `(id, state, seconds left)`.
async fn leases(app: &TestApp, role: &str) -> Vec<(String, String, i64)> {
    let prefix = format!("{}/creds/{role}/", app.mount);
    let r = app
        .call("LIST", &format!("sys/leases/lookup/{prefix}"), None)
        .await;
    if r.status == StatusCode::NOT_FOUND {
        return Vec::new();
    }
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let mut out = Vec::new();
    for key in r.body["data"]["keys"].as_array().unwrap() {
        let id = format!("{prefix}{}", key.as_str().unwrap());
        let r = app
            .call("PUT", "sys/leases/lookup", Some(json!({"lease_id": id})))
            .await;
        if r.status == StatusCode::OK {
            let d = &r.body["data"];
            out.push((
                id,
                d["state"].as_str().unwrap().to_owned(),
                d["ttl"].as_i64().unwrap(),
            ));
        }
    }
    out
}

/// Lease ids that the IAM users under the mount's path carry in their tags.
async fn lease_ids_in_moto(app: &TestApp) -> BTreeSet<String> {
    let iam = moto().iam();
    let mut ids = BTreeSet::new();
    for user in app.users_in_moto().await {
        let tags = iam.list_user_tags().user_name(&user).send().await.unwrap();
        let id = tags
            .tags()
            .iter()
            .find(|t| t.key() == "iamlease:lease-id")
            .map(|t| t.value().to_owned())
            .unwrap_or_else(|| panic!("user {user} has no lease-id tag"));
        ids.insert(id);
    }
    ids
}

/// The invariants, once the short leases have run out: only the hour-long ones remain, each
/// active with its user in AWS, and AWS holds no other user. Then everything is revoked and
/// nothing may be left.
async fn assert_consistent(app: &TestApp, role: &str, tally: &Tally) {
    let started = Instant::now();
    let live = loop {
        let all = leases(app, role).await;
        let settled = all
            .iter()
            .all(|(_, state, left)| state == "active" && *left > 600);
        if settled {
            break all;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "leases still not settled 90 s after the load: {:?}",
            all.iter()
                .filter(|(_, s, left)| s != "active" || *left <= 600)
                .take(10)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let in_store: BTreeSet<String> = live.into_iter().map(|(id, _, _)| id).collect();
    let in_aws = lease_ids_in_moto(app).await;
    let orphans: Vec<_> = in_aws.difference(&in_store).collect();
    let lost: Vec<_> = in_store.difference(&in_aws).collect();
    assert!(
        orphans.is_empty(),
        "IAM users without a live lease: {orphans:?} ({})",
        tally.summary()
    );
    assert!(
        lost.is_empty(),
        "live leases without their IAM user: {lost:?}"
    );
    eprintln!(
        "chaos: orphans 0, lost revocations 0, {} live lease(s) matched their users; {}",
        in_store.len(),
        tally.summary()
    );

    app.revoke_all_and_check().await;
    let unclean = tally.unclean.lock().unwrap();
    assert!(
        unclean.is_empty(),
        "answers that were neither success nor a clean error: {:?}",
        &unclean[..unclean.len().min(10)]
    );
}

#[tokio::test]
async fn kill_9_during_load_leaves_no_orphan_and_no_lost_revocation() {
    let kills = setting("CHAOS_KILLS", 30);
    let seed = setting("CHAOS_SEED", 7);
    let dir = tempfile::tempdir().unwrap();
    let key = iamlease::seal::MasterKey::generate().unwrap().to_base64();
    let store = storage::fresh().await;
    // SQLite is one server per file, so a restart recovers a crashed run's work at once. On
    // PostgreSQL other replicas might still own it: the deadlines hand it over, kept short here.
    let deadlines: &[(&str, &str)] = if store.sqlite_file.is_some() {
        &[]
    } else {
        &[
            ("IAMLEASE_CLAIM_TIMEOUT", "5s"),
            ("IAMLEASE_PENDING_GRACE", "5s"),
        ]
    };
    let mut server =
        ServerProcess::start(&store.url, &key, &dir.path().join("server.log"), deadlines).await;
    let app = Arc::new(TestApp::attach(&server.address, &random_name("k")));
    app.configure().await;
    app.write_user_role("dev").await;

    let tally = Arc::new(Tally::default());
    let load = start_load(&app, "dev", seed, &tally);
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..700))).await;
        server.kill9().await;
        server.restart().await;
    }
    load.finish().await;
    // One last kill with whatever was in flight, then recovery on a quiet server.
    server.kill9().await;
    server.restart().await;
    eprintln!("chaos: {kills} kills");
    assert!(
        tally.issued.load(Ordering::Relaxed) > kills,
        "the load barely ran: {}",
        tally.summary()
    );
    assert_consistent(&app, "dev", &tally).await;
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    server.kill9().await;
}

#[tokio::test]
async fn a_fifth_of_aws_calls_failing_leaves_no_orphan_and_every_answer_clean() {
    let seed = setting("CHAOS_SEED", 7);
    let secs = setting("CHAOS_FAULT_SECS", 20);
    let proxy = start_proxy(&moto().url, Faults::default()).await;
    let app = Arc::new(
        TestApp::spawn_with(Options {
            revoke_max_backoff: iamlease::duration::Ttl::from_secs(2),
            ..Options::default()
        })
        .await,
    );
    app.configure_via(&proxy.url).await;
    app.write_user_role("dev").await;

    proxy.set_faults(Faults::every_kind(0.2, seed));
    let tally = Arc::new(Tally::default());
    let load = start_load(&app, "dev", seed, &tally);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    load.finish().await;
    let injected = proxy.injected();
    // AWS recovers; the reaper must now finish every revocation that failed.
    proxy.set_faults(Faults::default());
    eprintln!(
        "chaos: {} AWS requests, {} faults injected ({} after moto acted: 500 {}, 503 {}, throttling {}, reset {}), {} delayed",
        injected.requests,
        injected.faults(),
        injected.after_forwarding,
        injected.error_500,
        injected.error_503,
        injected.throttle,
        injected.reset,
        injected.latency
    );
    assert!(
        injected.error_500 > 0
            && injected.error_503 > 0
            && injected.throttle > 0
            && injected.reset > 0,
        "every kind of fault must have happened: {injected:?}"
    );
    assert_eq!(
        tally.connection_errors.load(Ordering::Relaxed),
        0,
        "the server itself must always answer"
    );
    assert!(
        tally.failed_cleanly.load(Ordering::Relaxed) > 0,
        "with a fifth of calls failing, some requests should have failed: {}",
        tally.summary()
    );
    assert_consistent(&app, "dev", &tally).await;
    eprintln!("chaos: {} client requests", tally.requests());
}

/// A tmpfs of our own, unmounted when dropped.
pub(crate) struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    pub(crate) fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "mounting a tmpfs failed: this test needs root (CI runs as root)"
        );
        Tmpfs(dir)
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        self.0.path()
    }

    /// Writes a file until the filesystem is full.
    pub(crate) fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join("filler")).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        // The last partial chunks, down to single pages.
        let page = vec![0u8; 512];
        while f.write_all(&page).is_ok() {}
        let _ = f.sync_all();
    }

    pub(crate) fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_answers_503_creates_nothing_in_aws_and_recovers_when_space_returns() {
    if storage::postgres_server().is_some() {
        // The suite's PostgreSQL cluster is shared by every test; its disk is not ours to fill.
        eprintln!("skipped on PostgreSQL: this test fills a tmpfs under a SQLite store");
        return;
    }
    let disk = Tmpfs::mount("16m");
    let app = TestApp::spawn_with(Options {
        storage: Some(format!("sqlite://{}/full.db", disk.path().display())),
        ..Options::default()
    })
    .await;
    app.configure().await;
    app.write_user_role("dev").await;
    let r = app.issue("dev", json!({"ttl": "1h"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(app.users_in_moto().await.len(), 1);

    disk.fill();
    let mut refused = 0;
    for _ in 0..5 {
        let r = app.issue("dev", json!({"ttl": "1h"})).await;
        match r.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                assert!(
                    r.error_text().contains("storage unavailable"),
                    "{:?}",
                    r.body
                );
            }
            StatusCode::OK => {}
            other => panic!("a full disk must give 503, not {other}: {:?}", r.body),
        }
    }
    assert!(refused > 0, "the full disk never refused a write");
    let live = leases(&app, "dev")
        .await
        .into_iter()
        .filter(|(_, s, _)| s == "active")
        .count();
    assert_eq!(
        app.users_in_moto().await.len(),
        live,
        "every IAM user must belong to an active lease, even with the disk full"
    );

    disk.free();
    let r = app.issue("dev", json!({"ttl": "1h"})).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "after space returns: {:?}",
        r.body
    );
    let r = app
        .call(
            "PUT",
            &format!("sys/leases/revoke-prefix/{}/", app.mount),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    app.eventually(
        "pending rows left by refused issues are cleaned up",
        Duration::from_secs(10),
        || async { leases(&app, "dev").await.is_empty() },
    )
    .await;
    app.assert_nothing_left().await;
}
