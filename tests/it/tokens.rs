//! Vault's token semantics, checked against what moto holds: revoking a token (any way, or by
//! its TTL or its last use) revokes its children and every lease any of them issued — the IAM
//! users are gone within seconds — and a cascade cut off by `kill -9` completes after restart.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::acl::write_policy;
use crate::support::process::ServerProcess;
use crate::support::{DOC, ROOT_TOKEN, TestApp, moto, random_name, storage};

/// A mount with an `iam_user` role `dev` and a policy `dev` that may issue from it and make
/// child tokens.
async fn setup(app: &TestApp) {
    app.configure().await;
    app.write_role(
        "dev",
        json!({"credential_type": "iam_user", "policy_document": DOC}),
    )
    .await;
    let m = &app.mount;
    write_policy(
        app,
        "dev",
        &format!(
            "path \"{m}/creds/dev\" {{ capabilities = [\"update\"] }}\n\
             path \"auth/token/create\" {{ capabilities = [\"update\"] }}\n"
        ),
    )
    .await;
}

async fn create(app: &TestApp, token: &str, body: Value) -> (String, String) {
    let r = app
        .call_with_token(Some(token), "POST", "auth/token/create", Some(body))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    (
        r.body["auth"]["client_token"].as_str().unwrap().to_owned(),
        r.body["auth"]["accessor"].as_str().unwrap().to_owned(),
    )
}

