//! The audit log, through the real binary: a request line and a response line for every request
//! of the end-to-end flow, no secret in clear, `iamlease audit hash` matching, reaper expiries
//! audited, rotation on SIGHUP, and fail-closed (no audit line → 503, nothing created in AWS).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::moto::free_port;
use crate::support::{DOC, moto, random_name};

const TOKEN: &str = "audit-test-root-token";

/// The built binary running `server --dev` with the given extra environment.
pub struct BinServer {
    pub base: String,
    pub child: tokio::process::Child,
    pub http: reqwest::Client,
}

impl BinServer {
    pub async fn start(dir: &Path, env: &[(&str, String)]) -> BinServer {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let key = iamlease::seal::MasterKey::generate().unwrap().to_base64();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"));
        cmd.args(["server", "--dev", "--dev-root-token", TOKEN])
            .env("IAMLEASE_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "IAMLEASE_STORAGE",
                format!("sqlite://{}", dir.join("iamlease.db").display()),
            )
            .env("IAMLEASE_MASTER_KEY", &key)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
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
        BinServer { base, child, http }
    }

    /// Calls `/v1/{path}` with the root token; returns status, body and the request id header.
    pub async fn call(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value, String) {
        let r = self
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/v1/{path}", self.base),
            )
            .header("X-Vault-Token", TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let id = r
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            id,
        )
    }

    pub fn signal(&self, signal: i32) {
        let pid = self.child.id().unwrap() as i32;
        unsafe { libc::kill(pid, signal) };
    }

    pub async fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "server exit: {status}");
    }
}

pub fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
        .collect()
}

