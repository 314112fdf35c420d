//! Two replicas on one PostgreSQL database and one moto: what one writes the other sees at
//! once; a lease issued on one is renewed and revoked on either; expiries are shared between
//! their reapers; and when one is killed (`kill -9`) mid-issue and mid-revocation, the other
//! takes over everything it had in flight once its heartbeat has been silent for
//! `failover_timeout` (the claim and pending deadlines stay at their minutes-long defaults), with
//! no IAM user left behind and none deleted twice. The replicas are real child processes of the built binary; a recording
//! proxy between them and moto tells their AWS calls apart by user agent (`AWS_SDK_UA_APP_ID`).
//!
//! Needs `IAMLEASE_TEST_STORAGE` to name a PostgreSQL server, so it is `#[ignore]`d: a plain
//! `cargo test` on SQLite lists it as ignored instead of passing it untested, and it fails if
//! run without PostgreSQL. `scripts/test` runs it in its PostgreSQL step (`--ignored replicas::`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::process::Replica;
use crate::support::proxy::{Recorded, start_recording_proxy};
use crate::support::{DOC, moto, random_name, storage};

/// Short, so the test waits seconds for a dead replica's work, not the default 15. The claim
/// timeout (5 minutes) and the pending grace (2 minutes) keep their defaults: only liveness can
/// hand a dead replica's work over within the test's deadlines.
const FAILOVER_SECS: u64 = 3;
/// `ServerProcess`'s reaper interval.
const REAPER_SECS: u64 = 1;
/// The calls of a revocation before DeleteUser (issuing never makes these).
const REVOKE_ACTIONS: &[&str] = &[
    "ListAccessKeys",
    "DeleteAccessKey",
    "ListAttachedUserPolicies",
    "DetachUserPolicy",
    "ListUserPolicies",
    "DeleteUserPolicy",
    "ListGroupsForUser",
    "RemoveUserFromGroup",
    "DeleteUser",
];

