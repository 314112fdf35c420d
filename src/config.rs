//! Server settings: read from a TOML file, then from `IAMLEASE_*` environment variables (which
//! win), then validated into `Settings` before anything starts. Every variable is listed here.
//!
//! | setting (file key / env var)                  | default                                   |
//! |-----------------------------------------------|-------------------------------------------|
//! | `listen` / `IAMLEASE_LISTEN`                  | `127.0.0.1:8200`                          |
//! | `storage` / `IAMLEASE_STORAGE`                | `sqlite://./iamlease-data/iamlease.db`, or `postgres://…` (TLS: `?sslmode=verify-full&sslrootcert=…`) |
//! | `master_key_file` / `IAMLEASE_MASTER_KEY_FILE`| `./iamlease-data/master.key` (made 0600)  |
//! | — / `IAMLEASE_MASTER_KEY`                     | base64 of 32 bytes; wins over the file    |
//! | `reaper_interval` / `IAMLEASE_REAPER_INTERVAL`| `1s`                                      |
//! | `revoke_max_backoff` / `IAMLEASE_REVOKE_MAX_BACKOFF` | `1h`                               |
//! | `pending_grace` / `IAMLEASE_PENDING_GRACE`    | `2m`: how old a `pending` lease must be before recovery rolls it back |
//! | `claim_timeout` / `IAMLEASE_CLAIM_TIMEOUT`    | `5m`: when another server may take over a revocation in progress from a replica that is alive but stuck |
//! | `failover_timeout` / `IAMLEASE_FAILOVER_TIMEOUT` | `15s`: how long a replica may miss its heartbeats before another takes over its issues and revocations in progress (at least 2s) |
//! | `sweep_interval` / `IAMLEASE_SWEEP_INTERVAL`  | off: how often to sweep every mount for orphaned IAM users |
//! | `shutdown_timeout` / `IAMLEASE_SHUTDOWN_TIMEOUT` | `30s`: how long in-flight requests may finish after SIGTERM |
//! | `log_level` / `IAMLEASE_LOG` (or `RUST_LOG`)  | `info`                                    |
//! | `wait_ready_timeout` / `IAMLEASE_WAIT_READY_TIMEOUT` | `30s`: how long `wait_ready` waits for AWS to accept a new key |
//! | `log_format` / `IAMLEASE_LOG_FORMAT`          | `pretty` (human text) or `json` (one object per line, with the span's `request_id`) |
//! | `audit_log` / `IAMLEASE_AUDIT_LOG`            | off; a file path (appended, 0600) or `stdout` |
//! | `rate_limit_per_token` / `IAMLEASE_RATE_LIMIT_PER_TOKEN` | `0` (off, as in Vault); N requests/s, burst N |
//! | `rate_limit_per_address` / `IAMLEASE_RATE_LIMIT_PER_ADDRESS` | `0` (off); N requests/s per client IP, burst N |
//! | `request_timeout` / `IAMLEASE_REQUEST_TIMEOUT`| `90s`, as Vault: a request still running is answered 503 |
//! | `metrics_unauthenticated` / `IAMLEASE_METRICS_UNAUTHENTICATED` | `false`: `sys/metrics` needs a token with `read` on it |
//! | `header_read_timeout` / `IAMLEASE_HEADER_READ_TIMEOUT` | `10s`: a request's line and headers (and a TLS handshake) must arrive within it |
//! | `body_read_timeout` / `IAMLEASE_BODY_READ_TIMEOUT` | `30s`: a request's whole body must arrive within it (408) |
//! | `idle_timeout` / `IAMLEASE_IDLE_TIMEOUT`      | `60s`: a kept-alive connection with no request is closed after it |
//! | `max_connections` / `IAMLEASE_MAX_CONNECTIONS` | `1024`: open connections at once; more are closed at accept |
//! | `max_connections_per_address` / `IAMLEASE_MAX_CONNECTIONS_PER_ADDRESS` | `256`: open connections at once from one client IP |
//! | `allowed_aws_endpoints` / `IAMLEASE_ALLOWED_AWS_ENDPOINTS` | empty: any; else comma-separated URL prefixes a root config's `iam_endpoint`/`sts_endpoint` must start with (setting one needs `sudo` either way) |
//! | `key_history_retention` / `IAMLEASE_KEY_HISTORY_RETENTION` | `90d`: how long `whois` still answers for an access key after its lease ended (at least 1s) |
//! | `iam_user_quota_reserve` / `IAMLEASE_IAM_USER_QUOTA_RESERVE` | `5%`: `iam_user` issues are refused (503) while fewer than this share of the account's IAM user quota is free (0% to 50%) |
//! | `await_init` / `IAMLEASE_AWAIT_INIT`          | `false`: on an empty store, make no root token at start-up; the first `PUT sys/init` makes it and answers it once (`vault operator init`) |
//! | `static_role_min_rotation` / `IAMLEASE_STATIC_ROLE_MIN_ROTATION` | `1m`, as Vault: the shortest `rotation_period` a static role may have (lower it only for tests) |
//! | `tls_cert_file` / `IAMLEASE_TLS_CERT_FILE`    | off; PEM certificate chain: serve HTTPS (both or neither) |
//! | `tls_key_file` / `IAMLEASE_TLS_KEY_FILE`      | off; PEM private key; both files are reloaded on SIGHUP |
//!
//! | `kms_key_id` / `IAMLEASE_KMS_KEY_ID`          | off; a KMS key (id, ARN or alias): the master key is a data key under it, kept in the store only as KMS's ciphertext (instead of `master_key_file`) |
//! | `kms_endpoint` / `IAMLEASE_KMS_ENDPOINT`      | AWS's; for emulators and private endpoints    |
//! | `kms_region` / `IAMLEASE_KMS_REGION`          | the AWS default chain's region                |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::duration::Ttl;
use crate::seal::MasterKey;
use crate::store::is_postgres_url;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// The file's shape. Unknown keys are refused, so a typo does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    listen: Option<String>,
    storage: Option<String>,
    master_key_file: Option<String>,
    reaper_interval: Option<String>,
    revoke_max_backoff: Option<String>,
    pending_grace: Option<String>,
    claim_timeout: Option<String>,
    failover_timeout: Option<String>,
    sweep_interval: Option<String>,
    shutdown_timeout: Option<String>,
    log_level: Option<String>,
    wait_ready_timeout: Option<String>,
    log_format: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    audit_log: Option<String>,
    kms_key_id: Option<String>,
    kms_endpoint: Option<String>,
    kms_region: Option<String>,
    rate_limit_per_token: Option<u32>,
    rate_limit_per_address: Option<u32>,
    request_timeout: Option<String>,
    metrics_unauthenticated: Option<bool>,
    await_init: Option<bool>,
    iam_user_quota_reserve: Option<String>,
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<u32>,
    max_connections_per_address: Option<u32>,
    allowed_aws_endpoints: Option<Vec<String>>,
    key_history_retention: Option<String>,
    static_role_min_rotation: Option<String>,
}

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// Given directly (`IAMLEASE_MASTER_KEY`).
    Inline(MasterKey),
    /// Read from a file, created with mode 0600 when missing.
    File(PathBuf),
    /// Generated for this process only (dev mode without an explicit key).
    Ephemeral,
    /// A data key under AWS KMS, kept in the store as KMS's ciphertext (envelope encryption).
    Kms(KmsSettings),
}

