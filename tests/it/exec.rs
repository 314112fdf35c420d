//! `iamlease exec`, run as the built binary against a real server and moto, with the real AWS
//! CLI as COMMAND: the command gets a working credential, and whatever way it ends (success,
//! failure, SIGINT, a signal of its own, not found) its user is gone from moto afterwards and
//! its status comes back out.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{ROOT_TOKEN, TestApp, moto};

/// Lets the issued users call what the tests run (sts:GetCallerIdentity needs no permission).
pub const GET_USER_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetUser","Resource":"*"}]}"#;

/// The AWS CLI from the test virtualenv (`scripts/install-deps` installs the pinned awscli).
pub fn aws_cli_dir() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin");
    assert!(
        Path::new(&format!("{dir}/aws")).exists(),
        "the AWS CLI is not in {dir}: run scripts/install-deps"
    );
    dir.to_owned()
}

/// The binary with a clean AWS environment pointed at moto, and its own credential cache.
pub fn command(app: &TestApp, cache: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"));
    cmd.args(args)
        .env("IAMLEASE_ADDR", &app.address)
        .env("IAMLEASE_TOKEN", ROOT_TOKEN)
        .env("IAMLEASE_CACHE_DIR", cache)
        .env("AWS_ENDPOINT_URL", &moto().url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env(
            "PATH",
            format!(
                "{}:{}",
                aws_cli_dir(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .kill_on_drop(true);
    cmd
}

pub async fn run(app: &TestApp, cache: &Path, args: &[&str]) -> Output {
    command(app, cache, args).output().await.unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn app_with_role(role: Value) -> (TestApp, tempfile::TempDir) {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_role("dev", role).await;
    (app, tempfile::tempdir().unwrap())
}

fn dev_role() -> Value {
    json!({"credential_type": "iam_user", "policy_document": GET_USER_DOC})
}

#[tokio::test]
async fn exec_runs_the_aws_cli_with_the_credential_and_revokes_it_afterwards() {
    let (app, cache) = app_with_role(dev_role()).await;
    let m = app.mount.clone();
    let o = run(
        &app,
        cache.path(),
        &[
            "exec",
            "dev",
            "--mount",
            &m,
            "--",
            "aws",
            "sts",
            "get-caller-identity",
            "--output",
            "json",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let who: Value = serde_json::from_slice(&o.stdout).unwrap();
    let arn = who["Arn"].as_str().unwrap();
    assert!(
        arn.contains(&format!(":user/iamlease/{m}/dev/iamlease-dev-")),
        "the issued user's ARN: {arn}"
    );
    // The user existed while the command ran and is gone now; so is the lease.
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn exec_names_variables_by_key_map_and_drops_stale_credentials() {
    let (app, cache) = app_with_role(json!({
        "credential_type": "iam_user",
        "policy_document": GET_USER_DOC,
        "key_map": {"access_key": "TF_VAR_aws_key", "expiration": "CRED_EXPIRES"},
    }))
    .await;
    let m = app.mount.clone();
    let script = r#"printf '%s|%s|%s|%s|%s|%s' "$TF_VAR_aws_key" "${AWS_ACCESS_KEY_ID-unset}" "${AWS_SESSION_TOKEN-unset}" "$AWS_SECRET_ACCESS_KEY" "$AWS_REGION" "$CRED_EXPIRES""#;
    let o = command(
        &app,
        cache.path(),
        &[
            "exec", "dev", "--mount", &m, "--ttl", "10m", "--", "sh", "-c", script,
        ],
    )
    // A parent shell's old credentials must not leak into COMMAND's environment.
    .env("AWS_ACCESS_KEY_ID", "AKIASTALE")
    .env("AWS_SESSION_TOKEN", "stale-token")
    .env_remove("AWS_REGION")
    .env_remove("AWS_DEFAULT_REGION")
    .output()
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let parts: Vec<&str> = out.split('|').collect();
    assert!(parts[0].starts_with("AKIA"), "{out}");
    assert_eq!(parts[1], "unset", "mapped away: {out}");
    assert_eq!(parts[2], "unset", "no stale session token: {out}");
    assert!(parts[3].len() >= 20, "{out}");
    assert_eq!(parts[4], "us-east-1", "the mount's region: {out}");
    assert!(parts[5].ends_with('Z') && parts[5].contains('T'), "{out}");
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn exec_passes_a_failing_status_through_and_still_revokes() {
    let (app, cache) = app_with_role(dev_role()).await;
    let m = app.mount.clone();
    let o = run(
        &app,
        cache.path(),
        &["exec", "dev", "--mount", &m, "--", "sh", "-c", "exit 7"],
    )
    .await;
    assert_eq!(o.status.code(), Some(7), "{}", text(&o.stderr));
    app.assert_nothing_left().await;

    // Killed by a signal of its own: 128 + 15.
    let o = run(
        &app,
        cache.path(),
        &[
            "exec",
            "dev",
            "--mount",
            &m,
            "--",
            "sh",
            "-c",
            "kill -TERM $$",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(143), "{}", text(&o.stderr));
    app.assert_nothing_left().await;

    // Not found: 127, as a shell says, with a message.
    let o = run(
        &app,
        cache.path(),
        &["exec", "dev", "--mount", &m, "--", "no-such-command-here"],
    )
    .await;
    assert_eq!(o.status.code(), Some(127));
    assert!(text(&o.stderr).contains("not found"), "{}", text(&o.stderr));
    app.assert_nothing_left().await;

    // No command: a usage error that shows how.
    let o = run(&app, cache.path(), &["exec", "dev", "--mount", &m]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("COMMAND"), "{}", text(&o.stderr));
}

#[tokio::test]
async fn exec_forwards_sigint_to_the_command_and_revokes_the_lease() {
    let (app, cache) = app_with_role(dev_role()).await;
    let m = app.mount.clone();
    let mut child = command(
        &app,
        cache.path(),
        &[
            "exec",
            "dev",
            "--mount",
            &m,
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 60",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the command started")
        .unwrap();
    assert_eq!(first.as_deref(), Some("ready"));
    // While it runs, its user exists.
    assert_eq!(app.users_in_moto().await.len(), 1);
    let started = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exec ended after SIGINT")
        .unwrap();
    assert_eq!(status.code(), Some(130), "128 + SIGINT");
    assert!(started.elapsed() < Duration::from_secs(30));
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn exec_renew_keeps_the_credential_alive_past_its_ttl() {
    let (app, cache) = app_with_role(json!({
        "credential_type": "iam_user",
        "policy_document": GET_USER_DOC,
        "max_ttl": "1m",
    }))
    .await;
    let m = app.mount.clone();
    // A 4 s lease, used after 6 s: only renewal keeps the reaper from revoking it first.
    let o = run(
        &app,
        cache.path(),
        &[
            "exec",
            "dev",
            "--mount",
            &m,
            "--ttl",
            "4s",
            "--renew",
            "--",
            "sh",
            "-c",
            "sleep 6 && aws sts get-caller-identity --output text --query Arn",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(&format!("/iamlease/{m}/dev/")));
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn exec_interrupted_while_the_key_propagates_revokes_and_runs_nothing() {
    let app = TestApp::spawn().await;
    // The server's wait_ready takes a few seconds: the gate refuses the new key 4 times.
    let gate = crate::support::gate::start_gate(&moto().url, &moto().admin_key, 4).await;
    app.configure_via(&gate.url).await;
    app.write_role("dev", dev_role()).await;
    let cache = tempfile::tempdir().unwrap();
    let m = app.mount.clone();
    let child = command(
        &app,
        cache.path(),
        &["exec", "dev", "--mount", &m, "--", "sh", "-c", "echo ran"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Interrupt once the user exists, i.e. while the server is waiting for the key.
    app.eventually("the user exists", Duration::from_secs(20), || async {
        app.users_in_moto().await.len() == 1
    })
    .await;
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) };
    let o = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("exec ended")
        .unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "", "COMMAND never ran");
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn the_wait_spinner_shows_on_a_terminal_and_nothing_on_a_pipe() {
    let (app, cache) = app_with_role(dev_role()).await;
    let m = app.mount.clone();
    let args = [
        "creds",
        "dev",
        "--mount",
        m.as_str(),
        "--wait",
        "--format",
        "json",
    ];
    // A pipe: stderr stays empty.
    let o = run(&app, cache.path(), &args).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "");
    // A terminal (util-linux `script` gives the command a pseudo-terminal): the spinner, with
    // the elapsed time, while the server waits for AWS.
    let line = format!("{} {}", env!("CARGO_BIN_EXE_iamlease"), args.join(" "));
    let o = command(&app, cache.path(), &[])
        .as_std()
        .get_envs()
        .fold(tokio::process::Command::new("script"), |mut cmd, (k, v)| {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
            cmd
        })
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let screen = text(&o.stdout);
    assert!(
        screen.contains("waiting until AWS accepts the new key") && screen.contains("0s"),
        "{screen}"
    );
    app.call("PUT", &format!("sys/leases/revoke-prefix/{m}/"), None)
        .await;
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn exec_with_an_assumed_role_passes_the_session_token() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let role_name = crate::support::random_name("exec-role-");
    let role_arn = moto().create_assumable_role(&role_name, None).await;
    app.write_role(
        "deploy",
        json!({"credential_type": "assumed_role", "role_arns": [role_arn]}),
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let m = app.mount.clone();
    let o = run(
        &app,
        cache.path(),
        &[
            "exec", "deploy", "--mount", &m, "--", "sh", "-c",
            r#"test -n "$AWS_SESSION_TOKEN" && aws sts get-caller-identity --output text --query Arn"#,
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let arn = text(&o.stdout);
    assert!(
        arn.contains(&format!(":assumed-role/{role_name}/")),
        "{arn}"
    );
    // STS credentials expire in AWS; the lease is forgotten at once.
    app.assert_nothing_left().await;
}
