//! The Vault-shaped API: envelopes, headers, auth, mounts, config, roles, and clear 4xx errors.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{DOC, TestApp, moto};

#[tokio::test]
async fn health_needs_no_token_and_reports_unsealed() {
    let app = TestApp::spawn().await;
    let r = app.call_with_token(None, "GET", "sys/health", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["initialized"], true);
    assert_eq!(r.body["sealed"], false);
    assert_eq!(r.body["standby"], false);
    assert!(r.body["server_time_utc"].as_i64().unwrap() > 1_700_000_000);
    assert!(r.body["version"].is_string());
}

#[tokio::test]
async fn a_missing_or_bad_token_is_403_and_bearer_works() {
    let app = TestApp::spawn().await;
    for token in [None, Some("wrong-token"), Some("")] {
        let r = app
            .call_with_token(token, "GET", "auth/token/lookup-self", None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "token {token:?}");
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(r.error_text().contains("permission denied"), "{:?}", r.body);
    }
    // The same token as a Bearer header.
    let r = reqwest::Client::new()
        .get(format!("{}/v1/auth/token/lookup-self", app.address))
        .bearer_auth(crate::support::ROOT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["data"]["policies"], json!(["root"]));
    assert_eq!(body["data"]["display_name"], "root");
    // Vault's lookup-self answers the token as `id` (clients such as `vault login` read it).
    assert_eq!(body["data"]["id"], crate::support::ROOT_TOKEN);
}

#[tokio::test]
async fn responses_use_vaults_envelope_and_exact_content_type() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let r = app
        .call("GET", &format!("{}/config/lease", app.mount), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    for key in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "data",
        "wrap_info",
        "warnings",
        "auth",
    ] {
        assert!(
            r.body.get(key).is_some(),
            "envelope lacks {key}: {:?}",
            r.body
        );
    }
    assert_eq!(r.body["wrap_info"], serde_json::Value::Null);
    // Vault's defaults, Go-style.
    assert_eq!(
        r.body["data"],
        json!({"lease": "1h0m0s", "lease_max": "24h0m0s"})
    );
}

