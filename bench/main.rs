//! The benchmarks behind bench/RESULTS.md: issue overhead, the CLI against the aws-cli way,
//! lease and key-history scale, reaper throughput and the store's hot statements. Each measures us and our
//! floor side by side in one run and prints ratios, since the machine is shared.
//!
//! `bench/run NAME [--flag value]…` (a `cargo bench` wrapper). Under `cargo test` (no `--bench`
//! argument) every benchmark runs once at tiny sizes with the debug build, so none can rot;
//! nothing is timed against a target there.

mod history;
#[allow(dead_code)]
#[path = "../tests/it/support/moto.rs"]
mod moto;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt;
use iamlease::config::{DevSettings, MasterKeySource, Settings};
use iamlease::engine::{Engine, EngineSettings};
use iamlease::model::{CredentialType, KeyRecord, Lease, LeaseState, MountPath, RoleName};
use iamlease::seal::{MasterKey, Sealer};
use iamlease::server::Application;
use iamlease::store::{KeyHistoryStore, SqliteStore, Store};
use serde_json::{Value, json};

const TOKEN: &str = "bench-root-token";
const MOUNT: &str = "bench";
const DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#;
/// What the engine uses for revocations, so the raw floor gets the same parallelism.
const REVOKE_CONCURRENCY: usize = 16;

struct Opts {
    smoke: bool,
    flags: HashMap<String, String>,
}

impl Opts {
    /// `--name value`, else the full-run default, else (smoke) the tiny one.
    fn get(&self, name: &str, full: usize, smoke: usize) -> usize {
        match self.flags.get(name) {
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| panic!("--{name} wants a number, got {v:?}")),
            None if self.smoke => smoke,
            None => full,
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let args: Vec<String> = args.into_iter().filter(|a| a != "--bench").collect();
    let (name, flags) = if smoke {
        // cargo test may pass its own arguments (filters, --test-threads): run everything.
        ("all".to_owned(), HashMap::new())
    } else {
        parse_args(&args)
    };
    let opts = Opts { smoke, flags };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "# iamlease bench {name}{} — {} cores, {} MiB RAM, {}",
        if smoke { " (smoke: tiny sizes)" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_total_mib(),
        iamlease::clock::rfc3339(iamlease::clock::now())
    );
    rt.block_on(async {
        match name.as_str() {
            "issue" => issue(&opts).await,
            "cli" => cli(&opts).await,
            "scale" => scale(&opts).await,
            "reaper" => reaper(&opts).await,
            "store" => store(&opts).await,
            "acl" => acl(&opts).await,
            "login" => login(&opts).await,
            "history" => history::history(&opts).await,
            "all" => {
                store(&opts).await;
                acl(&opts).await;
                login(&opts).await;
                reaper(&opts).await;
                issue(&opts).await;
                cli(&opts).await;
                scale(&opts).await;
                history::history(&opts).await;
            }
            other => {
                eprintln!(
                    "unknown benchmark {other:?}; one of: issue cli scale history reaper store acl login all"
                );
                std::process::exit(2);
            }
        }
    });
}

fn parse_args(args: &[String]) -> (String, HashMap<String, String>) {
    let mut name = "all".to_owned();
    let mut flags = HashMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.strip_prefix("--") {
            Some(flag) => {
                let value = it
                    .next()
                    .unwrap_or_else(|| panic!("--{flag} needs a value"));
                flags.insert(flag.to_owned(), value.clone());
            }
            None => name = a.clone(),
        }
    }
    (name, flags)
}

// ---------------------------------------------------------------- measuring

struct Stats {
    median: Duration,
    p99: Duration,
    mean: Duration,
}

