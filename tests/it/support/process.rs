//! The real `iamlease` binary as a child process, for what an in-process server cannot show:
//! `kill -9` at any moment, SIGTERM, a restart on the same store and port; and `Replica`, one
//! of several such processes on one PostgreSQL database, with the calls the replica tests make.

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::ROOT_TOKEN;
use super::moto::free_port;

pub struct ServerProcess {
    pub address: String,
    port: u16,
    storage: String,
    master_key: String,
    extra_env: Vec<(String, String)>,
    log: std::path::PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    /// Starts `iamlease server --dev` on a free port with the given store and master key
    /// (base64), and waits until it answers.
    pub async fn start(
        storage: &str,
        master_key: &str,
        log: &std::path::Path,
        extra_env: &[(&str, &str)],
    ) -> ServerProcess {
        let port = free_port();
        let mut server = ServerProcess {
            address: format!("http://127.0.0.1:{port}"),
            port,
            storage: storage.to_owned(),
            master_key: master_key.to_owned(),
            extra_env: extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            log: log.to_owned(),
            child: None,
        };
        server.restart().await;
        server
    }

    /// (Re)starts the process on the same port and store, and waits until it is ready.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server before restarting it");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_iamlease"));
        cmd.args(["server", "--dev", "--dev-root-token", ROOT_TOKEN])
            .env("IAMLEASE_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("IAMLEASE_STORAGE", &self.storage)
            // Empty: no key from here (a KMS test names its key in `extra_env`).
            .env("IAMLEASE_MASTER_KEY", &self.master_key)
            .env("IAMLEASE_REAPER_INTERVAL", "1s")
            .env("IAMLEASE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("iamlease binary starts"));
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http
                .get(format!("{}/v1/sys/health", self.address))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "iamlease exited with {status} before it was ready; log: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "iamlease not ready after 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no chance to finish anything.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().expect("running") as libc::pid_t;
        // SAFETY: sending a signal to our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("server stops within 30 s of SIGTERM")
            .unwrap()
    }
}

/// One of several servers on one store: a `ServerProcess` whose AWS calls carry its name in the
/// user agent (`AWS_SDK_UA_APP_ID`, which the recording proxy tells apart) and whose log is
/// `{log_dir}/{name}.log`, with the API calls the replica tests make (as the dev root token).
pub struct Replica {
    pub name: &'static str,
    pub process: ServerProcess,
    http: reqwest::Client,
}

impl Replica {
    pub async fn start(
        name: &'static str,
        storage: &str,
        key: &str,
        log_dir: &std::path::Path,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let mut env = vec![("AWS_SDK_UA_APP_ID", name)];
        env.extend_from_slice(extra_env);
        let log = log_dir.join(format!("{name}.log"));
        Replica {
            name,
            process: ServerProcess::start(storage, key, &log, &env).await,
            http: reqwest::Client::new(),
        }
    }

    pub fn base(&self) -> &str {
        &self.process.address
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let r = self
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/v1/{path}", self.base()),
            )
            .header("X-Vault-Token", token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}", self.name));
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn call(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call_as(ROOT_TOKEN, method, path, body).await
    }

    /// Issues from `{mount}/creds/dev`: the lease id and the IAM user's name.
    pub async fn issue(&self, mount: &str, ttl: &str) -> (String, String) {
        let (s, b) = self
            .call("POST", &format!("{mount}/creds/dev"), json!({"ttl": ttl}))
            .await;
        assert_eq!(s, StatusCode::OK, "issue on {}: {b}", self.name);
        (
            b["lease_id"].as_str().unwrap().to_owned(),
            b["data"]["username"].as_str().unwrap().to_owned(),
        )
    }
}
