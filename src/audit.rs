//! The audit log: JSON lines (one per request, one per response, one per lease event) with every
//! secret value replaced by `hmac-sha256:<hex>` under a per-server key, written fail-closed.
//!
//! The HTTP side (what goes into a line, refusing the request when it cannot be written) lives
//! in `api/audit.rs`; this module owns the file, the key and the redaction.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_lc_rs::hmac;
use serde_json::{Map, Value, json};

use crate::seal::{SealError, Sealer};
use crate::store::{Store, StoreError};

/// Fields whose values are secrets wherever they appear in a request or response body.
/// `token`/`client_token`/`id` cover Vault's token APIs; `mfa_code` and `external_id` are
/// short-lived or shared secrets a log reader must not learn.
const SECRET_FIELDS: &[&str] = &[
    "secret_key",
    "secret_access_key",
    "security_token",
    "session_token",
    "client_token",
    // `sys/init`'s answer.
    "root_token",
    "token",
    "mfa_code",
    "external_id",
    // `sys/audit-hash`'s argument is the secret being looked for.
    "input",
    // Token accessors, as Vault's `hmac_accessor` (on by default): an accessor revokes and
    // looks up its token, so a log reader must not learn it (find one with sys/audit-hash).
    "accessor",
    "token_accessor",
    // Auth methods: AppRole's secret IDs and their accessors, JWTs, the OIDC client secret
    // and the pieces of an OIDC sign-in that could be replayed.
    "secret_id",
    "secret_id_accessor",
    "jwt",
    "id_token",
    "oidc_client_secret",
    "code",
    "state",
    "nonce",
    "client_nonce",
];

/// The meta-table key of the sealed audit HMAC key (and its sealing context).
const AUDIT_KEY_META: &str = "audit_hmac_key";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("audit key: {0}")]
    Seal(#[from] SealError),
    #[error("audit key: {0}")]
    Store(#[from] StoreError),
}

/// Where audit lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    Stdout,
    File(PathBuf),
}

impl AuditTarget {
    pub fn parse(text: &str) -> AuditTarget {
        match text.trim() {
            "stdout" | "-" => AuditTarget::Stdout,
            path => AuditTarget::File(PathBuf::from(path)),
        }
    }

    fn describe(&self) -> String {
        match self {
            AuditTarget::Stdout => "stdout".into(),
            AuditTarget::File(p) => p.display().to_string(),
        }
    }
}

enum Sink {
    Stdout,
    File(File),
    /// A reopen failed: every write fails until a reopen succeeds (fail-closed).
    Broken(String),
}

/// Computes `hmac-sha256:<hex>` values; usable without a log file (for `sys/audit-hash`).
#[derive(Clone)]
pub struct AuditHasher {
    key: hmac::Key,
}

impl AuditHasher {
    pub fn new(key: &[u8]) -> Self {
        AuditHasher {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    pub fn hash(&self, value: &str) -> String {
        let tag = hmac::sign(&self.key, value.as_bytes());
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("hmac-sha256:{hex}")
    }

    /// Replaces, in place and at any depth, the string values of secret fields by their hash.
    pub fn redact(&self, value: &mut Value) {
        match value {
            Value::Object(map) => self.redact_map(map),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact(v)),
            _ => {}
        }
    }

    fn redact_map(&self, map: &mut Map<String, Value>) {
        for (key, v) in map.iter_mut() {
            if SECRET_FIELDS.contains(&key.as_str()) {
                match v {
                    Value::String(s) if !s.is_empty() => *v = Value::String(self.hash(s)),
                    Value::String(_) | Value::Null => {}
                    // A secret field that is not a string is still not logged as is.
                    other => *other = Value::String(self.hash(&other.to_string())),
                }
            } else {
                self.redact(v);
            }
        }
    }
}

/// The open audit log. Writes are serialised and each line reaches the OS before `write`
/// returns, so a request is never served on the strength of a line still in a buffer.
pub struct AuditLog {
    target: AuditTarget,
    sink: Mutex<Sink>,
    hasher: AuditHasher,
}

impl AuditLog {
    pub fn open(target: AuditTarget, hasher: AuditHasher) -> Result<Arc<AuditLog>, AuditError> {
        let sink = open_sink(&target)?;
        Ok(Arc::new(AuditLog {
            target,
            sink: Mutex::new(sink),
            hasher,
        }))
    }

    pub fn hasher(&self) -> &AuditHasher {
        &self.hasher
    }

    /// Reopens the file (log rotation: move it away, then SIGHUP). If the path cannot be
    /// opened, the log stays broken and every audited request fails until a reopen succeeds.
    pub fn reopen(&self) -> Result<(), AuditError> {
        let result = open_sink(&self.target);
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(s) => {
                *sink = s;
                Ok(())
            }
            Err(e) => {
                *sink = Sink::Broken(e.to_string());
                Err(e)
            }
        }
    }

