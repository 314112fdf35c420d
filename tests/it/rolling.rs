//! A rolling restart on PostgreSQL: two replicas under continuous load, one stopped with
//! SIGTERM and started again, then the other. Nothing is lost (every lease a client was told
//! about is still there, readable from the other replica, and its IAM user exists), nothing is
//! orphaned (no lease or IAM user no client knows of), and nothing is refused except requests
//! to the replica that is down, which it never began to handle. And replicas starting at once
//! on an empty database apply each schema migration once.
//!
//! Needs `IAMLEASE_TEST_STORAGE` to name a PostgreSQL server, so it is `#[ignore]`d: a plain
//! `cargo test` on SQLite lists it as ignored instead of passing it untested, and it fails if
//! run without PostgreSQL. `scripts/test` runs it in its PostgreSQL step (`--ignored rolling::`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, Row};

use crate::support::process::Replica;
use crate::support::proxy::start_recording_proxy;
use crate::support::{DOC, ROOT_TOKEN, moto, random_name, storage};

/// The grace a stopping replica gives requests in flight. A stop that takes this long was cut
/// short rather than drained, which the test counts as a failure.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;
/// Client tasks per replica.
const CLIENTS: usize = 3;
/// Leases that must outlive the test, and short ones the reapers revoke during the restarts.
const LONG_TTL: &str = "2m";
const SHORT_TTLS: &[&str] = &["2s", "3s", "4s", "5s"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Issue {
        long: bool,
    },
    Renew,
    Revoke,
    /// `sync: false`: answered at once, the revocation runs on in the background.
    RevokeInBackground,
}

/// What a client saw of one request.
#[derive(Debug)]
struct Outcome {
    replica: usize,
    op: Op,
    request_id: String,
    lease_id: Option<String>,
    sent: Instant,
    done: Instant,
    /// The status and body, or the transport error (no answer at all).
    answer: Result<(StatusCode, Value), String>,
    /// The transport error was at connect (`ECONNREFUSED`): the request never left the client.
    refused_at_connect: bool,
}

/// One replica as a client task sees it: its address stays the same across restarts.
#[derive(Clone)]
struct Endpoint {
    replica: usize,
    base: String,
    http: reqwest::Client,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    in_flight: Arc<[AtomicUsize; 2]>,
}

