//! The names of mounts and roles, and the kinds of credential: validated when parsed, so
//! every layer above can put them in IAM paths, tags and lease ids without checking again.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Paths that are the API's own, never a mount.
const RESERVED_MOUNTS: &[&str] = &["sys", "auth", "identity", "cubbyhole", "ui", "v1"];

/// A mount path such as `aws` or `aws-prod`: one path segment, safe in IAM paths and lease ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MountPath(String);

impl MountPath {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim_matches('/');
        if s.is_empty() || s.len() > 64 {
            return Err(format!("mount path {raw:?} must be 1 to 64 characters"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "mount path {raw:?} may only use letters, digits, '-' and '_'"
            ));
        }
        if RESERVED_MOUNTS.contains(&s) {
            return Err(format!("mount path {s:?} is reserved"));
        }
        Ok(MountPath(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MountPath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        MountPath::parse(&s)
    }
}

impl From<MountPath> for String {
    fn from(m: MountPath) -> String {
        m.0
    }
}

impl fmt::Display for MountPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role name: letters, digits, `-`, `_`, `.`; safe in IAM paths, tags and lease ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > 64 {
            return Err(format!("role name {raw:?} must be 1 to 64 characters"));
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || raw.starts_with('.')
        {
            return Err(format!(
                "role name {raw:?} may only use letters, digits, '-', '_' and '.'"
            ));
        }
        Ok(RoleName(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoleName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        RoleName::parse(&s)
    }
}

impl From<RoleName> for String {
    fn from(r: RoleName) -> String {
        r.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialType {
    IamUser,
    AssumedRole,
    FederationToken,
    SessionToken,
}

impl CredentialType {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialType::IamUser => "iam_user",
            CredentialType::AssumedRole => "assumed_role",
            CredentialType::FederationToken => "federation_token",
            CredentialType::SessionToken => "session_token",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "iam_user" => Ok(CredentialType::IamUser),
            "assumed_role" => Ok(CredentialType::AssumedRole),
            "federation_token" => Ok(CredentialType::FederationToken),
            "session_token" => Ok(CredentialType::SessionToken),
            other => Err(format!(
                "credential_type {other:?} is not one of iam_user, assumed_role, federation_token, session_token"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(MountPath::parse("aws").is_ok());
        assert_eq!(MountPath::parse("aws/").unwrap().as_str(), "aws");
        assert!(MountPath::parse("sys").unwrap_err().contains("reserved"));
        assert!(MountPath::parse("a/b").is_err());
        assert!(RoleName::parse("dev.team_1-x").is_ok());
        assert!(RoleName::parse("dev/x").is_err());
        assert!(RoleName::parse("").is_err());
    }
}
