//! The operator's tools: the orphan sweeper deletes exactly the IAM users that carry this
//! mount's tags and have no lease; revoke-force forgets leases AWS cannot clean up (sudo only);
//! SIGTERM lets an in-flight issue finish before the server stops.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::acl::{token_with, write_policy};
use crate::support::process::ServerProcess;
use crate::support::proxy::{Faults, start_proxy};
use crate::support::{DOC, ROOT_TOKEN, TestApp, moto};

/// Creates a user in moto, with tags and an access key, the way a crashed issue might leave it.
async fn make_user(name: &str, path: &str, tags: &[(&str, &str)]) {
    let iam = moto().iam();
    let mut req = iam.create_user().user_name(name).path(path);
    for (k, v) in tags {
        req = req.tags(
            aws_sdk_iam::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
                .unwrap(),
        );
    }
    req.send().await.unwrap();
    iam.put_user_policy()
        .user_name(name)
        .policy_name("iamlease")
        .policy_document(DOC)
        .send()
        .await
        .unwrap();
    iam.create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap();
}

async fn user_exists(name: &str) -> bool {
    moto().iam().get_user().user_name(name).send().await.is_ok()
}

async fn delete_user(name: &str) {
    let iam = moto().iam();
    for k in iam
        .list_access_keys()
        .user_name(name)
        .send()
        .await
        .unwrap()
        .access_key_metadata()
    {
        iam.delete_access_key()
            .user_name(name)
            .access_key_id(k.access_key_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    let _ = iam
        .delete_user_policy()
        .user_name(name)
        .policy_name("iamlease")
        .send()
        .await;
    iam.delete_user().user_name(name).send().await.unwrap();
}

#[tokio::test]
async fn sweep_deletes_only_tagged_users_of_this_mount_without_a_lease() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.clone();
    app.write_user_role("dev").await;
    let r = app.issue("dev", json!({"ttl": "1h"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let live_user = r.body["data"]["username"].as_str().unwrap().to_owned();

    let path = format!("/iamlease/{m}/dev/");
    let ghost_lease = format!("{m}/creds/dev/ghostghostghostghost01");
    let orphan = format!("orphan-{m}");
    let untagged = format!("untagged-{m}");
    let other_mount = format!("othermount-{m}");
    let outside = format!("outside-{m}");
    let ours = [
        ("iamlease:lease-id", ghost_lease.as_str()),
        ("iamlease:mount", m.as_str()),
        ("iamlease:role", "dev"),
        ("iamlease:expires-at", "2026-01-01T00:00:00Z"),
    ];
    make_user(&orphan, &path, &ours).await;
    make_user(&untagged, &path, &[]).await;
    make_user(
        &other_mount,
        &path,
        &[
            ("iamlease:lease-id", "elsewhere/creds/dev/x"),
            ("iamlease:mount", "elsewhere"),
        ],
    )
    .await;
    make_user(&outside, &format!("/not-ours-{m}/"), &ours).await;

    // Dry run: names the orphan, deletes nothing. Through the CLI, as an operator would.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"))
        .args(["sweep", "--mount", &m, "--dry-run"])
        .env("IAMLEASE_ADDR", &app.address)
        .env("IAMLEASE_TOKEN", ROOT_TOKEN)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&orphan), "{stdout}");
    assert!(stdout.contains("Dry run"), "{stdout}");
    for name in [&live_user, &untagged, &other_mount, &outside] {
        assert!(!stdout.contains(name.as_str()), "{name} listed: {stdout}");
    }
    assert!(user_exists(&orphan).await, "a dry run deleted the orphan");

    // A token without sudo may not sweep.
    write_policy(
        &app,
        "sweeper",
        &format!(r#"path "{m}/sweep" {{ capabilities = ["update"] }}"#),
    )
    .await;
    let (token, _) = token_with(&app, &["sweeper"], json!({})).await;
    let r = app
        .call_with_token(Some(&token), "POST", &format!("{m}/sweep"), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(r.error_text().contains("sudo"), "{:?}", r.body);

    let r = app
        .call("POST", &format!("{m}/sweep"), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["data"]["deleted"], json!([orphan]), "{:?}", r.body);
    assert!(!user_exists(&orphan).await, "the orphan is still in AWS");
    for name in [&live_user, &untagged, &other_mount, &outside] {
        assert!(user_exists(name).await, "sweep deleted {name}");
    }

    for name in [&untagged, &other_mount, &outside] {
        delete_user(name).await;
    }
    app.revoke_all_and_check().await;
}

#[tokio::test]
async fn revoke_force_forgets_a_lease_aws_refuses_and_sweep_cleans_up_later() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.clone();
    app.write_user_role("dev").await;
    let r = app.issue("dev", json!({})).await;
    let lease_id = r.body["lease_id"].as_str().unwrap().to_owned();
    let username = r.body["data"]["username"].as_str().unwrap().to_owned();

    // AWS refuses every call: the revocation fails and the lease stays, failed.
    let r = app
        .write_root_config(json!({"access_key": moto().admin_key, "secret_key": "wrong"}))
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
    let r = app
        .call(
            "LIST",
            &format!("sys/leases/lookup/{m}/creds/dev/?state=failed"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // Without sudo: refused.
    write_policy(
        &app,
        "leases",
        r#"path "sys/leases/*" { capabilities = ["update"] }"#,
    )
    .await;
    let (token, _) = token_with(&app, &["leases"], json!({})).await;
    let r = app
        .call_with_token(
            Some(&token),
            "PUT",
            &format!("sys/leases/revoke-force/{m}/creds/dev/"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);

    let r = app
        .call(
            "PUT",
            &format!("sys/leases/revoke-force/{m}/creds/dev/"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app
        .call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert!(
        user_exists(&username).await,
        "AWS refused, so the user is still there"
    );

    // Once AWS answers again, the sweeper finds what force-revoke had to leave.
    let r = app
        .write_root_config(
            json!({"access_key": moto().admin_key, "secret_key": moto().admin_secret}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call("POST", &format!("{m}/sweep"), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["data"]["deleted"], json!([username]), "{:?}", r.body);
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_issue_finish_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let key = iamlease::seal::MasterKey::generate().unwrap().to_base64();
    let store = crate::support::storage::fresh().await;
    let mut server =
        ServerProcess::start(&store.url, &key, &dir.path().join("server.log"), &[]).await;
    // Every AWS call is slowed down, so the issue is still running when SIGTERM arrives.
    let proxy = start_proxy(&moto().url, Faults::default()).await;
    let app = TestApp::attach(&server.address, &crate::support::random_name("g"));
    app.configure_via(&proxy.url).await;
    app.write_user_role("dev").await;
    proxy.set_faults(Faults {
        latency: 1.0,
        max_latency: Duration::from_millis(600),
        seed: 1,
        ..Faults::default()
    });
    let in_flight = {
        let address = app.address.clone();
        let mount = app.mount.clone();
        tokio::spawn(async move {
            let app = TestApp::attach(&address, &mount);
            app.issue("dev", json!({"ttl": "1h"})).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        proxy.requests_of("CreateUser").len() == 1,
        "the issue should have reached AWS before SIGTERM"
    );
    let status = server.terminate().await;
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "in-flight issue: {:?}", r.body);
    assert!(status.success(), "exit status after SIGTERM: {status}");
    proxy.set_faults(Faults::default());

    // The issued lease was committed: after a restart it is there and revokes normally.
    server.restart().await;
    let lease_id = r.body["lease_id"].as_str().unwrap();
    let r = app
        .call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.body["data"]["state"], "active", "{:?}", r.body);
    let r = app
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    app.assert_nothing_left().await;
    server.kill9().await;
}
