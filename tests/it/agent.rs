//! `iamlease agent` and `exec --agent`, run as the built binary against a real server and moto
//! (auth on, so a key that works is a key moto accepts), with real consumers: botocore/boto3,
//! the AWS CLI and the AWS SDK for Rust read credentials from the agent's endpoint and keep
//! working across a credential replacement (roles with TTLs of seconds, so the agent must issue
//! new credentials while they run); the endpoint serves only its token's holders; SIGTERM, or
//! the end of `exec`'s command, revokes every lease and leaves no user in moto.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::exec::{GET_USER_DOC, aws_cli_dir, command};
use crate::support::{TestApp, moto};

const URI_VAR: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
const TOKEN_VAR: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";

/// A role whose credential lives 12 s at most, so the agent replaces it within a test.
fn short_role() -> Value {
    json!({
        "credential_type": "iam_user",
        "policy_document": GET_USER_DOC,
        "default_ttl": "6s",
        "max_ttl": "12s",
    })
}

async fn app_with_role(role: Value) -> (TestApp, tempfile::TempDir) {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_role("dev", role).await;
    (app, tempfile::tempdir().unwrap())
}

/// A running `iamlease agent`, with the two variables it printed.
struct AgentProcess {
    child: tokio::process::Child,
    uri: String,
    token: String,
    stderr: Arc<Mutex<String>>,
}

impl AgentProcess {
    async fn start(app: &TestApp, cache: &Path, extra: &[&str]) -> AgentProcess {
        let m = app.mount.clone();
        let mut args = vec!["agent", "dev", "--mount", &m];
        args.extend_from_slice(extra);
        let mut child = command(app, cache, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let log = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        // The agent lets go of standard output once the variables are printed: read to the end.
        let mut out = String::new();
        tokio::time::timeout(
            Duration::from_secs(60),
            child.stdout.take().unwrap().read_to_string(&mut out),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the agent printed its variables: {}",
                stderr.lock().unwrap()
            )
        })
        .unwrap();
        let var = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{name} in {out:?}; {}", stderr.lock().unwrap()))
                .to_owned()
        };
        AgentProcess {
            uri: var(URI_VAR),
            token: var(TOKEN_VAR),
            child,
            stderr,
        }
    }

    /// What the endpoint serves now.
    async fn served(&self) -> Value {
        let r = reqwest::Client::new()
            .get(&self.uri)
            .header("Authorization", &self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", self.log());
        r.json().await.unwrap()
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, and its exit status.
    async fn terminate(mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id().unwrap() as i32, libc::SIGTERM) };
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the agent stopped after SIGTERM")
            .unwrap()
    }
}

