//! `key_map` on roles: validated as environment variable names when written, read back with
//! the defaults filled in, carried in the credential's answer, and used by `--format env`.
//! Plus the CLI's shell completions.

use reqwest::StatusCode;
use serde_json::json;

use crate::cli::{iamlease, stderr, stdout};
use crate::support::{DOC, TestApp};

#[tokio::test]
async fn key_map_is_validated_read_back_and_used_by_format_env() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.clone();
    let path = format!("{m}/roles/tf");

    // Bad names are a 400 that says what a good one looks like; nothing is written.
    for (bad, says) in [
        (
            json!({"access_key": "1KEY"}),
            "not an environment variable name",
        ),
        (
            json!({"access_key": "MY-KEY"}),
            "not an environment variable name",
        ),
        (json!({"password": "PW"}), "not a credential field"),
        (
            json!({"access_key": "AWS_SECRET_ACCESS_KEY"}),
            "the same name",
        ),
    ] {
        let r = app
            .call(
                "POST",
                &path,
                Some(
                    json!({"credential_type": "iam_user", "policy_document": DOC, "key_map": bad}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
        assert!(r.error_text().contains(says), "{}", r.error_text());
    }
    assert_eq!(
        app.call("GET", &path, None).await.status,
        StatusCode::NOT_FOUND
    );

    // The CLI's --key-map, as FIELD=NAME.
    let o = iamlease(
        &app,
        &[
            "role",
            "write",
            "tf",
            "--mount",
            &m,
            "--credential-type",
            "iam_user",
            "--policy-document",
            DOC,
            "--key-map",
            "access_key=TF_VAR_aws_key",
            "--key-map",
            "secret_key=TF_VAR_aws_secret",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let r = app.call("GET", &path, None).await;
    assert_eq!(
        r.body["data"]["key_map"],
        json!({
            "access_key": "TF_VAR_aws_key",
            "secret_key": "TF_VAR_aws_secret",
            "security_token": "AWS_SESSION_TOKEN",
            "region": "AWS_REGION",
            "expiration": "AWS_CREDENTIAL_EXPIRATION",
        })
    );
    // An update that leaves key_map out keeps it.
    app.write_role("tf", json!({"default_ttl": "10m"})).await;
    let r = app.call("GET", &path, None).await;
    assert_eq!(r.body["data"]["key_map"]["access_key"], "TF_VAR_aws_key");

    // The answer carries the role's names and the mount's region.
    let r = app.issue("tf", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["data"]["key_map"]["access_key"], "TF_VAR_aws_key");
    assert_eq!(r.body["data"]["region"], "us-east-1");

    let o = iamlease(&app, &["creds", "tf", "--mount", &m, "--format", "env"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let env = stdout(&o);
    assert!(env.contains("export TF_VAR_aws_key=AKIA"), "{env}");
    assert!(env.contains("export TF_VAR_aws_secret="), "{env}");
    assert!(env.contains("export AWS_REGION=us-east-1"), "{env}");
    assert!(env.contains("export AWS_CREDENTIAL_EXPIRATION="), "{env}");
    assert!(!env.contains("AWS_ACCESS_KEY_ID"), "{env}");

    // A role without key_map answers as before, without the field.
    app.write_user_role("plain").await;
    let r = app.issue("plain", json!({})).await;
    assert!(r.body["data"].get("key_map").is_none(), "{:?}", r.body);

    app.call("PUT", &format!("sys/leases/revoke-prefix/{m}/"), None)
        .await;
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn shell_completions_and_help_examples() {
    let app = TestApp::spawn().await;
    for (shell, marker) in [
        ("bash", "complete -F _iamlease"),
        ("zsh", "#compdef iamlease"),
        ("fish", "complete -c iamlease"),
    ] {
        let o = iamlease(&app, &["completions", shell]).await;
        assert!(o.status.success(), "{}", stderr(&o));
        let script = stdout(&o);
        assert!(script.contains(marker), "{shell}: {script:.200}");
        assert!(script.contains("exec") && script.contains("credential-process"));
    }
    let o = iamlease(&app, &["completions", "tcsh"]).await;
    assert_eq!(o.status.code(), Some(2));
    let o = iamlease(&app, &["exec", "--help"]).await;
    let help = stdout(&o);
    assert!(
        help.contains("Examples:\n  iamlease exec dev") && help.contains("SIGKILL"),
        "{help}"
    );
}