/// Where the master key's KMS key lives (`kms_key_id`, `kms_endpoint`, `kms_region`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsSettings {
    /// A key id, key ARN, alias name (`alias/…`) or alias ARN.
    pub key_id: String,
    /// For emulators and private (VPC) endpoints.
    pub endpoint: Option<String>,
    /// Default: the region of the AWS default chain.
    pub region: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `None` in dev mode without an explicit setting: a temporary database.
    pub storage: Option<String>,
    pub master_key: MasterKeySource,
    pub reaper_interval: Duration,
    pub revoke_max_backoff: Ttl,
    pub pending_grace: Duration,
    /// How long a claim on a lease (a revocation in progress) holds before another server may
    /// take it over.
    pub claim_timeout: Duration,
    /// How long a replica may go without a heartbeat before another takes over what it has in
    /// flight.
    pub failover_timeout: Duration,
    /// How often every mount is swept for orphaned IAM users; `None` (the default) is never.
    pub sweep_interval: Option<Duration>,
    /// How long in-flight requests may run on after SIGTERM before they are cut off.
    pub shutdown_timeout: Duration,
    pub log_level: String,
    /// How long `wait_ready` waits for AWS to accept a new key before revoking it.
    pub wait_ready_timeout: Duration,
    pub log_format: LogFormat,
    /// Dev mode: mount `aws/` and accept this root token (or make one).
    pub dev: Option<DevSettings>,
    pub root_token_file: Option<PathBuf>,
    /// `None`: no audit log; `Some("stdout")` or a file path.
    pub audit_log: Option<String>,
    /// Requests per second per token and per client address; 0 turns a limit off.
    pub rate_limit_per_token: u32,
    pub rate_limit_per_address: u32,
    pub request_timeout: Duration,
    pub metrics_unauthenticated: bool,
    /// On an empty store, wait for `PUT sys/init` to make the root token instead of making
    /// one at start-up (for automation that initialises as it would a Vault).
    pub await_init: bool,
    /// The fraction of the IAM user quota kept free (0.05 by default).
    pub iam_user_quota_reserve: f64,
    /// Connection limits: headers, body and idle keep-alive deadlines, and how many
    /// connections may be open at once (in all, and per client address).
    pub connections: ConnectionLimits,
    /// URL prefixes a root config's endpoint overrides must start with; empty allows any
    /// (writing one needs `sudo` either way).
    pub allowed_aws_endpoints: Vec<String>,
    /// How long an access key's history is kept after its lease ended.
    pub key_history_retention: Duration,
    /// The shortest `rotation_period` a static role may be written with.
    pub static_role_min_rotation: Duration,
    /// HTTPS with these PEM files; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
}

