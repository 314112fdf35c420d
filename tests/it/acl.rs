//! Scoped tokens and Vault ACL policies: a token can do exactly what its policies say, and
//! touch only the leases it created.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{DOC, TestApp};

pub(crate) async fn token_with(app: &TestApp, policies: &[&str], extra: Value) -> (String, String) {
    let mut body = json!({"policies": policies, "ttl": "1h"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let r = app.call("POST", "auth/token/create", Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    (
        r.body["auth"]["client_token"].as_str().unwrap().to_owned(),
        r.body["auth"]["accessor"].as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn write_policy(app: &TestApp, name: &str, text: &str) {
    let r = app
        .call(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({"policy": text})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
}

#[tokio::test]
async fn a_dev_token_issues_dev_credentials_and_nothing_else() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.clone();
    for role in ["dev", "prod"] {
        app.write_role(role, json!({"credential_type": "iam_user", "policy_document": DOC, "username_template": "{{display_name}}-{{random 8}}"})).await;
    }
    write_policy(
        &app,
        "dev",
        &format!("path \"{m}/creds/dev\" {{\n  capabilities = [\"read\", \"update\"]\n}}\n"),
    )
    .await;
    let (dev, _) = token_with(&app, &["dev"], json!({"display_name": "ci"})).await;
    let (other, _) = token_with(&app, &["dev"], json!({})).await;

    let r = app
        .call_with_token(
            Some(&dev),
            "POST",
            &format!("{m}/creds/dev"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let lease_id = r.body["lease_id"].as_str().unwrap().to_owned();
    let username = r.body["data"]["username"].as_str().unwrap().to_owned();
    assert!(
        username.starts_with("token-ci-"),
        "display_name comes from the token: {username}"
    );
    assert_eq!(app.users_in_moto().await, std::slice::from_ref(&username));

    for (method, path) in [
        ("POST", format!("{m}/creds/prod")),
        ("GET", format!("{m}/config/root")),
        ("POST", format!("{m}/config/root")),
        ("POST", format!("{m}/roles/dev")),
        ("GET", "sys/mounts".to_owned()),
        ("LIST", "sys/leases/lookup/".to_owned()),
    ] {
        let r = app
            .call_with_token(Some(&dev), method, &path, Some(json!({})))
            .await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {:?}",
            r.body
        );
        assert!(r.error_text().contains("permission denied"), "{:?}", r.body);
    }
    assert_eq!(
        app.users_in_moto().await.len(),
        1,
        "a refused request creates nothing"
    );

    // Its own lease: the default policy lets it look up and renew it...
    let r = app
        .call_with_token(
            Some(&dev),
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app
        .call_with_token(
            Some(&dev),
            "PUT",
            "sys/leases/renew",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // ...but another token with the same policies may not touch it.
    for op in ["lookup", "renew", "revoke"] {
        let r = app
            .call_with_token(
                Some(&other),
                "PUT",
                &format!("sys/leases/{op}"),
                Some(json!({"lease_id": lease_id})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{op}: {:?}", r.body);
        assert!(
            r.error_text().contains("issued to another token"),
            "{:?}",
            r.body
        );
    }
    assert_eq!(
        app.users_in_moto().await.len(),
        1,
        "the other token's revoke did nothing"
    );
    // A policy on sys/leases/* lifts the ownership rule.
    write_policy(
        &app,
        "lease-admin",
        "path \"sys/leases/*\" {\n  capabilities = [\"update\"]\n}\n",
    )
    .await;
    let (admin, _) = token_with(&app, &["lease-admin"], json!({})).await;
    let r = app
        .call_with_token(
            Some(&admin),
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // The owner revokes its own lease.
    let r = app
        .call_with_token(
            Some(&dev),
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn tokens_carry_policies_ttl_and_expire() {
    let app = TestApp::spawn().await;
    write_policy(
        &app,
        "reader",
        "path \"sys/mounts\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .await;
    let (token, accessor) = token_with(
        &app,
        &["reader"],
        json!({"ttl": "30m", "display_name": "alice"}),
    )
    .await;
    assert!(!token.is_empty() && !accessor.is_empty());
    let r = app
        .call_with_token(Some(&token), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["data"]["policies"], json!(["default", "reader"]));
    assert_eq!(r.body["data"]["display_name"], "token-alice");
    assert_eq!(r.body["data"]["accessor"], accessor.as_str());
    let ttl = r.body["data"]["ttl"].as_i64().unwrap();
    assert!((1790..=1800).contains(&ttl), "{ttl}");
    assert_eq!(
        app.call_with_token(Some(&token), "GET", "sys/mounts", None)
            .await
            .status,
        StatusCode::OK
    );

    // A child cannot get a policy its parent lacks.
    let r = app
        .call_with_token(
            Some(&token),
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["root"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = app
        .call_with_token(
            Some(&token),
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["writer"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    // With sudo on auth/token/create, as in Vault, a parent may give policies it lacks (but
    // never root).
    write_policy(
        &app,
        "token-admin",
        "path \"auth/token/create\" {\n  capabilities = [\"update\", \"sudo\"]\n}\n",
    )
    .await;
    let (admin, _) = token_with(&app, &["token-admin"], json!({})).await;
    let r = app
        .call_with_token(
            Some(&admin),
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["reader"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["auth"]["policies"], json!(["default", "reader"]));
    let r = app
        .call_with_token(
            Some(&admin),
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["root"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);

    // Lookup by accessor (root), renew-self, then revoke-accessor ends it.
    let r = app
        .call(
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({"accessor": accessor})),
        )
        .await;
    assert_eq!(r.body["data"]["display_name"], "token-alice");
    // Vault: `id` is the token for lookup and lookup-self, empty for lookup-accessor.
    assert_eq!(r.body["data"]["id"], "");
    let r = app
        .call_with_token(
            Some(&token),
            "POST",
            "auth/token/renew-self",
            Some(json!({"increment": "2h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body["auth"]["lease_duration"].as_i64().unwrap() > 7000);
    let r = app
        .call(
            "POST",
            "auth/token/revoke-accessor",
            Some(json!({"accessor": accessor})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.call_with_token(Some(&token), "GET", "auth/token/lookup-self", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // revoke-self, and expiry.
    let (t2, _) = token_with(&app, &["reader"], json!({})).await;
    assert_eq!(
        app.call_with_token(Some(&t2), "POST", "auth/token/revoke-self", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call_with_token(Some(&t2), "GET", "auth/token/lookup-self", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let (short, _) = token_with(&app, &["reader"], json!({"ttl": "1s"})).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = app
        .call_with_token(Some(&short), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "an expired token is refused"
    );
}

#[tokio::test]
async fn policies_crud_in_hcl_and_json_with_clear_errors() {
    let app = TestApp::spawn().await;
    write_policy(&app, "hcl", "path \"aws/creds/dev-*\" {\n  capabilities = [\"read\", \"update\"]\n}\npath \"aws/creds/+/x\" {\n  capabilities = [\"deny\"]\n}\n").await;
    let r = app
        .call(
            "PUT",
            "sys/policies/acl/json",
            Some(json!({"policy": r#"{"path": {"aws/roles": {"capabilities": ["list"]}}}"#})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app.call("GET", "sys/policies/acl/hcl", None).await;
    assert_eq!(r.body["data"]["name"], "hcl");
    assert!(
        r.body["data"]["policy"]
            .as_str()
            .unwrap()
            .contains("aws/creds/dev-*")
    );
    let r = app.call("LIST", "sys/policies/acl", None).await;
    assert_eq!(
        r.body["data"]["keys"],
        json!(["default", "hcl", "json", "root"])
    );
    let r = app.call("GET", "sys/policies/acl/default", None).await;
    assert!(
        r.body["data"]["policy"]
            .as_str()
            .unwrap()
            .contains("auth/token/lookup-self")
    );

    for (name, body, expected) in [
        (
            "bad",
            json!({"policy": "path \"x\" { capabilities = [\"fly\"] }"}),
            "\"fly\"",
        ),
        (
            "bad",
            json!({"policy": "this is { not hcl"}),
            "not valid HCL",
        ),
        ("bad", json!({}), "policy is required"),
        (
            "root",
            json!({"policy": "path \"x\" { capabilities = [\"read\"] }"}),
            "built in",
        ),
        (
            "bad name!",
            json!({"policy": "path \"x\" { capabilities = [\"read\"] }"}),
            "policy name",
        ),
    ] {
        let r = app
            .call("PUT", &format!("sys/policies/acl/{name}"), Some(body))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}: {:?}", r.body);
        assert!(
            r.error_text().contains(expected),
            "{name}: expected {expected:?} in {:?}",
            r.body
        );
    }
    assert_eq!(
        app.call("DELETE", "sys/policies/acl/hcl", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call("GET", "sys/policies/acl/hcl", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn mounts_and_revoke_prefix_need_sudo() {
    let app = TestApp::spawn().await;
    write_policy(
        &app,
        "mounter",
        "path \"sys/mounts/*\" {\n  capabilities = [\"create\", \"update\"]\n}\n",
    )
    .await;
    write_policy(
        &app,
        "mounter-sudo",
        "path \"sys/mounts/*\" {\n  capabilities = [\"create\", \"update\", \"sudo\"]\n}\n",
    )
    .await;
    let (plain, _) = token_with(&app, &["mounter"], json!({})).await;
    let (sudo, _) = token_with(&app, &["mounter-sudo"], json!({})).await;
    let path = format!("sys/mounts/{}", app.mount);
    let r = app
        .call_with_token(Some(&plain), "POST", &path, Some(json!({"type": "aws"})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(r.error_text().contains("with sudo"), "{:?}", r.body);
    let r = app
        .call_with_token(Some(&sudo), "POST", &path, Some(json!({"type": "aws"})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app
        .call_with_token(
            Some(&sudo),
            "PUT",
            &format!("sys/leases/revoke-prefix/{}/", app.mount),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
