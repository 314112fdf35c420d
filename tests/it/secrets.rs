//! Secrets stay secret: the root secret key, every issued secret key and every token are absent
//! from the store, from the server's logs (JSON, debug level) and from the audit log; a console
//! session leaves neither its cookie, nor its token, nor its CSRF token in the store. The store
//! is read raw: on SQLite the database, WAL and shared-memory files; on PostgreSQL a `pg_dump` of
//! the database, its table and index files (dead row versions included) and the WAL.

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::moto::free_port;
use crate::support::{DOC, Options, TestApp, moto, random_name, storage};
use crate::ui::{Browser, csrf_in};

const TOKEN: &str = "leak-test-root-token";

async fn call(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let r = http
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{base}/v1/{path}"),
        )
        .header("X-Vault-Token", TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    memchr::memmem::find(haystack, needle.as_bytes()).is_some()
}

/// Every byte the store holds: the SQLite files, or PostgreSQL's dump, files and WAL.
pub(crate) async fn store_bytes(store: &storage::TestStorage) -> Vec<u8> {
    let mut bytes = Vec::new();
    let Some(db) = &store.sqlite_file else {
        let dump = std::process::Command::new("pg_dump")
            .arg(&store.url)
            .output()
            .expect("pg_dump runs");
        assert!(dump.status.success(), "pg_dump: {dump:?}");
        bytes.extend(dump.stdout);
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&store.url)
            .await
            .unwrap();
        // Written out, so the files hold what the server wrote (and later deleted).
        sqlx::query("CHECKPOINT").execute(&mut conn).await.unwrap();
        let (data_dir, oid): (String, sqlx::postgres::types::Oid) = sqlx::query_as(
            "SELECT current_setting('data_directory'), oid FROM pg_database WHERE datname = current_database()",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let data_dir = std::path::PathBuf::from(data_dir);
        for dir in [
            data_dir.join("base").join(oid.0.to_string()),
            data_dir.join("pg_wal"),
        ] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    bytes.extend(std::fs::read(path).unwrap());
                }
            }
        }
        return bytes;
    };
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(format!("{}{suffix}", db.display())) {
            bytes.extend(b);
        }
    }
    bytes
}