/// The environment an SDK in a fresh process gets from the agent: the two variables, moto as
/// the endpoint, and nothing else it could take credentials from.
fn consumer_env(agent: &AgentProcess) -> Vec<(&'static str, String)> {
    vec![
        (URI_VAR, agent.uri.clone()),
        (TOKEN_VAR, agent.token.clone()),
        ("AWS_ENDPOINT_URL", moto().url.clone()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_CONFIG_FILE", "/nonexistent".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

const SHADOWING: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

/// boto3 in a loop for `secs` seconds, one client (so botocore's refreshable credentials, not
/// a fresh fetch per client): one JSON line per call, `{"arn"}` or `{"error"}`.
const BOTO3_LOOP: &str = r#"
import json, sys, time
import boto3
sts = boto3.client("sts")
end = time.time() + float(sys.argv[1])
while time.time() < end:
    try:
        print(json.dumps({"arn": sts.get_caller_identity()["Arn"]}), flush=True)
    except Exception as e:
        print(json.dumps({"error": repr(e)}), flush=True)
    time.sleep(0.25)
"#;

fn python() -> String {
    format!("{}/python", aws_cli_dir())
}

/// The calls' ARNs in order, and the errors.
fn arns_and_errors(out: &str) -> (Vec<String>, Vec<String>) {
    let (mut arns, mut errors) = (Vec::new(), Vec::new());
    for line in out.lines().filter(|l| l.starts_with('{')) {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["arn"].as_str() {
            Some(arn) => arns.push(arn.to_owned()),
            None => errors.push(v["error"].to_string()),
        }
    }
    (arns, errors)
}

fn distinct(arns: &[String]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for a in arns {
        if seen.last() != Some(a) {
            seen.push(a.clone());
        }
    }
    seen
}

/// The invariant: a credential is replaced before it expires. boto3 calls STS every 250 ms
/// for 20 s while the 12 s credentials are replaced under it: every call succeeds, and the
/// caller changes. (Red when the keeper never replaces: checked by making `replace` a no-op,
/// which fails here with `InvalidClientTokenId` once the first user is gone.)
#[tokio::test]
async fn boto3_keeps_working_across_credential_replacements() {
    let (app, cache) = app_with_role(short_role()).await;
    let agent = AgentProcess::start(&app, cache.path(), &[]).await;
    let mut py = tokio::process::Command::new(python());
    py.args(["-c", BOTO3_LOOP, "20"]).envs(consumer_env(&agent));
    for name in SHADOWING {
        py.env_remove(name);
    }
    let o = py.output().await.unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{}\n{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (arns, errors) = arns_and_errors(&out);
    assert!(
        errors.is_empty(),
        "calls failed: {errors:?}\nagent: {}",
        agent.log()
    );
    assert!(arns.len() > 40, "{} calls", arns.len());
    let users = distinct(&arns);
    assert!(
        users.len() >= 2,
        "the caller never changed: {users:?}\nagent: {}",
        agent.log()
    );
    assert!(
        users
            .iter()
            .all(|u| u.contains(&format!("/iamlease/{}/dev/", app.mount)))
    );
    let status = agent.terminate().await;
    assert!(status.success(), "{status:?}");
    app.assert_nothing_left().await;
}

async fn aws_caller(agent: &AgentProcess) -> String {
    let mut aws = tokio::process::Command::new(format!("{}/aws", aws_cli_dir()));
    aws.args(["sts", "get-caller-identity", "--output", "json"])
        .envs(consumer_env(agent));
    for name in SHADOWING {
        aws.env_remove(name);
    }
    let o = aws.output().await.unwrap();
    assert!(
        o.status.success(),
        "aws: {}\nagent: {}",
        String::from_utf8_lossy(&o.stderr),
        agent.log()
    );
    let who: Value = serde_json::from_slice(&o.stdout).unwrap();
    who["Arn"].as_str().unwrap().to_owned()
}

/// The AWS CLI, one process per call as people run it, before and after a replacement.
#[tokio::test]
async fn the_aws_cli_works_before_and_after_a_replacement() {
    let (app, cache) = app_with_role(short_role()).await;
    let agent = AgentProcess::start(&app, cache.path(), &[]).await;
    let first_key = agent.served().await["AccessKeyId"].clone();
    let before = aws_caller(&agent).await;
    app.eventually(
        "the agent serves a new key",
        Duration::from_secs(30),
        || async { agent.served().await["AccessKeyId"] != first_key },
    )
    .await;
    let after = aws_caller(&agent).await;
    assert_ne!(before, after, "a new user after the replacement");
    // The replaced user is revoked once its credential expires.
    let first_user = before.rsplit('/').next().unwrap().to_owned();
    app.eventually(
        "the first user is gone",
        Duration::from_secs(30),
        || async { !app.users_in_moto().await.contains(&first_user) },
    )
    .await;
    let status = agent.terminate().await;
    assert!(status.success(), "{status:?}");
    app.assert_nothing_left().await;
}

/// The endpoint answers only with the token, in the container-credentials shape (`Token`
/// present, empty for an IAM user's key; `Expiration` the credential's real end); a
/// non-loopback `--listen` is refused; `--format env` is for `eval` and lets go of standard
/// output, so `eval "$(iamlease agent … &)"` returns while the agent runs; SIGTERM revokes.
#[tokio::test]
async fn the_endpoint_serves_only_the_token_and_sigterm_revokes() {
    let (app, cache) = app_with_role(json!({
        "credential_type": "iam_user",
        "policy_document": GET_USER_DOC,
        "default_ttl": "10m",
    }))
    .await;
    let m = app.mount.clone();

    let o = crate::exec::run(
        &app,
        cache.path(),
        &["agent", "dev", "--mount", &m, "--listen", "0.0.0.0:0"],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("loopback"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        app.users_in_moto().await,
        Vec::<String>::new(),
        "nothing issued"
    );

    // eval in a shell, the agent in the background: the shell ends while the agent serves.
    let script = format!(
        r#"eval "$({} agent dev --mount {m} --format env 2>/dev/null &)"; printf '%s\n%s\n%s\n%s' "${URI_VAR}" "${TOKEN_VAR}" "$IAMLEASE_AGENT_PID" "${{AWS_ACCESS_KEY_ID-unset}}""#,
        env!("CARGO_BIN_EXE_iamlease")
    );
    // The shell's output goes to a file: a shell may hand its own standard output on to the
    // background job under another descriptor, so its pipe would not end with the shell.
    let printed = cache.path().join("printed");
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        command(&app, cache.path(), &[])
            .as_std()
            .get_envs()
            .fold(tokio::process::Command::new("sh"), |mut cmd, (k, v)| {
                match v {
                    Some(v) => cmd.env(k, v),
                    None => cmd.env_remove(k),
                };
                cmd
            })
            .args(["-c", &script])
            .env("AWS_ACCESS_KEY_ID", "AKIASTALE")
            .stdout(std::fs::File::create(&printed).unwrap())
            .status(),
    )
    .await
    .expect("eval returned while the agent runs on")
    .unwrap();
    assert!(status.success());
    let out = std::fs::read_to_string(&printed).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let pid: i32 = lines.get(2).and_then(|l| l.parse().ok()).expect(&out);
    let _stop = KillOnDrop(pid);
    assert_eq!(lines.len(), 4, "{out}");
    let (uri, token) = (lines[0], lines[1]);
    assert_eq!(lines[3], "unset", "the shell's static key is unset");
    assert!(
        uri.starts_with("http://127.0.0.1:") && uri.ends_with("/creds"),
        "{uri}"
    );
    assert_eq!(token.len(), 64, "{token}");

    let http = reqwest::Client::new();
    let r = http.get(uri).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token");
    let r = http
        .get(uri)
        .header("Authorization", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a wrong token");
    // Its last character changed (a random token may already end in `0`).
    let last = if token.ends_with('0') { '1' } else { '0' };
    let wrong_by_one = format!("{}{last}", &token[..63]);
    let r = http
        .get(uri)
        .header("Authorization", wrong_by_one)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a token off by one character");
    let r = http
        .get(uri)
        .header("Authorization", token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let creds: Value = r.json().await.unwrap();
    assert!(
        creds["AccessKeyId"].as_str().unwrap().starts_with("AKIA"),
        "{creds}"
    );
    assert!(creds["SecretAccessKey"].as_str().unwrap().len() >= 20);
    assert_eq!(creds["Token"], "", "present, empty for an IAM user's key");
    let expiration = time::OffsetDateTime::parse(
        creds["Expiration"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expiration - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(9) && left <= time::Duration::minutes(10),
        "the lease's real end: {left}"
    );
    assert_eq!(app.users_in_moto().await.len(), 1);

    // SAFETY: kill(2) on the agent's pid, which it printed.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    app.eventually(
        "the agent revoked its lease",
        Duration::from_secs(30),
        || async { app.users_in_moto().await.is_empty() },
    )
    .await;
    app.assert_nothing_left().await;
}

/// Stops an agent that is not our child (started by a shell) if the test ends early.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2); the agent may already be gone, which is fine.
        unsafe { libc::kill(self.0, libc::SIGTERM) };
    }
}

/// Runs `rust_sdk_child` (this test binary again, that test alone) with the agent's
/// variables: the environment is process-wide, so the SDK gets a process of its own, where it
/// reads the environment as any Rust program does. Answers the calls' ARNs and errors.
async fn run_rust_sdk(agent: &AgentProcess, mode: &str, secs: u32) -> (Vec<String>, Vec<String>) {
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "agent::rust_sdk_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(consumer_env(agent))
        .env(CHILD_VAR, format!("{mode} {secs}"));
    for name in SHADOWING {
        child.env_remove(name);
    }
    let o = child.output().await.unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{}\n{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    arns_and_errors(&out)
}

/// The AWS SDK for Rust with its default chain (`aws_config::defaults(…).load()`), which picks
/// the container provider from the environment, and an STS credential from the agent.
#[tokio::test]
async fn the_rust_sdk_default_chain_uses_the_agent() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let role_arn = moto()
        .create_assumable_role(&crate::support::random_name("agent"), None)
        .await;
    app.write_role(
        "dev",
        json!({"credential_type": "assumed_role", "role_arns": [role_arn]}),
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(&app, cache.path(), &[]).await;
    let (arns, errors) = run_rust_sdk(&agent, "default-chain", 2).await;
    assert!(errors.is_empty(), "calls failed: {errors:?}");
    assert!(!arns.is_empty());
    assert!(
        arns.iter().all(|a| a.contains(":assumed-role/")),
        "{arns:?}"
    );
    let status = agent.terminate().await;
    assert!(status.success(), "{status:?}");
    app.assert_nothing_left().await;
}

/// The AWS SDK for Rust with IAM users' keys, across replacements: its container provider
/// (`aws_config::ecs::EcsCredentialsProvider`, configured from the environment) calls STS every
/// 250 ms for 20 s while the 12 s credentials are replaced. The Rust SDK sends the empty
/// `Token` as an empty `X-Amz-Security-Token`, which AWS (and moto) refuse for an IAM user's
/// key, so the program drops an empty token (`NoEmptyToken`), as a Rust program using an
/// `iam_user` role through the agent must; with STS roles it needs nothing (the test above).
#[tokio::test]
async fn the_rust_sdk_keeps_working_across_credential_replacements() {
    let (app, cache) = app_with_role(short_role()).await;
    let agent = AgentProcess::start(&app, cache.path(), &[]).await;
    let (arns, errors) = run_rust_sdk(&agent, "iam-user", 20).await;
    assert!(
        errors.is_empty(),
        "calls failed: {errors:?}\nagent: {}",
        agent.log()
    );
    assert!(arns.len() > 20, "{} calls", arns.len());
    let users = distinct(&arns);
    assert!(users.len() >= 2, "the caller never changed: {users:?}");
    let status = agent.terminate().await;
    assert!(status.success(), "{status:?}");
    app.assert_nothing_left().await;
}

/// Set (to `MODE SECONDS`) only in the children of the tests above.
const CHILD_VAR: &str = "IAMLEASE_IT_RUST_SDK_CHILD";

/// The container provider's credential with an empty session token taken as none.
#[derive(Debug)]
struct NoEmptyToken(aws_config::ecs::EcsCredentialsProvider);

impl aws_credential_types::provider::ProvideCredentials for NoEmptyToken {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let c = self.0.provide_credentials().await?;
            if c.session_token().is_some_and(|t| !t.is_empty()) {
                return Ok(c);
            }
            let mut plain = aws_credential_types::Credentials::builder()
                .access_key_id(c.access_key_id())
                .secret_access_key(c.secret_access_key())
                .provider_name("agent");
            plain.set_expiry(c.expiry());
            Ok(plain.build())
        })
    }
}

/// The child of the tests above; does nothing when run on its own (without
/// `IAMLEASE_IT_RUST_SDK_CHILD`). One JSON line per call, as `BOTO3_LOOP` prints.
#[tokio::test]
#[ignore = "run by the_rust_sdk_* tests in a process of its own"]
async fn rust_sdk_child() {
    let Some((mode, secs)) = std::env::var(CHILD_VAR).ok().and_then(|v| {
        let (mode, secs) = v.split_once(' ')?;
        Some((mode.to_owned(), secs.parse::<u64>().ok()?))
    }) else {
        return;
    };
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    let config = match mode.as_str() {
        "default-chain" => loader.load().await,
        _ => {
            let ecs = aws_config::ecs::EcsCredentialsProvider::builder().build();
            loader.credentials_provider(NoEmptyToken(ecs)).load().await
        }
    };
    let sts = aws_sdk_sts::Client::new(&config);
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        let line = match sts.get_caller_identity().send().await {
            Ok(who) => json!({"arn": who.arn()}),
            Err(e) => {
                json!({"error": aws_smithy_types::error::display::DisplayErrorContext(e).to_string()})
            }
        };
        println!("{line}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `exec --agent`: a command that runs longer than the role's max_ttl keeps working (its
/// environment has the agent's two variables and no static keys, even when the parent shell
/// had some), the leases are revoked when it ends, and its exit status comes back out.
#[tokio::test]
async fn exec_agent_outlives_max_ttl_and_leaves_nothing_behind() {
    let (app, cache) = app_with_role(short_role()).await;
    let m = app.mount.clone();
    let script = format!(
        "import os, sys\n\
         assert 'AWS_ACCESS_KEY_ID' not in os.environ and 'AWS_PROFILE' not in os.environ, os.environ\n\
         assert os.environ['{URI_VAR}'].startswith('http://127.0.0.1:')\n\
         sys.argv = ['', '18']\n\
         {BOTO3_LOOP}\nsys.exit(3)\n"
    );
    let o = tokio::time::timeout(
        Duration::from_secs(90),
        command(
            &app,
            cache.path(),
            &[
                "exec",
                "--agent",
                "dev",
                "--mount",
                &m,
                "--",
                &python(),
                "-c",
                &script,
            ],
        )
        .env("AWS_ACCESS_KEY_ID", "AKIASTALE")
        .env("AWS_SECRET_ACCESS_KEY", "stale")
        .env("AWS_PROFILE", "stale")
        .output(),
    )
    .await
    .expect("exec ended")
    .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(3),
        "the command's status\n{}\n{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (arns, errors) = arns_and_errors(&out);
    assert!(errors.is_empty(), "calls failed: {errors:?}");
    assert!(arns.len() > 30, "{} calls", arns.len());
    assert!(distinct(&arns).len() >= 2, "{:?}", distinct(&arns));
    app.assert_nothing_left().await;

    // SIGINT to exec while the command runs: passed on, and still nothing left.
    let mut child = command(
        &app,
        cache.path(),
        &[
            "exec",
            "--agent",
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
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the command started")
        .unwrap();
    assert_eq!(first.as_deref(), Some("ready"));
    assert_eq!(app.users_in_moto().await.len(), 1);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("exec ended after SIGINT")
        .unwrap();
    assert_eq!(status.code(), Some(130));
    app.assert_nothing_left().await;
}