/// Issues with `token`; returns the IAM user name.
async fn issue(app: &TestApp, token: &str) -> String {
    let r = app
        .call_with_token(
            Some(token),
            "POST",
            &format!("{}/creds/dev", app.mount),
            Some(json!({"ttl": "1h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["data"]["username"].as_str().unwrap().to_owned()
}

async fn user_exists(name: &str) -> bool {
    match moto().iam().get_user().user_name(name).send().await {
        Ok(_) => true,
        Err(e) => {
            let text = format!("{:?}", e);
            assert!(text.contains("NoSuchEntity"), "GetUser {name}: {text}");
            false
        }
    }
}

/// Waits until none of `users` exists in moto, or fails after `within`.
async fn assert_gone_within(users: &[String], within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        let mut left = Vec::new();
        for u in users {
            if user_exists(u).await {
                left.push(u.clone());
            }
        }
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still in AWS after {within:?}: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn works(app: &TestApp, token: &str) -> bool {
    let r = app
        .call_with_token(Some(token), "GET", "auth/token/lookup-self", None)
        .await;
    match r.status {
        StatusCode::OK => true,
        StatusCode::FORBIDDEN => false,
        other => panic!("lookup-self answered {other}: {:?}", r.body),
    }
}

#[tokio::test]
async fn revoking_a_token_revokes_its_children_and_every_lease_they_issued() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let (parent, parent_accessor) = create(&app, ROOT_TOKEN, json!({"policies": ["dev"]})).await;
    let (child, _) = create(&app, &parent, json!({"policies": ["dev"]})).await;
    let (grandchild, _) = create(&app, &child, json!({"policies": ["dev"]})).await;
    let (bystander, _) = create(&app, ROOT_TOKEN, json!({"policies": ["dev"]})).await;
    let mut doomed = Vec::new();
    for t in [&parent, &child, &grandchild] {
        doomed.push(issue(&app, t).await);
        doomed.push(issue(&app, t).await);
    }
    let kept = issue(&app, &bystander).await;
    for u in doomed.iter().chain([&kept]) {
        assert!(user_exists(u).await, "{u} was issued");
    }

    let r = app
        .call(
            "POST",
            "auth/token/revoke-accessor",
            Some(json!({"accessor": parent_accessor})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    // The tokens stop at once, the whole tree.
    for t in [&parent, &child, &grandchild] {
        assert!(!works(&app, t).await, "a revoked token still works");
    }
    assert!(works(&app, &bystander).await);
    // Their IAM users follow within seconds; the bystander's stays.
    assert_gone_within(
        &doomed,
        Duration::from_secs(10),
        "leases of a revoked token",
    )
    .await;
    assert!(
        user_exists(&kept).await,
        "another token's lease was revoked"
    );
    app.stop().await;
}

#[tokio::test]
async fn revoke_self_and_revoke_take_the_leases_too_and_revoke_orphan_keeps_the_children() {
    let app = TestApp::spawn().await;
    setup(&app).await;

    // revoke-self
    let (a, _) = create(&app, ROOT_TOKEN, json!({"policies": ["dev"]})).await;
    let ua = issue(&app, &a).await;
    let r = app
        .call_with_token(Some(&a), "POST", "auth/token/revoke-self", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(!works(&app, &a).await);

    // revoke, naming the token in the body
    let (b, _) = create(&app, ROOT_TOKEN, json!({"policies": ["dev"]})).await;
    let ub = issue(&app, &b).await;
    let r = app
        .call("POST", "auth/token/revoke", Some(json!({"token": b})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(!works(&app, &b).await);
    assert_gone_within(&[ua, ub], Duration::from_secs(10), "revoke-self and revoke").await;

    // revoke-orphan: the parent and its own lease go; the child and its lease stay.
    let (p, _) = create(&app, ROOT_TOKEN, json!({"policies": ["dev"]})).await;
    let (c, c_accessor) = create(&app, &p, json!({"policies": ["dev"]})).await;
    let up = issue(&app, &p).await;
    let uc = issue(&app, &c).await;
    let r = app
        .call(
            "POST",
            "auth/token/revoke-orphan",
            Some(json!({"token": p})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(!works(&app, &p).await);
    assert!(works(&app, &c).await, "revoke-orphan revoked the child");
    assert_gone_within(&[up], Duration::from_secs(10), "revoke-orphan's own lease").await;
    assert!(
        user_exists(&uc).await,
        "revoke-orphan revoked the child's lease"
    );
    let r = app
        .call(
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({"accessor": c_accessor})),
        )
        .await;
    assert_eq!(r.body["data"]["orphan"], true, "{:?}", r.body);
    assert_eq!(
        r.body["data"]["id"], "",
        "lookup-accessor never shows the token"
    );

    // revoke-orphan needs sudo: a dev token cannot, even on its own child.
    let (d, _) = create(&app, ROOT_TOKEN, json!({"policies": ["dev"]})).await;
    let (dc, _) = create(&app, &d, json!({"policies": ["dev"]})).await;
    let r = app
        .call_with_token(
            Some(&d),
            "POST",
            "auth/token/revoke-orphan",
            Some(json!({"token": dc})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(works(&app, &dc).await);
    app.stop().await;
}

#[tokio::test]
async fn a_token_ends_with_its_ttl_and_its_last_use_and_so_do_its_leases() {
    let app = TestApp::spawn().await;
    setup(&app).await;

    // TTL: the token expires in 2 s; its 1 h lease is revoked when the reaper sees that.
    let (short, _) = create(&app, ROOT_TOKEN, json!({"policies": ["dev"], "ttl": "2s"})).await;
    let u_ttl = issue(&app, &short).await;

    // num_uses 2: the issue is one use, the lookup the last; then the token is gone, and so is
    // the lease it issued.
    let (limited, _) = create(
        &app,
        ROOT_TOKEN,
        json!({"policies": ["dev"], "num_uses": 2}),
    )
    .await;
    let u_uses = issue(&app, &limited).await;
    let r = app
        .call_with_token(Some(&limited), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["data"]["num_uses"], -1,
        "the last use is spent: -1, as Vault shows it"
    );
    assert!(
        !works(&app, &limited).await,
        "a token past its last use still works"
    );
    // A use-limited token cannot make tokens.
    let (one, _) = create(
        &app,
        ROOT_TOKEN,
        json!({"policies": ["dev"], "num_uses": 3}),
    )
    .await;
    let r = app
        .call_with_token(
            Some(&one),
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["dev"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);

    assert_gone_within(
        &[u_uses],
        Duration::from_secs(10),
        "lease of a used-up token",
    )
    .await;
    assert_gone_within(
        &[u_ttl],
        Duration::from_secs(15),
        "lease of an expired token",
    )
    .await;
    assert!(!works(&app, &short).await);
    app.stop().await;
}

#[tokio::test]
async fn lookups_renewals_and_creation_carry_vaults_fields() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let r = app
        .call(
            "POST",
            "auth/token/create",
            Some(
                json!({"policies": ["dev"], "ttl": "1h", "explicit_max_ttl": "2h",
                        "meta": {"team": "payments"}, "display_name": "ci"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let auth = &r.body["auth"];
    for field in [
        "client_token",
        "accessor",
        "policies",
        "token_policies",
        "metadata",
        "lease_duration",
        "renewable",
        "entity_id",
        "token_type",
        "orphan",
    ] {
        assert!(
            auth.get(field).is_some(),
            "auth block lacks {field}: {auth}"
        );
    }
    assert_eq!(auth["metadata"]["team"], "payments");
    assert_eq!(auth["token_type"], "service");
    assert_eq!(auth["orphan"], false);
    let token = auth["client_token"].as_str().unwrap().to_owned();

    let r = app
        .call_with_token(Some(&token), "GET", "auth/token/lookup-self", None)
        .await;
    let d = &r.body["data"];
    assert_eq!(d["id"], token.as_str(), "lookup-self shows the token as id");
    assert_eq!(d["meta"]["team"], "payments");
    assert_eq!(d["explicit_max_ttl"], 7200);
    assert_eq!(d["display_name"], "token-ci");
    assert!(
        d["issue_time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{d}"
    );

    // renew (by token), renew-accessor, renew-self: full auth blocks, capped by explicit_max_ttl.
    let r = app
        .call(
            "POST",
            "auth/token/renew",
            Some(json!({"token": token, "increment": "10h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["auth"]["client_token"], token.as_str());
    let ld = r.body["auth"]["lease_duration"].as_i64().unwrap();
    assert!(
        (7000..=7200).contains(&ld),
        "capped at explicit_max_ttl: {ld}"
    );
    let accessor = r.body["auth"]["accessor"].as_str().unwrap().to_owned();
    let r = app
        .call(
            "POST",
            "auth/token/renew-accessor",
            Some(json!({"accessor": accessor, "increment": "30m"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["auth"]["client_token"], "");
    assert!(r.body["auth"]["lease_duration"].as_i64().unwrap() <= 1800);
    let r = app
        .call_with_token(Some(&token), "POST", "auth/token/renew-self", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    for field in ["client_token", "entity_id", "token_type", "orphan"] {
        assert!(
            r.body["auth"].get(field).is_some(),
            "renew-self lacks {field}"
        );
    }

    // create-orphan (its path's ACL decides); no_parent needs sudo.
    let (dev, _) = create(&app, ROOT_TOKEN, json!({"policies": ["dev"]})).await;
    let r = app
        .call_with_token(
            Some(&dev),
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["dev"], "no_parent": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let r = app
        .call(
            "POST",
            "auth/token/create-orphan",
            Some(json!({"policies": ["dev"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["auth"]["orphan"], true);
    // A renewable=false token refuses renewal.
    let (fixed, _) = create(
        &app,
        ROOT_TOKEN,
        json!({"policies": ["dev"], "renewable": false}),
    )
    .await;
    let r = app
        .call_with_token(Some(&fixed), "POST", "auth/token/renew-self", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    app.stop().await;
}

/// The revocation is one transaction: once it answers, the tokens are gone and the leases are
/// due in the store, so a server killed right after still revokes them when it comes back.
#[tokio::test]
async fn a_token_revocation_cut_off_by_kill_9_completes_after_restart() {
    let store = storage::fresh().await;
    let key = iamlease::seal::MasterKey::generate().unwrap().to_base64();
    let dir = tempfile::tempdir().unwrap();
    // A long reaper interval: without the restart, nothing would revoke the leases in time.
    let mut server = ServerProcess::start(
        &store.url,
        &key,
        &dir.path().join("server.log"),
        &[("IAMLEASE_REAPER_INTERVAL", "1h")],
    )
    .await;
    let app = TestApp::attach(&server.address, &random_name("k"));
    setup(&app).await;
    let (t, accessor) = create(&app, ROOT_TOKEN, json!({"policies": ["dev"]})).await;
    let mut users = Vec::new();
    for _ in 0..4 {
        users.push(issue(&app, &t).await);
    }
    // Revoke and kill at once: the reaper woken by the revocation may have begun, not finished.
    let r = app
        .call(
            "POST",
            "auth/token/revoke-accessor",
            Some(json!({"accessor": accessor})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    server.kill9().await;
    server.restart().await;
    assert!(
        !works(&app, &t).await,
        "the token came back after the restart"
    );
    assert_gone_within(&users, Duration::from_secs(15), "after kill -9 and restart").await;
    server.kill9().await;
}
