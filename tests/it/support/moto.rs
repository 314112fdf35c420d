//! One moto server per test binary, on 127.0.0.1 and a free port, with authentication turned
//! on after an admin user is made, so every key in every test is really checked.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_iam::config::Region;

pub struct Moto {
    pub url: String,
    pub admin_key: String,
    pub admin_secret: String,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

pub fn moto() -> &'static Moto {
    MOTO.get_or_init(start)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn moto_binary() -> String {
    std::env::var("MOTO_SERVER").unwrap_or_else(|_| {
        let local = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/moto_server");
        assert!(
            std::path::Path::new(local).exists(),
            "moto_server not found: run scripts/test (it installs moto into .venv) or set MOTO_SERVER"
        );
        local.to_owned()
    })
}

fn spawn_moto(port: u16) -> Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(moto_binary());
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe; it makes the kernel kill moto when the thread that
    // spawned it (parked forever below) goes, i.e. when the test binary exits.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().expect("start moto_server")
}

fn start() -> Moto {
    let (tx, rx) = std::sync::mpsc::channel();
    // The parent-death signal follows the spawning thread, so that thread must live as long as
    // the process: it spawns moto, reports, and parks.
    std::thread::spawn(move || {
        let port = free_port();
        let child = spawn_moto(port);
        tx.send(bootstrap(port)).unwrap();
        let _keep = child;
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("moto bootstrap (see the panic above)")
}

/// Runs on the spawning thread, outside any test's runtime.
fn bootstrap(port: u16) -> Moto {
    let url = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http
            .get(format!("{url}/moto-api/data.json"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "moto did not start on {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Auth is off until we say: make the admin whose key every test uses, then turn it on.
        let iam = iam_client(&url, "bootstrap", "bootstrap");
        iam.create_user().user_name("iamlease-admin").send().await.unwrap();
        iam.put_user_policy()
            .user_name("iamlease-admin")
            .policy_name("admin")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
            .send()
            .await
            .unwrap();
        let key = iam
            .create_access_key()
            .user_name("iamlease-admin")
            .send()
            .await
            .unwrap()
            .access_key
            .unwrap();
        let r = http
            .post(format!("{url}/moto-api/reset-auth"))
            .header("content-type", "text/plain")
            .body("0")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "turning moto auth on: {}", r.status());
        Moto {
            url: url.clone(),
            admin_key: key.access_key_id,
            admin_secret: key.secret_access_key,
        }
    })
}

fn sdk_config(url: &str, key: &str, secret: &str) -> aws_config::SdkConfig {
    sdk_config_with_token(url, key, secret, None)
}

fn sdk_config_with_token(
    url: &str,
    key: &str,
    secret: &str,
    session_token: Option<&str>,
) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                key,
                secret,
                session_token.map(str::to_owned),
                None,
                "test",
            )),
        )
        .build()
}

pub fn iam_client(url: &str, key: &str, secret: &str) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&sdk_config(url, key, secret))
}

pub fn sts_client(url: &str, key: &str, secret: &str) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(&sdk_config(url, key, secret))
}

/// STS with temporary credentials (access key, secret and session token).
pub fn sts_client_with_token(
    url: &str,
    key: &str,
    secret: &str,
    session_token: &str,
) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(&sdk_config_with_token(
        url,
        key,
        secret,
        Some(session_token),
    ))
}

impl Moto {
    /// IAM as the admin: how tests look at what AWS really holds.
    pub fn iam(&self) -> aws_sdk_iam::Client {
        iam_client(&self.url, &self.admin_key, &self.admin_secret)
    }

    pub async fn users_under(&self, path_prefix: &str) -> Vec<aws_sdk_iam::types::User> {
        self.iam()
            .list_users()
            .path_prefix(path_prefix)
            .send()
            .await
            .unwrap()
            .users
    }

    /// Makes a customer-managed policy (moto has no AWS-managed ones loaded) and returns its ARN.
    pub async fn create_policy(&self, name: &str) -> String {
        self.iam()
            .create_policy()
            .policy_name(name)
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#)
            .send()
            .await
            .unwrap()
            .policy
            .unwrap()
            .arn
            .unwrap()
    }

    /// Makes an IAM role that the admin may assume (optionally only with `external_id`),
    /// allowed everything, and returns its ARN.
    pub async fn create_assumable_role(&self, name: &str, external_id: Option<&str>) -> String {
        let mut statement = serde_json::json!({
            "Effect": "Allow",
            // moto matches the calling user's ARN exactly; AWS also accepts the account root.
            "Principal": {"AWS": [
                "arn:aws:iam::123456789012:root",
                "arn:aws:iam::123456789012:user/iamlease-admin",
            ]},
            "Action": "sts:AssumeRole",
        });
        if let Some(id) = external_id {
            statement["Condition"] = serde_json::json!({"StringEquals": {"sts:ExternalId": id}});
        }
        let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [statement]});
        let arn = self
            .iam()
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust.to_string())
            .max_session_duration(43200)
            .send()
            .await
            .unwrap()
            .role
            .unwrap()
            .arn;
        self.iam()
            .put_role_policy()
            .role_name(name)
            .policy_name("all")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
            .send()
            .await
            .unwrap();
        arn
    }

    pub async fn create_group(&self, name: &str) {
        self.iam()
            .create_group()
            .group_name(name)
            .send()
            .await
            .unwrap();
    }
}