    /// Writes one line. `entry` must already be redacted (see `AuditHasher::redact`).
    pub fn write(&self, entry: &Value) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(entry).expect("audit entries serialise");
        line.push(b'\n');
        let io = |source| AuditError::Io {
            path: self.target.describe(),
            source,
        };
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&line).map_err(io)?;
                out.flush().map_err(io)
            }
            Sink::File(f) => {
                // Whole or not at all: a write cut short (a full disk) is cut back off, so the
                // next record never lands on a torn line.
                let before = f.metadata().map_err(io)?.len();
                let written = f.write_all(&line).and_then(|()| f.flush());
                let Err(e) = written else { return Ok(()) };
                if let Err(trunc) = f.set_len(before) {
                    // A torn line stays: nothing more is appended until a reopen.
                    tracing::error!(error = %trunc, "cannot cut a partial audit record off");
                    *sink = Sink::Broken(format!("a partial record could not be removed: {trunc}"));
                }
                Err(io(e))
            }
            Sink::Broken(reason) => Err(io(std::io::Error::other(reason.clone()))),
        }
    }

    /// A lease event the server did on its own (expiry, reaper revocation, failed retry).
    /// There is no request to refuse, so a write failure is logged instead.
    pub fn lease_event(&self, event: LeaseEvent<'_>, lease_id: &str, mount: &str, role: &str) {
        let mut entry = json!({
            "time": crate::clock::rfc3339(crate::clock::now()),
            "type": "lease",
            "event": event.name(),
            "lease_id": lease_id,
            "mount": mount,
            "role": role,
        });
        match event {
            LeaseEvent::Revoked { username } | LeaseEvent::Expired { username } => {
                entry["username"] = json!(username);
            }
            LeaseEvent::RevokeFailed {
                attempt,
                retry_in_secs,
                error,
            } => {
                entry["attempt"] = json!(attempt);
                entry["retry_in_secs"] = json!(retry_in_secs);
                entry["error"] = json!(error);
            }
        }
        let event = event.name();
        self.hasher.redact(&mut entry);
        if let Err(e) = self.write(&entry) {
            tracing::error!(error = %e, lease_id, event, "cannot write a lease event to the audit log");
        }
    }
}

/// Something the server did to a lease on its own, as the audit log records it.
#[derive(Debug, Clone, Copy)]
pub enum LeaseEvent<'a> {
    /// Revoked before its expiry (by the reaper finishing a revocation someone asked for).
    Revoked {
        username: Option<&'a str>,
    },
    Expired {
        username: Option<&'a str>,
    },
    /// A revocation failed and is retried in `retry_in_secs`.
    RevokeFailed {
        attempt: i64,
        retry_in_secs: u64,
        error: &'a str,
    },
}

impl LeaseEvent<'_> {
    fn name(&self) -> &'static str {
        match self {
            LeaseEvent::Revoked { .. } => "revoked",
            LeaseEvent::Expired { .. } => "expired",
            LeaseEvent::RevokeFailed { .. } => "revoke_failed",
        }
    }
}

fn open_sink(target: &AuditTarget) -> Result<Sink, AuditError> {
    match target {
        AuditTarget::Stdout => Ok(Sink::Stdout),
        AuditTarget::File(path) => OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map(Sink::File)
            .map_err(|source| AuditError::Io {
                path: path.display().to_string(),
                source,
            }),
    }
}

/// The per-server audit key: 32 random bytes made on first start, kept sealed under the master
/// key in the store's meta table, so every replica (and every restart) hashes alike.
pub async fn load_audit_key(
    store: &Arc<dyn Store>,
    sealer: &Sealer,
) -> Result<AuditHasher, AuditError> {
    let mut fresh = [0u8; 32];
    aws_lc_rs::rand::fill(&mut fresh).map_err(|_| SealError::Random)?;
    let sealed = sealer.seal(AUDIT_KEY_META, &fresh)?;
    store.put_meta_if_absent(AUDIT_KEY_META, &sealed).await?;
    let stored = store
        .get_meta(AUDIT_KEY_META)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the audit key vanished from the store".into()))?;
    Ok(AuditHasher::new(&sealer.open(AUDIT_KEY_META, &stored)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_fields_are_hashed_at_any_depth_and_others_kept() {
        let h = AuditHasher::new(b"k");
        let mut v = json!({
            "data": {"access_key": "AKIA1", "secret_key": "s3cr3t", "security_token": null},
            "auth": {"client_token": "ilt_x", "accessor": "acc"},
            "list": [{"token": "t"}],
        });
        h.redact(&mut v);
        assert_eq!(v["data"]["access_key"], "AKIA1");
        assert_eq!(v["data"]["secret_key"], h.hash("s3cr3t"));
        assert!(v["data"]["security_token"].is_null());
        assert_eq!(v["auth"]["client_token"], h.hash("ilt_x"));
        assert_eq!(
            v["auth"]["accessor"],
            h.hash("acc"),
            "accessors are HMAC'd, as Vault's hmac_accessor"
        );
        assert_eq!(v["list"][0]["token"], h.hash("t"));
        assert!(h.hash("s3cr3t").starts_with("hmac-sha256:"));
        assert_eq!(h.hash("s3cr3t").len(), "hmac-sha256:".len() + 64);
        assert_ne!(AuditHasher::new(b"other").hash("s3cr3t"), h.hash("s3cr3t"));
    }
}
