//! The access-key history: who held which access key, kept past the lease so a CloudTrail
//! entry can be traced to a requester months later. Nothing here is secret: an access key id
//! is what CloudTrail shows.

use std::collections::BTreeMap;

use super::lease::{Lease, LeaseState};
use super::names::{CredentialType, MountPath, RoleName};

/// One handed-out access key, as recorded when it was handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub access_key_id: String,
    pub lease_id: String,
    pub mount: MountPath,
    pub role: RoleName,
    pub credential_type: CredentialType,
    /// The IAM user (`iam_user`); `None` for STS keys.
    pub username: Option<String>,
    /// The display name of the token that asked.
    pub requester: String,
    pub token_accessor: Option<String>,
    /// The token's metadata when it asked (a login's mapped claims).
    pub meta: BTreeMap<String, String>,
    /// Unix seconds.
    pub issue_time: i64,
    /// The last expiry the lease had (renewals move it while the lease lives).
    pub expire_time: i64,
    /// When the lease ended (its record was deleted); `None` while it lives.
    pub revoke_time: Option<i64>,
}

impl KeyRecord {
    /// The history row for `lease`'s key, asked for by the token `requester`/`meta` name.
    pub fn for_lease(
        lease: &Lease,
        access_key_id: &str,
        requester: &str,
        meta: &BTreeMap<String, String>,
    ) -> KeyRecord {
        KeyRecord {
            access_key_id: access_key_id.to_owned(),
            lease_id: lease.id.clone(),
            mount: lease.mount.clone(),
            role: lease.role.clone(),
            credential_type: lease.credential_type,
            username: lease.username.clone(),
            requester: requester.to_owned(),
            token_accessor: lease.token_accessor.clone(),
            meta: meta.clone(),
            issue_time: lease.issue_time,
            expire_time: lease.expire_time,
            revoke_time: None,
        }
    }
}

/// A key's history with its lease as it stands now: `None` once the lease has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHistory {
    pub key: KeyRecord,
    pub lease: Option<LiveLease>,
}

/// What the lease of a key still being held says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveLease {
    pub state: LeaseState,
    pub expire_time: i64,
}

/// Where a key stands: a live lease's state, or `revoked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Lease(LeaseState),
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Lease(s) => s.as_str(),
            KeyState::Revoked => "revoked",
        }
    }
}

impl KeyHistory {
    pub fn state(&self) -> KeyState {
        match self.lease {
            Some(l) => KeyState::Lease(l.state),
            None => KeyState::Revoked,
        }
    }

    /// The lease's current expiry while it lives; the last one it had after.
    pub fn expire_time(&self) -> i64 {
        self.lease.map_or(self.key.expire_time, |l| l.expire_time)
    }
}

/// AWS's shape of an access key id (`AKIA…` for IAM users, `ASIA…` for STS): 16 to 128
/// upper-case letters and digits. Anything else cannot name a key, so it is refused before
/// the store is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyId(String);

impl AccessKeyId {
    pub fn parse(s: &str) -> Result<AccessKeyId, String> {
        let ok = (16..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(AccessKeyId(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not an access key id: one is 16 to 128 upper-case letters and digits, like AKIAIOSFODNN7EXAMPLE"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AccessKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_key_ids_are_checked() {
        assert!(AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").is_ok());
        assert!(AccessKeyId::parse("ASIAIOSFODNN7EXAMPLE").is_ok());
        for bad in [
            "",
            "AKIA",
            "akiaiosfodnn7example",
            "AKIAIOSFODNN7EXAMPLE/",
            "AKIA IOSFODNN7EXAMPLE",
        ] {
            assert!(AccessKeyId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_key_without_a_lease_is_revoked() {
        let lease = Lease::active_sts(
            MountPath::parse("aws").unwrap(),
            RoleName::parse("dev").unwrap(),
            CredentialType::AssumedRole,
            "ASIAIOSFODNN7EXAMPLE".into(),
            10,
            100,
        );
        let key = KeyRecord::for_lease(
            &lease,
            "ASIAIOSFODNN7EXAMPLE",
            "jwt-alice",
            &BTreeMap::new(),
        );
        let live = KeyHistory {
            key: key.clone(),
            lease: Some(LiveLease {
                state: LeaseState::Active,
                expire_time: 200,
            }),
        };
        assert_eq!(live.state().as_str(), "active");
        assert_eq!(live.expire_time(), 200);
        let gone = KeyHistory { key, lease: None };
        assert_eq!(gone.state().as_str(), "revoked");
        assert_eq!(gone.expire_time(), 100);
    }
}
