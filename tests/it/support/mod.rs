//! Test harness: a real iamlease server (the same start-up code as `main`) on port 0 with a
//! fresh store, talking to the shared moto server; helpers to call the API and to look at what
//! moto really holds.
//!
//! The store is a fresh SQLite file, or, when `IAMLEASE_TEST_STORAGE` holds a PostgreSQL URL
//! (`scripts/test` starts a throwaway cluster for that), a fresh database on that server: the
//! same tests run against both stores.

pub mod gate;
pub mod moto;
pub mod process;
pub mod proxy;
pub mod storage;

use std::time::{Duration, Instant};

use iamlease::config::{DevSettings, MasterKeySource, Settings};
use iamlease::duration::Ttl;
use iamlease::seal::MasterKey;
use iamlease::server::Application;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub use moto::{moto, sts_client, sts_client_with_token};

pub const ROOT_TOKEN: &str = "test-root-token";

/// A small valid inline policy for roles that need one.
pub const DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#;

pub struct Options {
    pub revoke_max_backoff: Ttl,
    pub pending_grace: Duration,
    /// Use this store instead of a fresh one (restart tests; see `storage::fresh`).
    pub storage: Option<String>,
    pub master_key: Option<MasterKey>,
    /// The server's `wait_ready_timeout` instead of its default.
    pub wait_ready_timeout: Option<Duration>,
    /// Changes any other setting before the server is built.
    pub tweak: Box<dyn Fn(&mut Settings)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            revoke_max_backoff: Ttl::from_secs(2),
            pending_grace: Duration::from_secs(120),
            storage: None,
            master_key: None,
            wait_ready_timeout: None,
            tweak: Box::new(|_| {}),
        }
    }
}

pub struct TestApp {
    pub address: String,
    /// A mount of our own, so each test's IAM users live under their own path in moto.
    pub mount: String,
    /// Holds the fresh store (a SQLite file is removed when the test ends).
    _storage: Option<storage::TestStorage>,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn error_text(&self) -> String {
        self.body["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }
}

pub fn random_name(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        iamlease::seal::random_string(10, iamlease::seal::LOWER_ALNUM)
    )
}

impl TestApp {
    /// A client for a server that runs elsewhere (e.g. a real `iamlease` process), with the
    /// same helpers; `mount` names this test's mount on it.
    pub fn attach(address: &str, mount: &str) -> TestApp {
        TestApp {
            address: address.to_owned(),
            mount: mount.to_owned(),
            _storage: None,
            http: reqwest::Client::new(),
            shutdown: None,
            server: None,
        }
    }

    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> TestApp {
        let (storage, fresh) = match options.storage {
            Some(url) => (url, None),
            None => {
                let fresh = storage::fresh().await;
                (fresh.url.clone(), Some(fresh))
            }
        };
        // Start from what an empty config file gives, so new settings get their defaults here too.
        let mut settings = Settings::load(
            None,
            Some(DevSettings {
                root_token: Some(ROOT_TOKEN.into()),
            }),
            None,
            |_| None,
        )
        .expect("default settings");
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.storage = Some(storage);
        settings.master_key = match options.master_key {
            Some(k) => MasterKeySource::Inline(k),
            None => MasterKeySource::Ephemeral,
        };
        settings.reaper_interval = Duration::from_secs(1);
        settings.revoke_max_backoff = options.revoke_max_backoff;
        settings.pending_grace = options.pending_grace;
        if let Some(t) = options.wait_ready_timeout {
            settings.wait_ready_timeout = t;
        }
        (options.tweak)(&mut settings);
        let app = Application::build(&settings).await.expect("server starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        TestApp {
            address,
            mount: random_name("t"),
            _storage: fresh,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server the way SIGTERM does, and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.unwrap().unwrap();
        }
    }

    pub async fn call_with_token(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        self.try_call_with_token(token, method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// As `call`, but a failed connection (a killed server) is an `Err`, not a panic.
    pub async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Resp, String> {
        self.try_call_with_token(Some(ROOT_TOKEN), method, path, body)
            .await
    }

    async fn try_call_with_token(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Resp, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}/v1/{}", self.address, path));
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.map_err(|e| e.to_string())?;
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.map_err(|e| e.to_string())?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))
        };
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.call_with_token(Some(ROOT_TOKEN), method, path, body)
            .await
    }

    /// Mounts this test's engine and points it at moto (or at `endpoint`, e.g. a proxy).
    pub async fn configure(&self) {
        self.configure_via(&moto().url).await;
    }

    pub async fn configure_via(&self, endpoint: &str) {
        self.enable_mount().await;
        let m = moto();
        let r = self
            .write_root_config(json!({
                "access_key": m.admin_key,
                "secret_key": m.admin_secret,
                "region": "us-east-1",
                "iam_endpoint": endpoint,
                "sts_endpoint": endpoint,
            }))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    }

    /// Mounts this test's engine without configuring how it reaches AWS.
    pub async fn enable_mount(&self) {
        let r = self
            .call(
                "POST",
                &format!("sys/mounts/{}", self.mount),
                Some(json!({"type": "aws"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    }

    pub async fn write_root_config(&self, body: Value) -> Resp {
        self.call("POST", &format!("{}/config/root", self.mount), Some(body))
            .await
    }

    pub async fn write_role(&self, name: &str, body: Value) {
        let r = self
            .call("POST", &format!("{}/roles/{name}", self.mount), Some(body))
            .await;
        assert!(
            r.status.is_success(),
            "writing role {name}: {} {:?}",
            r.status,
            r.body
        );
    }

    /// The common test role: an `iam_user` with a small inline policy.
    pub async fn write_user_role(&self, name: &str) {
        self.write_role(
            name,
            json!({"credential_type": "iam_user", "policy_document": DOC}),
        )
        .await;
    }

    /// Revokes every lease of this test's mount, then checks nothing is left in AWS or the store.
    pub async fn revoke_all_and_check(&self) {
        let r = self
            .call(
                "PUT",
                &format!("sys/leases/revoke-prefix/{}/", self.mount),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        self.assert_nothing_left().await;
    }

    pub async fn issue(&self, role: &str, body: Value) -> Resp {
        self.call("POST", &format!("{}/creds/{role}", self.mount), Some(body))
            .await
    }

    /// The IAM path prefix all of this test's users live under.
    pub fn path_prefix(&self) -> String {
        format!("/iamlease/{}/", self.mount)
    }

    pub async fn users_in_moto(&self) -> Vec<String> {
        moto()
            .users_under(&self.path_prefix())
            .await
            .into_iter()
            .map(|u| u.user_name)
            .collect()
    }

    /// Waits (bounded) until `check` holds; fails the test with `what` otherwise.
    pub async fn eventually<F, Fut>(&self, what: &str, within: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + within;
        while !check().await {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The teardown check: no IAM user of ours in moto and no lease in the store.
    pub async fn assert_nothing_left(&self) {
        assert_eq!(
            self.users_in_moto().await,
            Vec::<String>::new(),
            "IAM users left behind"
        );
        // A reaper pass forgets its batch in one commit after the AWS deletes, so a lease row can
        // outlive its user by a moment; it must not outlive it by more.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = self
                .call("LIST", &format!("sys/leases/lookup/{}/", self.mount), None)
                .await;
            if r.status == StatusCode::NOT_FOUND {
                return;
            }
            assert!(Instant::now() < deadline, "leases left: {:?}", r.body);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
