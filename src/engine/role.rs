//! Roles: the validated recipe for one kind of credential, and the names of mounts and roles.
//! Everything a role holds was checked when it was written, so issuing never meets a bad value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::template::{
    DEFAULT_FEDERATION_TEMPLATE, DEFAULT_SESSION_TEMPLATE, DEFAULT_USERNAME_TEMPLATE, NameKind,
    NameTemplate,
};
use super::{EngineError, Result};
use crate::duration::Ttl;
use crate::model::{CredentialType, MountPath, RoleName};

/// STS limits, checked before any call is made.
pub const STS_MIN_TTL: u64 = 900;
pub const ASSUME_ROLE_MAX_TTL: u64 = 12 * 3600;
pub const FEDERATION_MAX_TTL: u64 = 36 * 3600;
// IAM allows 50 tags; five are ours (lease id, mount, role, expiry, requester).
const MAX_USER_TAGS: usize = 50 - 5;

/// A validated role as stored. The secret parts of a credential never live here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub credential_type: CredentialType,
    pub policy_arns: Vec<String>,
    pub policy_document: Option<String>,
    pub iam_groups: Vec<String>,
    pub iam_tags: BTreeMap<String, String>,
    pub user_path: Option<String>,
    pub permissions_boundary_arn: Option<String>,
    pub username_template: Option<String>,
    pub default_ttl: Option<Ttl>,
    pub max_ttl: Option<Ttl>,
    pub role_arns: Vec<String>,
    pub default_sts_ttl: Option<Ttl>,
    pub max_sts_ttl: Option<Ttl>,
    pub session_tags: BTreeMap<String, String>,
    pub external_id: Option<String>,
    pub mfa_serial_number: Option<String>,
    /// Names for the credential fields in `--format env` and `exec` (see `key_map`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub key_map: BTreeMap<String, String>,
    /// At most this many leases of the role at once (any state); `None` or 0: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_leases: Option<u32>,
}