/// How long a connection may take and how many may be open: what keeps a slow or idle client
/// from holding the server's sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: u32,
    pub max_connections_per_address: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_address: 256,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct DevSettings {
    pub root_token: Option<String>,
}

const DEFAULT_STORAGE: &str = "sqlite://./iamlease-data/iamlease.db";
const DEFAULT_MASTER_KEY_FILE: &str = "./iamlease-data/master.key";

impl Settings {
    /// Reads the optional file and the environment (`lookup` stands for `std::env::var`, so
    /// tests can pass their own).
    pub fn load(
        file: Option<&Path>,
        dev: Option<DevSettings>,
        root_token_file: Option<PathBuf>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut raw = match file {
            None => RawSettings::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
        };
        let env = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let overlay = |slot: &mut Option<String>, name: &str| {
            if let Some(v) = env(name) {
                *slot = Some(v);
            }
        };
        overlay(&mut raw.listen, "IAMLEASE_LISTEN");
        overlay(&mut raw.storage, "IAMLEASE_STORAGE");
        overlay(&mut raw.master_key_file, "IAMLEASE_MASTER_KEY_FILE");
        overlay(&mut raw.reaper_interval, "IAMLEASE_REAPER_INTERVAL");
        overlay(&mut raw.revoke_max_backoff, "IAMLEASE_REVOKE_MAX_BACKOFF");
        overlay(&mut raw.pending_grace, "IAMLEASE_PENDING_GRACE");
        overlay(&mut raw.claim_timeout, "IAMLEASE_CLAIM_TIMEOUT");
        overlay(&mut raw.failover_timeout, "IAMLEASE_FAILOVER_TIMEOUT");
        overlay(&mut raw.sweep_interval, "IAMLEASE_SWEEP_INTERVAL");
        overlay(&mut raw.shutdown_timeout, "IAMLEASE_SHUTDOWN_TIMEOUT");
        overlay(&mut raw.log_level, "IAMLEASE_LOG");
        overlay(&mut raw.wait_ready_timeout, "IAMLEASE_WAIT_READY_TIMEOUT");
        overlay(&mut raw.log_format, "IAMLEASE_LOG_FORMAT");
        overlay(
            &mut raw.key_history_retention,
            "IAMLEASE_KEY_HISTORY_RETENTION",
        );
        overlay(
            &mut raw.static_role_min_rotation,
            "IAMLEASE_STATIC_ROLE_MIN_ROTATION",
        );
        let log_format = match raw.log_format.as_deref().map(str::trim) {
            None | Some("pretty" | "text") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "log_format {other:?} is not one of pretty, json"
                )));
            }
        };
        overlay(&mut raw.tls_cert_file, "IAMLEASE_TLS_CERT_FILE");
        overlay(&mut raw.tls_key_file, "IAMLEASE_TLS_KEY_FILE");
        overlay(&mut raw.audit_log, "IAMLEASE_AUDIT_LOG");
        overlay(&mut raw.kms_key_id, "IAMLEASE_KMS_KEY_ID");
        overlay(&mut raw.kms_endpoint, "IAMLEASE_KMS_ENDPOINT");
        overlay(&mut raw.kms_region, "IAMLEASE_KMS_REGION");

        let number =
            |name: &str, file: Option<u32>, env_name: &str, default: u32| match env(env_name) {
                Some(v) => v.trim().parse::<u32>().map_err(|_| {
                    ConfigError::Invalid(format!("{name} {v:?} is not a whole number"))
                }),
                None => Ok(file.unwrap_or(default)),
            };
        let rate_limit_per_token = number(
            "rate_limit_per_token",
            raw.rate_limit_per_token,
            "IAMLEASE_RATE_LIMIT_PER_TOKEN",
            0,
        )?;
        let rate_limit_per_address = number(
            "rate_limit_per_address",
            raw.rate_limit_per_address,
            "IAMLEASE_RATE_LIMIT_PER_ADDRESS",
            0,
        )?;
        let metrics_unauthenticated = match env("IAMLEASE_METRICS_UNAUTHENTICATED") {
            Some(v) => matches!(v.trim(), "1" | "true" | "yes"),
            None => raw.metrics_unauthenticated.unwrap_or(false),
        };
        overlay(
            &mut raw.iam_user_quota_reserve,
            "IAMLEASE_IAM_USER_QUOTA_RESERVE",
        );
        let iam_user_quota_reserve = match raw.iam_user_quota_reserve {
            None => 0.05,
            Some(text) => text
                .trim()
                .strip_suffix('%')
                .and_then(|n| n.trim().parse::<f64>().ok())
                .filter(|p| (0.0..=50.0).contains(p))
                .map(|p| p / 100.0)
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "iam_user_quota_reserve {text:?} must be a percentage from 0% to 50%, such as \"5%\""
                    ))
                })?,
        };
        let await_init = match env("IAMLEASE_AWAIT_INIT") {
            Some(v) => matches!(v.trim(), "1" | "true" | "yes"),
            None => raw.await_init.unwrap_or(false),
        };
        overlay(&mut raw.request_timeout, "IAMLEASE_REQUEST_TIMEOUT");
        overlay(&mut raw.header_read_timeout, "IAMLEASE_HEADER_READ_TIMEOUT");
        overlay(&mut raw.body_read_timeout, "IAMLEASE_BODY_READ_TIMEOUT");
        overlay(&mut raw.idle_timeout, "IAMLEASE_IDLE_TIMEOUT");
        let max_connections = number(
            "max_connections",
            raw.max_connections,
            "IAMLEASE_MAX_CONNECTIONS",
            1024,
        )?;
        let max_connections_per_address = number(
            "max_connections_per_address",
            raw.max_connections_per_address,
            "IAMLEASE_MAX_CONNECTIONS_PER_ADDRESS",
            256,
        )?;
        if max_connections == 0 || max_connections_per_address == 0 {
            return Err(ConfigError::Invalid(
                "max_connections and max_connections_per_address must be at least 1".into(),
            ));
        }
        let allowed_aws_endpoints: Vec<String> = match env("IAMLEASE_ALLOWED_AWS_ENDPOINTS") {
            Some(v) => v.split(',').map(|s| s.trim().to_owned()).collect(),
            None => raw.allowed_aws_endpoints.take().unwrap_or_default(),
        }
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
        for prefix in &allowed_aws_endpoints {
            if !(prefix.starts_with("https://") || prefix.starts_with("http://")) {
                return Err(ConfigError::Invalid(format!(
                    "allowed_aws_endpoints entry {prefix:?} must be a URL prefix such as https://iam.amazonaws.com"
                )));
            }
        }

        let tls = match (raw.tls_cert_file, raw.tls_key_file) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
            }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "tls_cert_file and tls_key_file go together: set both to serve HTTPS, or neither"
                        .into(),
                ));
            }
        };
        let kms = match raw.kms_key_id.filter(|k| !k.trim().is_empty()) {
            Some(key_id) => Some(KmsSettings {
                key_id: key_id.trim().to_owned(),
                endpoint: raw.kms_endpoint.filter(|e| !e.trim().is_empty()),
                region: raw.kms_region.filter(|r| !r.trim().is_empty()),
            }),
            None if raw.kms_endpoint.is_some() || raw.kms_region.is_some() => {
                return Err(ConfigError::Invalid(
                    "kms_endpoint and kms_region need kms_key_id: the KMS key the master key is under"
                        .into(),
                ));
            }
            None => None,
        };

        let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8200".into());
        let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
            ConfigError::Invalid(format!(
                "listen {listen_text:?} is not an address like 127.0.0.1:8200"
            ))
        })?;
        let storage = match (raw.storage, &dev) {
            (Some(s), _) => Some(s),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_STORAGE.to_owned()),
        };
        if let Some(s) = &storage
            && !(s.starts_with("sqlite:") || s.ends_with(".db") || is_postgres_url(s))
        {
            // The URL may hold a password: name only its scheme.
            let scheme = s.split("://").next().unwrap_or_default();
            return Err(ConfigError::Invalid(format!(
                "storage {scheme:?}://… is not supported: use sqlite://PATH or postgres://USER@HOST/DB"
            )));
        }
        let master_key = match (env("IAMLEASE_MASTER_KEY"), raw.master_key_file, &dev) {
            (None, None, _) if kms.is_some() => MasterKeySource::Kms(kms.clone().expect("checked")),
            (Some(_), _, _) | (_, Some(_), _) if kms.is_some() => {
                return Err(ConfigError::Invalid(
                    "kms_key_id and a master key (IAMLEASE_MASTER_KEY or master_key_file) exclude each other: with KMS the master key lives in the store, under the KMS key; to move a file key under KMS, run `iamlease operator rekey --to-kms-key-id …`".into(),
                ));
            }
            (Some(b64), _, _) => MasterKeySource::Inline(
                MasterKey::from_base64(&b64)
                    .map_err(|e| ConfigError::Invalid(format!("IAMLEASE_MASTER_KEY: {e}")))?,
            ),
            (None, Some(file), _) => MasterKeySource::File(PathBuf::from(file)),
            (None, None, Some(_)) => MasterKeySource::Ephemeral,
            (None, None, None) => MasterKeySource::File(PathBuf::from(DEFAULT_MASTER_KEY_FILE)),
        };
        let duration = |name: &str,
                        value: Option<String>,
                        default: u64|
         -> Result<Ttl, ConfigError> {
            match value {
                None => Ok(Ttl::from_secs(default)),
                Some(v) => Ttl::parse(&v).map_err(|e| ConfigError::Invalid(format!("{name}: {e}"))),
            }
        };
        let reaper_interval = duration("reaper_interval", raw.reaper_interval, 1)?;
        if reaper_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "reaper_interval must be at least 1s".into(),
            ));
        }
        Ok(Settings {
            listen,
            storage,
            master_key,
            reaper_interval: Duration::from_secs(reaper_interval.as_secs()),
            revoke_max_backoff: duration("revoke_max_backoff", raw.revoke_max_backoff, 3600)?,
            pending_grace: Duration::from_secs(
                duration("pending_grace", raw.pending_grace, 120)?.as_secs(),
            ),
            claim_timeout: claim_timeout(duration("claim_timeout", raw.claim_timeout, 300)?)?,
            failover_timeout: failover_timeout(duration(
                "failover_timeout",
                raw.failover_timeout,
                15,
            )?)?,
            sweep_interval: match raw.sweep_interval {
                None => None,
                Some(v) => Some(Duration::from_secs(
                    duration("sweep_interval", Some(v), 0)?.as_secs(),
                ))
                .filter(|d| !d.is_zero()),
            },
            shutdown_timeout: Duration::from_secs(
                duration("shutdown_timeout", raw.shutdown_timeout, 30)?.as_secs(),
            ),
            wait_ready_timeout: Duration::from_secs(
                duration("wait_ready_timeout", raw.wait_ready_timeout, 30)?.as_secs(),
            ),
            log_level: raw
                .log_level
                .or_else(|| env("RUST_LOG"))
                .unwrap_or_else(|| "info".into()),
            log_format,
            dev,
            root_token_file,
            audit_log: raw.audit_log,
            rate_limit_per_token,
            rate_limit_per_address,
            request_timeout: match duration("request_timeout", raw.request_timeout, 90)?.as_secs() {
                0 => {
                    return Err(ConfigError::Invalid(
                        "request_timeout must be at least 1s".into(),
                    ));
                }
                s => Duration::from_secs(s),
            },
            metrics_unauthenticated,
            await_init,
            iam_user_quota_reserve,
            connections: ConnectionLimits {
                header_read_timeout: at_least_1s(duration(
                    "header_read_timeout",
                    raw.header_read_timeout,
                    10,
                )?)?,
                body_read_timeout: at_least_1s(duration(
                    "body_read_timeout",
                    raw.body_read_timeout,
                    30,
                )?)?,
                idle_timeout: at_least_1s(duration("idle_timeout", raw.idle_timeout, 60)?)?,
                max_connections,
                max_connections_per_address,
            },
            allowed_aws_endpoints,
            key_history_retention: match duration(
                "key_history_retention",
                raw.key_history_retention,
                90 * 86_400,
            )?
            .as_secs()
            {
                0 => {
                    return Err(ConfigError::Invalid(
                        "key_history_retention must be at least 1s (the history of a key is what answers who held it)".into(),
                    ));
                }
                s => Duration::from_secs(s),
            },
            static_role_min_rotation: at_least_1s(duration(
                "static_role_min_rotation",
                raw.static_role_min_rotation,
                60,
            )?)?,
            tls,
        })
    }
}

