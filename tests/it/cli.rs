//! The CLI, run as the built binary against a real server and moto: every output format, the
//! lease commands, and exit codes a script can rely on (0 ok, 1 refused, 2 usage).

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::support::{DOC, ROOT_TOKEN, TestApp, moto, sts_client};

/// The binary with the test server's address and root token, and a cache directory of its own.
fn command(app: &TestApp, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"));
    cmd.args(args)
        .env("IAMLEASE_ADDR", &app.address)
        .env("IAMLEASE_TOKEN", ROOT_TOKEN)
        // credential-process caches; keep that out of the user's own cache directory.
        .env(
            "IAMLEASE_CACHE_DIR",
            std::env::temp_dir().join("iamlease-it-cache"),
        )
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN");
    cmd
}

pub async fn iamlease(app: &TestApp, args: &[&str]) -> Output {
    command(app, args).output().await.unwrap()
}

/// Runs the binary with its standard output a pipe whose reader is already gone, as after
/// `| head -1` has exited; `Output::stdout` is empty.
async fn iamlease_into_a_closed_pipe(app: &TestApp, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command(app, args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .await
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn cli_issues_prints_every_format_and_revokes() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.as_str();
    let o = iamlease(
        &app,
        &[
            "role",
            "write",
            "dev",
            "--mount",
            m,
            "--credential-type",
            "iam_user",
            "--policy-document",
            DOC,
            "--tag",
            "team=cli",
            "--default-ttl",
            "15m",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = iamlease(&app, &["role", "list", "--mount", m]).await;
    assert_eq!(stdout(&o).trim(), "dev");
    let o = iamlease(
        &app,
        &["role", "read", "dev", "--mount", m, "--format", "json"],
    )
    .await;
    let role: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(role["data"]["iam_tags"]["team"], "cli");

    // json
    let o = iamlease(&app, &["creds", "dev", "--mount", m, "--format", "json"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let issued: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(issued["lease_duration"], 900);
    let username = issued["data"]["username"].as_str().unwrap().to_owned();
    assert_eq!(app.users_in_moto().await, std::slice::from_ref(&username));

    // credential-process: what the AWS CLI and SDKs read; the key in it works.
    let o = iamlease(
        &app,
        &[
            "creds",
            "dev",
            "--mount",
            m,
            "--ttl",
            "5m",
            "--format",
            "credential-process",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let cp: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(cp["Version"], 1);
    assert!(cp["Expiration"].as_str().unwrap().ends_with('Z'));
    let sts = sts_client(
        &moto().url,
        cp["AccessKeyId"].as_str().unwrap(),
        cp["SecretAccessKey"].as_str().unwrap(),
    );
    let who = sts.get_caller_identity().send().await.unwrap();
    assert!(who.arn().unwrap().contains(&format!("/iamlease/{m}/dev/")));

    // env
    let o = iamlease(&app, &["creds", "dev", "--mount", m, "--format", "env"]).await;
    let env = stdout(&o);
    assert!(env.contains("export AWS_ACCESS_KEY_ID=AKIA"), "{env}");
    assert!(env.contains("export AWS_SECRET_ACCESS_KEY="), "{env}");
    assert!(
        !env.contains("AWS_SESSION_TOKEN"),
        "iam_user keys have no session token"
    );

    // table (the default)
    let o = iamlease(&app, &["creds", "dev", "--mount", m]).await;
    let table = stdout(&o);
    assert!(
        table.contains("lease_id") && table.contains("secret_key") && table.contains("15m"),
        "{table}"
    );
    assert_eq!(app.users_in_moto().await.len(), 4);

    // lease commands
    let lease_id = issued["lease_id"].as_str().unwrap();
    let o = iamlease(&app, &["lease", "list", &format!("{m}/creds/dev/")]).await;
    assert_eq!(stdout(&o).lines().count(), 4, "{}", stdout(&o));
    // Whole ids, ready to paste into lookup/renew/revoke.
    assert!(stdout(&o).lines().any(|l| l == lease_id), "{}", stdout(&o));
    let bare = lease_id.rsplit('/').next().unwrap();
    let o = iamlease(&app, &["lease", "lookup", bare]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("such as aws/creds/dev/{bare}")),
        "{}",
        stderr(&o)
    );
    let o = iamlease(&app, &["lease", "lookup", lease_id, "--format", "json"]).await;
    let looked: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(looked["data"]["state"], "active");
    let o = iamlease(&app, &["lease", "renew", lease_id, "--increment", "30m"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("30m"), "{}", stdout(&o));
    let o = iamlease(&app, &["lease", "revoke", lease_id]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Success! Revoked lease"),
        "{}",
        stdout(&o)
    );
    assert!(!app.users_in_moto().await.contains(&username));
    // Twice: said so, not `Success` again (the API keeps Vault's 204).
    let o = iamlease(&app, &["lease", "revoke", lease_id]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("already revoked"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("Success"), "{}", stdout(&o));
    let o = iamlease(&app, &["lease", "revoke-prefix", &format!("{m}/")]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    app.assert_nothing_left().await;
    let o = iamlease(&app, &["lease", "list", &format!("{m}/creds/dev/")]).await;
    assert!(o.status.success(), "an empty list is not an error");
}

#[tokio::test]
async fn cli_exit_codes() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.as_str();
    // The server said no: 1, with its message.
    let o = iamlease(&app, &["creds", "nope", "--mount", m]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Role \"nope\" not found"),
        "{}",
        stderr(&o)
    );
    let o = iamlease(
        &app,
        &[
            "role",
            "write",
            "bad",
            "--mount",
            m,
            "--credential-type",
            "iam_user",
            "--policy-document",
            DOC,
            "--username-template",
            "{{role}}",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("{{random}}"), "{}", stderr(&o));
    // Usage errors: 2.
    let o = iamlease(&app, &["creds"]).await;
    assert_eq!(o.status.code(), Some(2));
    let o = iamlease(&app, &["creds", "dev", "--format", "yaml"]).await;
    assert_eq!(o.status.code(), Some(2));
    let o = iamlease(
        &app,
        &["role", "write", "x", "--mount", m, "--tag", "no-equals"],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // No token: 1, and the message says what to do.
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"))
        .args(["role", "list", "--mount", m])
        .env("IAMLEASE_ADDR", &app.address)
        .env_remove("IAMLEASE_TOKEN")
        .env_remove("VAULT_TOKEN")
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("set IAMLEASE_TOKEN"), "{}", stderr(&o));
    // VAULT_ADDR and VAULT_TOKEN are honoured too, and a bad token is refused.
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"))
        .args(["mount", "list"])
        .env_remove("IAMLEASE_ADDR")
        .env_remove("IAMLEASE_TOKEN")
        .env("VAULT_ADDR", &app.address)
        .env("VAULT_TOKEN", "not-a-token")
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("403"), "{}", stderr(&o));
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn cli_tokens_and_policies() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.as_str();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dev.hcl");
    std::fs::write(
        &file,
        format!("path \"{m}/creds/dev\" {{\n  capabilities = [\"update\"]\n}}\n"),
    )
    .unwrap();
    let o = iamlease(&app, &["policy", "write", "dev", file.to_str().unwrap()]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = iamlease(&app, &["policy", "list"]).await;
    assert_eq!(
        stdout(&o).lines().collect::<Vec<_>>(),
        ["default", "dev", "root"]
    );
    let o = iamlease(&app, &["policy", "read", "dev"]).await;
    assert!(stdout(&o).contains(&format!("{m}/creds/dev")));
    let o = iamlease(
        &app,
        &[
            "token",
            "create",
            "--policy",
            "dev",
            "--ttl",
            "1h",
            "--display-name",
            "ci",
            "--format",
            "json",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let created: Value = serde_json::from_slice(&o.stdout).unwrap();
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    app.write_role(
        "dev",
        serde_json::json!({"credential_type": "iam_user", "policy_document": DOC}),
    )
    .await;
    // The scoped token can issue dev credentials and nothing more.
    let run = |args: Vec<String>| {
        let token = token.clone();
        let address = app.address.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"))
                .args(args)
                .env("IAMLEASE_ADDR", address)
                .env("IAMLEASE_TOKEN", token)
                .output()
                .await
                .unwrap()
        }
    };
    let o = run(vec![
        "creds".into(),
        "dev".into(),
        "--mount".into(),
        m.into(),
        "--format".into(),
        "json".into(),
    ])
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(vec![
        "role".into(),
        "list".into(),
        "--mount".into(),
        m.into(),
    ])
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
    let o = run(vec!["token".into(), "lookup".into()]).await;
    assert!(stdout(&o).contains("token-ci"), "{}", stdout(&o));
    let o = run(vec!["token".into(), "revoke".into()]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(vec!["token".into(), "lookup".into()]).await;
    assert_eq!(o.status.code(), Some(1), "a revoked token is refused");
    let o = iamlease(&app, &["policy", "delete", "dev"]).await;
    assert!(o.status.success());
    // The revoked token's lease goes with it; the reaper deletes its user in the background,
    // so a revoke-prefix right after may find it already being revoked.
    app.eventually(
        "the revoked token's IAM user is deleted",
        Duration::from_secs(15),
        || async { app.users_in_moto().await.is_empty() },
    )
    .await;
    iamlease(&app, &["lease", "revoke-prefix", &format!("{m}/")]).await;
    app.assert_nothing_left().await;
}

/// Regression test for the first-hour issue: `setup aws | head -1` panicked (`failed printing
/// to stdout: Broken pipe`, exit 101) and `openapi | head` exited 1. A reader that goes away
/// is a normal end for every command that prints: exit 0, nothing on stderr.
#[tokio::test]
async fn a_closed_standard_output_ends_every_command_quietly() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.as_str();
    app.write_user_role("dev").await;
    let r = app.issue("dev", json!({})).await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let dev = format!("{m}/creds/dev/");
    let commands: &[&[&str]] = &[
        &["openapi"],
        &["completions", "bash"],
        &[
            "setup",
            "aws",
            "--mount",
            m,
            "--principal-arn",
            "arn:aws:iam::123456789012:user/ops",
        ],
        &["mount", "list"],
        &["config", "read-root", "--mount", m],
        &["role", "list", "--mount", m],
        &["role", "read", "dev", "--mount", m, "--format", "json"],
        &["lease", "list", &dev],
        &["policy", "list"],
        &["token", "lookup"],
        &["sweep", "--mount", m, "--dry-run"],
        &["audit", "hash", "some-secret"],
    ];
    for args in commands {
        let o = iamlease_into_a_closed_pipe(&app, args).await;
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
    app.revoke_all_and_check().await;
}

/// Regression test for the first-hour issue: `creds dev --format env | head -1` exited 1 and
/// still issued a lease nobody would use. A credential that reached no reader at all is
/// revoked at once (and the command fails, saying so); one the reader got stays issued.
#[tokio::test]
async fn creds_revokes_a_credential_it_could_not_write_at_all() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.as_str();
    app.write_user_role("dev").await;
    for format in ["env", "json", "table", "credential-process"] {
        let o = iamlease_into_a_closed_pipe(
            &app,
            &[
                "creds",
                "dev",
                "--mount",
                m,
                "--format",
                format,
                "--no-cache",
            ],
        )
        .await;
        assert_eq!(o.status.code(), Some(1), "{format}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("was revoked (nobody received it)"),
            "{format}: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        // Revoked before the command ended: no user in moto, no lease in the store.
        assert_eq!(app.users_in_moto().await, Vec::<String>::new(), "{format}");
        let r = app
            .call("LIST", &format!("sys/leases/lookup/{m}/creds/dev/"), None)
            .await;
        assert_eq!(
            r.status,
            reqwest::StatusCode::NOT_FOUND,
            "{format}: {:?}",
            r.body
        );
    }

    // A credential_process credential in the cache is not lost: the next call gets it.
    let cached = [
        "creds",
        "dev",
        "--mount",
        m,
        "--format",
        "credential-process",
    ];
    let o = iamlease_into_a_closed_pipe(&app, &cached).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("stays in the cache"), "{}", stderr(&o));
    let o = iamlease(&app, &cached).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(app.users_in_moto().await.len(), 1, "the cached one, reused");
    app.revoke_all_and_check().await;

    // `| head -1`: the reader took the first line and left. It has what it asked for: exit 0,
    // and the lease stays (the whole answer is one write, so it was all delivered).
    let mut child = command(&app, &["creds", "dev", "--mount", m, "--format", "env"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(
        first.starts_with("export AWS_ACCESS_KEY_ID=AKIA"),
        "{first}"
    );
    drop(lines);
    let o = child.wait_with_output().await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(app.users_in_moto().await.len(), 1);
    app.revoke_all_and_check().await;
}

#[tokio::test]
async fn config_root_is_checked_with_aws_before_it_says_success() {
    let app = TestApp::spawn().await;
    app.enable_mount().await;
    let m = moto();
    let (mount, url) = (app.mount.as_str(), m.url.as_str());
    let root = |secret: &str, extra: &[&str]| {
        let mut args = vec![
            "config",
            "root",
            "--mount",
            mount,
            "--access-key",
            &m.admin_key,
            "--region",
            "us-east-1",
            "--iam-endpoint",
            url,
            "--sts-endpoint",
            url,
        ];
        args.extend_from_slice(extra);
        let mut cmd = command(&app, &args);
        cmd.env("IAMLEASE_ROOT_SECRET_KEY", secret);
        cmd
    };
    // A wrong secret key: written, but the answer says AWS refused it, and exits 1.
    let o = root("not-the-secret-key", &[]).output().await.unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("AWS does not accept it"), "{err}");
    assert!(!stdout(&o).contains("Success"), "{}", stdout(&o));
    assert!(
        !err.contains("not-the-secret-key"),
        "the secret is not echoed: {err}"
    );
    let o = iamlease(&app, &["config", "check", "--mount", mount]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    // --no-verify skips the check.
    let o = root("not-the-secret-key", &["--no-verify"])
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("not checked"), "{}", stdout(&o));
    // The right one: Success, with who AWS says we are.
    let o = root(&m.admin_secret, &[]).output().await.unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("AWS accepts it as arn:aws:iam::"),
        "{}",
        stdout(&o)
    );
    let o = iamlease(&app, &["config", "check", "--mount", mount]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("reaches AWS as arn:aws:"),
        "{}",
        stdout(&o)
    );
}

/// A busy port: one clear error (the OS's reason once), and no store or master key left behind.
#[tokio::test]
async fn a_busy_port_fails_once_and_leaves_nothing_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"))
        .arg("server")
        .current_dir(dir.path())
        .env("IAMLEASE_LISTEN", &addr)
        .env_remove("IAMLEASE_STORAGE")
        .env_remove("IAMLEASE_MASTER_KEY")
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing written: {left:?}");
}
