//! Limits: bodies over 1 MiB (413), per-token and per-address rate limits (429 with
//! Retry-After) and the request timeout (503), each answered with a Vault-style JSON error.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Options, ROOT_TOKEN, TestApp};

async fn raw_post(app: &TestApp, path: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/{path}", app.address))
        .header("X-Vault-Token", ROOT_TOKEN)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn assert_vault_error(r: reqwest::Response, status: StatusCode, needle: &str) {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: serde_json::Value = r.json().await.unwrap();
    let text = body["errors"][0].as_str().unwrap_or_default();
    assert!(text.contains(needle), "{body}");
}

fn big_body() -> Vec<u8> {
    let mut body = br#"{"policy_document": ""#.to_vec();
    body.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    body.extend(br#""}"#);
    body
}

#[tokio::test]
async fn a_body_over_1_mib_is_a_413_with_a_vault_error_with_and_without_the_audit_log() {
    let app = TestApp::spawn().await;
    app.enable_mount().await;
    let path = format!("{}/roles/big", app.mount);
    assert_vault_error(
        raw_post(&app, &path, big_body()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "larger than 1048576 bytes",
    )
    .await;
    // The same through the audit layer, which reads bodies before the handler does.
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let audit_setting = audit.display().to_string();
    let audited = TestApp::spawn_with(Options {
        tweak: Box::new(move |s| s.audit_log = Some(audit_setting.clone())),
        ..Options::default()
    })
    .await;
    audited.enable_mount().await;
    let path = format!("{}/roles/big", audited.mount);
    assert_vault_error(
        raw_post(&audited, &path, big_body()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "larger than 1048576 bytes",
    )
    .await;
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(log.contains(r#""status":413"#), "the refusal is audited");
    // Nothing was written.
    let r = app
        .call("GET", &format!("{}/roles/big", app.mount), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_token_and_per_address() {
    let app = TestApp::spawn_with(Options {
        tweak: Box::new(|s| s.rate_limit_per_token = 3),
        ..Options::default()
    })
    .await;
    let other = app
        .call(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["default"]})),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    let other = other.body["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_secs(1)).await; // the bucket refills
    let mut limited = None;
    for _ in 0..10 {
        let r = app.call("GET", "sys/mounts", None).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = limited.expect("the fourth quick request of one token is limited");
    assert_eq!(r.headers["content-type"], "application/json");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert!(
        r.error_text()
            .contains("rate limit exceeded for this token")
    );
    // Another token is not limited by the first one's rate.
    let r = app
        .call_with_token(Some(&other), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // After Retry-After the first token works again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(
        app.call("GET", "sys/mounts", None).await.status,
        StatusCode::OK
    );

    let by_address = TestApp::spawn_with(Options {
        tweak: Box::new(|s| s.rate_limit_per_address = 2),
        ..Options::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        // No token at all: the address limit applies before authentication.
        statuses.push(
            by_address
                .call_with_token(None, "GET", "sys/mounts", None)
                .await
                .status,
        );
    }
    assert_eq!(
        statuses[..2],
        [StatusCode::FORBIDDEN, StatusCode::FORBIDDEN]
    );
    assert!(
        statuses[2..].contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_request_running_past_request_timeout_is_a_503() {
    // An "AWS endpoint" that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let app = TestApp::spawn_with(Options {
        tweak: Box::new(|s| s.request_timeout = Duration::from_secs(1)),
        ..Options::default()
    })
    .await;
    app.configure_via(&endpoint).await;
    app.write_role(
        "dev",
        json!({"credential_type": "iam_user", "policy_document": crate::support::DOC}),
    )
    .await;
    let started = Instant::now();
    let r = app.issue("dev", json!({})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert!(
        r.error_text().contains("request_timeout (1s)"),
        "{:?}",
        r.body
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_role_at_max_leases_refuses_more_with_429_until_one_is_revoked() {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_role(
        "capped",
        json!({"credential_type": "iam_user", "policy_document": crate::support::DOC, "max_leases": 2}),
    )
    .await;
    let r = app
        .call("GET", &format!("{}/roles/capped", app.mount), None)
        .await;
    assert_eq!(r.body["data"]["max_leases"], 2);
    let mut leases = Vec::new();
    for _ in 0..2 {
        let r = app.issue("capped", json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        leases.push(r.body["lease_id"].as_str().unwrap().to_owned());
    }
    let r = app.issue("capped", json!({})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert!(r.error_text().contains("max_leases"), "{:?}", r.body);
    assert_eq!(
        app.users_in_moto().await.len(),
        2,
        "the refused issue created nothing"
    );
    let r = app
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": leases.pop()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.issue("capped", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    leases.push(r.body["lease_id"].as_str().unwrap().to_owned());
    // A bad cap is a 400 that says what would be right.
    let r = app
        .call(
            "POST",
            &format!("{}/roles/capped", app.mount),
            Some(json!({"max_leases": -1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error_text().contains("max_leases must be between 0"),
        "{:?}",
        r.body
    );
    for id in leases {
        app.call("PUT", "sys/leases/revoke", Some(json!({"lease_id": id})))
            .await;
    }
    app.assert_nothing_left().await;
}

/// Requests in flight cannot overshoot the cap: twelve issues at once against `max_leases: 3`
/// hand out exactly three credentials, and moto holds exactly three users (the count and the
/// lease row are one locked step in the store).
#[tokio::test]
async fn max_leases_is_exact_under_concurrent_issues() {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_role(
        "tight",
        json!({"credential_type": "iam_user", "policy_document": crate::support::DOC, "max_leases": 3}),
    )
    .await;
    let attempts = (0..12).map(|_| app.issue("tight", json!({})));
    let answers = futures::future::join_all(attempts).await;
    let ok: Vec<_> = answers
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    let refused = answers
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((ok.len(), refused), (3, 9), "{answers:?}");
    assert_eq!(app.users_in_moto().await.len(), 3);
    for r in ok {
        let id = r.body["lease_id"].as_str().unwrap();
        app.call("PUT", "sys/leases/revoke", Some(json!({"lease_id": id})))
            .await;
    }
    app.assert_nothing_left().await;
}

/// IAM's user quota in view: with a reserve that keeps 4,999 of moto's 5,000 users free (moto
/// always holds the suite's admin user), `iam_user` issues answer 503 naming the quota and create
/// nothing, while STS roles still issue; the reading and the gauges show what the mount saw.
/// (Below the reserve nothing is refused: every other issuing test runs with the default 5 %.)
#[tokio::test]
async fn iam_user_issues_stop_at_the_quota_reserve_and_sts_does_not() {
    let app = TestApp::spawn_with(Options {
        tweak: Box::new(|s| s.iam_user_quota_reserve = 0.9998),
        ..Options::default()
    })
    .await;
    app.configure().await;
    app.write_user_role("dev").await;
    app.write_role(
        "fed",
        json!({"credential_type": "federation_token", "policy_document": crate::support::DOC}),
    )
    .await;
    let q = app
        .call("GET", &format!("{}/iam-quota", app.mount), None)
        .await;
    assert_eq!(q.status, StatusCode::OK, "{:?}", q.body);
    assert_eq!(q.body["data"]["users_quota"], 5000, "{:?}", q.body);
    assert!(
        q.body["data"]["users"].as_i64().unwrap() >= 1,
        "{:?}",
        q.body
    );
    assert_eq!(q.body["data"]["available"], 0, "{:?}", q.body);
    assert_eq!(q.body["data"]["reserve_percent"], 99.98, "{:?}", q.body);
    let refused = app.issue("dev", json!({})).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        refused.body
    );
    assert!(
        refused.error_text().contains("IAM user quota"),
        "{:?}",
        refused.body
    );
    assert!(refused.error_text().contains("iam_user_quota_reserve"));
    assert!(
        app.users_in_moto().await.is_empty(),
        "the refused issue created nothing"
    );
    let sts = app
        .call("POST", &format!("{}/sts/fed", app.mount), Some(json!({})))
        .await;
    assert_eq!(
        sts.status,
        StatusCode::OK,
        "STS types make no users: {:?}",
        sts.body
    );
    let metrics = reqwest::Client::new()
        .get(format!("{}/v1/sys/metrics?format=prometheus", app.address))
        .header("X-Vault-Token", ROOT_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "iamlease_iam_users_quota{{mount=\"{}\"}} 5000",
            app.mount
        )),
        "{metrics}"
    );
    app.revoke_all_and_check().await;
}