impl Role {
    /// Every rule a role must keep, across fields: checked on each write, so issuing never
    /// meets a bad value.
    pub fn validate(&self) -> Result<()> {
        use CredentialType::*;
        let t = self.credential_type;
        let only = |set: bool, field: &str, allowed: &str| {
            if set {
                Err(EngineError::Invalid(format!(
                    "{field} is only valid for {allowed} roles, not {}",
                    t.as_str()
                )))
            } else {
                Ok(())
            }
        };
        if t != AssumedRole {
            only(!self.role_arns.is_empty(), "role_arns", "assumed_role")?;
            only(
                !self.session_tags.is_empty(),
                "session_tags",
                "assumed_role",
            )?;
            only(self.external_id.is_some(), "external_id", "assumed_role")?;
        }
        if t != IamUser {
            only(self.user_path.is_some(), "user_path", "iam_user")?;
            only(
                self.permissions_boundary_arn.is_some(),
                "permissions_boundary_arn",
                "iam_user",
            )?;
            only(!self.iam_tags.is_empty(), "iam_tags", "iam_user")?;
            only(self.default_ttl.is_some(), "default_ttl", "iam_user")?;
            only(self.max_ttl.is_some(), "max_ttl", "iam_user")?;
        }
        if t == IamUser {
            only(self.default_sts_ttl.is_some(), "default_sts_ttl", "STS")?;
            only(self.max_sts_ttl.is_some(), "max_sts_ttl", "STS")?;
        }
        if t != SessionToken {
            only(
                self.mfa_serial_number.is_some(),
                "mfa_serial_number",
                "session_token",
            )?;
        }
        if t == SessionToken {
            let has_policy = !self.policy_arns.is_empty()
                || self.policy_document.is_some()
                || !self.iam_groups.is_empty();
            if has_policy {
                return Err(EngineError::Invalid(
                    "session_token roles take no policy_arns, policy_document or iam_groups: the session has the calling identity's permissions".into(),
                ));
            }
            only(
                self.username_template.is_some(),
                "username_template",
                "iam_user, assumed_role and federation_token",
            )?;
        }
        if t != AssumedRole
            && t != SessionToken
            && self.policy_arns.is_empty()
            && self.policy_document.is_none()
            && self.iam_groups.is_empty()
        {
            return Err(EngineError::Invalid(format!(
                "{} roles need at least one of policy_arns, policy_document or iam_groups",
                t.as_str()
            )));
        }
        if t == FederationToken {
            only(!self.iam_groups.is_empty(), "iam_groups", "iam_user")?;
        }
        if t == AssumedRole {
            if self.role_arns.is_empty() {
                return Err(EngineError::Invalid(
                    "assumed_role roles need role_arns: the ARN of at least one IAM role to assume"
                        .into(),
                ));
            }
            only(!self.iam_groups.is_empty(), "iam_groups", "iam_user")?;
            for arn in &self.role_arns {
                check_arn(arn, "role_arns", "role/")?;
            }
            if let Some(id) = &self.external_id {
                check_external_id(id)?;
            }
            // STS allows 50; one is ours (`iamlease:requester`).
            check_tags(&self.session_tags, "session_tags", 49)?;
        }

        for arn in &self.policy_arns {
            check_arn(arn, "policy_arns", "policy/")?;
        }
        if let Some(arn) = &self.permissions_boundary_arn {
            check_arn(arn, "permissions_boundary_arn", "policy/")?;
        }
        for g in &self.iam_groups {
            let ok = (1..=128).contains(&g.len())
                && g.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
            if !ok {
                return Err(EngineError::Invalid(format!(
                    "iam_groups entry {g:?} is not a valid IAM group name (1 to 128 of A-Z a-z 0-9 + = , . @ _ -)"
                )));
            }
        }
        check_tags(&self.iam_tags, "iam_tags", MAX_USER_TAGS)?;
        crate::key_map::check(&self.key_map).map_err(EngineError::Invalid)?;
        if let Some(path) = &self.user_path {
            check_iam_path(path)?;
        }
        if let Some(doc) = &self.policy_document {
            check_policy_document(doc)?;
        }
        if let Some(template) = &self.username_template {
            NameTemplate::parse(template, self.name_kind()).map_err(EngineError::Invalid)?;
        }

        if let (Some(d), Some(m)) = (self.default_ttl, self.max_ttl)
            && d > m
        {
            return Err(EngineError::Invalid(format!(
                "default_ttl ({d}) must not exceed max_ttl ({m})"
            )));
        }
        let sts_max = match t {
            AssumedRole => ASSUME_ROLE_MAX_TTL,
            _ => FEDERATION_MAX_TTL,
        };
        for (field, value) in [
            ("default_sts_ttl", self.default_sts_ttl),
            ("max_sts_ttl", self.max_sts_ttl),
        ] {
            if let Some(v) = value {
                check_sts_ttl(field, v, sts_max)?;
            }
        }
        if let (Some(d), Some(m)) = (self.default_sts_ttl, self.max_sts_ttl)
            && d > m
        {
            return Err(EngineError::Invalid(format!(
                "default_sts_ttl ({d}) must not exceed max_sts_ttl ({m})"
            )));
        }
        Ok(())
    }

    pub fn name_kind(&self) -> NameKind {
        match self.credential_type {
            CredentialType::FederationToken => NameKind::FederationToken,
            CredentialType::AssumedRole => NameKind::RoleSession,
            _ => NameKind::IamUser,
        }
    }

    /// The template in force: the role's own or the default for its credential type.
    pub fn name_template(&self) -> NameTemplate {
        let source = self
            .username_template
            .as_deref()
            .unwrap_or(match self.credential_type {
                CredentialType::FederationToken => DEFAULT_FEDERATION_TEMPLATE,
                CredentialType::AssumedRole => DEFAULT_SESSION_TEMPLATE,
                _ => DEFAULT_USERNAME_TEMPLATE,
            });
        NameTemplate::parse(source, self.name_kind()).expect("validated when the role was written")
    }

    /// The IAM path users of this role are created under.
    pub fn user_path(&self, mount: &MountPath, name: &RoleName) -> String {
        self.user_path
            .clone()
            .unwrap_or_else(|| default_user_path(mount, name))
    }
}

pub fn default_user_path(mount: &MountPath, name: &RoleName) -> String {
    format!("/iamlease/{mount}/{name}/")
}