pub async fn audit_hash(base: &str, value: &str) -> String {
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"))
        .args(["audit", "hash", value])
        .env("IAMLEASE_ADDR", base)
        .env("IAMLEASE_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn every_request_is_audited_without_secrets_and_the_log_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let audit_path: PathBuf = dir.path().join("audit.jsonl");
    let server = BinServer::start(
        dir.path(),
        &[
            ("IAMLEASE_AUDIT_LOG", audit_path.display().to_string()),
            ("IAMLEASE_LOG", "debug".into()),
        ],
    )
    .await;
    let mount = random_name("aud");
    let m = moto();
    let mut request_ids = Vec::new();
    let mut step = async |method: &str, path: &str, body: Value, want: StatusCode| {
        let (s, b, id) = server.call(method, path, body).await;
        assert_eq!(s, want, "{method} {path}: {b}");
        assert!(!id.is_empty(), "every response carries X-Request-Id");
        request_ids.push(id);
        b
    };
    step(
        "POST",
        &format!("sys/mounts/{mount}"),
        json!({"type": "aws"}),
        StatusCode::NO_CONTENT,
    )
    .await;
    step(
        "POST",
        &format!("{mount}/config/root"),
        json!({"access_key": m.admin_key, "secret_key": m.admin_secret, "region": "us-east-1",
               "iam_endpoint": m.url, "sts_endpoint": m.url}),
        StatusCode::NO_CONTENT,
    )
    .await;
    step(
        "POST",
        &format!("{mount}/roles/dev"),
        json!({"credential_type": "iam_user", "policy_document": DOC}),
        StatusCode::NO_CONTENT,
    )
    .await;
    let b = step(
        "POST",
        "auth/token/create",
        json!({"policies": ["default"], "ttl": "1h"}),
        StatusCode::OK,
    )
    .await;
    let child_token = b["auth"]["client_token"].as_str().unwrap().to_owned();
    // A lookup answers the token itself as `data.id` (Vault's shape): the log keeps it HMAC'd.
    let looked = step(
        "POST",
        "auth/token/lookup",
        json!({"token": child_token}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(looked["data"]["id"], child_token.as_str());
    let kept = step(
        "POST",
        &format!("{mount}/creds/dev"),
        json!({"ttl": "10m"}),
        StatusCode::OK,
    )
    .await;
    let expiring = step(
        "POST",
        &format!("{mount}/creds/dev"),
        json!({"ttl": "2s"}),
        StatusCode::OK,
    )
    .await;
    let kept_lease = kept["lease_id"].as_str().unwrap().to_owned();
    let expiring_lease = expiring["lease_id"].as_str().unwrap().to_owned();
    let secrets = [
        kept["data"]["secret_key"].as_str().unwrap().to_owned(),
        expiring["data"]["secret_key"].as_str().unwrap().to_owned(),
    ];
    step(
        "PUT",
        "sys/leases/renew",
        json!({"lease_id": kept_lease, "increment": "20m"}),
        StatusCode::OK,
    )
    .await;
    step(
        "PUT",
        "sys/leases/revoke",
        json!({"lease_id": kept_lease}),
        StatusCode::NO_CONTENT,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !moto()
        .users_under(&format!("/iamlease/{mount}/"))
        .await
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the reaper did not revoke");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every request has a request line and a response line under the id the client saw.
    let audit = lines(&audit_path);
    for id in &request_ids {
        let kinds: HashSet<&str> = audit
            .iter()
            .filter(|l| l["request_id"] == id.as_str())
            .map(|l| l["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            HashSet::from(["request", "response"]),
            "audit lines of request {id}"
        );
    }
    let issue_response = audit
        .iter()
        .find(|l| l["type"] == "response" && l["request"]["lease_id"] == kept_lease.as_str())
        .expect("the issue's response line names its lease");
    assert_eq!(issue_response["request"]["mount"], mount.as_str());
    assert_eq!(issue_response["request"]["role"], "dev");
    assert_eq!(issue_response["auth"]["display_name"], "root");
    assert_eq!(issue_response["auth"]["policy_results"]["allowed"], true);
    assert_eq!(issue_response["response"]["status"], 200);
    // Which key it was is readable (an access key id is no secret; CloudTrail shows it), so the
    // log alone answers who held a key.
    assert_eq!(
        issue_response["response"]["data"]["data"]["access_key"],
        kept["data"]["access_key"]
    );
    assert!(
        kept["data"]["access_key"]
            .as_str()
            .unwrap()
            .starts_with("AKIA")
    );
    assert!(
        issue_response["remote_address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    // `iamlease audit hash` gives what the log holds in place of the secret key.
    let hashed = audit_hash(&server.base, &secrets[0]).await;
    assert!(hashed.starts_with("hmac-sha256:"), "{hashed}");
    assert_eq!(
        issue_response["response"]["data"]["data"]["secret_key"],
        hashed.as_str()
    );
    // The reaper's revocation of the expired lease is audited.
    assert!(
        lines(&audit_path).iter().any(|l| l["type"] == "lease"
            && l["event"] == "expired"
            && l["lease_id"] == expiring_lease.as_str()),
        "the reaper's revocation is in the audit log"
    );

    let audit_bytes = std::fs::read(&audit_path).unwrap();
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    for (what, secret) in [
        ("root secret key", m.admin_secret.as_str()),
        ("issued secret key", &secrets[0]),
        ("issued secret key", &secrets[1]),
        ("root token", TOKEN),
        ("created token", &child_token),
    ] {
        let text = String::from_utf8_lossy(&audit_bytes);
        assert!(!text.contains(secret), "{what} found in the audit log");
        assert!(!log.contains(secret), "{what} found in the server log");
    }
    // Structured logs carry the same request ids as the audit log.
    assert!(
        log.contains(&request_ids[4]),
        "the server log names the issue's request id"
    );

    // Rotation: move the file away, SIGHUP, and new lines go to a new file.
    let rotated = dir.path().join("audit.jsonl.1");
    std::fs::rename(&audit_path, &rotated).unwrap();
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _, id) = server.call("GET", "sys/mounts", json!({})).await;
        assert_eq!(s, StatusCode::OK);
        if lines(&audit_path)
            .iter()
            .any(|l| l["request_id"] == id.as_str())
        {
            break;
        }
        assert!(Instant::now() < deadline, "the audit log was not reopened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // (A request in flight during the reopen may straddle both files; the next one may not.)
    let (s, _, id) = server.call("GET", "sys/mounts", json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        lines(&audit_path)
            .iter()
            .filter(|l| l["request_id"] == id.as_str())
            .count(),
        2,
        "both lines of a request after the reopen are in the new file"
    );
    assert!(
        !lines(&rotated)
            .iter()
            .any(|l| l["request_id"] == id.as_str()),
        "after the reopen nothing more goes to the rotated file"
    );

    // Fail-closed: the path becomes unwritable (a directory), the reopen fails, and issuing is
    // refused with 503 before any AWS call.
    std::fs::remove_file(&audit_path).unwrap();
    std::fs::create_dir(&audit_path).unwrap();
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.call("GET", "sys/mounts", json!({})).await.0 != StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            Instant::now() < deadline,
            "the broken audit log was not noticed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, b, _) = server
        .call("POST", &format!("{mount}/creds/dev"), json!({}))
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    let text = b["errors"][0].as_str().unwrap();
    assert!(text.contains("audit log cannot be written"), "{text}");
    assert!(
        moto()
            .users_under(&format!("/iamlease/{mount}/"))
            .await
            .is_empty(),
        "moto holds no user from the refused request"
    );
    server.stop().await;
}