/// Connection deadlines of zero would close every connection at once.
fn at_least_1s(t: Ttl) -> Result<Duration, ConfigError> {
    if t.is_zero() {
        return Err(ConfigError::Invalid(
            "header_read_timeout, body_read_timeout and idle_timeout must be at least 1s".into(),
        ));
    }
    Ok(Duration::from_secs(t.as_secs()))
}

/// A zero claim timeout would let every reaper pass re-claim leases still being revoked.
fn claim_timeout(t: Ttl) -> Result<Duration, ConfigError> {
    if t.is_zero() {
        return Err(ConfigError::Invalid(
            "claim_timeout must be at least 1s (5m is the default)".into(),
        ));
    }
    Ok(Duration::from_secs(t.as_secs()))
}

/// A replica is taken for dead after 14 missed beats of 15 per timeout; under 2s, a short
/// stall of the database would pass for death.
fn failover_timeout(t: Ttl) -> Result<Duration, ConfigError> {
    if t.as_secs() < 2 {
        return Err(ConfigError::Invalid(
            "failover_timeout must be at least 2s (15s is the default)".into(),
        ));
    }
    Ok(Duration::from_secs(t.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_and_env_overrides() {
        let s = Settings::load(None, None, None, env(&[])).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8200");
        assert_eq!(s.storage.as_deref(), Some(DEFAULT_STORAGE));
        assert!(matches!(s.master_key, MasterKeySource::File(_)));
        let s = Settings::load(
            None,
            None,
            None,
            env(&[
                ("IAMLEASE_LISTEN", "127.0.0.1:0"),
                ("IAMLEASE_REAPER_INTERVAL", "2s"),
            ]),
        )
        .unwrap();
        assert_eq!(s.listen.port(), 0);
        assert_eq!(s.reaper_interval, Duration::from_secs(2));
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("iamlease.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nrevoke_max_backoff = \"10m\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path), None, None, env(&[])).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.revoke_max_backoff.as_secs(), 600);
        let s = Settings::load(
            Some(&path),
            None,
            None,
            env(&[("IAMLEASE_LISTEN", "127.0.0.1:9001")]),
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9001);
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let e = Settings::load(Some(&path), None, None, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `lisen`"), "{e}");
    }

    #[test]
    fn dev_mode_uses_temporary_storage_and_key_unless_told() {
        let s = Settings::load(None, Some(DevSettings::default()), None, env(&[])).unwrap();
        assert!(s.storage.is_none());
        assert!(matches!(s.master_key, MasterKeySource::Ephemeral));
        let key = MasterKey::generate().unwrap().to_base64();
        let s = Settings::load(
            None,
            Some(DevSettings::default()),
            None,
            env(&[
                ("IAMLEASE_STORAGE", "sqlite:///tmp/x.db"),
                ("IAMLEASE_MASTER_KEY", &key),
            ]),
        )
        .unwrap();
        assert_eq!(s.storage.as_deref(), Some("sqlite:///tmp/x.db"));
        assert!(matches!(s.master_key, MasterKeySource::Inline(_)));
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let e =
            Settings::load(None, None, None, env(&[("IAMLEASE_LISTEN", "nowhere")])).unwrap_err();
        assert!(e.to_string().contains("listen \"nowhere\""));
        let e = Settings::load(
            None,
            None,
            None,
            env(&[("IAMLEASE_MASTER_KEY", "c2hvcnQ=")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("32 bytes"));
        let s = Settings::load(
            None,
            None,
            None,
            env(&[
                ("IAMLEASE_KMS_KEY_ID", "alias/iamlease"),
                ("IAMLEASE_KMS_ENDPOINT", "http://127.0.0.1:5000"),
            ]),
        )
        .unwrap();
        assert!(
            matches!(&s.master_key, MasterKeySource::Kms(k) if k.key_id == "alias/iamlease" && k.endpoint.as_deref() == Some("http://127.0.0.1:5000"))
        );
        let e = Settings::load(
            None,
            None,
            None,
            env(&[
                ("IAMLEASE_KMS_KEY_ID", "k"),
                ("IAMLEASE_MASTER_KEY_FILE", "/k"),
            ]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("exclude each other"), "{e}");
        let e = Settings::load(
            None,
            None,
            None,
            env(&[("IAMLEASE_KMS_REGION", "eu-west-1")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("need kms_key_id"), "{e}");
        let e = Settings::load(
            None,
            None,
            None,
            env(&[("IAMLEASE_TLS_CERT_FILE", "/tmp/cert.pem")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("go together"), "{e}");
        let e = Settings::load(
            None,
            None,
            None,
            env(&[("IAMLEASE_RATE_LIMIT_PER_TOKEN", "lots")]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("rate_limit_per_token \"lots\""),
            "{e}"
        );
        let e = Settings::load(
            None,
            None,
            None,
            env(&[("IAMLEASE_STORAGE", "mysql://u:hunter2@x/db")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"mysql\"://… is not supported"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e =
            Settings::load(None, None, None, env(&[("IAMLEASE_CLAIM_TIMEOUT", "0")])).unwrap_err();
        assert!(e.to_string().contains("claim_timeout must be at least 1s"));
    }

    #[test]
    fn postgres_storage_and_claim_timeout() {
        for url in [
            "postgres://iamlease@db.internal/iamlease?sslmode=verify-full&sslrootcert=/etc/ca.pem",
            "postgresql://localhost:5433/iamlease",
        ] {
            let s = Settings::load(None, None, None, env(&[("IAMLEASE_STORAGE", url)])).unwrap();
            assert_eq!(s.storage.as_deref(), Some(url));
        }
        let s = Settings::load(None, None, None, env(&[])).unwrap();
        assert_eq!(s.claim_timeout, Duration::from_secs(300));
        let s =
            Settings::load(None, None, None, env(&[("IAMLEASE_CLAIM_TIMEOUT", "30s")])).unwrap();
        assert_eq!(s.claim_timeout, Duration::from_secs(30));
    }

    #[test]
    fn recovery_and_shutdown_settings() {
        let s = Settings::load(
            None,
            None,
            None,
            env(&[
                ("IAMLEASE_CLAIM_TIMEOUT", "90s"),
                ("IAMLEASE_SWEEP_INTERVAL", "1h"),
                ("IAMLEASE_SHUTDOWN_TIMEOUT", "5s"),
            ]),
        )
        .unwrap();
        assert_eq!(s.claim_timeout, Duration::from_secs(90));
        assert_eq!(s.sweep_interval, Some(Duration::from_secs(3600)));
        assert_eq!(s.shutdown_timeout, Duration::from_secs(5));
        let d = Settings::load(None, None, None, env(&[])).unwrap();
        assert_eq!(d.claim_timeout, Duration::from_secs(300));
        assert_eq!(d.sweep_interval, None);
        assert_eq!(d.failover_timeout, Duration::from_secs(15));
        let s = Settings::load(
            None,
            None,
            None,
            env(&[("IAMLEASE_FAILOVER_TIMEOUT", "4s")]),
        )
        .unwrap();
        assert_eq!(s.failover_timeout, Duration::from_secs(4));
        let e = Settings::load(
            None,
            None,
            None,
            env(&[("IAMLEASE_FAILOVER_TIMEOUT", "1s")]),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("failover_timeout must be at least 2s")
        );
    }
}
