//! `wait_ready`: the server answers only once AWS accepts the new key, and gives up (revoking
//! the lease) when it never does. A gate in front of moto refuses a new key's first
//! GetCallerIdentity calls the way IAM does while the key propagates.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::gate::start_gate;
use crate::support::proxy::start_recording_proxy;
use crate::support::{Options, TestApp, moto, sts_client};

#[tokio::test]
async fn wait_ready_answers_only_after_aws_accepts_the_new_key() {
    let app = TestApp::spawn().await;
    let recorder = start_recording_proxy(&moto().url).await;
    let gate = start_gate(&recorder.url, &moto().admin_key, 3).await;
    app.configure_via(&gate.url).await;
    app.write_user_role("dev").await;

    let started = Instant::now();
    let r = app.issue("dev", json!({"wait_ready": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let key = r.body["data"]["access_key"].as_str().unwrap().to_owned();
    // Three refusals, then three successes in a row, 500 ms apart.
    assert_eq!(
        gate.refused(&key),
        3,
        "the gate refused the new key 3 times"
    );
    let accepted = recorder
        .requests_of("GetCallerIdentity")
        .into_iter()
        .filter(|c| c.key_id == key)
        .count();
    assert_eq!(accepted, 3, "then AWS accepted it 3 times in a row");
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "the answer waited for the key: {:?}",
        started.elapsed()
    );
    // And the key does work in moto now.
    let who = sts_client(
        &moto().url,
        &key,
        r.body["data"]["secret_key"].as_str().unwrap(),
    )
    .get_caller_identity()
    .send()
    .await
    .unwrap();
    assert!(
        who.arn()
            .unwrap()
            .ends_with(r.body["data"]["username"].as_str().unwrap())
    );

    // Without wait_ready nothing is polled: the answer comes as soon as the key exists.
    let r = app.issue("dev", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let key = r.body["data"]["access_key"].as_str().unwrap();
    assert_eq!(gate.refused(key), 0);

    app.call(
        "PUT",
        &format!("sys/leases/revoke-prefix/{}/", app.mount),
        None,
    )
    .await;
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn wait_ready_gives_up_after_its_timeout_and_revokes_the_lease() {
    let app = TestApp::spawn_with(Options {
        wait_ready_timeout: Some(Duration::from_secs(2)),
        ..Options::default()
    })
    .await;
    let gate = start_gate(&moto().url, &moto().admin_key, u32::MAX).await;
    app.configure_via(&gate.url).await;
    app.write_user_role("dev").await;

    let started = Instant::now();
    let r = app.issue("dev", json!({"wait_ready": "true"})).await;
    let waited = started.elapsed();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    let message = r.error_text();
    assert!(
        message.contains("InvalidClientTokenId")
            && message.contains("within 2s")
            && message.contains("the lease was revoked and its IAM user deleted"),
        "{message}"
    );
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(10),
        "bounded by wait_ready_timeout: {waited:?}"
    );
    // The user that never became ready is gone, and so is its lease.
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn wait_ready_must_be_a_boolean() {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_user_role("dev").await;
    let r = app.issue("dev", json!({"wait_ready": "soon"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(r.error_text().contains("wait_ready"), "{}", r.error_text());
    app.assert_nothing_left().await;
}
