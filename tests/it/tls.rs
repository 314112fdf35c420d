//! TLS: the real binary serving HTTPS with a certificate the test makes (rcgen), the CLI
//! trusting it through IAMLEASE_CACERT (and refusing without it), a new certificate picked up
//! on SIGHUP, and plain http:// to a non-loopback address refused by the CLI.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::moto::free_port;

const TOKEN: &str = "tls-test-root-token";

/// Writes a fresh self-signed certificate for 127.0.0.1 and localhost; returns its PEM.
fn make_cert(dir: &Path) -> String {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let pem = ck.cert.pem();
    // Written to temporary names and renamed, so the server never reads half a pair.
    std::fs::write(dir.join("cert.pem.new"), &pem).unwrap();
    std::fs::write(dir.join("key.pem.new"), ck.signing_key.serialize_pem()).unwrap();
    std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem")).unwrap();
    std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem")).unwrap();
    pem
}

fn client_trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

async fn cli(base: &str, cacert: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"));
    cmd.args(args)
        .env("IAMLEASE_ADDR", base)
        .env("IAMLEASE_TOKEN", TOKEN)
        .env_remove("VAULT_CACERT")
        .env_remove("IAMLEASE_INSECURE_HTTP");
    match cacert {
        Some(p) => cmd.env("IAMLEASE_CACERT", p),
        None => cmd.env_remove("IAMLEASE_CACERT"),
    };
    cmd.output().await.unwrap()
}

#[tokio::test]
async fn https_end_to_end_with_a_test_made_certificate_reloaded_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let first = make_cert(dir.path());
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"))
        .args(["server", "--dev", "--dev-root-token", TOKEN])
        .env("IAMLEASE_LISTEN", format!("127.0.0.1:{port}"))
        .env("IAMLEASE_TLS_CERT_FILE", dir.path().join("cert.pem"))
        .env("IAMLEASE_TLS_KEY_FILE", dir.path().join("key.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let trusting_first = client_trusting(&first);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = trusting_first
            .get(format!("{base}/v1/sys/health"))
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            assert_eq!(
                r.headers()["strict-transport-security"],
                "max-age=31536000",
                "HSTS under TLS"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the HTTPS server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The console's cookies are Secure under TLS (security issue #15).
    let login = trusting_first
        .get(format!("{base}/ui/login"))
        .send()
        .await
        .unwrap();
    let cookies: Vec<&str> = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(!cookies.is_empty(), "the sign-in page sets its CSRF cookie");
    assert!(
        cookies.iter().all(|c| c.contains("; Secure")),
        "{cookies:?}"
    );
    // Plain HTTP to the TLS port gets nowhere.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/v1/sys/health"))
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
    );

    // The CLI verifies the certificate: with the CA it works, without it it refuses.
    std::fs::write(dir.path().join("ca-first.pem"), &first).unwrap();
    let o = cli(
        &base,
        Some(&dir.path().join("ca-first.pem")),
        &["mount", "list"],
    )
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("aws/"));
    let o = cli(&base, None, &["mount", "list"]).await;
    assert!(
        !o.status.success(),
        "an unknown certificate must be refused"
    );

    // A renewed certificate is served after SIGHUP, without a restart.
    let second = make_cert(dir.path());
    unsafe { libc::kill(server.id().unwrap() as i32, libc::SIGHUP) };
    let trusting_second = client_trusting(&second);
    let deadline = Instant::now() + Duration::from_secs(10);
    while trusting_second
        .get(format!("{base}/v1/sys/health"))
        .send()
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not loaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        client_trusting(&first)
            .get(format!("{base}/v1/sys/health"))
            .send()
            .await
            .is_err(),
        "the old certificate is no longer served"
    );

    unsafe { libc::kill(server.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(35), server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "server exit: {status}");
}

#[tokio::test]
async fn the_cli_refuses_plain_http_to_a_remote_address_unless_told() {
    let o = cli("http://192.0.2.10:8200", None, &["mount", "list"]).await;
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refusing plain http://"), "{err}");
    // Loopback is allowed: it tries (and fails to connect to a closed port).
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"))
        .args(["mount", "list", "--address", "http://127.0.0.1:9"])
        .env("IAMLEASE_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("refusing plain http://"),
        "loopback is allowed: {err}"
    );
}
