//! The access-key history: `GET {mount}/access-keys/{id}` and `iamlease whois` answer who held
//! a key — during its lease, after it was revoked, after a restart, from the other replica
//! (PostgreSQL) — until `key_history_retention` has passed; and only to tokens allowed to read
//! that path. Every answer is checked against what AWS (moto) holds.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::acl::{token_with, write_policy};
use crate::cli::{iamlease, stderr, stdout};
use crate::support::{Options, ROOT_TOKEN, TestApp, moto, random_name, storage};

/// The key ids moto holds for `user`.
async fn keys_in_moto(user: &str) -> Vec<String> {
    moto()
        .iam()
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .map(|r| {
            r.access_key_metadata
                .into_iter()
                .filter_map(|k| k.access_key_id)
                .collect()
        })
        .unwrap_or_default()
}

/// `GET {mount}/access-keys/{key}` with `token`, or the root token.
async fn whois(app: &TestApp, token: Option<&str>, key: &str) -> (StatusCode, Value) {
    let r = app
        .call_with_token(
            Some(token.unwrap_or(ROOT_TOKEN)),
            "GET",
            &format!("{}/access-keys/{key}", app.mount),
            None,
        )
        .await;
    (r.status, r.body)
}

#[tokio::test]
async fn whois_answers_during_the_lease_after_revocation_and_after_a_restart() {
    let master = iamlease::seal::MasterKey::generate().unwrap();
    let fresh = storage::fresh().await;
    let options = || Options {
        storage: Some(fresh.url.clone()),
        master_key: Some(master.clone()),
        ..Options::default()
    };
    let app = TestApp::spawn_with(options()).await;
    app.configure().await;
    app.write_user_role("dev").await;
    let m = app.mount.clone();
    write_policy(
        &app,
        "issuer",
        &format!(r#"path "{m}/creds/dev" {{ capabilities = ["read", "update"] }}"#),
    )
    .await;
    write_policy(
        &app,
        "auditor",
        &format!(r#"path "{m}/access-keys/*" {{ capabilities = ["read"] }}"#),
    )
    .await;
    let (ci, ci_accessor) = token_with(
        &app,
        &["issuer"],
        json!({"display_name": "deploy-bot", "meta": {"repo": "octo/app", "run": "42"}}),
    )
    .await;
    let (auditor, _) = token_with(&app, &["auditor"], json!({})).await;

    let r = app
        .call_with_token(Some(&ci), "POST", &format!("{m}/creds/dev"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let lease_id = r.body["lease_id"].as_str().unwrap().to_owned();
    let key = r.body["data"]["access_key"].as_str().unwrap().to_owned();
    let user = r.body["data"]["username"].as_str().unwrap().to_owned();
    assert_eq!(
        keys_in_moto(&user).await,
        vec![key.clone()],
        "the key is the user's"
    );

    // During the lease.
    let (status, body) = whois(&app, Some(&auditor), &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let d = &body["data"];
    assert_eq!(d["access_key_id"], key.as_str());
    assert_eq!(d["lease_id"], lease_id.as_str());
    assert_eq!(d["mount"], m.as_str());
    assert_eq!(d["role"], "dev");
    assert_eq!(d["credential_type"], "iam_user");
    assert_eq!(d["username"], user.as_str());
    assert_eq!(d["requester"], "token-deploy-bot");
    assert_eq!(d["token_accessor"], ci_accessor.as_str());
    assert_eq!(d["meta"], json!({"repo": "octo/app", "run": "42"}));
    assert_eq!(d["state"], "active");
    assert!(d["revoke_time"].is_null(), "{d}");
    assert!(d["issue_time"].as_str().unwrap().ends_with('Z'), "{d}");
    // The lease lookup names the key and who asked, too.
    let r = app
        .call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.body["data"]["access_key_id"], key.as_str());
    assert_eq!(r.body["data"]["requester"], "token-deploy-bot");

    // Only a token allowed to read the path may ask; ids that cannot be keys are refused.
    let (status, body) = whois(&app, Some(&ci), &key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = whois(&app, None, "not-a-key").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("access key id"),
        "{body}"
    );
    let (status, body) = whois(&app, None, "AKIAUNKNOWN000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("key_history_retention"),
        "{body}"
    );

    // After revocation: the user is gone from AWS, the history stays.
    let r = app
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(keys_in_moto(&user).await.is_empty());
    assert!(!app.users_in_moto().await.contains(&user));
    let (status, body) = whois(&app, Some(&auditor), &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["state"], "revoked");
    assert_eq!(body["data"]["requester"], "token-deploy-bot");
    let revoked_at = body["data"]["revoke_time"]
        .as_str()
        .expect("stamped")
        .to_owned();

    // The other replica (PostgreSQL: two servers on one database) answers the same.
    if storage::postgres_server().is_some() {
        let mut other = TestApp::spawn_with(options()).await;
        other.mount = m.clone();
        let (status, body) = whois(&other, None, &key).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["revoke_time"], revoked_at.as_str());
        other.stop().await;
    }

    // After a restart (the same store).
    app.stop().await;
    let mut again = TestApp::spawn_with(options()).await;
    again.mount = m.clone();
    let (status, body) = whois(&again, None, &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["lease_id"], lease_id.as_str());
    assert_eq!(body["data"]["state"], "revoked");
    assert_eq!(body["data"]["revoke_time"], revoked_at.as_str());

    // The CLI finds the mount on its own and prints who held the key.
    let o = iamlease(&again, &["whois", &key]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for expected in [
        "token-deploy-bot",
        "repo=octo/app",
        lease_id.as_str(),
        "revoked",
    ] {
        assert!(out.contains(expected), "{expected} in {out}");
    }
    let o = iamlease(&again, &["whois", "AKIAUNKNOWN000000000"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("no mount has a record"),
        "{}",
        stderr(&o)
    );

    // The history outlives the mount that issued the key.
    let r = again.call("DELETE", &format!("sys/mounts/{m}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let (status, body) = whois(&again, None, &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["requester"], "token-deploy-bot");
    let o = iamlease(&again, &["whois", &key, "--mount", &m]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    again.stop().await;
}

#[tokio::test]
async fn sts_keys_are_traced_and_history_is_forgotten_after_retention() {
    let app = TestApp::spawn_with(Options {
        tweak: Box::new(|s| s.key_history_retention = Duration::from_secs(1)),
        ..Options::default()
    })
    .await;
    app.configure().await;
    let role_arn = moto()
        .create_assumable_role(&random_name("deploy"), None)
        .await;
    app.write_role(
        "deploy",
        json!({"credential_type": "assumed_role", "role_arns": [role_arn], "default_sts_ttl": "15m"}),
    )
    .await;
    let r = app
        .call("POST", &format!("{}/sts/deploy", app.mount), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let lease_id = r.body["lease_id"].as_str().unwrap().to_owned();
    let key = r.body["data"]["access_key"].as_str().unwrap().to_owned();
    let (status, body) = whois(&app, None, &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["credential_type"], "assumed_role");
    assert_eq!(body["data"]["requester"], "root");
    assert_eq!(body["data"]["state"], "active");
    assert!(body["data"]["username"].is_null(), "{body}");

    let r = app
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let (status, body) = whois(&app, None, &key).await;
    assert_eq!(
        (status, body["data"]["state"].clone()),
        (StatusCode::OK, json!("revoked"))
    );
    // The reaper forgets it once the retention (1 s here) has passed.
    app.eventually(
        "the history to be forgotten",
        Duration::from_secs(15),
        || async { whois(&app, None, &key).await.0 == StatusCode::NOT_FOUND },
    )
    .await;
    app.stop().await;
}
