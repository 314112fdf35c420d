//! Endpoint overrides cannot be used to reach, or read, what the server can reach (security
//! issue #15): setting `iam_endpoint`/`sts_endpoint` needs `sudo`, the operator's
//! `allowed_aws_endpoints` bounds them, and an answer from whatever an endpoint points at never
//! reaches the client — only AWS's error code and message, or the kind of failure.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::acl::{token_with, write_policy};
use crate::support::{DOC, Options, TestApp, moto};

/// An HTTP server on loopback that answers every request with `status`, an internal-looking
/// header and `body`, and remembers nothing: the stand-in for an internal service.
async fn internal_service(status: u16, body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
                let reply = format!(
                    "HTTP/1.1 {status} Whatever\r\nX-Internal-Header: INTERNAL-HEADER-VALUE\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    address
}

#[tokio::test]
async fn an_endpoint_override_needs_sudo_and_a_valid_url_within_the_allow_list() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.clone();
    write_policy(
        &app,
        "config-writer",
        &format!(
            "path \"{m}/config/root\" {{ capabilities = [\"create\", \"update\", \"read\"] }}"
        ),
    )
    .await;
    write_policy(
        &app,
        "config-operator",
        &format!(
            "path \"{m}/config/root\" {{ capabilities = [\"create\", \"update\", \"read\", \"sudo\"] }}"
        ),
    )
    .await;
    let (writer, _) = token_with(&app, &["config-writer"], json!({})).await;
    let (operator, _) = token_with(&app, &["config-operator"], json!({})).await;
    let path = format!("{m}/config/root");

    for field in ["iam_endpoint", "sts_endpoint"] {
        let r = app
            .call_with_token(
                Some(&writer),
                "POST",
                &path,
                Some(json!({ field: "http://169.254.169.254" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{field}: {:?}", r.body);
        assert!(r.error_text().contains("needs sudo"), "{}", r.error_text());
    }
    // Other fields, and clearing an override back to AWS, need no sudo.
    let r = app
        .call_with_token(
            Some(&writer),
            "POST",
            &path,
            Some(json!({"max_retries": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let read = app.call("GET", &path, None).await;
    assert_eq!(
        read.body["data"]["iam_endpoint"],
        moto().url.trim_end_matches('/'),
        "the refused writes changed nothing"
    );

    // Bad URLs are refused whoever writes them; a bare host means https://host, as in Vault.
    for bad in [
        "http://user:pass@127.0.0.1:1",
        "ftp://127.0.0.1",
        "http://",
        "http://127.0.0.1/?x=1",
    ] {
        let r = app
            .call_with_token(
                Some(&operator),
                "POST",
                &path,
                Some(json!({"sts_endpoint": bad})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
    }
    let r = app
        .call_with_token(
            Some(&operator),
            "POST",
            &path,
            Some(json!({"sts_endpoint": "localhost"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let read = app.call("GET", &path, None).await;
    assert_eq!(read.body["data"]["sts_endpoint"], "https://localhost");
    app.stop().await;

    // With an allow-list, even root stays inside it.
    let allowed = moto().url.clone();
    let app = TestApp::spawn_with(Options {
        tweak: Box::new(move |s| s.allowed_aws_endpoints = vec![allowed.clone()]),
        ..Options::default()
    })
    .await;
    app.configure().await;
    let r = app
        .write_root_config(json!({"iam_endpoint": "http://127.0.0.1:9"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(
        r.error_text().contains("allowed_aws_endpoints"),
        "{}",
        r.error_text()
    );
}

#[tokio::test]
async fn what_an_endpoint_answers_never_reaches_the_client() {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_role(
        "dev",
        json!({"credential_type": "iam_user", "policy_document": DOC}),
    )
    .await;
    let m = app.mount.clone();
    let plain = internal_service(500, "INTERNAL-BODY-VALUE: db password hunter2").await;
    let xml = internal_service(
        403,
        "<ErrorResponse><Error><Code>AccessDenied</Code><Message>not allowed here</Message></Error><Detail>INTERNAL-BODY-VALUE</Detail></ErrorResponse>",
    )
    .await;
    let closed = "http://127.0.0.1:9".to_owned();
    let forbidden = [
        "INTERNAL-BODY-VALUE",
        "hunter2",
        "INTERNAL-HEADER-VALUE",
        "x-internal-header",
        "AWS4-HMAC-SHA256",
        "Signature=",
        "Credential=",
        "authorization",
        "x-amz-date",
        "DispatchFailure",
        "ConnectorError",
        moto().admin_key.as_str(),
    ];
    for (endpoint, expect) in [
        (&plain, "HTTP 500"),
        (&xml, "AccessDenied: not allowed here"),
        (&closed, "could not be reached"),
    ] {
        let r = app
            .write_root_config(
                json!({"iam_endpoint": endpoint, "sts_endpoint": endpoint, "max_retries": 0}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        for (method, path) in [
            ("POST", format!("{m}/config/check")),
            ("POST", format!("{m}/creds/dev")),
            ("POST", format!("{m}/config/rotate-root")),
        ] {
            let r = app.call(method, &path, Some(json!({}))).await;
            assert!(
                r.status.is_client_error() || r.status.is_server_error(),
                "{path} via {endpoint}: {:?}",
                r.body
            );
            let text = r.body.to_string();
            let lower = text.to_lowercase();
            for f in &forbidden {
                assert!(
                    !lower.contains(&f.to_lowercase()),
                    "{path} via {endpoint} shows {f:?}: {text}"
                );
            }
            assert!(text.contains(expect), "{path} via {endpoint}: {text}");
        }
    }
    // Nothing was created anywhere real.
    assert!(app.users_in_moto().await.is_empty());
    let r = app
        .write_root_config(json!({"iam_endpoint": moto().url, "sts_endpoint": moto().url}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    app.assert_nothing_left().await;
}