/// Two replicas started at once on a new PostgreSQL database (so the schema migration runs
/// under PostgreSQL's advisory lock, and the dev-mode `aws/` mount is made once), with
/// `FAILOVER_SECS`; their logs in the returned directory. `test` names the caller: asked for
/// on SQLite (`--include-ignored`), it fails rather than pass without testing.
async fn two_replicas(
    test: &str,
    names: [&'static str; 2],
) -> (tempfile::TempDir, Replica, Replica) {
    let server = storage::postgres_server().unwrap_or_else(|| {
        panic!("{test} needs IAMLEASE_TEST_STORAGE=postgres://… (scripts/test sets it)")
    });
    let db = storage::create_database(&server).await;
    let key = iamlease::seal::MasterKey::generate().unwrap().to_base64();
    let logs = tempfile::tempdir().unwrap();
    let failover = format!("{FAILOVER_SECS}s");
    let env = [("IAMLEASE_FAILOVER_TIMEOUT", failover.as_str())];
    let (a, b) = tokio::join!(
        Replica::start(names[0], &db, &key, logs.path(), &env),
        Replica::start(names[1], &db, &key, logs.path(), &env),
    );
    (logs, a, b)
}

/// A new mount on `replica`, its AWS through `aws_url` (the recording proxy), with an
/// `iam_user` role `dev`.
async fn mount_through(replica: &Replica, aws_url: &str, prefix: &str) -> String {
    let m = moto();
    let mount = random_name(prefix);
    for (path, body) in [
        (format!("sys/mounts/{mount}"), json!({"type": "aws"})),
        (
            format!("{mount}/config/root"),
            json!({
                "access_key": m.admin_key, "secret_key": m.admin_secret, "region": "us-east-1",
                "iam_endpoint": aws_url, "sts_endpoint": aws_url,
            }),
        ),
        (
            format!("{mount}/roles/dev"),
            json!({"credential_type": "iam_user", "policy_document": DOC}),
        ),
    ] {
        let (s, v) = replica.call("POST", &path, body).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{path}: {v}");
    }
    mount
}

fn is_from(r: &Recorded, replica: &str) -> bool {
    r.user_agent.contains(&format!("app/{replica}"))
}

fn is_revocation_call(r: &Recorded) -> bool {
    r.action()
        .is_some_and(|a| REVOKE_ACTIONS.contains(&a.as_str()))
}

fn is_deleted_user(r: &Recorded) -> bool {
    r.action().as_deref() == Some("DeleteUser") && r.status == Some(200)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run with IAMLEASE_TEST_STORAGE (scripts/test runs it)"]
async fn two_replicas_share_the_work_and_survive_one_being_killed() {
    let proxy = start_recording_proxy(&moto().url).await;
    // Started at once on an empty database: the schema migration (under PostgreSQL's advisory
    // lock) and the dev-mode `aws/` mount happen once, and both replicas come up.
    let (_logs, mut a, b) = two_replicas(
        "two_replicas_share_the_work_and_survive_one_being_killed",
        ["replica-a", "replica-b"],
    )
    .await;

    // What is written on A is seen by B at once: mount, root config, role, policy, token.
    let mount = random_name("rep");
    let m = moto();
    let (s, v) = a
        .call(
            "POST",
            &format!("sys/mounts/{mount}"),
            json!({"type": "aws"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = a
        .call(
            "POST",
            &format!("{mount}/config/root"),
            json!({
                "access_key": m.admin_key, "secret_key": m.admin_secret, "region": "us-east-1",
                "iam_endpoint": proxy.url, "sts_endpoint": proxy.url,
            }),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = a
        .call(
            "POST",
            &format!("{mount}/roles/dev"),
            json!({"credential_type": "iam_user", "policy_document": DOC}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = b
        .call("GET", &format!("{mount}/roles/dev"), json!(null))
        .await;
    assert_eq!(s, StatusCode::OK, "B reads the role A wrote: {v}");
    let (s, v) = a
        .call(
            "PUT",
            "sys/policies/acl/dev",
            json!({"policy": format!("path \"{mount}/creds/dev\" {{ capabilities = [\"update\"] }}")}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = a
        .call("POST", "auth/token/create", json!({"policies": ["dev"]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let scoped = v["auth"]["client_token"].as_str().unwrap().to_owned();
    let (s, v) = b
        .call_as(&scoped, "POST", &format!("{mount}/creds/dev"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "B honours A's token and policy: {v}");
    let scoped_lease = v["lease_id"].as_str().unwrap().to_owned();
    let (s, _) = b
        .call_as(&scoped, "GET", &format!("{mount}/config/root"), json!(null))
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "and A's policy limits it on B too"
    );
    let (s, _) = a
        .call(
            "PUT",
            "sys/leases/revoke",
            json!({"lease_id": scoped_lease}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // Issue on A, renew on B, revoke on A.
    let (lease, user) = a.issue(&mount, "10m").await;
    let (s, v) = b
        .call(
            "PUT",
            "sys/leases/renew",
            json!({"lease_id": lease, "increment": "30m"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["lease_duration"], 1800);
    let (s, v) = a
        .call("PUT", "sys/leases/lookup", json!({"lease_id": lease}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["data"]["ttl"].as_i64().unwrap() > 600,
        "A sees B's renewal: {v}"
    );
    let (s, _) = a
        .call("PUT", "sys/leases/revoke", json!({"lease_id": lease}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let left: Vec<String> = m
        .users_under(&format!("/iamlease/{mount}/"))
        .await
        .into_iter()
        .map(|u| u.user_name)
        .collect();
    assert!(!left.contains(&user), "revoked on A: {user} is gone");

    // Expiry load: leases issued on both, expiring over several seconds, reaped by both. A slow
    // AWS (every call held 150 ms) keeps revocations in flight long enough to kill A mid-way.
    let issued: Vec<(String, String)> = futures::future::join_all((0..24).map(|i| {
        let replica = if i % 2 == 0 { &a } else { &b };
        let mount = mount.clone();
        async move { replica.issue(&mount, &format!("{}s", 3 + i / 3)).await }
    }))
    .await;
    let load_users: BTreeSet<String> = issued.iter().map(|(_, u)| u.clone()).collect();
    proxy.set_delay(Duration::from_millis(150));

    // Kill A (SIGKILL) once it has finished a revocation and has another one part-way.
    // "Part-way" means early in its sequence (at most two calls seen, each delayed 150 ms): a
    // revocation about to send its last call could otherwise finish while the kill lands.
    let a_progress = |calls: &[Recorded]| {
        let mut started = BTreeSet::new();
        let mut deleted = BTreeSet::new();
        let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
        for r in calls
            .iter()
            .filter(|r| is_from(r, "replica-a") && is_revocation_call(r))
        {
            let Some(u) = r.field("UserName").filter(|u| load_users.contains(u)) else {
                continue;
            };
            if is_deleted_user(r) {
                deleted.insert(u.clone());
            }
            *seen.entry(u.clone()).or_default() += 1;
            started.insert(u);
        }
        let unfinished: BTreeSet<String> = started.difference(&deleted).cloned().collect();
        let early = unfinished.iter().any(|u| seen[u] <= 2);
        (deleted, unfinished, early)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (done, _, early) = a_progress(&proxy.requests());
        if !done.is_empty() && early {
            a.process.kill9().await;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica A never had a revocation in flight ({} done)",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the proxy record what A sent just before it died; B cannot resume A's claims until
    // A's heartbeat has been silent for seconds, so nothing of B's for those users can fall
    // before this point.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let kill_index = proxy.requests().len();
    let (_, a_unfinished, _) = a_progress(&proxy.requests()[..kill_index]);
    assert!(!a_unfinished.is_empty());

    // B finishes everything: what A had in flight once A is silent, the rest on expiry.
    let deadline = Instant::now() + Duration::from_secs(FAILOVER_SECS + 30);
    loop {
        let left = m.users_under(&format!("/iamlease/{mount}/")).await;
        let (s, _) = b
            .call("LIST", &format!("sys/leases/lookup/{mount}/"), json!(null))
            .await;
        if left.is_empty() && s == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B did not finish: {} users and leases ({s}) left",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let calls = proxy.requests();
    // Per user of the load: the indexes of the revocation calls each replica made, and how many
    // DeleteUser calls moto answered with success.
    let mut by: BTreeMap<&str, BTreeMap<String, Vec<usize>>> = BTreeMap::new();
    let mut deleted: BTreeMap<String, usize> = BTreeMap::new();
    for (i, r) in calls
        .iter()
        .enumerate()
        .filter(|(_, r)| is_revocation_call(r))
    {
        let Some(u) = r.field("UserName").filter(|u| load_users.contains(u)) else {
            continue;
        };
        if is_deleted_user(r) {
            *deleted.entry(u.clone()).or_default() += 1;
        }
        let who = if is_from(r, a.name) { a.name } else { b.name };
        by.entry(who).or_default().entry(u).or_default().push(i);
    }
    let (by_a, by_b) = (
        by.remove(a.name).unwrap_or_default(),
        by.remove(b.name).unwrap_or_default(),
    );
    eprintln!(
        "revocations started by A {}, by B {}, resumed by B after A died {}",
        by_a.len(),
        by_b.len(),
        by_a.keys().filter(|u| by_b.contains_key(*u)).count()
    );
    // Both reapers took part.
    assert!(
        by_b.keys().any(|u| !by_a.contains_key(u)),
        "B revoked none of the load on its own"
    );
    for u in &load_users {
        // Never deleted twice. Zero successes only when A's own DeleteUser was cut off by the
        // kill after moto had acted on it (B then found the user gone).
        let n = deleted.get(u).copied().unwrap_or(0);
        let cut_off = calls[..kill_index].iter().any(|r| {
            is_from(r, a.name)
                && r.action().as_deref() == Some("DeleteUser")
                && r.status.is_none()
                && r.field("UserName").as_deref() == Some(u.as_str())
        });
        assert!(n == 1 || (n == 0 && cut_off), "{u} deleted {n} times");
        // Never revoked by both at once: B touches a user A had started only after A died.
        if let (Some(ia), Some(ib)) = (by_a.get(u), by_b.get(u)) {
            assert!(
                ia.iter().all(|&i| i < kill_index) && ib.iter().all(|&i| i >= kill_index),
                "{u} revoked by both replicas at once (A at {ia:?}, B at {ib:?}, kill at {kill_index})"
            );
        }
    }
    // And B finished every revocation A had part-way when it died.
    for u in &a_unfinished {
        assert!(
            by_b.contains_key(u),
            "B resumed {u}, which A was revoking when it died"
        );
    }
}

/// Each replica serves mounts, roles and root configs from memory (`engine/cache.rs`); a
/// change or deletion made on the other replica must be in force on the very next request.
#[tokio::test]
#[ignore = "needs PostgreSQL: run with IAMLEASE_TEST_STORAGE (scripts/test runs it)"]
async fn a_replica_never_serves_a_role_or_root_config_the_other_changed_or_deleted() {
    let (_logs, a, b) = two_replicas("a_replica_never_serves_…", ["cache-a", "cache-b"]).await;
    let m = moto();
    let iam = m.iam();
    let mount = random_name("cache");
    let root = json!({
        "access_key": m.admin_key, "secret_key": m.admin_secret, "region": "us-east-1",
        "iam_endpoint": m.url, "sts_endpoint": m.url,
    });
    let role = |path: &str| json!({"credential_type": "iam_user", "policy_document": DOC, "user_path": path});
    let ok = |(s, v): (StatusCode, Value), what: &str| {
        assert!(s.is_success(), "{what}: {s} {v}");
        v
    };
    ok(
        b.call(
            "POST",
            &format!("sys/mounts/{mount}"),
            json!({"type": "aws"}),
        )
        .await,
        "mount",
    );
    ok(
        b.call("POST", &format!("{mount}/config/root"), root.clone())
            .await,
        "root config",
    );
    let first_path = format!("/{mount}/first/");
    ok(
        b.call("POST", &format!("{mount}/roles/dev"), role(&first_path))
            .await,
        "role",
    );
    let user_path = |user: String| {
        let iam = iam.clone();
        async move {
            iam.get_user()
                .user_name(user)
                .send()
                .await
                .unwrap()
                .user
                .unwrap()
                .path
        }
    };
    // A reads mount, role and root config once and keeps them.
    let (_, user) = a.issue(&mount, "10m").await;
    assert_eq!(user_path(user).await, first_path);
    let (_, user) = a.issue(&mount, "10m").await;
    assert_eq!(user_path(user).await, first_path);

    // B changes the role: A's next issue follows it.
    let second_path = format!("/{mount}/second/");
    ok(
        b.call("POST", &format!("{mount}/roles/dev"), role(&second_path))
            .await,
        "role change",
    );
    let (_, user) = a.issue(&mount, "10m").await;
    assert_eq!(
        user_path(user).await,
        second_path,
        "A issued from the role as it was before B changed it"
    );

    // B deletes the role: A refuses at once.
    ok(
        b.call("DELETE", &format!("{mount}/roles/dev"), json!(null))
            .await,
        "role delete",
    );
    let (s, v) = a
        .call("POST", &format!("{mount}/creds/dev"), json!({}))
        .await;
    assert!(
        s.is_client_error(),
        "A issued from a role B had deleted: {s} {v}"
    );

    // B breaks the root config (a wrong secret key): A's next issue signs with it, so AWS
    // refuses, and nothing is left behind.
    ok(
        b.call("POST", &format!("{mount}/roles/dev"), role(&second_path))
            .await,
        "role again",
    );
    a.issue(&mount, "10m").await;
    let mut wrong = root.clone();
    wrong["secret_key"] = json!("not-the-secret-key-at-all");
    ok(
        b.call("POST", &format!("{mount}/config/root"), wrong).await,
        "wrong root config",
    );
    let (s, v) = a
        .call("POST", &format!("{mount}/creds/dev"), json!({}))
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_GATEWAY,
        "A still signed with the root config B had replaced: {v}"
    );

    // B puts the right one back; A issues again. Then B disables the mount: A answers 404.
    ok(
        b.call("POST", &format!("{mount}/config/root"), root).await,
        "root config again",
    );
    a.issue(&mount, "10m").await;
    ok(
        b.call("DELETE", &format!("sys/mounts/{mount}"), json!(null))
            .await,
        "unmount",
    );
    let (s, v) = a
        .call("POST", &format!("{mount}/creds/dev"), json!({}))
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "A issued from a mount B had disabled: {v}"
    );
    // Disabling revoked every lease of the mount: no user is left under its paths.
    for prefix in [first_path, second_path] {
        let users = iam.list_users().path_prefix(&prefix).send().await.unwrap();
        assert!(users.users().is_empty(), "left under {prefix}: {users:?}");
    }
}

/// Failover under load: three clients per replica issue 3-second leases through A and B; A is
/// killed (`kill -9`) with issues and revocations in flight. Every IAM user the load made is
/// gone from moto within TTL + `failover_timeout` + one reaper pass of the end of the load (and
/// 5 s for moto to take the deletions), far inside the 2-minute `pending_grace` and the
/// 5-minute `claim_timeout` that were the only way before; none is deleted twice.
#[tokio::test]
#[ignore = "needs PostgreSQL: run with IAMLEASE_TEST_STORAGE (scripts/test runs it)"]
async fn a_killed_replicas_issues_and_revocations_are_taken_over_within_the_failover_timeout() {
    const TTL_SECS: u64 = 3;
    let proxy = start_recording_proxy(&moto().url).await;
    let (_logs, mut a, b) = two_replicas("a_killed_replicas_…", ["failover-a", "failover-b"]).await;
    let m = moto();
    let mount = mount_through(&a, &proxy.url, "fo").await;
    // Every AWS call held 100 ms: A always has issues and revocations part-way.
    proxy.set_delay(Duration::from_millis(100));

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = [&a, &b]
        .into_iter()
        .flat_map(|r| std::iter::repeat_n((r.base().to_owned(), r.name), 3))
        .map(|(base, name)| {
            let stop = stop.clone();
            let http = reqwest::Client::new();
            let mount = mount.clone();
            tokio::spawn(async move {
                let mut issued = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = http
                        .post(format!("{base}/v1/{mount}/creds/dev"))
                        .header("X-Vault-Token", crate::support::ROOT_TOKEN)
                        .json(&json!({"ttl": format!("{TTL_SECS}s")}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => issued += 1,
                        Ok(r) => panic!("{name} refused an issue: {}", r.status()),
                        // The killed replica: its connections drop, then are refused.
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                issued
            })
        })
        .collect();

    // Let leases expire on both replicas, then kill A with its revocations and issues running.
    tokio::time::sleep(Duration::from_secs(TTL_SECS + 2)).await;
    let in_flight_on_a = proxy
        .requests()
        .iter()
        .filter(|r| is_from(r, a.name) && r.status.is_none())
        .count();
    a.process.kill9().await;
    let killed = Instant::now();
    assert!(
        in_flight_on_a > 0,
        "A had no AWS call in flight when killed"
    );
    // B keeps serving for a moment, then the load stops and AWS is quick again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut issued = 0;
    for c in clients {
        issued += c.await.unwrap();
    }
    proxy.set_delay(Duration::ZERO);
    let last_issue = Instant::now();

    // The bound: the last lease's TTL from the end of the load, A's silence, one reaper pass,
    // and 5 s for moto to answer the deletions one at a time.
    let bound = Duration::from_secs(TTL_SECS + FAILOVER_SECS + REAPER_SECS + 5);
    let deadline = last_issue + bound;
    loop {
        let left = m.users_under(&format!("/iamlease/{mount}/")).await;
        let (s, _) = b
            .call("LIST", &format!("sys/leases/lookup/{mount}/"), json!(null))
            .await;
        if left.is_empty() && s == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} IAM users (and leases: {s}) still there {:?} after the kill, {} after the load stopped",
            left.len(),
            killed.elapsed(),
            bound.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let calls = proxy.requests();
    let a_users: BTreeSet<String> = calls
        .iter()
        .filter(|r| is_from(r, a.name) && r.action().as_deref() == Some("CreateUser"))
        .filter_map(|r| r.field("UserName"))
        .collect();
    let taken_over = calls
        .iter()
        .filter(|r| is_from(r, b.name) && is_deleted_user(r))
        .filter_map(|r| r.field("UserName"))
        .filter(|u| a_users.contains(u))
        .count();
    eprintln!(
        "{issued} leases issued, {} users made by A, {taken_over} of them deleted by B; all gone {:?} after the kill",
        a_users.len(),
        killed.elapsed()
    );
    assert!(taken_over > 0, "B deleted none of A's users");
    let mut deleted: BTreeMap<String, usize> = BTreeMap::new();
    for u in calls
        .iter()
        .filter(|r| is_deleted_user(r))
        .filter_map(|r| r.field("UserName"))
    {
        *deleted.entry(u).or_default() += 1;
    }
    assert!(
        deleted.values().all(|&n| n == 1),
        "a user deleted twice: {deleted:?}"
    );
}

/// A replica waiting on a slow AWS is alive: its heartbeat runs apart from its AWS calls, so
/// the other replica takes over none of its revocations or issues even when one of them takes
/// longer than `failover_timeout` (no revocation runs twice at once, no issue is rolled back).
#[tokio::test]
#[ignore = "needs PostgreSQL: run with IAMLEASE_TEST_STORAGE (scripts/test runs it)"]
async fn a_replica_slow_on_aws_is_not_taken_for_dead() {
    let proxy = start_recording_proxy(&moto().url).await;
    let (_logs, a, b) = two_replicas("a_replica_slow_on_aws_…", ["slow-a", "slow-b"]).await;
    let m = moto();
    let mount = mount_through(&a, &proxy.url, "slow").await;
    let short: Vec<(String, String)> =
        futures::future::join_all((0..4).map(|_| a.issue(&mount, "1s"))).await;
    // From here every AWS call takes 700 ms: a revocation (9 calls) or an issue takes well
    // over FAILOVER_SECS.
    proxy.set_delay(Duration::from_millis(700));
    let started = Instant::now();
    let (long, _) = tokio::join!(
        futures::future::join_all((0..2).map(|_| b.issue(&mount, "1h"))),
        tokio::time::sleep(Duration::from_secs(1)),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let short_users: BTreeSet<String> = short.iter().map(|(_, u)| u.clone()).collect();
    loop {
        let left: BTreeSet<String> = m
            .users_under(&format!("/iamlease/{mount}/"))
            .await
            .into_iter()
            .map(|u| u.user_name)
            .collect();
        if left.is_disjoint(&short_users) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the short leases were not revoked"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        started.elapsed() > Duration::from_secs(FAILOVER_SECS + 1),
        "the slow calls did not outlast the failover timeout ({:?})",
        started.elapsed()
    );
    let calls = proxy.requests();
    for u in &short_users {
        let who: BTreeSet<bool> = calls
            .iter()
            .filter(|r| is_revocation_call(r) && r.field("UserName").as_ref() == Some(u))
            .map(|r| is_from(r, a.name))
            .collect();
        assert_eq!(who.len(), 1, "{u} was revoked by both replicas");
        let deleted = calls
            .iter()
            .filter(|r| is_deleted_user(r) && r.field("UserName").as_ref() == Some(u))
            .count();
        assert_eq!(deleted, 1, "{u} deleted {deleted} times");
    }
    // B's slow issues were never rolled back by A: their users are there, their leases live.
    let left: BTreeSet<String> = m
        .users_under(&format!("/iamlease/{mount}/"))
        .await
        .into_iter()
        .map(|u| u.user_name)
        .collect();
    for (lease, user) in &long {
        assert!(left.contains(user), "{user} of a live issue was deleted");
        let (s, v) = a
            .call("PUT", "sys/leases/lookup", json!({"lease_id": lease}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // And no replica was ever taken for dead.
    let (s, v) = a.call("GET", "sys/ha-status", json!(null)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let nodes = v["data"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{v}");
    assert!(nodes.iter().all(|n| n["active_node"] == true), "{v}");
    assert_eq!(
        nodes.iter().filter(|n| n["is_self"] == true).count(),
        1,
        "{v}"
    );
    proxy.set_delay(Duration::ZERO);
}

/// A replica told to stop (SIGTERM) with a revocation still running in the background beats
/// its heartbeat until that revocation is done, so the other replica never takes it over
/// while it runs, even when it outlasts `failover_timeout`; then the stop hands over at once.
#[tokio::test]
#[ignore = "needs PostgreSQL: run with IAMLEASE_TEST_STORAGE (scripts/test runs it)"]
async fn a_stopping_replica_keeps_beating_until_its_revocations_are_done() {
    let proxy = start_recording_proxy(&moto().url).await;
    let (_logs, mut a, b) = two_replicas("a_stopping_replica_…", ["stop-a", "stop-b"]).await;
    let m = moto();
    let mount = mount_through(&a, &proxy.url, "stop").await;
    let (lease, user) = a.issue(&mount, "1h").await;
    // Each AWS call now takes 700 ms: the revocation (9 calls) outlasts FAILOVER_SECS.
    proxy.set_delay(Duration::from_millis(700));
    let (s, v) = a
        .call(
            "PUT",
            "sys/leases/revoke",
            json!({"lease_id": lease, "sync": false}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let stopping = Instant::now();
    let status = a.process.terminate().await;
    assert!(status.success(), "A exited with {status}");
    assert!(
        stopping.elapsed() > Duration::from_secs(FAILOVER_SECS),
        "the revocation did not outlast the failover timeout ({:?})",
        stopping.elapsed()
    );
    proxy.set_delay(Duration::ZERO);
    let left: Vec<String> = m
        .users_under(&format!("/iamlease/{mount}/"))
        .await
        .into_iter()
        .map(|u| u.user_name)
        .collect();
    assert!(!left.contains(&user), "A's stop left {user} behind");
    let calls = proxy.requests();
    let by_b = calls
        .iter()
        .filter(|r| is_from(r, b.name) && r.field("UserName").as_ref() == Some(&user))
        .count();
    assert_eq!(by_b, 0, "B took over {user} while A was still revoking it");
    let (s, v) = b.call("GET", "sys/ha-status", json!(null)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"]["nodes"].as_array().unwrap().len(),
        1,
        "A retired its heartbeat row: {v}"
    );
}