#[tokio::test]
async fn secret_keys_never_reach_the_store_or_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage::fresh().await;
    let log_path = dir.path().join("server.log");
    let audit_path = dir.path().join("audit.jsonl");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let key = iamlease::seal::MasterKey::generate().unwrap().to_base64();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"))
        .args(["server", "--dev", "--dev-root-token", TOKEN])
        .env("IAMLEASE_LISTEN", format!("127.0.0.1:{port}"))
        .env("IAMLEASE_STORAGE", &store.url)
        .env("IAMLEASE_MASTER_KEY", &key)
        .env("IAMLEASE_LOG", "debug")
        .env("IAMLEASE_LOG_FORMAT", "json")
        .env("IAMLEASE_AUDIT_LOG", &audit_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http
        .get(format!("{base}/v1/sys/health"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mount = random_name("leak");
    let m = moto();
    assert_eq!(
        call(
            &http,
            &base,
            "POST",
            &format!("sys/mounts/{mount}"),
            json!({"type": "aws"})
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (s, b) = call(
        &http,
        &base,
        "POST",
        &format!("{mount}/config/root"),
        json!({
            "access_key": m.admin_key, "secret_key": m.admin_secret, "region": "us-east-1",
            "iam_endpoint": m.url, "sts_endpoint": m.url,
        }),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, b) = call(
        &http,
        &base,
        "POST",
        &format!("{mount}/roles/dev"),
        json!({"credential_type": "iam_user", "policy_document": DOC}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");

    // A scoped token, used once: only its hash may be stored, and it must not be logged.
    let (s, b) = call(
        &http,
        &base,
        "PUT",
        "sys/policies/acl/dev",
        json!({"policy": format!("path \"{mount}/creds/dev\" {{ capabilities = [\"update\"] }}")}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, b) = call(
        &http,
        &base,
        "POST",
        "auth/token/create",
        json!({"policies": ["dev"], "ttl": "1h"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let child_token = b["auth"]["client_token"].as_str().unwrap().to_owned();
    let r = http
        .get(format!("{base}/v1/auth/token/lookup-self"))
        .header("X-Vault-Token", &child_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Issue three: one revoked, one renewed then revoked, one left to expire and be reaped.
    let mut secrets = Vec::new();
    let mut lease_ids = Vec::new();
    for ttl in ["10m", "10m", "2s"] {
        let (s, b) = call(
            &http,
            &base,
            "POST",
            &format!("{mount}/creds/dev"),
            json!({"ttl": ttl}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        secrets.push(b["data"]["secret_key"].as_str().unwrap().to_owned());
        lease_ids.push(b["lease_id"].as_str().unwrap().to_owned());
    }
    let (s, _) = call(
        &http,
        &base,
        "PUT",
        "sys/leases/renew",
        json!({"lease_id": lease_ids[1], "increment": "20m"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    for id in &lease_ids[..2] {
        let (s, _) = call(
            &http,
            &base,
            "PUT",
            "sys/leases/revoke",
            json!({"lease_id": id}),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while !moto()
        .users_under(&format!("/iamlease/{mount}/"))
        .await
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "reaper did not revoke the expired lease"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Stop it as an operator would (SIGTERM), so logs and the WAL are as they end up on disk.
    let pid = server.id().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "server exit: {status}");

    let log = std::fs::read(&log_path).unwrap();
    let audit = std::fs::read(&audit_path).unwrap();
    // JSON logs: every line is an object, and request events carry their request id.
    let log_lines: Vec<Value> = String::from_utf8_lossy(&log)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}")))
        .collect();
    assert!(
        log_lines.iter().any(|l| l["span"]["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())),
        "request log lines carry the request id"
    );
    assert!(
        contains(&audit, &lease_ids[2]),
        "the audit log mentions the reaped lease"
    );
    let store_bytes = store_bytes(&store).await;
    // Positive controls: we are reading the right files.
    assert!(
        contains(&log, &lease_ids[2]),
        "the log mentions the reaped lease"
    );
    assert!(
        contains(&store_bytes, &m.admin_key),
        "the store holds the root access key id"
    );

    for (what, secret) in std::iter::once(("root secret key", m.admin_secret.as_str()))
        .chain(secrets.iter().map(|s| ("issued secret key", s.as_str())))
    {
        assert!(!contains(&store_bytes, secret), "{what} found in the store");
        assert!(!contains(&log, secret), "{what} found in the server log");
        assert!(!contains(&audit, secret), "{what} found in the audit log");
    }
    assert!(
        !contains(&store_bytes, TOKEN),
        "the root token is stored only as a hash"
    );
    assert!(
        !contains(&store_bytes, &child_token),
        "a created token is stored only as a hash"
    );
    for (what, token) in [
        ("a created token", child_token.as_str()),
        ("the root token", TOKEN),
    ] {
        assert!(!contains(&log, token), "{what} is never logged");
        assert!(
            !contains(&audit, token),
            "{what} is only hashed in the audit log"
        );
    }
}

/// A console session keeps nothing in the store that would let a copy of the database act as
/// the browser or the token: not the session id (the cookie's value), not the token, not the
/// CSRF token; only the id's hash, the token sealed, and what is not secret.
#[tokio::test]
async fn console_sessions_leave_no_cookie_token_or_csrf_in_the_store() {
    let store = storage::fresh().await;
    let app = TestApp::spawn_with(Options {
        storage: Some(store.url.clone()),
        ..Options::default()
    })
    .await;
    let r = app
        .call(
            "POST",
            "auth/token/create",
            Some(json!({"display_name": "console-leak"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let token = r.body["auth"]["client_token"].as_str().unwrap().to_owned();
    let accessor = r.body["auth"]["accessor"].as_str().unwrap().to_owned();
    let mut b = Browser::new(&app);
    b.sign_in(&token).await;
    let id = b.cookie("iamlease_session").unwrap();
    let (_, page, _) = b.get("/ui/mounts").await;
    let csrf = csrf_in(&page);
    // A form whose outcome waits in the session's row for the next page.
    let (status, _, _) = b
        .post(
            "/ui/mounts",
            &[("csrf", &csrf), ("path", &random_name("leak"))],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // And a session signed out, whose row is deleted (its bytes may linger in the files).
    let mut gone = Browser::new(&app);
    gone.sign_in(&token).await;
    let gone_id = gone.cookie("iamlease_session").unwrap();
    let (_, page, _) = gone.get("/ui/mounts").await;
    let gone_csrf = csrf_in(&page);
    gone.post("/ui/logout", &[("csrf", &gone_csrf)]).await;
    app.stop().await;

    let bytes = store_bytes(&store).await;
    // Positive controls: the session's row is in what we read.
    for shown in [
        accessor.as_str(),
        "token-console-leak",
        "is mounted; now connect it to AWS.",
    ] {
        assert!(contains(&bytes, shown), "the store lacks {shown:?}");
    }
    for (what, secret) in [
        ("the session id", id.as_str()),
        ("the signed-out session id", gone_id.as_str()),
        ("the token", token.as_str()),
        ("the CSRF token", csrf.as_str()),
        ("the signed-out session's CSRF token", gone_csrf.as_str()),
    ] {
        assert!(!contains(&bytes, secret), "{what} found in the store");
    }
}
