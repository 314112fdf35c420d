//! `credential_process` with the real AWS CLI: a profile whose `credential_process` is
//! `iamlease creds … --format credential-process` gets the issued user; later invocations reuse
//! the cached credential (one user in moto, not one per call) until its lease ends; the cache
//! file is private (0600 in a 0700 directory) and holds nothing once the lease is revoked.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::exec::{GET_USER_DOC, aws_cli_dir, command};
use crate::support::TestApp;

fn cache_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the AWS CLI under a profile whose credentials come from `iamlease creds`, in the same
/// clean environment as the binary (so `credential_process` finds the server and the cache).
async fn aws(app: &TestApp, home: &Path, args: &[&str]) -> Value {
    let mut cmd = command(app, &home.join("cache"), args);
    let cmd = cmd.as_std_mut();
    cmd.env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_PROFILE", "dev")
        .args(["--output", "json"]);
    let mut aws = std::process::Command::new(format!("{}/aws", aws_cli_dir()));
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => aws.env(k, v),
            None => aws.env_remove(k),
        };
    }
    aws.args(cmd.get_args());
    let out = tokio::process::Command::from(aws).output().await.unwrap();
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_aws_cli_gets_one_cached_user_until_its_lease_ends() {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_role(
        "dev",
        json!({"credential_type": "iam_user", "policy_document": GET_USER_DOC}),
    )
    .await;
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    std::fs::write(
        home.path().join("config"),
        format!(
            "[profile dev]\nregion = us-east-1\ncredential_process = {} creds dev --mount {} --ttl 20s --format credential-process\n",
            env!("CARGO_BIN_EXE_iamlease"),
            app.mount
        ),
    )
    .unwrap();

    let who = aws(&app, home.path(), &["sts", "get-caller-identity"]).await;
    let arn = who["Arn"].as_str().unwrap().to_owned();
    let users = app.users_in_moto().await;
    assert_eq!(users.len(), 1);
    assert!(arn.ends_with(&format!("/{}", users[0])), "{arn}");

    // A second invocation reuses the cached credential: still one user in moto.
    let user = aws(&app, home.path(), &["iam", "get-user"]).await;
    assert_eq!(user["User"]["UserName"], users[0].as_str());
    assert_eq!(app.users_in_moto().await, users);

    // The cache: one private file in a private directory.
    let files = cache_files(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&files[0]), 0o600);
    assert_eq!(mode(&cache), 0o700);

    // After expiry (the reaper deletes the user), the next call gets a new user.
    app.eventually(
        "the 20s lease expired and was revoked",
        Duration::from_secs(40),
        || async { app.users_in_moto().await.is_empty() },
    )
    .await;
    let who = aws(&app, home.path(), &["sts", "get-caller-identity"]).await;
    let new_users = app.users_in_moto().await;
    assert_eq!(new_users.len(), 1);
    assert_ne!(new_users, users, "a new user after expiry");
    assert!(who["Arn"].as_str().unwrap().ends_with(&new_users[0]));

    // Revoking through the CLI empties the cache.
    let entry: Value =
        serde_json::from_slice(&std::fs::read(&cache_files(&cache)[0]).unwrap()).unwrap();
    let lease_id = entry["lease_id"].as_str().unwrap();
    let o = command(&app, &cache, &["lease", "revoke", lease_id])
        .output()
        .await
        .unwrap();
    assert!(o.status.success());
    assert_eq!(cache_files(&cache), Vec::<PathBuf>::new());
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn a_cached_credential_whose_lease_was_revoked_elsewhere_is_not_handed_out() {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_role(
        "dev",
        json!({"credential_type": "iam_user", "policy_document": GET_USER_DOC}),
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let args = [
        "creds",
        "dev",
        "--mount",
        app.mount.as_str(),
        "--format",
        "credential-process",
    ];
    let first = command(&app, cache.path(), &args).output().await.unwrap();
    assert!(first.status.success());
    let first: Value = serde_json::from_slice(&first.stdout).unwrap();
    let again = command(&app, cache.path(), &args).output().await.unwrap();
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["AccessKeyId"], first["AccessKeyId"], "reused");

    // Revoked through the API, not this CLI: the next call drops the stale entry.
    let r = app
        .call(
            "PUT",
            &format!("sys/leases/revoke-prefix/{}/", app.mount),
            None,
        )
        .await;
    assert!(r.status.is_success());
    let third = command(&app, cache.path(), &args).output().await.unwrap();
    let third: Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_ne!(third["AccessKeyId"], first["AccessKeyId"]);
    assert_eq!(app.users_in_moto().await.len(), 1);

    // --no-cache always issues, and leaves the cache alone.
    let args_no_cache = [&args[..], &["--no-cache"]].concat();
    let fourth = command(&app, cache.path(), &args_no_cache)
        .output()
        .await
        .unwrap();
    let fourth: Value = serde_json::from_slice(&fourth.stdout).unwrap();
    assert_ne!(fourth["AccessKeyId"], third["AccessKeyId"]);
    assert_eq!(app.users_in_moto().await.len(), 2);
    assert_eq!(cache_files(cache.path()).len(), 1);

    // revoke-prefix through the CLI empties it.
    let o = command(
        &app,
        cache.path(),
        &["lease", "revoke-prefix", &format!("{}/", app.mount)],
    )
    .output()
    .await
    .unwrap();
    assert!(o.status.success());
    assert_eq!(cache_files(cache.path()), Vec::<PathBuf>::new());
    app.assert_nothing_left().await;
}