fn stats(samples: &[Duration]) -> Stats {
    let mut s = samples.to_vec();
    s.sort();
    let at = |q: f64| s[((s.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        median: at(0.5),
        p99: at(0.99),
        mean: s.iter().sum::<Duration>() / s.len() as u32,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn ratio(ours: Duration, floor: Duration) -> f64 {
    ours.as_secs_f64() / floor.as_secs_f64()
}

fn row(what: &str, ours: &[Duration], floor: &[Duration]) {
    let (o, f) = (stats(ours), stats(floor));
    println!(
        "| {what} | {} / {} | {} / {} | {:.3} | {:.3} |",
        ms(o.median),
        ms(o.p99),
        ms(f.median),
        ms(f.p99),
        ratio(o.median, f.median),
        ratio(o.p99, f.p99)
    );
}

fn mem_total_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// Resident memory of a process, from `/proc/PID/status`.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib / 1024.0
}

fn random_name(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        iamlease::seal::random_string(12, iamlease::seal::LOWER_ALNUM)
    )
}

// ---------------------------------------------------------------- the server and the floor

/// The real server, in process, with the same start-up code as `main`, on the shared moto.
struct Server {
    address: String,
    engine: Arc<Engine>,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(reaper_interval: Duration) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::load(
            None,
            Some(DevSettings {
                root_token: Some(TOKEN.into()),
            }),
            None,
            |_| None,
        )
        .expect("default settings");
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.storage = Some(format!("sqlite://{}/iamlease.db", dir.path().display()));
        settings.master_key = MasterKeySource::Ephemeral;
        settings.reaper_interval = reaper_interval;
        let app = Application::build(&settings).await.expect("server starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let engine = app.engine();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        let server = Server {
            address,
            engine,
            http: reqwest::Client::new(),
            stop: Some(tx),
            handle,
            _dir: dir,
        };
        let m = moto::moto();
        server
            .ok(
                "POST",
                &format!("sys/mounts/{MOUNT}"),
                json!({"type": "aws"}),
            )
            .await;
        server
            .ok(
                "POST",
                &format!("{MOUNT}/config/root"),
                json!({"access_key": m.admin_key, "secret_key": m.admin_secret,
                       "region": "us-east-1", "iam_endpoint": m.url, "sts_endpoint": m.url}),
            )
            .await;
        // The same shape as the raw sequence: CreateUser (path, tags) → PutUserPolicy → CreateAccessKey.
        server
            .ok(
                "POST",
                &format!("{MOUNT}/roles/dev"),
                json!({"credential_type": "iam_user", "policy_document": DOC}),
            )
            .await;
        server
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/v1/{path}", self.address),
            )
            .header("X-Vault-Token", TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("server answers");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    /// `sys/metrics` as Prometheus text.
    async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/v1/sys/metrics", self.address))
            .header("X-Vault-Token", TOKEN)
            .send()
            .await
            .expect("server answers")
            .text()
            .await
            .unwrap()
    }

    async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, body) = self.call(method, path, Some(body)).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {body}"
        );
        body
    }

    /// One credential through HTTP, the store and AWS; returns its lease id.
    async fn issue(&self, ttl: &str) -> String {
        let body = self
            .ok("POST", &format!("{MOUNT}/creds/dev"), json!({"ttl": ttl}))
            .await;
        body["lease_id"].as_str().expect("lease_id").to_owned()
    }

    async fn revoke(&self, lease_id: &str) {
        self.ok("PUT", "sys/leases/revoke", json!({"lease_id": lease_id}))
            .await;
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.handle.await.unwrap().unwrap();
    }
}

