//! Static roles: an existing IAM user whose access key iamlease rotates on a schedule. The
//! validated user name and the row the store keeps for each role (schedule, current and
//! previous key, the rotation's progress).

use std::fmt;

/// An IAM user name as IAM allows it: 1 to 64 of letters, digits and `+=,.@_-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IamUserName(String);

impl IamUserName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() || s.len() > 64 {
            return Err(format!(
                "username {raw:?} must be an IAM user name of 1 to 64 characters"
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
        {
            return Err(format!(
                "username {raw:?} is not an IAM user name: use letters, digits and +=,.@_-"
            ));
        }
        Ok(IamUserName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IamUserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a role write sets: who to rotate, how often, and through which role in which account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoleConfig {
    pub username: IamUserName,
    /// Seconds between rotations.
    pub rotation_period: i64,
    /// Seconds the previous key keeps working after a rotation (at most half the period).
    pub overlap: i64,
    pub assume_role_arn: Option<String>,
    pub assume_role_session_name: Option<String>,
    pub external_id: Option<String>,
}

/// One static role as the store keeps it. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoleRecord {
    pub mount: super::MountPath,
    pub name: super::RoleName,
    pub config: StaticRoleConfig,
    /// The key `static-creds` serves. A key the user held before the role was written is
    /// recorded here without a secret until the first rotation replaces it.
    pub access_key_id: Option<String>,
    /// The current key's secret, sealed under the master key; `None` for an adopted key.
    pub secret_sealed: Option<Vec<u8>>,
    /// The key before the current one, deleted at `previous_until` (the overlap's end).
    pub previous_key_id: Option<String>,
    pub previous_until: Option<i64>,
    /// Set before CreateAccessKey, cleared when the new key is recorded: a key on the user that
    /// this row does not know about is then the product of an interrupted rotation.
    pub rotating_since: Option<i64>,
    pub last_rotation: Option<i64>,
    pub next_rotation: i64,
    /// When someone must next act: the next rotation, the end of the overlap, a retry, or a
    /// claim's deadline.
    pub due_at: i64,
    /// The claimant's token while a rotation is under way.
    pub claim: Option<String>,
    /// Failed attempts since the last success (the backoff's exponent).
    pub attempts: i64,
    pub last_error: Option<String>,
    pub last_error_time: Option<i64>,
    pub created_at: i64,
}

/// One step of a rotation, recorded by the claimant (each a conditional update on its claim).
#[derive(Debug, Clone)]
pub enum RotationStep<'a> {
    /// The previous key is gone from AWS.
    PreviousDeleted,
    /// About to call CreateAccessKey.
    Creating { now: i64 },
    /// The new key exists in AWS: it becomes the current key, the current one the previous.
    Rotated {
        access_key_id: &'a str,
        secret_sealed: &'a [u8],
        now: i64,
    },
    /// Done for now: the claim ends and the row is due at its next event.
    Release,
    /// The attempt failed: the claim ends, the error is kept, a retry is due at `retry_at`.
    Failed {
        error: &'a str,
        now: i64,
        retry_at: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_iam() {
        assert!(IamUserName::parse("app-user+ci@example.com").is_ok());
        assert!(IamUserName::parse("").is_err());
        assert!(IamUserName::parse("a/b").is_err());
        assert!(IamUserName::parse(&"a".repeat(65)).is_err());
    }
}
