//! The `credential_process` cache: one file per server address, token, mount, role and request
//! options in the user's cache directory, so repeated AWS CLI or SDK invocations reuse a live
//! credential until shortly before it expires instead of minting an IAM user per call.
//!
//! Files are created mode 0600 (atomically: written to a new 0600 file, then renamed), in a
//! directory of mode 0700. A cached credential is handed out only after the server confirms
//! its lease is still active; a lease that is gone drops the file, and revoking through this
//! CLI removes it at once.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use aws_lc_rs::digest;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use super::issue::{IssueArgs, Issued, issue};
use super::{Client, ServerSaidNo};

/// Never hand out a cached credential with less than this share of its life left (at most
/// five minutes): the caller must be able to use what it gets.
const REFRESH_SHARE: i64 = 5;
const REFRESH_MAX_SECS: i64 = 300;

/// One cached credential. The secret is here in plain text, protected by the file's mode,
/// as the AWS CLI's own cache does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub address: String,
    pub lease_id: String,
    pub access_key: String,
    pub secret_key: String,
    pub security_token: Option<String>,
    /// Unix seconds when the lease expires.
    pub expiration: i64,
    /// The lease's length when it was issued, to decide when it is nearly over.
    pub lease_duration: i64,
}

impl Entry {
    pub fn expiration(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.expiration).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// The cache directory: `IAMLEASE_CACHE_DIR`, else the user's cache directory
/// (`$XDG_CACHE_HOME/iamlease`, `~/.cache/iamlease`, `~/Library/Caches/iamlease`).
pub fn dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("IAMLEASE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::cache_dir()
        .map(|d| d.join("iamlease"))
        .context("no cache directory: set IAMLEASE_CACHE_DIR, or pass --no-cache")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file a request's credential lives in: readable prefix, then a hash of everything that
/// makes two requests different (the token only as a hash).
fn entry_path(dir: &Path, client: &Client, args: &IssueArgs) -> PathBuf {
    let token = digest::digest(
        &digest::SHA256,
        client.token().unwrap_or_default().as_bytes(),
    );
    let key = json!([
        client.address(),
        hex(token.as_ref()),
        args.mount,
        args.name,
        args.ttl,
        args.role_arn,
        args.role_session_name,
    ])
    .to_string();
    let hash = hex(digest::digest(&digest::SHA256, key.as_bytes()).as_ref());
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    dir.join(format!(
        "{}-{}-{}.json",
        safe(&args.mount),
        safe(&args.name),
        &hash[..24]
    ))
}

/// Creates the directory with mode 0700, and narrows it to that if it already existed wider.
fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the credential cache {}", dir.display()))?;
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private (mode 0700)", dir.display()))?;
    }
    Ok(())
}

fn read_entry(path: &Path) -> Option<Entry> {
    let text = fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Writes `entry` to a fresh file created with mode 0600 and renames it into place, so the
/// secret is never readable by others, not even for a moment, and readers never see half.
fn write_entry(path: &Path, entry: &Entry) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = file
        .write_all(&serde_json::to_vec(entry)?)
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// Holds an exclusive lock per entry, so parallel invocations (an SDK's threads, `make -j`)
/// share one issue instead of each minting a user.
fn lock(path: &Path) -> anyhow::Result<File> {
    let lock_path = path.with_extension("lock");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    Ok(file)
}

/// A live credential for `args`: the cached one if the server says its lease is active and
/// enough of it is left, otherwise a new one (which replaces it in the cache).
pub async fn cached_or_issue(
    client: &Client,
    args: &IssueArgs,
    wait: bool,
) -> anyhow::Result<Entry> {
    let dir = dir()?;
    ensure_dir(&dir)?;
    let path = entry_path(&dir, client, args);
    let _lock = lock(&path)?;
    if let Some(entry) = read_entry(&path) {
        match still_live(client, &entry).await? {
            Some(expiration) => {
                return Ok(Entry {
                    expiration,
                    ..entry
                });
            }
            None => {
                let _ = fs::remove_file(&path);
            }
        }
    }
    let issued = issue(client, args, wait).await?;
    let entry = entry_from(client, &issued);
    write_entry(&path, &entry)?;
    Ok(entry)
}

pub fn entry_from(client: &Client, issued: &Issued) -> Entry {
    Entry {
        address: client.address().to_owned(),
        lease_id: issued.lease_id.clone(),
        access_key: issued.access_key.clone(),
        secret_key: issued.secret_key.clone(),
        security_token: issued.security_token.clone(),
        expiration: issued.expiration.unix_timestamp(),
        lease_duration: issued.lease_duration,
    }
}

/// Asks the server about a cached lease: its current expiry if it is active with enough time
/// left, `None` if it is gone, revoked, not ours any more, or nearly over.
async fn still_live(client: &Client, entry: &Entry) -> anyhow::Result<Option<i64>> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let margin = (entry.lease_duration / REFRESH_SHARE).min(REFRESH_MAX_SECS);
    if entry.expiration - now <= margin {
        return Ok(None);
    }
    let answer = client
        .request(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": entry.lease_id})),
        )
        .await;
    let data = match answer {
        Ok(v) => v["data"].clone(),
        Err(e) => match e.downcast_ref::<ServerSaidNo>() {
            // Unknown, or no longer ours to look at: either way not to be handed out.
            Some(no)
                if no.status == StatusCode::NOT_FOUND || no.status == StatusCode::FORBIDDEN =>
            {
                return Ok(None);
            }
            _ => return Err(e),
        },
    };
    let left = data["ttl"].as_i64().unwrap_or(0);
    if data["state"].as_str() != Some("active") || left <= margin {
        return Ok(None);
    }
    Ok(Some(now + left))
}

/// Removes cached credentials of `address` whose lease is `lease_id` or, with `prefix`, lies
/// under it (a directory, as the server reads it). Called after the CLI revokes leases.
pub fn forget(address: &str, lease_id: &str, prefix: bool) {
    let Ok(dir) = dir() else { return };
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    let directory = if lease_id.is_empty() || lease_id.ends_with('/') {
        lease_id.to_owned()
    } else {
        format!("{lease_id}/")
    };
    for file in entries.flatten() {
        let path = file.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Some(entry) = read_entry(&path) else {
            continue;
        };
        let matches = if prefix {
            entry.lease_id.starts_with(&directory)
        } else {
            entry.lease_id == lease_id.trim()
        };
        if entry.address == address && matches {
            let _ = fs::remove_file(&path);
            // Its lock file too, so they do not pile up. At worst a caller locking the old
            // file and one locking a new one both issue: two leases, both tracked.
            let _ = fs::remove_file(path.with_extension("lock"));
        }
    }
}
