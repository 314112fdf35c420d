//! The `iam_user` credential type against moto: what the user looks like in AWS, that its key
//! works and then stops working, expiry, renewal, and rollback of a failed issue.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::proxy::start_recording_proxy;
use crate::support::{DOC, TestApp, moto, random_name, sts_client};

async fn user_tags(user: &str) -> Vec<(String, String)> {
    moto()
        .iam()
        .list_user_tags()
        .user_name(user)
        .send()
        .await
        .unwrap()
        .tags
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect()
}

fn tag<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn issue_creates_the_user_exactly_as_the_role_says() {
    let app = TestApp::spawn().await;
    // Through a recording proxy, to see what moto cannot show (the permissions boundary).
    let proxy = start_recording_proxy(&moto().url).await;
    app.configure_via(&proxy.url).await;
    let policy = moto().create_policy(&random_name("p")).await;
    let boundary = moto().create_policy(&random_name("b")).await;
    let group = random_name("g");
    moto().create_group(&group).await;
    let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]});
    app.write_role(
        "dev",
        json!({
            "credential_type": "iam_user",
            "policy_arns": [policy],
            "policy_document": doc,
            "iam_groups": [group],
            "iam_tags": {"team": "platform"},
            "permissions_boundary_arn": boundary,
            "default_ttl": "30m",
        }),
    )
    .await;

    let r = app.issue("dev", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let lease_id = r.body["lease_id"].as_str().unwrap().to_owned();
    assert!(
        lease_id.starts_with(&format!("{}/creds/dev/", app.mount)),
        "{lease_id}"
    );
    assert_eq!(r.body["renewable"], true);
    assert_eq!(r.body["lease_duration"], 1800);
    let data = &r.body["data"];
    let username = data["username"].as_str().unwrap().to_owned();
    assert!(
        username.starts_with("iamlease-dev-") && username.len() == "iamlease-dev-".len() + 16,
        "{username}"
    );
    assert_eq!(data["security_token"], Value::Null);

    // What AWS holds.
    let iam = moto().iam();
    let user = iam
        .get_user()
        .user_name(&username)
        .send()
        .await
        .unwrap()
        .user
        .unwrap();
    assert_eq!(user.path, format!("/iamlease/{}/dev/", app.mount));
    assert_eq!(data["arn"], user.arn);
    let tags = user_tags(&username).await;
    assert_eq!(tag(&tags, "iamlease:lease-id"), Some(lease_id.as_str()));
    assert_eq!(tag(&tags, "iamlease:mount"), Some(app.mount.as_str()));
    assert_eq!(tag(&tags, "iamlease:role"), Some("dev"));
    assert!(tag(&tags, "iamlease:expires-at").unwrap().ends_with('Z'));
    assert_eq!(tag(&tags, "team"), Some("platform"));
    // Who asked, on the user itself (the root token's display name).
    assert_eq!(tag(&tags, "iamlease:requester"), Some("root"));
    let attached: Vec<String> = iam
        .list_attached_user_policies()
        .user_name(&username)
        .send()
        .await
        .unwrap()
        .attached_policies
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.policy_arn)
        .collect();
    assert_eq!(attached, [policy]);
    let inline = iam
        .list_user_policies()
        .user_name(&username)
        .send()
        .await
        .unwrap()
        .policy_names;
    assert_eq!(inline, ["iamlease"]);
    let stored = iam
        .get_user_policy()
        .user_name(&username)
        .policy_name("iamlease")
        .send()
        .await
        .unwrap()
        .policy_document;
    // IAM hands inline policy documents back URL-encoded.
    let stored: Value = serde_json::from_str(
        &percent_encoding::percent_decode_str(&stored)
            .decode_utf8()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stored, doc);
    let groups: Vec<String> = iam
        .list_groups_for_user()
        .user_name(&username)
        .send()
        .await
        .unwrap()
        .groups
        .into_iter()
        .map(|g| g.group_name)
        .collect();
    assert_eq!(groups, [group]);
    let keys = iam
        .list_access_keys()
        .user_name(&username)
        .send()
        .await
        .unwrap()
        .access_key_metadata;
    assert_eq!(keys.len(), 1, "exactly one access key");
    assert_eq!(
        keys[0].access_key_id.as_deref(),
        data["access_key"].as_str()
    );
    // moto does not keep the boundary; the request that created the user carried it.
    let creates = proxy.calls_of("CreateUser");
    assert_eq!(creates.len(), 1);
    assert!(
        creates[0]
            .iter()
            .any(|(k, v)| k == "PermissionsBoundary" && v == &boundary),
        "{:?}",
        creates[0]
    );

    let r = app
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(iam.get_user().user_name(&username).send().await.is_err());
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn the_issued_key_authenticates_and_is_refused_after_revoke() {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_role("dev", json!({"credential_type": "iam_user", "policy_document": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#})).await;
    let r = app.issue("dev", json!({"ttl": "10m"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let d = &r.body["data"];
    let sts = sts_client(
        &moto().url,
        d["access_key"].as_str().unwrap(),
        d["secret_key"].as_str().unwrap(),
    );
    // moto's auth is on: this only answers for a key and secret that really exist.
    let who = sts
        .get_caller_identity()
        .send()
        .await
        .expect("issued key authenticates");
    assert_eq!(who.arn(), d["arn"].as_str());
    assert!(
        who.arn()
            .unwrap()
            .ends_with(&format!("/{}", d["username"].as_str().unwrap()))
    );

    let lease_id = r.body["lease_id"].as_str().unwrap();
    let r = app
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let err = sts
        .get_caller_identity()
        .send()
        .await
        .expect_err("revoked key must be refused");
    assert!(
        format!("{:?}", err).contains("InvalidClientTokenId"),
        "{err:?}"
    );
    // Revoking again is fine (idempotent), and the lease is gone.
    let r = app
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn the_reaper_revokes_an_expired_lease_within_seconds() {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_user_role("dev").await;
    let r = app.issue("dev", json!({"ttl": "2s"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["lease_duration"], 2);
    let username = r.body["data"]["username"].as_str().unwrap().to_owned();
    assert_eq!(app.users_in_moto().await, std::slice::from_ref(&username));
    app.eventually(
        "the reaper deletes the expired user",
        Duration::from_secs(15),
        || async { app.users_in_moto().await.is_empty() },
    )
    .await;
    // The reaper forgets a batch in one commit after its AWS deletes, so the row goes a moment
    // after the user does.
    let lease_id = r.body["lease_id"].clone();
    app.eventually(
        "the reaper forgets the lease",
        Duration::from_secs(5),
        || async {
            app.call(
                "PUT",
                "sys/leases/lookup",
                Some(json!({"lease_id": lease_id})),
            )
            .await
            .status
                == StatusCode::NOT_FOUND
        },
    )
    .await;
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn renew_extends_up_to_max_ttl_and_moves_the_expiry_tag() {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_role("dev", json!({"credential_type": "iam_user", "policy_document": DOC, "default_ttl": "1m", "max_ttl": "10m"})).await;
    let r = app.issue("dev", json!({})).await;
    assert_eq!(r.body["lease_duration"], 60);
    let lease_id = r.body["lease_id"].as_str().unwrap().to_owned();
    let username = r.body["data"]["username"].as_str().unwrap().to_owned();
    let before = tag(&user_tags(&username).await, "iamlease:expires-at")
        .unwrap()
        .to_owned();

    let r = app
        .call(
            "PUT",
            "sys/leases/renew",
            Some(json!({"lease_id": lease_id, "increment": "5m"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["lease_id"], lease_id.as_str());
    let d = r.body["lease_duration"].as_i64().unwrap();
    assert!((298..=300).contains(&d), "{d}");

    // Past the maximum: capped, with Vault's warning.
    let r = app
        .call(
            "PUT",
            "sys/leases/renew",
            Some(json!({"lease_id": lease_id, "increment": "24h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let d = r.body["lease_duration"].as_i64().unwrap();
    assert!(
        (595..=600).contains(&d),
        "capped at max_ttl (600s), got {d}"
    );
    assert!(
        r.body["warnings"][0].as_str().unwrap().contains("capped"),
        "{:?}",
        r.body
    );

    let look = app
        .call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(look.status, StatusCode::OK);
    assert_eq!(look.body["data"]["id"], lease_id.as_str());
    assert_eq!(look.body["data"]["renewable"], true);
    assert!(look.body["data"]["last_renewal"].is_string());
    let expire_time = look.body["data"]["expire_time"]
        .as_str()
        .unwrap()
        .to_owned();
    let after = tag(&user_tags(&username).await, "iamlease:expires-at")
        .unwrap()
        .to_owned();
    assert_ne!(before, after, "renewal must move the expiry tag");
    assert_eq!(
        after, expire_time,
        "the tag in AWS says what the lease says"
    );

    // Renew without an increment, and the by-path form.
    let r = app
        .call("PUT", &format!("sys/leases/renew/{lease_id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    app.call("PUT", &format!("sys/leases/revoke/{lease_id}"), None)
        .await;
    let r = app
        .call(
            "PUT",
            "sys/leases/renew",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "a revoked lease cannot be renewed"
    );
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn a_failure_after_create_user_leaves_nothing_behind() {
    let app = TestApp::spawn().await;
    app.configure().await;
    // The policy does not exist: CreateUser succeeds, AttachUserPolicy fails.
    app.write_role("dev", json!({"credential_type": "iam_user", "policy_arns": ["arn:aws:iam::123456789012:policy/does-not-exist"]})).await;
    let r = app.issue("dev", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    assert!(
        r.error_text().contains("AttachUserPolicy") && r.error_text().contains("NoSuchEntity"),
        "{:?}",
        r.body
    );
    app.assert_nothing_left().await;

    // A group that does not exist: fails after a policy was attached and an inline one put.
    let policy = moto().create_policy(&random_name("p")).await;
    app.write_role(
        "dev2",
        json!({
            "credential_type": "iam_user",
            "policy_arns": [policy],
            "policy_document": DOC,
            "iam_groups": [random_name("missing")],
        }),
    )
    .await;
    let r = app.issue("dev2", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    assert!(r.error_text().contains("AddUserToGroup"), "{:?}", r.body);
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn sts_path_and_list_and_revoke_prefix() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.clone();
    app.write_user_role("a").await;
    app.write_user_role("b").await;
    // iam_user roles are read from creds/ (GET works as in Vault), not sts/.
    let r = app.call("POST", &format!("{m}/sts/a"), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error_text().contains(&format!("{m}/creds/a")),
        "{:?}",
        r.body
    );
    let r = app.call("GET", &format!("{m}/creds/a?ttl=5m"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["lease_duration"], 300);
    for role in ["a", "b", "b"] {
        assert_eq!(app.issue(role, json!({})).await.status, StatusCode::OK);
    }
    assert_eq!(app.users_in_moto().await.len(), 4);

    let r = app
        .call("LIST", &format!("sys/leases/lookup/{m}/creds/"), None)
        .await;
    assert_eq!(r.body["data"]["keys"], json!(["a/", "b/"]));
    let r = app
        .call("LIST", &format!("sys/leases/lookup/{m}/creds/b/"), None)
        .await;
    assert_eq!(r.body["data"]["keys"].as_array().unwrap().len(), 2);
    let r = app
        .call(
            "GET",
            &format!("sys/leases/lookup/{m}/creds/a/?list=true"),
            None,
        )
        .await;
    assert_eq!(r.body["data"]["keys"].as_array().unwrap().len(), 2);

    let r = app
        .call(
            "PUT",
            &format!("sys/leases/revoke-prefix/{m}/creds/b/"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.users_in_moto().await.len(),
        2,
        "only role a's users remain"
    );
    let r = app
        .call("LIST", &format!("sys/leases/lookup/{m}/creds/"), None)
        .await;
    assert_eq!(r.body["data"]["keys"], json!(["a/"]));

    // Disabling the mount revokes the rest first.
    let r = app.call("DELETE", &format!("sys/mounts/{m}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.assert_nothing_left().await;
}