impl Endpoint {
    async fn send(
        &self,
        op: Op,
        request_id: String,
        lease_id: Option<&str>,
        method: &str,
        path: &str,
        body: Value,
    ) -> Option<Value> {
        let sent = Instant::now();
        self.in_flight[self.replica].fetch_add(1, Ordering::SeqCst);
        let result = async {
            let r = self
                .http
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    format!("{}/v1/{path}", self.base),
                )
                .header("X-Vault-Token", ROOT_TOKEN)
                .header("X-Request-Id", &request_id)
                .json(&body)
                .send()
                .await?;
            let status = r.status();
            let text = r.text().await?;
            Ok::<_, reqwest::Error>((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
        }
        .await;
        self.in_flight[self.replica].fetch_sub(1, Ordering::SeqCst);
        let done = Instant::now();
        let good = result
            .as_ref()
            .ok()
            .filter(|(s, _)| s.is_success())
            .map(|(_, v)| v.clone());
        let refused_at_connect = result.as_ref().is_err_and(|e| e.is_connect());
        self.outcomes.lock().unwrap().push(Outcome {
            replica: self.replica,
            op,
            request_id,
            lease_id: lease_id.map(str::to_owned),
            sent,
            done,
            // The whole chain: reqwest's own message hides hyper's reason.
            answer: result.map_err(|e| format!("{:?}", anyhow::Error::from(e))),
            refused_at_connect,
        });
        good
    }
}

/// One client: issues, renews and revokes on its replica until told to stop. A request that
/// gets no answer is not retried (the outcome records it); the client waits a moment instead
/// of spinning against a replica that is down.
async fn client(endpoint: Endpoint, task: usize, mount: String, stop: Arc<AtomicBool>) {
    let mut held: Vec<String> = Vec::new();
    let name = |i: usize| format!("rolling-{}-{task}-{i}", endpoint.replica);
    for i in 0usize.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let answered = match i % 8 {
            3 if !held.is_empty() => {
                let lease = held[i % held.len()].clone();
                endpoint
                    .send(
                        Op::Renew,
                        name(i),
                        Some(&lease),
                        "PUT",
                        "sys/leases/renew",
                        json!({"lease_id": lease, "increment": LONG_TTL}),
                    )
                    .await
            }
            5 | 7 if held.len() > 1 => {
                let lease = held.remove(0);
                let (op, sync) = if i % 8 == 5 {
                    (Op::Revoke, true)
                } else {
                    (Op::RevokeInBackground, false)
                };
                endpoint
                    .send(
                        op,
                        name(i),
                        Some(&lease),
                        "PUT",
                        "sys/leases/revoke",
                        json!({"lease_id": lease, "sync": sync}),
                    )
                    .await
            }
            _ => {
                let long = i % 3 != 0;
                let ttl = if long {
                    LONG_TTL
                } else {
                    SHORT_TTLS[i % SHORT_TTLS.len()]
                };
                let answer = endpoint
                    .send(
                        Op::Issue { long },
                        name(i),
                        None,
                        "POST",
                        &format!("{mount}/creds/dev"),
                        json!({"ttl": ttl}),
                    )
                    .await;
                if long && let Some(lease) = answer.as_ref().and_then(|v| v["lease_id"].as_str()) {
                    held.push(lease.to_owned());
                }
                answer
            }
        };
        let pause = if answered.is_some() { 20 } else { 50 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// What the audit logs say of each request id: how many request lines (written before the
/// handler runs) and the statuses of its response lines.
#[derive(Debug, Default)]
struct Audited {
    requests: usize,
    responses: Vec<u64>,
}

fn audited(paths: &[&Path]) -> BTreeMap<String, Audited> {
    let mut by_id: BTreeMap<String, Audited> = BTreeMap::new();
    for path in paths {
        let text = std::fs::read_to_string(path).unwrap();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let Some(id) = v["request_id"].as_str() else {
                continue;
            };
            if v["type"] == "request" {
                by_id.entry(id.to_owned()).or_default().requests += 1;
            } else if v["type"] == "response" {
                let status = v["response"]["status"].as_u64().unwrap();
                by_id
                    .entry(id.to_owned())
                    .or_default()
                    .responses
                    .push(status);
            }
        }
    }
    by_id
}

/// The ids of the leases of `{mount}/creds/dev`.
async fn list_leases(replica: &Replica, mount: &str) -> BTreeSet<String> {
    let (s, v) = replica
        .call(
            "LIST",
            &format!("sys/leases/lookup/{mount}/creds/dev/"),
            json!(null),
        )
        .await;
    match s {
        StatusCode::NOT_FOUND => BTreeSet::new(),
        StatusCode::OK => v["data"]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| format!("{mount}/creds/dev/{}", k.as_str().unwrap()))
            .collect(),
        _ => panic!("listing leases on {}: {s} {v}", replica.name),
    }
}

/// When a replica was told to stop, and when it answered again after its restart.
struct DownWindow {
    replica: usize,
    told_to_stop: Instant,
    up_again: Instant,
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run with IAMLEASE_TEST_STORAGE (scripts/test runs it)"]
async fn a_rolling_restart_loses_nothing() {
    // Asked for on SQLite (`--include-ignored`), this fails rather than pass without testing.
    let server = storage::postgres_server().expect(
        "a_rolling_restart_loses_nothing needs IAMLEASE_TEST_STORAGE=postgres://… (scripts/test sets it)",
    );
    let db = storage::create_database(&server).await;
    let key = iamlease::seal::MasterKey::generate().unwrap().to_base64();
    let logs = tempfile::tempdir().unwrap();
    let names = ["rolling-a", "rolling-b"];
    let audit_logs = names.map(|n| logs.path().join(format!("{n}-audit.log")));
    let shutdown_timeout = format!("{SHUTDOWN_TIMEOUT_SECS}s");
    let env = |i: usize| {
        [
            ("IAMLEASE_AUDIT_LOG", audit_logs[i].to_str().unwrap()),
            ("IAMLEASE_SHUTDOWN_TIMEOUT", shutdown_timeout.as_str()),
            // Long, so a claim a stopping replica abandoned shows as a lease left over at the
            // end, rather than being taken over quietly by the other replica.
            ("IAMLEASE_CLAIM_TIMEOUT", "5m"),
        ]
    };
    let (env_a, env_b) = (env(0), env(1));
    let (a, b) = tokio::join!(
        Replica::start(names[0], &db, &key, logs.path(), &env_a),
        Replica::start(names[1], &db, &key, logs.path(), &env_b),
    );
    let mut replicas = [a, b];

    let m = moto();
    let proxy = start_recording_proxy(&m.url).await;
    let mount = random_name("roll");
    let ok = |(s, v): (StatusCode, Value), what: &str| assert!(s.is_success(), "{what}: {s} {v}");
    let r = &replicas[0];
    ok(
        r.call(
            "POST",
            &format!("sys/mounts/{mount}"),
            json!({"type": "aws"}),
        )
        .await,
        "mount",
    );
    ok(
        r.call(
            "POST",
            &format!("{mount}/config/root"),
            json!({
                "access_key": m.admin_key, "secret_key": m.admin_secret, "region": "us-east-1",
                "iam_endpoint": proxy.url, "sts_endpoint": proxy.url,
            }),
        )
        .await,
        "root config",
    );
    ok(
        r.call(
            "POST",
            &format!("{mount}/roles/dev"),
            json!({"credential_type": "iam_user", "policy_document": DOC}),
        )
        .await,
        "role",
    );
    // Every AWS call held a little, so requests and revocations are in flight when a stop lands.
    proxy.set_delay(Duration::from_millis(30));

    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let in_flight = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .flat_map(|replica| (0..CLIENTS).map(move |task| (replica, task)))
        .map(|(replica, task)| {
            let endpoint = Endpoint {
                replica,
                base: replicas[replica].base().to_owned(),
                http: reqwest::Client::new(),
                outcomes: outcomes.clone(),
                in_flight: in_flight.clone(),
            };
            tokio::spawn(client(endpoint, task, mount.clone(), stop.clone()))
        })
        .collect();

    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut windows = Vec::new();
    let mut revoked_just_before_stop = Vec::new();
    for (i, replica) in replicas.iter_mut().enumerate() {
        // A revocation answered at once and still running in the background when the stop
        // comes: a graceful stop must finish it, not leave it claimed for `claim_timeout`.
        let (lease, user) = replica.issue(&mount, LONG_TTL).await;
        let (s, v) = replica
            .call(
                "PUT",
                "sys/leases/revoke",
                json!({"lease_id": lease, "sync": false}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        revoked_just_before_stop.push((lease, user));

        // And requests of the clients in flight.
        let deadline = Instant::now() + Duration::from_secs(10);
        while in_flight[i].load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "no client request to {} in flight",
                replica.name
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let told_to_stop = Instant::now();
        let status = replica.process.terminate().await;
        let stopped_in = told_to_stop.elapsed();
        assert!(status.success(), "{} exited with {status}", replica.name);
        assert!(
            stopped_in < Duration::from_secs(SHUTDOWN_TIMEOUT_SECS),
            "{} took {stopped_in:?} to stop: its shutdown timeout cut something off",
            replica.name
        );
        // A real rolling upgrade starts the new version of the binary here; the test starts
        // the same one, which exercises the same things: the stop, a start on a live database
        // (migrations already applied, the other replica serving), and clients coming back.
        replica.process.restart().await;
        windows.push(DownWindow {
            replica: i,
            told_to_stop,
            up_again: Instant::now(),
        });
        eprintln!(
            "{}: stopped in {stopped_in:?}, up again after {:?}",
            replica.name,
            told_to_stop.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let load_time = started.elapsed();
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());

    // What the clients saw. Every answer is a success: no 5xx (and no 4xx) at any moment.
    for o in &outcomes {
        if let Ok((s, v)) = &o.answer {
            assert!(
                s.is_success(),
                "{} answered {s} to {o:?}: {v}",
                names[o.replica]
            );
        }
    }
    // A request without an answer went to a replica between its stop and its restart, and
    // the replica never began to handle it: no audit line at all (every audited request is
    // logged before its handler runs). Graceful shutdown closes the listener (new connections
    // are refused at connect) and closes idle kept-alive connections, so a request written
    // onto one just as it closes gets no answer either, but was never read.
    let audit = audited(&[audit_logs[0].as_path(), audit_logs[1].as_path()]);
    let mut unanswered = [0usize; 2];
    let mut closed_unread = [0usize; 2];
    for o in outcomes.iter().filter(|o| o.answer.is_err()) {
        assert!(
            windows.iter().any(|w| w.replica == o.replica
                && w.told_to_stop <= o.done
                && o.sent <= w.up_again),
            "{} failed a request while it was up and not told to stop: {o:?}",
            names[o.replica]
        );
        assert!(
            !audit.contains_key(&o.request_id),
            "{} began a request and cut it off: {o:?}, audited {:?}",
            names[o.replica],
            audit[&o.request_id]
        );
        unanswered[o.replica] += 1;
        if !o.refused_at_connect {
            closed_unread[o.replica] += 1;
        }
    }
    // Every request a replica began, it finished and answered with a success.
    for (id, a) in &audit {
        assert!(
            a.requests == 1 && a.responses.len() == 1 && a.responses[0] < 300,
            "request {id} was audited as {a:?}"
        );
    }
    // The stops really landed on work in flight, which then finished.
    for w in &windows {
        let drained = outcomes
            .iter()
            .filter(|o| o.replica == w.replica && o.sent < w.told_to_stop)
            .filter(|o| w.told_to_stop < o.done && o.answer.is_ok())
            .count();
        assert!(
            drained > 0,
            "no request was in flight when {} was told to stop",
            names[w.replica]
        );
        eprintln!(
            "{}: {drained} requests in flight at SIGTERM finished; {} got no answer ({} closed unread, the rest refused at connect)",
            names[w.replica], unanswered[w.replica], closed_unread[w.replica]
        );
    }
    eprintln!("{} requests in {load_time:?}", outcomes.len());

    // What must be left: every long lease issued and not revoked. Short ones expire, revoked
    // ones go; a revocation that got no answer was never begun, so its lease stays.
    let issued: Vec<(&Outcome, String, String)> = outcomes
        .iter()
        .filter_map(|o| {
            let (_, v) = o.answer.as_ref().ok()?;
            matches!(o.op, Op::Issue { .. }).then(|| {
                let lease = v["lease_id"].as_str().unwrap().to_owned();
                let user = v["data"]["username"].as_str().unwrap().to_owned();
                (o, lease, user)
            })
        })
        .collect();
    let revoked: BTreeSet<&str> = outcomes
        .iter()
        .filter(|o| matches!(o.op, Op::Revoke | Op::RevokeInBackground) && o.answer.is_ok())
        .filter_map(|o| o.lease_id.as_deref())
        .chain(revoked_just_before_stop.iter().map(|(l, _)| l.as_str()))
        .collect();
    let kept: BTreeMap<&str, (&Outcome, &str)> = issued
        .iter()
        .filter(|(o, lease, _)| {
            matches!(o.op, Op::Issue { long: true }) && !revoked.contains(lease.as_str())
        })
        .map(|(o, lease, user)| (lease.as_str(), (*o, user.as_str())))
        .collect();
    let kept_users: BTreeSet<&str> = kept.values().map(|(_, u)| *u).collect();
    assert!(
        kept.len() >= 10 && issued.len() > kept.len() && revoked.len() > 2,
        "too little load to prove anything: {} issued, {} kept, {} revoked",
        issued.len(),
        kept.len(),
        revoked.len()
    );

    // The store and IAM settle on exactly that (the reapers revoke the short leases within
    // seconds), and nothing no client knows of is there.
    let prefix = format!("/iamlease/{mount}/");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = list_leases(&replicas[1], &mount).await;
        let users: BTreeSet<String> = m
            .users_under(&prefix)
            .await
            .into_iter()
            .map(|u| u.user_name)
            .collect();
        let listed_ok = listed.iter().map(String::as_str).eq(kept.keys().copied());
        let users_ok = users
            .iter()
            .map(String::as_str)
            .eq(kept_users.iter().copied());
        if listed_ok && users_ok {
            break;
        }
        if Instant::now() > deadline {
            let lost: Vec<_> = kept.keys().filter(|l| !listed.contains(**l)).collect();
            let extra: Vec<_> = listed
                .iter()
                .filter(|l| !kept.contains_key(l.as_str()))
                .collect();
            let lost_users: Vec<_> = kept_users.iter().filter(|u| !users.contains(**u)).collect();
            let extra_users: Vec<_> = users
                .iter()
                .filter(|u| !kept_users.contains(u.as_str()))
                .collect();
            // What the clients saw of each lease in question.
            let in_question: BTreeSet<&str> = lost
                .iter()
                .map(|l| **l)
                .chain(extra.iter().map(|l| l.as_str()))
                .collect();
            let history: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| {
                    let answered = o
                        .answer
                        .as_ref()
                        .ok()
                        .and_then(|(_, v)| v["lease_id"].as_str());
                    o.lease_id
                        .as_deref()
                        .or(answered)
                        .is_some_and(|l| in_question.contains(l))
                })
                .collect();
            panic!(
                "the store and IAM did not settle on the {} leases kept:\n  leases lost {lost:?}\n  leases left over {extra:?}\n  users lost {lost_users:?}\n  users left over {extra_users:?}\n  revoked just before a stop {revoked_just_before_stop:?}\n  their requests {history:#?}",
                kept.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Each lease kept is readable from the replica that did not issue it.
    let replicas_ref = &replicas;
    futures::stream::iter(kept.iter())
        .for_each_concurrent(8, |(lease, (o, _))| async move {
            let other = &replicas_ref[1 - o.replica];
            let (s, v) = other
                .call("PUT", "sys/leases/lookup", json!({"lease_id": lease}))
                .await;
            assert_eq!(s, StatusCode::OK, "{} cannot read {lease}: {v}", other.name);
            assert!(v["data"]["ttl"].as_i64().unwrap() > 0, "{lease}: {v}");
        })
        .await;

    // Revoking the whole mount leaves nothing in IAM and no lease.
    let (s, v) = replicas[0]
        .call(
            "PUT",
            &format!("sys/leases/revoke-prefix/{mount}"),
            json!(null),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert!(list_leases(&replicas[0], &mount).await.is_empty());
    let left = m.users_under(&prefix).await;
    assert!(left.is_empty(), "left in IAM after revoke-prefix: {left:?}");
    // And neither stop had to cut anything off or leave work to the next start, and nothing
    // went wrong enough to be logged as an error.
    for name in names {
        let log = std::fs::read_to_string(logs.path().join(format!("{name}.log"))).unwrap();
        for warning in [
            "cutting them off",
            "revocations answered before the stop are still running",
            "the reaper did not stop in time",
            "ERROR",
        ] {
            assert!(!log.contains(warning), "{name} logged {warning:?}:\n{log}");
        }
    }
}
#[tokio::test]
#[ignore = "needs PostgreSQL: run with IAMLEASE_TEST_STORAGE (scripts/test runs it)"]
async fn two_replicas_migrating_an_empty_database_at_once_apply_each_migration_once() {
    let server = storage::postgres_server().expect(
        "two_replicas_migrating_… needs IAMLEASE_TEST_STORAGE=postgres://… (scripts/test sets it)",
    );
    let db = storage::create_database(&server).await;
    let key = iamlease::seal::MasterKey::generate().unwrap().to_base64();
    let logs = tempfile::tempdir().unwrap();
    // Started together on an empty database: each applies the schema (or waits on the
    // advisory lock for another to), makes the dev root token and mounts `aws/`. A replica
    // whose migration failed (a CREATE TABLE raced, a migration applied twice) exits at
    // start-up, and `Replica::start` fails with its log.
    //
    // A starting gate makes "together" exact rather than luck: the test holds the database's
    // `pg_class` in EXCLUSIVE mode, which lets a replica connect and read the catalogue but
    // not create a table, so each replica's first CREATE TABLE (or, under the migrator's
    // advisory lock, the wait for that lock) blocks; once all of them wait, the gate opens.
    let names = ["migrate-a", "migrate-b", "migrate-c", "migrate-d"];
    let mut gate = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("BEGIN").execute(&mut gate).await.unwrap();
    sqlx::query("LOCK TABLE pg_catalog.pg_class IN EXCLUSIVE MODE")
        .execute(&mut gate)
        .await
        .unwrap();
    // Watched from a connection of its own: inside the gate's transaction, pg_stat_activity
    // would show the snapshot of its first read.
    let mut watch = sqlx::PgConnection::connect(&db).await.unwrap();
    let open_gate = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watch)
            .await
            .unwrap();
            if waiting == names.len() as i64 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {waiting} of {} replicas reached the migration",
                names.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sqlx::query("ROLLBACK").execute(&mut gate).await.unwrap();
    };
    let (replicas, ()) = tokio::join!(
        futures::future::join_all(names.map(|name| Replica::start(
            name,
            &db,
            &key,
            logs.path(),
            &[]
        ))),
        open_gate,
    );
    gate.close().await.unwrap();
    watch.close().await.unwrap();

    let mut files: Vec<i64> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.ends_with(".sql"))
            .map(|f| f.split('_').next().unwrap().parse().unwrap())
            .collect();
    files.sort();
    let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("version"), r.get("success")))
            .collect();
    conn.close().await.unwrap();
    assert_eq!(
        applied,
        files.iter().map(|v| (*v, true)).collect::<Vec<_>>(),
        "each migration in migrations/postgres applied once, successfully"
    );

    // What start-up makes once is the same on every replica: one `aws/` mount, one cluster
    // id, one audit key (the same HMAC of the same input).
    let mut seen = BTreeSet::new();
    for r in &replicas {
        let (s, v) = r.call("GET", "sys/mounts", json!(null)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let aws = &v["data"]["aws/"];
        assert_eq!(aws["type"], "aws", "{} lists no aws/ mount: {v}", r.name);
        let (s, health) = r.call("GET", "sys/health", json!(null)).await;
        assert_eq!(s, StatusCode::OK, "{health}");
        let (s, hash) = r
            .call("POST", "sys/audit-hash", json!({"input": "same"}))
            .await;
        assert_eq!(s, StatusCode::OK, "{hash}");
        seen.insert((
            aws.to_string(),
            health["cluster_id"].to_string(),
            hash["data"]["hash"].to_string(),
        ));
    }
    assert_eq!(seen.len(), 1, "the replicas disagree: {seen:?}");
}