/// IAM refuses a policy without statements at issue time; say so when the role is written.
fn check_policy_document(doc: &str) -> Result<()> {
    if doc.len() > 6144 {
        return Err(EngineError::Invalid(format!(
            "policy_document is {} characters; IAM allows 6144 for an inline user policy",
            doc.len()
        )));
    }
    let value: Value = serde_json::from_str(doc)
        .map_err(|e| EngineError::Invalid(format!("policy_document is not valid JSON: {e}")))?;
    let has_statement = match value.get("Statement") {
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(_)) => true,
        _ => false,
    };
    if !has_statement {
        return Err(EngineError::Invalid(
            "policy_document needs a non-empty \"Statement\", e.g. {\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:ListBucket\",\"Resource\":\"*\"}]}".into(),
        ));
    }
    Ok(())
}

fn check_sts_ttl(field: &str, v: Ttl, max: u64) -> Result<()> {
    if v.as_secs() < STS_MIN_TTL {
        return Err(EngineError::Invalid(format!(
            "{field} is {}s; AWS requires at least 900s (15m) for STS credentials",
            v.as_secs()
        )));
    }
    if v.as_secs() > max {
        return Err(EngineError::Invalid(format!(
            "{field} is {}s; AWS allows at most {max}s ({}) for this credential type",
            v.as_secs(),
            Ttl::from_secs(max)
        )));
    }
    Ok(())
}

/// AWS's rule for an External ID: 2 to 1224 characters of `[\w+=,.@:/-]`.
pub fn check_external_id(id: &str) -> Result<()> {
    let ok = (2..=1224).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(
            "external_id must be 2 to 1224 characters of A-Z a-z 0-9 and + = , . @ : / - _".into(),
        ))
    }
}

/// An IAM role ARN (`arn:aws:iam::123456789012:role/NAME`), named `field` in errors.
pub fn check_role_arn(arn: &str, field: &str) -> Result<()> {
    check_arn(arn, field, "role/")
}

/// `arn:PARTITION:iam::ACCOUNT:RESOURCE…` where ACCOUNT is 12 digits (or `aws` for AWS-managed policies).
fn check_arn(arn: &str, field: &str, resource_prefix: &str) -> Result<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && ((parts[4].len() == 12 && parts[4].bytes().all(|b| b.is_ascii_digit()))
            || (parts[4] == "aws" && resource_prefix == "policy/"))
        && parts[5].starts_with(resource_prefix)
        && parts[5].len() > resource_prefix.len()
        && arn.len() <= 2048
        && !arn.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "{field} entry {arn:?} is not an IAM {} ARN (arn:aws:iam::123456789012:{}NAME)",
            resource_prefix.trim_end_matches('/'),
            resource_prefix
        )))
    }
}

/// IAM's path rule: starts and ends with `/`, at most 512 printable ASCII characters.
pub fn check_iam_path(path: &str) -> Result<()> {
    if !path.starts_with('/') || !path.ends_with('/') {
        return Err(EngineError::Invalid(format!(
            "user_path {path:?} must start and end with '/', e.g. /iamlease/dev/"
        )));
    }
    if path.len() > 512 {
        return Err(EngineError::Invalid(format!(
            "user_path is {} characters; IAM allows 512",
            path.len()
        )));
    }
    if let Some(c) = path.chars().find(|c| !('\u{21}'..='\u{7e}').contains(c)) {
        return Err(EngineError::Invalid(format!(
            "user_path {path:?} contains {c:?}; IAM paths use printable ASCII without spaces"
        )));
    }
    Ok(())
}

fn check_tags(tags: &BTreeMap<String, String>, field: &str, max: usize) -> Result<()> {
    if tags.len() > max {
        return Err(EngineError::Invalid(format!(
            "{field} has {} tags; at most {max} are allowed",
            tags.len()
        )));
    }
    let tag_char = |c: char| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c);
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || !k.chars().all(tag_char) {
            return Err(EngineError::Invalid(format!(
                "{field} key {k:?} must be 1 to 128 letters, digits, spaces or _ . : / = + - @"
            )));
        }
        let lower = k.to_ascii_lowercase();
        if lower.starts_with("aws:") || lower.starts_with("iamlease:") {
            return Err(EngineError::Invalid(format!(
                "{field} key {k:?} uses a reserved prefix (aws: and iamlease: belong to AWS and to us)"
            )));
        }
        if v.chars().count() > 256 || !v.chars().all(tag_char) {
            return Err(EngineError::Invalid(format!(
                "{field} value for {k:?} must be at most 256 letters, digits, spaces or _ . : / = + - @"
            )));
        }
    }
    Ok(())
}