#[tokio::test]
async fn mounts_can_be_listed_and_several_coexist() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let second = format!("{}-b", app.mount);
    let r = app
        .call("POST", &format!("sys/mounts/{second}"), Some(json!({"type": "aws", "config": {"default_lease_ttl": "30m", "max_lease_ttl": "2h"}})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app.call("GET", "sys/mounts", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let data = &r.body["data"];
    assert_eq!(data[format!("{}/", app.mount)]["type"], "aws");
    assert_eq!(
        data[format!("{second}/")]["config"]["default_lease_ttl"],
        1800
    );
    assert_eq!(data[format!("{second}/")]["config"]["max_lease_ttl"], 7200);
    assert_eq!(data["aws/"]["type"], "aws", "dev mode mounts aws/");
    // Mounting the same path twice is a clear 400.
    let r = app
        .call(
            "POST",
            &format!("sys/mounts/{second}"),
            Some(json!({"type": "aws"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error_text().contains("already in use"), "{:?}", r.body);
    // Another engine type is refused.
    let r = app
        .call("POST", "sys/mounts/kv", Some(json!({"type": "kv"})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call("DELETE", &format!("sys/mounts/{second}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call("GET", &format!("{second}/config/lease"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn root_config_reads_back_without_the_secret_key() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let r = app
        .call("GET", &format!("{}/config/root", app.mount), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let data = &r.body["data"];
    assert_eq!(data["access_key"], moto().admin_key);
    assert_eq!(data["region"], "us-east-1");
    assert_eq!(data["iam_endpoint"], moto().url);
    assert_eq!(data["max_retries"], -1);
    assert!(
        data.get("secret_key").is_none(),
        "secret_key must never be returned"
    );
    assert!(!r.body.to_string().contains(&moto().admin_secret));
    // A key without its secret is refused.
    let r = app
        .call(
            "POST",
            &format!("{}/config/root", app.mount),
            Some(json!({"access_key": "AKIAONLY"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error_text().contains("together"), "{:?}", r.body);
    // hvac sends max_retries=None as null: treated as not set.
    let r = app
        .call(
            "POST",
            &format!("{}/config/root", app.mount),
            Some(json!({"region": "eu-west-1", "max_retries": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app
        .call("GET", &format!("{}/config/root", app.mount), None)
        .await;
    assert_eq!(r.body["data"]["region"], "eu-west-1");
    assert_eq!(
        r.body["data"]["access_key"],
        moto().admin_key,
        "a partial write keeps the keys"
    );
}

#[tokio::test]
async fn lease_config_round_trips_go_style() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let r = app
        .call(
            "POST",
            &format!("{}/config/lease", app.mount),
            Some(json!({"lease": "90m", "lease_max": 7200})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app
        .call("GET", &format!("{}/config/lease", app.mount), None)
        .await;
    assert_eq!(
        r.body["data"],
        json!({"lease": "1h30m0s", "lease_max": "2h0m0s"})
    );
    let r = app
        .call(
            "POST",
            &format!("{}/config/lease", app.mount),
            Some(json!({"lease": "3h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error_text().contains("must not exceed lease_max"),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn roles_crud_list_and_merge_on_update() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = &app.mount;
    app.write_role("dev", json!({
        "credential_type": "iam_user",
        "policy_arns": "arn:aws:iam::123456789012:policy/a,arn:aws:iam::123456789012:policy/b",
        "policy_document": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]},
        "iam_tags": ["team=platform", "env=dev"],
        "default_ttl": "15m",
        "max_ttl": 3600,
    })).await;
    let r = app.call("GET", &format!("{m}/roles/dev"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let d = &r.body["data"];
    assert_eq!(d["credential_type"], "iam_user");
    assert_eq!(
        d["policy_arns"],
        json!([
            "arn:aws:iam::123456789012:policy/a",
            "arn:aws:iam::123456789012:policy/b"
        ])
    );
    assert_eq!(
        d["policy_document"],
        r#"{"Statement":[{"Action":"s3:ListBucket","Effect":"Allow","Resource":"*"}],"Version":"2012-10-17"}"#
    );
    assert_eq!(d["iam_tags"], json!({"team": "platform", "env": "dev"}));
    assert_eq!(d["default_ttl"], 900);
    assert_eq!(d["max_ttl"], 3600);
    assert_eq!(d["user_path"], format!("/iamlease/{m}/dev/"));
    assert_eq!(d["username_template"], "iamlease-{{role}}-{{random}}");

    // An update that names one field keeps the others (as Vault does).
    app.write_role("dev", json!({"max_ttl": "2h"})).await;
    let d = app.call("GET", &format!("{m}/roles/dev"), None).await.body["data"].clone();
    assert_eq!(d["max_ttl"], 7200);
    assert_eq!(d["default_ttl"], 900);
    assert_eq!(d["iam_tags"]["team"], "platform");

    // Unknown fields are accepted with a warning.
    let r = app
        .call(
            "POST",
            &format!("{m}/roles/dev"),
            Some(json!({"colour": "blue"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["warnings"][0].as_str().unwrap().contains("colour"));

    app.write_role(
        "ops",
        json!({"credential_type": "iam_user", "iam_groups": ["ops"]}),
    )
    .await;
    for (method, path) in [
        ("LIST", format!("{m}/roles")),
        ("GET", format!("{m}/roles?list=true")),
        ("LIST", format!("{m}/roles/")),
    ] {
        let r = app.call(method, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{method} {path}");
        assert_eq!(r.body["data"]["keys"], json!(["dev", "ops"]));
    }
    let r = app.call("DELETE", &format!("{m}/roles/dev"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.call("GET", &format!("{m}/roles/dev"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    app.call("DELETE", &format!("{m}/roles/ops"), None).await;
    // An empty LIST is Vault's 404 with no errors.
    let r = app.call("LIST", &format!("{m}/roles"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body, json!({"errors": []}));
    assert_eq!(r.headers["content-type"], "application/json");
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_creates_nothing() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = &app.mount;
    let cases = [
        (
            json!({"credential_type": "iam_user", "policy_arns": "arn:aws:iam::123456789012:policy/p", "username_template": "iamlease-long-prefix-x-{{role}}{{random}}"}),
            "username_template renders up to 71 characters; IAM allows 64",
        ),
        (
            json!({"credential_type": "iam_user", "policy_arns": "arn:aws:iam::123456789012:policy/p", "username_template": "{{role}}-fixed"}),
            "{{random}}",
        ),
        (
            json!({"credential_type": "iam_user", "policy_arns": "arn:aws:iam::123456789012:policy/p", "user_path": "no-slashes"}),
            "user_path \"no-slashes\" must start and end with '/'",
        ),
        (
            json!({"credential_type": "iam_user", "policy_arns": "not-an-arn"}),
            "not an IAM policy ARN",
        ),
        (
            json!({"credential_type": "iam_user", "policy_arns": "arn:aws:iam::123456789012:policy/p", "default_ttl": "soon"}),
            "invalid duration",
        ),
        (
            json!({"credential_type": "iam_user", "policy_document": "{not json"}),
            "policy_document is not valid JSON",
        ),
        (
            json!({"credential_type": "magic"}),
            "credential_type \"magic\"",
        ),
        (
            json!({"credential_type": "iam_user", "policy_arns": "arn:aws:iam::123456789012:policy/p", "role_arns": "arn:aws:iam::123456789012:role/r"}),
            "role_arns is only valid for assumed_role",
        ),
    ];
    for (body, expected) in cases {
        let r = app
            .call("POST", &format!("{m}/roles/bad"), Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
        assert!(
            r.error_text().contains(expected),
            "{body}: expected {expected:?}, got {:?}",
            r.body
        );
    }
    let r = app.call("GET", &format!("{m}/roles/bad"), None).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "a rejected role must not be stored"
    );

    // TTL over the role's maximum.
    app.write_role(
        "dev",
        json!({"credential_type": "iam_user", "policy_document": DOC, "max_ttl": "1h"}),
    )
    .await;
    let r = app.issue("dev", json!({"ttl": "2h"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error_text()
            .contains("ttl 2h0m0s exceeds the role dev's max_ttl of 1h0m0s"),
        "{:?}",
        r.body
    );
    // Unknown role, unknown mount, unknown path.
    // Vault's AWS engine: issuing from a missing role is a 400; reading it is a 404.
    let r = app.issue("nope", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error_text().contains("Role \"nope\" not found"),
        "{:?}",
        r.body
    );
    let r = app.call("GET", "nomount/creds/dev", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.call("GET", "sys/nothing-here", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A body that is not JSON, a wrong method, a body too large.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/{m}/roles/x", app.address))
        .header("X-Vault-Token", crate::support::ROOT_TOKEN)
        .body("{this is not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/json");
    let r = app.call("DELETE", &format!("{m}/creds/dev"), None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!r.error_text().is_empty());
    let big = "x".repeat(1024 * 1024 + 10);
    let r = app
        .call(
            "POST",
            &format!("{m}/roles/big"),
            Some(json!({"policy_document": big})),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // A negative TTL and a lease that does not exist.
    let r = app.issue("dev", json!({"ttl": -5})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let r = app
        .call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": format!("{m}/creds/dev/nope")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.call("PUT", "sys/leases/lookup", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error_text().contains("lease_id is required"));

    // None of it reached AWS.
    assert!(app.users_in_moto().await.is_empty());
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn issuing_before_config_root_says_what_to_do() {
    let app = TestApp::spawn().await;
    let m = &app.mount;
    app.call(
        "POST",
        &format!("sys/mounts/{m}"),
        Some(json!({"type": "aws"})),
    )
    .await;
    app.write_role(
        "dev",
        json!({"credential_type": "iam_user", "iam_groups": "g"}),
    )
    .await;
    let r = app.issue("dev", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error_text().contains("write") && r.error_text().contains("config/root"),
        "{:?}",
        r.body
    );
    app.assert_nothing_left().await;
}