/// The mean of a Prometheus summary or histogram (`{name}_sum / {name}_count`) on the series
/// whose labels contain `labels`.
fn series_mean(text: &str, name: &str, labels: &str) -> Option<f64> {
    let value = |suffix: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{suffix}{{")) && l.contains(labels))
            .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    Some(value("_sum")? / value("_count")?)
}

/// The floor for issue: the AWS calls our `iam_user` issue makes, made directly with the same SDK.
async fn raw_issue(iam: &aws_sdk_iam::Client, username: &str, path: &str) -> String {
    let tags = [
        ("iamlease:lease-id", format!("{MOUNT}/creds/dev/{username}")),
        ("iamlease:mount", MOUNT.to_owned()),
        ("iamlease:role", "dev".to_owned()),
        ("iamlease:expires-at", "2030-01-01T00:00:00Z".to_owned()),
        // Who asked (src/engine/attribution.rs): the bench's root token.
        ("iamlease:requester", "root".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| {
        aws_sdk_iam::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
            .unwrap()
    })
    .collect::<Vec<_>>();
    iam.create_user()
        .user_name(username)
        .path(path)
        .set_tags(Some(tags))
        .send()
        .await
        .expect("CreateUser");
    iam.put_user_policy()
        .user_name(username)
        .policy_name("iamlease")
        .policy_document(DOC)
        .send()
        .await
        .expect("PutUserPolicy");
    iam.create_access_key()
        .user_name(username)
        .send()
        .await
        .expect("CreateAccessKey")
        .access_key
        .unwrap()
        .access_key_id
}

/// The floor for revocation: the calls our revocation makes for such a user (src/aws/iam_user.rs).
async fn raw_revoke(iam: &aws_sdk_iam::Client, username: &str) {
    let keys = iam
        .list_access_keys()
        .user_name(username)
        .send()
        .await
        .expect("ListAccessKeys");
    for k in keys.access_key_metadata() {
        iam.delete_access_key()
            .user_name(username)
            .access_key_id(k.access_key_id().unwrap_or_default())
            .send()
            .await
            .expect("DeleteAccessKey");
    }
    let attached = iam
        .list_attached_user_policies()
        .user_name(username)
        .send()
        .await
        .expect("ListAttachedUserPolicies");
    for p in attached.attached_policies() {
        iam.detach_user_policy()
            .user_name(username)
            .policy_arn(p.policy_arn().unwrap_or_default())
            .send()
            .await
            .expect("DetachUserPolicy");
    }
    let inline = iam
        .list_user_policies()
        .user_name(username)
        .send()
        .await
        .expect("ListUserPolicies");
    for p in inline.policy_names() {
        iam.delete_user_policy()
            .user_name(username)
            .policy_name(p)
            .send()
            .await
            .expect("DeleteUserPolicy");
    }
    let groups = iam
        .list_groups_for_user()
        .user_name(username)
        .send()
        .await
        .expect("ListGroupsForUser");
    for g in groups.groups() {
        iam.remove_user_from_group()
            .user_name(username)
            .group_name(g.group_name())
            .send()
            .await
            .expect("RemoveUserFromGroup");
    }
    iam.delete_user()
        .user_name(username)
        .send()
        .await
        .expect("DeleteUser");
}

/// What moto really holds afterwards: nothing may be left under either path.
async fn assert_no_users(path_prefix: &str) {
    let users = moto::moto()
        .iam()
        .list_users()
        .path_prefix(path_prefix)
        .send()
        .await
        .unwrap()
        .users;
    assert!(
        users.is_empty(),
        "{} IAM users left under {path_prefix}",
        users.len()
    );
}

// ---------------------------------------------------------------- issue overhead

async fn issue(opts: &Opts) {
    let n = opts.get("n", 200, 4);
    let n32 = opts.get("n32", 320, 32);
    let concurrency = opts.get("concurrency", 32, 8);
    let m = moto::moto();
    let iam = m.iam();
    let server = Server::start(Duration::from_secs(1)).await;
    let raw_path = format!("/{}/", random_name("bench-raw-"));
    let our_path = format!("/iamlease/{MOUNT}/");

    // Warm up both (connections, SDK client, SQLite pages) so neither pays a first-call cost.
    for _ in 0..3 {
        let lease = server.issue("1h").await;
        server.revoke(&lease).await;
        let user = random_name("raw");
        raw_issue(&iam, &user, &raw_path).await;
        raw_revoke(&iam, &user).await;
    }

    // c=1, interleaved so that drift in the shared machine's load hits both alike.
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    let (mut leases, mut users) = (Vec::new(), Vec::new());
    for i in 0..n {
        let user = random_name("raw");
        let one_ours = || async {
            let t = Instant::now();
            let lease = server.issue("1h").await;
            (t.elapsed(), lease)
        };
        let one_raw = |user: String| {
            let iam = iam.clone();
            let path = raw_path.clone();
            async move {
                let t = Instant::now();
                raw_issue(&iam, &user, &path).await;
                t.elapsed()
            }
        };
        if i % 2 == 0 {
            let (d, lease) = one_ours().await;
            ours.push(d);
            leases.push(lease);
            floor.push(one_raw(user.clone()).await);
        } else {
            floor.push(one_raw(user.clone()).await);
            let (d, lease) = one_ours().await;
            ours.push(d);
            leases.push(lease);
        }
        users.push(user);
    }
    println!(
        "\n## issue overhead: {n} iam_user issues at c=1, interleaved with the raw SDK sequence\n"
    );
    println!(
        "| operation | iamlease median / p99 | raw SDK median / p99 | ratio (median) | ratio (p99) |"
    );
    println!("|---|---|---|---|---|");
    row("issue (c=1)", &ours, &floor);
    // Where our time goes, from the server's own histograms (means over every issue so far,
    // the warm-up's included): the handler inside the gate, and `Engine::issue` inside that.
    let text = server.metrics_text().await;
    let mean_ms = |name: &str, labels: &str| {
        series_mean(&text, name, labels).map_or("n/a".to_owned(), |s| format!("{:.2} ms", s * 1e3))
    };
    let floor_mean = floor.iter().map(Duration::as_secs_f64).sum::<f64>() / floor.len() as f64;
    let ours_mean = ours.iter().map(Duration::as_secs_f64).sum::<f64>() / ours.len() as f64;
    let aws_ms: f64 = ["CreateUser", "PutUserPolicy", "CreateAccessKey"]
        .iter()
        .filter_map(|op| {
            series_mean(
                &text,
                "iamlease_aws_call_duration_seconds",
                &format!("operation=\"{op}\""),
            )
        })
        .sum::<f64>()
        * 1e3;
    println!(
        "\nmeans at c=1: client-observed {:.2} ms; server handler {} (excludes HTTP, the gate and its token read); \
         `Engine::issue` {}, of which its three AWS calls {aws_ms:.2} ms; raw SDK sequence {:.2} ms\n",
        ours_mean * 1e3,
        mean_ms("iamlease_http_request_duration_seconds", "creds"),
        mean_ms("iamlease_issue_duration_seconds", "outcome=\"ok\""),
        floor_mean * 1e3,
    );

    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for (i, (lease, user)) in leases.iter().zip(&users).enumerate() {
        let t = Instant::now();
        if i % 2 == 0 {
            server.revoke(lease).await;
            ours.push(t.elapsed());
            let t = Instant::now();
            raw_revoke(&iam, user).await;
            floor.push(t.elapsed());
        } else {
            raw_revoke(&iam, user).await;
            floor.push(t.elapsed());
            let t = Instant::now();
            server.revoke(lease).await;
            ours.push(t.elapsed());
        }
    }
    row("revoke (c=1, sync)", &ours, &floor);

    // c=32: throughput, alternating phases (floor, ours, floor, ours) and summing each side.
    let (mut our_time, mut raw_time) = (Duration::ZERO, Duration::ZERO);
    let mut our_leases = Vec::new();
    let mut raw_users = Vec::new();
    for _round in 0..2 {
        let names: Vec<String> = (0..n32 / 2).map(|_| random_name("raw")).collect();
        let t = Instant::now();
        futures::stream::iter(names.clone())
            .for_each_concurrent(concurrency, |u| {
                let iam = iam.clone();
                let path = raw_path.clone();
                async move {
                    raw_issue(&iam, &u, &path).await;
                }
            })
            .await;
        raw_time += t.elapsed();
        raw_users.extend(names);
        let t = Instant::now();
        let got: Vec<String> = futures::stream::iter(0..n32 / 2)
            .map(|_| server.issue("1h"))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        our_time += t.elapsed();
        our_leases.extend(got);
    }
    let total = (n32 / 2 * 2) as f64;
    let (our_rate, raw_rate) = (
        total / our_time.as_secs_f64(),
        total / raw_time.as_secs_f64(),
    );
    println!(
        "\nissue throughput at c={concurrency}: iamlease {our_rate:.1}/s, raw SDK {raw_rate:.1}/s, ratio {:.3} ({} each)",
        our_rate / raw_rate,
        total
    );
    // Clean up both sides, then check moto really holds nothing.
    let srv = &server;
    futures::stream::iter(our_leases)
        .for_each_concurrent(REVOKE_CONCURRENCY, |l| async move { srv.revoke(&l).await })
        .await;
    futures::stream::iter(raw_users)
        .for_each_concurrent(REVOKE_CONCURRENCY, |u| {
            let iam = iam.clone();
            async move { raw_revoke(&iam, &u).await }
        })
        .await;
    assert_no_users(&our_path).await;
    assert_no_users(&raw_path).await;
    server.stop().await;
}

// ---------------------------------------------------------------- CLI vs aws-cli

fn aws_cli() -> String {
    std::env::var("AWS_CLI")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/aws").to_owned())
}

async fn run(cmd: &mut tokio::process::Command) -> Vec<u8> {
    let out = cmd.output().await.expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

async fn cli(opts: &Opts) {
    let n = opts.get("n", 10, 2);
    let m = moto::moto();
    let server = Server::start(Duration::from_secs(1)).await;
    let policy_arn = m
        .iam()
        .create_policy()
        .policy_name(random_name("bench-cli-"))
        .policy_document(DOC)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap()
        .arn
        .unwrap();
    // The seed's manual way: create-user, attach-user-policy, create-access-key.
    server
        .ok(
            "POST",
            &format!("{MOUNT}/roles/cli"),
            json!({"credential_type": "iam_user", "policy_arns": [policy_arn]}),
        )
        .await;
    let raw_path = format!("/{}/", random_name("bench-awscli-"));
    let aws = aws_cli();
    let aws_cmd = |args: &[&str]| {
        let mut c = tokio::process::Command::new(&aws);
        c.args(["--endpoint-url", &m.url, "--output", "json", "iam"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &m.admin_key)
            .env("AWS_SECRET_ACCESS_KEY", &m.admin_secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_PROFILE");
        c
    };
    let ours_cmd = || {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"));
        c.args(["creds", "cli", "--mount", MOUNT, "--format", "json"])
            .env("IAMLEASE_ADDR", &server.address)
            .env("IAMLEASE_TOKEN", TOKEN);
        c
    };
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    let mut users = Vec::new();
    for i in 0..n + 1 {
        let user = random_name("awscli");
        let t_ours = async {
            let t = Instant::now();
            let out = run(&mut ours_cmd()).await;
            let v: Value = serde_json::from_slice(&out).expect("creds --format json");
            assert!(v.to_string().contains("access_key"), "{v}");
            t.elapsed()
        };
        let t_raw = async {
            let t = Instant::now();
            run(&mut aws_cmd(&[
                "create-user",
                "--user-name",
                &user,
                "--path",
                &raw_path,
            ]))
            .await;
            run(&mut aws_cmd(&[
                "attach-user-policy",
                "--user-name",
                &user,
                "--policy-arn",
                &policy_arn,
            ]))
            .await;
            run(&mut aws_cmd(&["create-access-key", "--user-name", &user])).await;
            t.elapsed()
        };
        let (a, b) = if i % 2 == 0 {
            let a = t_ours.await;
            (a, t_raw.await)
        } else {
            let b = t_raw.await;
            (t_ours.await, b)
        };
        users.push(user);
        // The first of each is a warm-up (page cache, Python imports).
        if i > 0 {
            ours.push(a);
            floor.push(b);
        }
    }
    println!(
        "\n## CLI: `iamlease creds cli --format json` vs the aws-cli sequence, {n} runs each, interleaved\n"
    );
    let (o, f) = (stats(&ours), stats(&floor));
    println!("| | median | mean | p99 |");
    println!("|---|---|---|---|");
    println!(
        "| iamlease creds | {} | {} | {} |",
        ms(o.median),
        ms(o.mean),
        ms(o.p99)
    );
    println!(
        "| aws-cli (3 commands) | {} | {} | {} |",
        ms(f.median),
        ms(f.mean),
        ms(f.p99)
    );
    println!(
        "\niamlease creds is {:.1}x faster (median), {:.1}x (mean)",
        ratio(f.median, o.median),
        ratio(f.mean, o.mean)
    );
    server
        .ok(
            "PUT",
            &format!("sys/leases/revoke-prefix/{MOUNT}/creds/cli"),
            json!({}),
        )
        .await;
    let iam = m.iam();
    for u in &users {
        raw_revoke(&iam, u).await;
    }
    assert_no_users(&format!("/iamlease/{MOUNT}/cli/")).await;
    assert_no_users(&raw_path).await;
    server.stop().await;
}

// ---------------------------------------------------------------- lease scale

/// The real release binary (`iamlease server --dev`) on the store at `url`: the child, its
/// address, and the time from spawn to the first `200` from `sys/health`.
async fn serve_store(url: &str) -> (tokio::process::Child, String, Duration) {
    let port = moto::free_port();
    let address = format!("http://127.0.0.1:{port}");
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let http = reqwest::Client::new();
    let t = Instant::now();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"))
        .args(["server", "--dev", "--dev-root-token", TOKEN])
        .env("IAMLEASE_STORAGE", url)
        .env("IAMLEASE_MASTER_KEY", &key)
        .env("IAMLEASE_LISTEN", format!("127.0.0.1:{port}"))
        .env("IAMLEASE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start iamlease server");
    loop {
        if let Ok(r) = http.get(format!("{address}/v1/sys/health")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "server never ready");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (child, address, t.elapsed())
}

fn bulk_lease(i: usize, state: LeaseState, credential_type: CredentialType, due_at: i64) -> Lease {
    let now = iamlease::clock::now();
    let lease = Lease::pending_iam_user(
        MountPath::parse(MOUNT).unwrap(),
        RoleName::parse("dev").unwrap(),
        format!("iamlease-dev-{i:016}"),
        now,
        (due_at - now).max(0),
        (due_at - now).max(0),
        due_at,
    )
    .with_id(format!("{MOUNT}/creds/dev/{i:024}"))
    .with_access_key_id(format!("AKIA{i:016}"))
    .with_state(state, due_at);
    Lease {
        credential_type,
        ..lease
    }
}

/// Fills a store with `n` leases through the store layer, in chunks of one transaction each.
async fn bulk_load(
    store: &SqliteStore,
    n: usize,
    state: LeaseState,
    credential_type: CredentialType,
    due_at: i64,
) -> Duration {
    let t = Instant::now();
    let chunk = 50_000;
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let leases: Vec<Lease> = (start..end)
            .map(|i| bulk_lease(i, state, credential_type, due_at))
            .collect();
        store.insert_leases_bulk(&leases).await.unwrap();
        start = end;
    }
    t.elapsed()
}

async fn scale(opts: &Opts) {
    let sizes = [
        opts.get("small", 1_000, 100),
        opts.get("large", 1_000_000, 5_000),
    ];
    let lookups = opts.get("lookups", 500, 10);
    let watch_secs = opts.get("watch-secs", 30, 2);
    let scans = opts.get("scans", 3_600, 5);
    println!(
        "\n## lease scale: the real binary (`iamlease server`) over a store of N active leases\n"
    );
    println!(
        "| active leases | bulk load | start → sys/health ready | RSS after start | RSS after {watch_secs} s (reaper + lookups) | lookup median / p99 | RSS growth over {scans} reaper passes (in-process) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut ready_times = Vec::new();
    for &n in &sizes {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/iamlease.db", dir.path().display());
        let store = SqliteStore::open(&url).await.unwrap();
        let far = iamlease::clock::now() + 30 * 24 * 3600;
        let load = bulk_load(&store, n, LeaseState::Active, CredentialType::IamUser, far).await;
        store.close().await;

        let (mut child, address, ready) = serve_store(&url).await;
        let pid = child.id().unwrap();
        let http = reqwest::Client::new();
        ready_times.push(ready);
        let rss_start = rss_mib(pid);
        let mut latencies = Vec::new();
        let watch_until = Instant::now() + Duration::from_secs(watch_secs as u64);
        for i in 0..lookups {
            let id = format!("{MOUNT}/creds/dev/{:024}", (i * 7919) % n);
            let t = Instant::now();
            let r = http
                .put(format!("{address}/v1/sys/leases/lookup"))
                .header("X-Vault-Token", TOKEN)
                .json(&json!({"lease_id": id}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "lookup {id}: {}", r.status());
            r.bytes().await.unwrap();
            latencies.push(t.elapsed());
        }
        // Let the reaper run its passes (one a second) over the full store.
        tokio::time::sleep_until(watch_until.into()).await;
        let rss_after = rss_mib(pid);
        child.start_kill().unwrap();
        child.wait().await.unwrap();

        // An hour of passes at the default 1 s interval, faster: the engine's own idle pass,
        // over the same million-lease store, in this process.
        let store = Arc::new(SqliteStore::open(&url).await.unwrap());
        let engine = Engine::new(
            store.clone() as Arc<dyn Store>,
            Sealer::new(&MasterKey::generate().unwrap()),
            EngineSettings::default(),
        );
        engine.reap_due().await.unwrap();
        let before = rss_mib(std::process::id());
        for _ in 0..scans {
            assert_eq!(engine.reap_due().await.unwrap(), 0);
        }
        let growth = rss_mib(std::process::id()) - before;
        store.close().await;

        let l = stats(&latencies);
        println!(
            "| {n} | {:.1} s | {} | {rss_start:.1} MiB | {rss_after:.1} MiB | {} / {} | {growth:+.1} MiB |",
            load.as_secs_f64(),
            ms(ready),
            ms(l.median),
            ms(l.p99)
        );
    }
    println!(
        "\nstart-up at {} / at {}: {:.2}x",
        sizes[1],
        sizes[0],
        ratio(ready_times[1], ready_times[0])
    );
}

// ---------------------------------------------------------------- reaper throughput

async fn reaper(opts: &Opts) {
    let n = opts.get("n", 100_000, 2_000);
    let m_leases = opts.get("moto-leases", 200, 8);

    // Our own overhead: expired STS leases need no AWS call to revoke, so a pass over them is
    // the claim, dispatch and forget of the engine and store, with a provider that does no I/O.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/r.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let past = iamlease::clock::now() - 60;
    bulk_load(
        &store,
        n,
        LeaseState::Active,
        CredentialType::AssumedRole,
        past,
    )
    .await;
    let engine = Engine::new(
        store.clone() as Arc<dyn Store>,
        Sealer::new(&MasterKey::generate().unwrap()),
        EngineSettings::default(),
    );
    let t = Instant::now();
    let mut handled = 0;
    loop {
        let h = engine.reap_due().await.unwrap();
        if h == 0 {
            break;
        }
        handled += h;
    }
    let took = t.elapsed();
    assert_eq!(handled, n);
    assert!(
        store
            .list_lease_ids("", None, None, 1)
            .await
            .unwrap()
            .is_empty(),
        "leases left after the reaper"
    );
    store.close().await;
    println!("\n## reaper throughput\n");
    println!(
        "in-process, no-I/O provider: {n} expired leases revoked in {:.2} s = {:.0} revocations/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );

    // Against moto: the engine's pass over expired iam_user leases vs the raw revocation sequence
    // over as many users of the same shape, with the same parallelism.
    let iam = moto::moto().iam();
    // An hour-long interval: the background reaper's first pass runs at start (empty store),
    // and this benchmark drives the next one itself.
    let server = Server::start(Duration::from_secs(3600)).await;
    let raw_path = format!("/{}/", random_name("bench-reap-"));
    let users: Vec<String> = (0..m_leases).map(|_| random_name("raw")).collect();
    futures::stream::iter(users.clone())
        .for_each_concurrent(REVOKE_CONCURRENCY, |u| {
            let iam = iam.clone();
            let path = raw_path.clone();
            async move {
                raw_issue(&iam, &u, &path).await;
            }
        })
        .await;
    let issued: Vec<String> = futures::stream::iter(0..m_leases)
        .map(|_| server.issue("1s"))
        .buffer_unordered(REVOKE_CONCURRENCY)
        .collect()
        .await;
    assert_eq!(issued.len(), m_leases);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let t = Instant::now();
    let reaped = server.engine.reap_due().await.unwrap();
    let ours = t.elapsed();
    assert_eq!(reaped, m_leases);
    let t = Instant::now();
    futures::stream::iter(users)
        .for_each_concurrent(REVOKE_CONCURRENCY, |u| {
            let iam = iam.clone();
            async move { raw_revoke(&iam, &u).await }
        })
        .await;
    let floor = t.elapsed();
    assert_no_users(&format!("/iamlease/{MOUNT}/")).await;
    assert_no_users(&raw_path).await;
    let (our_rate, raw_rate) = (
        m_leases as f64 / ours.as_secs_f64(),
        m_leases as f64 / floor.as_secs_f64(),
    );
    println!(
        "against moto, {m_leases} iam_user leases, concurrency {REVOKE_CONCURRENCY}: reaper {our_rate:.1}/s, raw sequence {raw_rate:.1}/s, ratio {:.3}",
        our_rate / raw_rate
    );
    server.stop().await;
}

// ---------------------------------------------------------------- store statements

async fn store(opts: &Opts) {
    let rows = opts.get("rows", 100_000, 1_000);
    let iters = opts.get("iters", 1_000, 20);
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&format!("sqlite://{}/s.db", dir.path().display()))
        .await
        .unwrap();
    let far = iamlease::clock::now() + 86_400;
    bulk_load(&s, rows, LeaseState::Active, CredentialType::IamUser, far).await;
    println!(
        "\n## store statements (SQLite, WAL, synchronous=FULL) over {rows} active leases, {iters} each\n"
    );
    println!("| statement | median | p99 | per second (1 caller) |");
    println!("|---|---|---|---|");
    let report = |what: &str, samples: &[Duration]| {
        let st = stats(samples);
        println!(
            "| {what} | {} | {} | {:.0} |",
            ms(st.median),
            ms(st.p99),
            1.0 / st.mean.as_secs_f64()
        );
    };
    let now = iamlease::clock::now();
    let meta = std::collections::BTreeMap::new();
    let mut samples = Vec::new();
    for i in 0..iters {
        let l = bulk_lease(rows + i, LeaseState::Pending, CredentialType::IamUser, far);
        let t = Instant::now();
        s.insert_lease(&l).await.unwrap();
        samples.push(t.elapsed());
    }
    report("insert_lease (intent record, one commit)", &samples);
    let mut samples = Vec::new();
    for i in 0..iters {
        let l = bulk_lease(rows + i, LeaseState::Pending, CredentialType::IamUser, far);
        let key = KeyRecord::for_lease(&l, &format!("AKIA{:016}", rows + i), "bench", &meta);
        let t = Instant::now();
        assert!(s.activate_lease(&key, far).await.unwrap());
        samples.push(t.elapsed());
    }
    report("activate_lease (with its key-history row)", &samples);
    let mut samples = Vec::new();
    for i in 0..iters {
        let id = format!("{MOUNT}/creds/dev/{:024}", (i * 7919) % rows);
        let t = Instant::now();
        assert!(s.get_lease(&id).await.unwrap().is_some());
        samples.push(t.elapsed());
    }
    report("get_lease (lookup)", &samples);
    let mut samples = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        assert!(s.claim_due(now, now + 300, 256).await.unwrap().is_empty());
        samples.push(t.elapsed());
    }
    report("claim_due, nothing due (idle reaper pass)", &samples);
    let mut samples = Vec::new();
    for i in 0..iters {
        let id = format!("{MOUNT}/creds/dev/{:024}", rows + i);
        let t = Instant::now();
        assert!(s.claim_lease(&id, now, now + 300).await.unwrap().is_some());
        s.delete_lease(&id).await.unwrap();
        samples.push(t.elapsed());
    }
    report("claim_lease + delete_lease (sync revoke)", &samples);
    let mut samples = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        let page = s
            .list_lease_ids(&format!("{MOUNT}/creds/dev/"), None, None, 100)
            .await
            .unwrap();
        assert_eq!(page.len(), 100.min(rows));
        samples.push(t.elapsed());
    }
    report("list_lease_ids, a page of 100", &samples);
    let batches = (iters / 10).max(2);
    let mut samples = Vec::new();
    for b in 0..batches {
        let ids: Vec<String> = (0..256)
            .map(|j| format!("{MOUNT}/creds/dev/{:024}", (b * 256 + j) % rows))
            .collect();
        let t = Instant::now();
        s.delete_leases(&ids).await.unwrap();
        samples.push(t.elapsed());
    }
    report("delete_leases, 256 per commit (reaper batch)", &samples);
    s.close().await;
}

// ---------------------------------------------------------------- acl

/// A token's authentication with its policies (the gate's one per request), with the parse
/// cached by the policies' texts, side by side with parsing and merging them every time (what
/// each request did before).
async fn acl(opts: &Opts) {
    use iamlease::auth::policy::{Acl, Policy};
    let paths = opts.get("paths", 1000, 50);
    let iters = opts.get("iters", 500, 10);
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/a.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let text: String = (0..paths)
        .map(|i| format!("path \"aws/creds/team-{i}-*\" {{ capabilities = [\"read\"] }}\n"))
        .collect();
    iamlease::auth::write_policy(&store, "big", &text)
        .await
        .unwrap();
    let now = iamlease::clock::now();
    let spec = iamlease::auth::TokenSpec {
        policies: vec!["big".into()],
        display_name: "bench".into(),
        ttl: Some(3600),
        renewable: true,
        path: "auth/token/create".into(),
        ..iamlease::auth::TokenSpec::root()
    };
    let (token, _) = iamlease::auth::create_token(&store, spec, now)
        .await
        .unwrap();
    let mut cached = Vec::new();
    let mut parsed = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        let caller = iamlease::auth::authenticate(&store, &token, now)
            .await
            .unwrap()
            .unwrap();
        assert!(!caller.acl.is_root());
        cached.push(t.elapsed());
        let t = Instant::now();
        let text = store.get_policy("big").await.unwrap().unwrap();
        let acl = Acl::new(&[Policy::parse(&text).unwrap()]);
        assert!(!acl.is_root());
        parsed.push(t.elapsed());
    }
    let (c, p) = (stats(&cached), stats(&parsed));
    println!(
        "\n## a token's policies per request: {paths}-path policy, {iters} requests, side by side\n"
    );
    println!("| per request | median | p99 |");
    println!("|---|---|---|");
    println!(
        "| authenticate, parse cached by text (now) | {} | {} |",
        ms(c.median),
        ms(c.p99)
    );
    println!(
        "| read + parse + merge every time (before) | {} | {} |",
        ms(p.median),
        ms(p.p99)
    );
    println!(
        "\nratio (before / now, median): {:.1}×",
        ratio(p.median, c.median)
    );
}

/// A JWT login against an AppRole login, side by side: once a mount's keys are cached a JWT
/// login is a signature check and claim rules on top of the same store work (role read,
/// token insert), and no network call.
async fn login(opts: &Opts) {
    use iamlease::auth::approle::{self, AppRole, SecretIdRequest};
    use iamlease::auth::jwt::{self, JwtConfig, JwtRole, KeyCache, RoleType, SecretChange};
    use iamlease::auth::mounts::{AuthMountRequest, enable};
    use iamlease::model::AuthKind;
    let iters = opts.get("iters", 500, 5);
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&format!("sqlite://{}/l.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let now = iamlease::clock::now();
    let sealer = Sealer::new(&MasterKey::generate().unwrap());
    let cache = KeyCache::new();
    let mount = |p: &str, kind| AuthMountRequest {
        path: MountPath::parse(p).unwrap(),
        kind,
        description: None,
        default_lease_ttl: None,
        max_lease_ttl: None,
    };
    let (ar_path, jwt_path) = (
        MountPath::parse("approle").unwrap(),
        MountPath::parse("jwt").unwrap(),
    );
    let role = RoleName::parse("ci").unwrap();
    enable(&store, mount("approle", AuthKind::AppRole), now)
        .await
        .unwrap();
    approle::write_role(&store, &ar_path, &role, &AppRole::default(), None)
        .await
        .unwrap();
    let role_id = approle::read_role(&store, &ar_path, &role)
        .await
        .unwrap()
        .unwrap()
        .role_id;
    let secret =
        approle::create_secret_id(&store, &ar_path, &role, SecretIdRequest::default(), now)
            .await
            .unwrap()
            .secret_id;

    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    enable(&store, mount("jwt", AuthKind::Jwt), now)
        .await
        .unwrap();
    let config = JwtConfig {
        jwt_validation_pubkeys: vec![pair.public_key_pem()],
        ..JwtConfig::default()
    };
    jwt::write_config(
        &store,
        &cache,
        &sealer,
        &jwt_path,
        config,
        SecretChange::Clear,
    )
    .await
    .unwrap();
    let jwt_role = JwtRole {
        role_type: RoleType::Jwt,
        user_claim: "sub".into(),
        bound_audiences: vec!["ci".into()],
        ..JwtRole::default()
    };
    jwt::write_role(&store, &jwt_path, &role, &jwt_role)
        .await
        .unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der());
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &json!({"sub": "pipeline", "aud": "ci", "iat": now, "exp": now + 3600}),
        &key,
    )
    .unwrap();

    let (mut by_jwt, mut by_approle) = (Vec::new(), Vec::new());
    for _ in 0..iters {
        let t = Instant::now();
        jwt::login(&store, &cache, &jwt_path, Some("ci"), &token, None, now)
            .await
            .unwrap();
        by_jwt.push(t.elapsed());
        let t = Instant::now();
        approle::login(&store, &ar_path, &role_id, Some(&secret), None, now)
            .await
            .unwrap();
        by_approle.push(t.elapsed());
    }
    let (j, a) = (stats(&by_jwt), stats(&by_approle));
    println!("\n## logins: {iters} of each, side by side (keys cached, SQLite store)\n");
    println!("| login | median | p99 |");
    println!("|---|---|---|");
    println!(
        "| JWT (ES256, PEM key) | {} | {} |",
        ms(j.median),
        ms(j.p99)
    );
    println!(
        "| AppRole (role_id + secret_id) | {} | {} |",
        ms(a.median),
        ms(a.p99)
    );
    println!(
        "\nratio (JWT / AppRole, median): {:.2}×",
        ratio(j.median, a.median)
    );
}
