//! State survives restarts, a crash in the middle of an issue is rolled back, and a revocation
//! that fails is kept, shown and retried until it succeeds.

use std::time::Duration;

use iamlease::model::{Lease, MountPath, RoleName};
use iamlease::seal::MasterKey;
use iamlease::store;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{DOC, Options, TestApp, moto, storage};

#[tokio::test]
async fn a_restarted_server_finds_its_leases_and_revokes_them() {
    let key = MasterKey::generate().unwrap();
    let fresh = storage::fresh().await;
    let storage = fresh.url.clone();
    let options = || Options {
        storage: Some(storage.clone()),
        master_key: Some(key.clone()),
        ..Options::default()
    };
    let app = TestApp::spawn_with(options()).await;
    app.configure().await;
    app.write_user_role("dev").await;
    let r = app.issue("dev", json!({"ttl": "1h"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let lease_id = r.body["lease_id"].as_str().unwrap().to_owned();
    let mount = app.mount.clone();
    app.stop().await;

    let mut again = TestApp::spawn_with(options()).await;
    again.mount = mount;
    let r = again
        .call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["data"]["state"], "active");
    // The sealed root secret opens with the same master key: revocation reaches AWS.
    let r = again
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    again.assert_nothing_left().await;
    again.stop().await;

    // A different master key is refused at start-up instead of failing later.
    let mut settings = iamlease::config::Settings::load(None, None, None, |_| None).unwrap();
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.storage = Some(storage.clone());
    settings.master_key = iamlease::config::MasterKeySource::Inline(MasterKey::generate().unwrap());
    let settings_err = iamlease::server::Application::build(&settings).await;
    let err = settings_err
        .err()
        .expect("wrong master key must be refused")
        .to_string();
    assert!(err.contains("master key does not match"), "{err}");
}

/// What a crash between AttachUserPolicy and CreateAccessKey leaves, made by hand while no
/// server runs: the intent row (`pending`, due `due_in` seconds from now) and a half-made user
/// in AWS. Returns the lease id.
async fn half_made_issue(storage: &str, mount: &str, due_in: i64) -> String {
    let username = format!("iamlease-dev-crash{}", &mount[1..]);
    let path = format!("/iamlease/{mount}/dev/");
    let iam = moto().iam();
    iam.create_user()
        .user_name(&username)
        .path(&path)
        .send()
        .await
        .unwrap();
    let policy = moto().create_policy(&format!("crash-{mount}")).await;
    iam.attach_user_policy()
        .user_name(&username)
        .policy_arn(&policy)
        .send()
        .await
        .unwrap();
    iam.put_user_policy()
        .user_name(&username)
        .policy_name("iamlease")
        .policy_document(DOC)
        .send()
        .await
        .unwrap();
    iam.create_access_key()
        .user_name(&username)
        .send()
        .await
        .unwrap();
    let store = store::open(storage).await.unwrap();
    let now = iamlease::clock::now();
    // The crashed server was alive a moment ago: its last heartbeat is now.
    store
        .heartbeat(iamlease::clock::now_ms(), "crashed", 1)
        .await
        .unwrap();
    let id = format!("{mount}/creds/dev/crashcrashcrashcrash0001");
    store
        .insert_lease(
            &Lease::pending_iam_user(
                MountPath::parse(mount).unwrap(),
                RoleName::parse("dev").unwrap(),
                username,
                now - 10,
                3600,
                86400,
                now + due_in,
            )
            .with_id(id.clone()),
        )
        .await
        .unwrap();
    store.close().await;
    id
}

/// A configured mount on a store of its own, and the server stopped again: the scene of a
/// crash, ready for `half_made_issue`. Returns the restart options' ingredients.
async fn stopped_server_with_a_mount() -> (storage::TestStorage, MasterKey, String) {
    let key = MasterKey::generate().unwrap();
    let fresh = storage::fresh().await;
    let app = TestApp::spawn_with(Options {
        storage: Some(fresh.url.clone()),
        master_key: Some(key.clone()),
        ..Options::default()
    })
    .await;
    app.configure().await;
    let mount = app.mount.clone();
    app.stop().await;
    (fresh, key, mount)
}

/// Start-up recovery, and nothing else, rolls the crashed issue back: the intent row is not due
/// for an hour (the reaper alone would leave it that long), yet the user is gone in seconds.
/// On PostgreSQL start-up recovery must *not* do that (another replica may be in the middle of
/// that very issue): there the crashed writer's heartbeat must first be silent for
/// `failover_timeout`, and only then is its issue taken over (still long before its deadline).
#[tokio::test]
async fn a_crash_mid_issue_is_rolled_back_by_recovery() {
    const FAILOVER_SECS: u64 = 3;
    let (fresh, key, mount) = stopped_server_with_a_mount().await;
    let beat_ms = iamlease::clock::now_ms();
    half_made_issue(&fresh.url, &mount, 3600).await;
    let postgres = storage::postgres_server().is_some();
    // On SQLite the writer's silence must not matter (an hour): only recovery may act in time.
    let failover = if postgres { FAILOVER_SECS } else { 3600 };

    let mut again = TestApp::spawn_with(Options {
        storage: Some(fresh.url.clone()),
        master_key: Some(key),
        tweak: Box::new(move |s| s.failover_timeout = Duration::from_secs(failover)),
        ..Options::default()
    })
    .await;
    again.mount = mount;
    if postgres {
        again
            .eventually(
                "the crashed writer's issue is taken over",
                Duration::from_secs(20),
                || async { again.users_in_moto().await.is_empty() },
            )
            .await;
        // Taken for dead after 14 of the 15 beats per failover_timeout were missed.
        assert!(
            iamlease::clock::now_ms() >= beat_ms + (FAILOVER_SECS * 1000 * 14 / 15) as i64,
            "taken over while its writer was still within failover_timeout of its heartbeat"
        );
        // The row goes with the user.
        again.assert_nothing_left().await;
        return;
    }
    again
        .eventually(
            "recovery deletes the half-made user",
            Duration::from_secs(15),
            || async { again.users_in_moto().await.is_empty() },
        )
        .await;
    again.assert_nothing_left().await;
}

/// Without start-up recovery (PostgreSQL), a crashed issue is rolled back once its intent row's
/// deadline (`pending_grace` after the issue began) has passed: the reaper claims it like any
/// due lease.
#[tokio::test]
async fn a_crash_mid_issue_is_rolled_back_once_its_deadline_passes() {
    let (fresh, key, mount) = stopped_server_with_a_mount().await;
    half_made_issue(&fresh.url, &mount, 1).await;

    let mut again = TestApp::spawn_with(Options {
        storage: Some(fresh.url.clone()),
        master_key: Some(key),
        ..Options::default()
    })
    .await;
    again.mount = mount;
    again
        .eventually(
            "the reaper deletes the half-made user",
            Duration::from_secs(15),
            || async { again.users_in_moto().await.is_empty() },
        )
        .await;
    again.assert_nothing_left().await;
}

#[tokio::test]
async fn a_failed_revocation_stays_visible_and_is_retried_until_it_succeeds() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.clone();
    app.write_user_role("dev").await;
    let r = app.issue("dev", json!({})).await;
    let lease_id = r.body["lease_id"].as_str().unwrap().to_owned();

    // Break the mount's AWS access: moto's auth refuses the wrong secret.
    let r = app
        .call(
            "POST",
            &format!("{m}/config/root"),
            Some(json!({"access_key": moto().admin_key, "secret_key": "wrong-secret"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    assert!(
        r.error_text().contains("SignatureDoesNotMatch"),
        "{:?}",
        r.body
    );

    let r = app
        .call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.body["data"]["state"], "failed");
    assert!(
        r.body["data"]["last_error"]
            .as_str()
            .unwrap()
            .contains("SignatureDoesNotMatch")
    );
    let r = app
        .call(
            "LIST",
            &format!("sys/leases/lookup/{m}/creds/dev/?state=failed"),
            None,
        )
        .await;
    assert_eq!(
        r.body["data"]["keys"].as_array().unwrap().len(),
        1,
        "{:?}",
        r.body
    );
    assert_eq!(
        app.users_in_moto().await.len(),
        1,
        "the user is still there"
    );

    // The reaper keeps retrying (backoff capped at 2s here); it succeeds once access is back.
    app.eventually(
        "the reaper records another failed attempt",
        Duration::from_secs(15),
        || async {
            let r = app
                .call(
                    "PUT",
                    "sys/leases/lookup",
                    Some(json!({"lease_id": lease_id})),
                )
                .await;
            r.body["data"]["revoke_attempts"].as_i64().unwrap_or(0) >= 2
        },
    )
    .await;
    let r = app
        .call(
            "POST",
            &format!("{m}/config/root"),
            Some(json!({"access_key": moto().admin_key, "secret_key": moto().admin_secret})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.eventually(
        "the retried revocation deletes the user",
        Duration::from_secs(15),
        || async { app.users_in_moto().await.is_empty() },
    )
    .await;
    app.eventually("the lease is forgotten", Duration::from_secs(5), || async {
        app.call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": lease_id})),
        )
        .await
        .status
            == StatusCode::NOT_FOUND
    })
    .await;
    app.assert_nothing_left().await;
}

/// Regression: a graceful stop finished the requests in flight but not a revocation it had
/// already answered with 202 (`sync: false`, still running in the background). The lease
/// stayed claimed and its IAM user alive until `claim_timeout` (5 minutes) let a server take the
/// claim over. Found by `rolling::a_rolling_restart_loses_nothing`.
#[tokio::test]
async fn a_graceful_stop_finishes_the_revocations_it_answered_in_the_background() {
    let proxy = crate::support::proxy::start_recording_proxy(&moto().url).await;
    let fresh = storage::fresh().await;
    let app = TestApp::spawn_with(Options {
        storage: Some(fresh.url.clone()),
        ..Options::default()
    })
    .await;
    app.configure_via(&proxy.url).await;
    app.write_user_role("dev").await;
    let r = app.issue("dev", json!({"ttl": "1h"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let lease_id = r.body["lease_id"].as_str().unwrap().to_owned();
    let prefix = app.path_prefix();
    // A revocation makes at least five AWS calls: held 200 ms each, it is still running when
    // the stop comes.
    proxy.set_delay(Duration::from_millis(200));
    let r = app
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": lease_id, "sync": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    app.stop().await;

    let users = moto().users_under(&prefix).await;
    assert!(users.is_empty(), "left in IAM by the stop: {users:?}");
    let store = store::open(&fresh.url).await.unwrap();
    assert!(
        store.get_lease(&lease_id).await.unwrap().is_none(),
        "the lease outlived its revocation"
    );
    store.close().await;
}
