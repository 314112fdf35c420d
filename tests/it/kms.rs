//! The master key under AWS KMS (moto's KMS, auth on): envelope encryption that survives a
//! restart, clear refusals without KMS access or with the wrong key, and `operator rekey` from a
//! file key to KMS and back, after which the old key opens nothing.

use std::process::Stdio;
use std::time::Duration;

use iamlease::seal::MasterKey;
use reqwest::StatusCode;

use crate::support::process::ServerProcess;
use crate::support::{TestApp, moto, random_name, storage};

async fn kms_key() -> String {
    let m = moto();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            &m.admin_key,
            &m.admin_secret,
            None,
            None,
            "test",
        ))
        .endpoint_url(&m.url)
        .load()
        .await;
    let kms = aws_sdk_kms::Client::new(&config);
    let key = kms.create_key().send().await.unwrap();
    key.key_metadata.unwrap().key_id
}

/// The environment a server (or `operator rekey`) needs to reach moto's KMS as the admin.
fn kms_env(key_id: &str) -> Vec<(String, String)> {
    let m = moto();
    vec![
        ("IAMLEASE_KMS_KEY_ID".into(), key_id.into()),
        ("IAMLEASE_KMS_ENDPOINT".into(), m.url.clone()),
        ("IAMLEASE_KMS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), m.admin_key.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), m.admin_secret.clone()),
    ]
}

fn refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Runs the binary with `args` and `env` (and only the process's own environment besides),
/// expecting it to end within 20 s; returns (success, stderr).
async fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"));
    cmd.args(args)
        .envs(env.iter().copied())
        .env("IAMLEASE_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("the command ends (a server that should refuse to start did start)")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// config/check opens the mount's sealed secret key and calls AWS with it.
async fn secret_opens(address: &str, mount: &str) {
    let app = TestApp::attach(address, mount);
    let r = app
        .call("POST", &format!("{mount}/config/check"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

#[tokio::test]
async fn the_master_key_is_a_kms_data_key_and_kms_refusals_stop_the_start() {
    let key_id = kms_key().await;
    let fresh = storage::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let env = kms_env(&key_id);
    let mut server = ServerProcess::start(&fresh.url, "", &log, &refs(&env)).await;
    let mount = random_name("k");
    TestApp::attach(&server.address, &mount).configure().await;
    secret_opens(&server.address, &mount).await;
    server.terminate().await;

    // The store holds KMS's ciphertext of the key, never the key.
    let store = iamlease::store::open(&fresh.url).await.unwrap();
    let wrapped = store.get_meta("kms_data_key").await.unwrap();
    assert!(
        wrapped.as_ref().is_some_and(|w| w.len() > 32),
        "{wrapped:?}"
    );
    store.close().await;

    // A restart unwraps the same key: the secret sealed before still opens.
    server.restart().await;
    secret_opens(&server.address, &mount).await;
    server.terminate().await;

    let storage_env = ("IAMLEASE_STORAGE", fresh.url.as_str());
    let server_args = ["server", "--dev", "--dev-root-token", "x"];
    // Another KMS key, a key that does not exist, no KMS credentials: refused, naming KMS.
    let other = kms_key().await;
    for (what, key, secret) in [
        ("another key", other.as_str(), moto().admin_secret.as_str()),
        (
            "a missing key",
            "7f3a1c2e-0000-4000-8000-000000000000",
            moto().admin_secret.as_str(),
        ),
        ("wrong credentials", key_id.as_str(), "not-the-secret"),
    ] {
        let mut env = kms_env(key);
        env[4].1 = secret.to_owned();
        let mut env = refs(&env);
        env.push(storage_env);
        let (ok, text) = run(&server_args, &env).await;
        assert!(!ok, "{what}: started");
        assert!(text.contains("KMS"), "{what}: {text}");
    }
    // A file key on a store under KMS: refused, saying so.
    let file_key = MasterKey::generate().unwrap().to_base64();
    let (ok, text) = run(
        &server_args,
        &[storage_env, ("IAMLEASE_MASTER_KEY", file_key.as_str())],
    )
    .await;
    assert!(!ok && text.contains("under AWS KMS"), "{text}");
}

#[tokio::test]
async fn rekey_moves_a_file_key_under_kms_and_back_and_the_old_key_opens_nothing() {
    let key_id = kms_key().await;
    let fresh = storage::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let old_key = MasterKey::generate().unwrap().to_base64();
    let mut server = ServerProcess::start(&fresh.url, &old_key, &log, &[]).await;
    let mount = random_name("r");
    TestApp::attach(&server.address, &mount).configure().await;
    server.terminate().await;

    let storage_env = ("IAMLEASE_STORAGE", fresh.url.as_str());
    let m = moto();
    let (ok, text) = run(
        &[
            "operator",
            "rekey",
            "--to-kms-key-id",
            &key_id,
            "--to-kms-endpoint",
            &m.url,
            "--to-kms-region",
            "us-east-1",
        ],
        &[
            storage_env,
            ("IAMLEASE_MASTER_KEY", old_key.as_str()),
            ("AWS_ACCESS_KEY_ID", m.admin_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", m.admin_secret.as_str()),
        ],
    )
    .await;
    assert!(ok, "{text}");
    assert!(text.contains("Re-sealed"), "{text}");

    // Under KMS now: the old file key is refused, KMS opens the secret written before.
    let server_args = ["server", "--dev", "--dev-root-token", "x"];
    let (ok, text) = run(
        &server_args,
        &[storage_env, ("IAMLEASE_MASTER_KEY", old_key.as_str())],
    )
    .await;
    assert!(!ok && text.contains("under AWS KMS"), "{text}");
    let env = kms_env(&key_id);
    let mut under_kms = ServerProcess::start(&fresh.url, "", &log, &refs(&env)).await;
    secret_opens(&under_kms.address, &mount).await;
    under_kms.terminate().await;

    // And back to a (new) file.
    let new_file = dir.path().join("master.key.new");
    let new_file_text = new_file.display().to_string();
    let mut env_back = refs(&env);
    env_back.push(storage_env);
    let (ok, text) = run(
        &["operator", "rekey", "--to-master-key-file", &new_file_text],
        &env_back,
    )
    .await;
    assert!(ok, "{text}");
    let new_key = std::fs::read_to_string(&new_file).unwrap();
    assert_ne!(new_key.trim(), old_key);
    let mut on_file = ServerProcess::start(&fresh.url, new_key.trim(), &log, &[]).await;
    secret_opens(&on_file.address, &mount).await;
    on_file.terminate().await;
    // The first key opens nothing any more.
    let (ok, text) = run(
        &server_args,
        &[storage_env, ("IAMLEASE_MASTER_KEY", old_key.as_str())],
    )
    .await;
    assert!(!ok && text.contains("does not match"), "{text}");
}
