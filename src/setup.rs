//! Guided AWS setup: the least-privilege IAM policy the server needs, the trust policy of the
//! role it assumes (with an External ID), and the `aws iam` commands that create them.
//! Pure documents; `aws::setup` creates them in AWS and `iamlease setup aws` drives both.

use serde_json::{Value, json};

use crate::seal::{ALNUM, random_string};

/// Every IAM action that the issue, renew, revoke and sweep paths call on a user we created
/// (and, for rotate-root, on the root user itself). `setup::tests` and the integration test
/// `setup::the_policy_lists_every_iam_call_the_server_makes` keep this in step with `src/aws/`.
pub const USER_ACTIONS: &[&str] = &[
    // issue
    "iam:CreateUser",
    "iam:GetUser",
    "iam:TagUser",
    "iam:ListUserTags",
    "iam:AttachUserPolicy",
    "iam:PutUserPolicy",
    "iam:CreateAccessKey",
    // revoke: what we attach
    "iam:ListAccessKeys",
    "iam:DeleteAccessKey",
    "iam:ListAttachedUserPolicies",
    "iam:DetachUserPolicy",
    "iam:ListUserPolicies",
    "iam:DeleteUserPolicy",
    "iam:ListGroupsForUser",
    "iam:DeleteUser",
    // revoke: whatever else blocks DeleteUser
    "iam:DeleteLoginProfile",
    "iam:ListMFADevices",
    "iam:DeactivateMFADevice",
    "iam:ListSSHPublicKeys",
    "iam:DeleteSSHPublicKey",
    "iam:ListSigningCertificates",
    "iam:DeleteSigningCertificate",
    "iam:ListServiceSpecificCredentials",
    "iam:DeleteServiceSpecificCredential",
];

/// Group membership is authorised against the group, not the user.
pub const GROUP_ACTIONS: &[&str] = &["iam:AddUserToGroup", "iam:RemoveUserFromGroup"];

/// A virtual MFA device is its own resource; AWS only deletes one that no user holds, and
/// only users under the prefix can be made to let go of one (DeactivateMFADevice above).
pub const MFA_ACTIONS: &[&str] = &["iam:DeleteVirtualMFADevice"];

/// The orphan sweeper lists users under the prefix (ListUsers is authorised against the
/// account's user namespace; it reveals names and tags, nothing else).
pub const LIST_ACTIONS: &[&str] = &["iam:ListUsers"];

/// The IAM user quota in view (`iam_user_quota_reserve`): the account's summary, which IAM
/// authorises only on `*` (it names no resource).
pub const SUMMARY_ACTIONS: &[&str] = &["iam:GetAccountSummary"];

/// The actions that may be conditioned on `iam:PermissionsBoundary`: creating a user, and
/// granting it anything, only with the boundary in place.
const BOUNDED_ACTIONS: &[&str] = &[
    "iam:CreateUser",
    "iam:AttachUserPolicy",
    "iam:PutUserPolicy",
];

#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// IAM path prefix of every user the server may touch, `/` … `/`.
    pub path_prefix: String,
    pub boundary_arn: Option<String>,
    /// Roles the server may assume for `assumed_role` credentials (role chaining).
    pub sts_role_arns: Vec<String>,
    /// The principal allowed to assume the role (the server's own identity).
    pub principal_arn: String,
    pub external_id: String,
    pub role_name: String,
    pub policy_name: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

impl SetupOptions {
    pub fn validate(&self) -> Result<(), SetupError> {
        let p = &self.path_prefix;
        if !p.starts_with('/') || !p.ends_with('/') || p.len() > 512 {
            return Err(SetupError(format!(
                "path_prefix {p:?} must start and end with '/' and be at most 512 characters, e.g. /iamlease/"
            )));
        }
        if let Some(c) = p.chars().find(|c| !(c.is_ascii_graphic()) || *c == '*') {
            return Err(SetupError(format!(
                "path_prefix {p:?} has the character {c:?}; IAM paths allow printable ASCII without '*'"
            )));
        }
        if let Some(b) = &self.boundary_arn
            && !b.starts_with("arn:")
        {
            return Err(SetupError(format!(
                "boundary_arn {b:?} is not an ARN (arn:aws:iam::123456789012:policy/…)"
            )));
        }
        if self.external_id.len() < 2 || self.external_id.len() > 1224 {
            return Err(SetupError(
                "external_id must be 2 to 1224 characters".to_owned(),
            ));
        }
        Ok(())
    }
}

/// A fresh External ID: 32 characters from the cryptographic generator.
pub fn generate_external_id() -> String {
    random_string(32, ALNUM)
}

/// The role an assumed-role ARN stands for (`arn:aws:sts::1:assumed-role/R/session` →
/// `arn:aws:iam::1:role/R`): trust policies name the role, never one of its sessions.
pub fn principal_for(caller_arn: &str) -> String {
    if let Some(rest) = caller_arn.strip_prefix("arn:aws:sts::")
        && let Some((account, tail)) = rest.split_once(":assumed-role/")
        && let Some((role, _session)) = tail.split_once('/')
    {
        return format!("arn:aws:iam::{account}:role/{role}");
    }
    caller_arn.to_owned()
}

/// The identity policy the server's role needs, scoped to users under the path prefix.
pub fn server_policy(o: &SetupOptions) -> Value {
    let users = format!("arn:aws:iam::*:user{}*", o.path_prefix);
    let mut statements = Vec::new();
    match &o.boundary_arn {
        None => statements.push(json!({
            "Sid": "ManageLeasedUsers",
            "Effect": "Allow",
            "Action": USER_ACTIONS,
            "Resource": users,
        })),
        Some(boundary) => {
            let unbounded: Vec<&str> = USER_ACTIONS
                .iter()
                .copied()
                .filter(|a| !BOUNDED_ACTIONS.contains(a))
                .collect();
            statements.push(json!({
                "Sid": "CreateUsersOnlyWithinTheBoundary",
                "Effect": "Allow",
                "Action": BOUNDED_ACTIONS,
                "Resource": users,
                "Condition": {"StringEquals": {"iam:PermissionsBoundary": boundary}},
            }));
            statements.push(json!({
                "Sid": "ManageLeasedUsers",
                "Effect": "Allow",
                "Action": unbounded,
                "Resource": users,
            }));
        }
    }
    statements.push(json!({
        "Sid": "ManageGroupMembership",
        "Effect": "Allow",
        "Action": GROUP_ACTIONS,
        "Resource": "arn:aws:iam::*:group/*",
    }));
    statements.push(json!({
        "Sid": "DeleteUnassignedVirtualMfa",
        "Effect": "Allow",
        "Action": MFA_ACTIONS,
        "Resource": "arn:aws:iam::*:mfa/*",
    }));
    statements.push(json!({
        "Sid": "SweepOrphans",
        "Effect": "Allow",
        "Action": LIST_ACTIONS,
        "Resource": "arn:aws:iam::*:user/*",
    }));
    statements.push(json!({
        "Sid": "WatchUserQuota",
        "Effect": "Allow",
        "Action": SUMMARY_ACTIONS,
        "Resource": "*",
    }));
    if !o.sts_role_arns.is_empty() {
        statements.push(json!({
            "Sid": "AssumeRolesForLeases",
            "Effect": "Allow",
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            "Resource": o.sts_role_arns,
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Who may assume the server's role: its own principal, and only with the External ID.
pub fn trust_policy(o: &SetupOptions) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": o.principal_arn},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": o.external_id}},
        }],
    })
}

/// The `aws iam` commands that create the policy and the role by hand, and the iamlease
/// command that points the mount at the role.
pub fn commands(o: &SetupOptions, mount: &str, account: &str) -> Vec<String> {
    vec![
        format!(
            "aws iam create-policy --policy-name {} --policy-document file://iamlease-policy.json",
            o.policy_name
        ),
        format!(
            "aws iam create-role --role-name {} --assume-role-policy-document file://iamlease-trust.json",
            o.role_name
        ),
        format!(
            "aws iam attach-role-policy --role-name {} --policy-arn arn:aws:iam::{account}:policy/{}",
            o.role_name, o.policy_name
        ),
        format!(
            "iamlease config root --mount {mount} --role-arn arn:aws:iam::{account}:role/{} --external-id {}",
            o.role_name, o.external_id
        ),
    ]
}

/// The account id in an ARN (`arn:aws:iam::123456789012:user/x` → `123456789012`).
pub fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(boundary: Option<&str>) -> SetupOptions {
        SetupOptions {
            path_prefix: "/iamlease/".into(),
            boundary_arn: boundary.map(Into::into),
            sts_role_arns: vec![],
            principal_arn: "arn:aws:iam::123456789012:user/admin".into(),
            external_id: "x".repeat(32),
            role_name: "iamlease-aws".into(),
            policy_name: "iamlease-aws".into(),
        }
    }

    fn actions(policy: &Value) -> Vec<String> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Action"].as_array().unwrap().clone())
            .map(|a| a.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_user_action_is_scoped_to_the_prefix() {
        let p = server_policy(&options(None));
        let first = &p["Statement"][0];
        assert_eq!(first["Resource"], "arn:aws:iam::*:user/iamlease/*");
        assert_eq!(
            first["Action"].as_array().unwrap().len(),
            USER_ACTIONS.len()
        );
        // The one unscoped statement: the account summary (counts only) names no resource.
        for s in p["Statement"].as_array().unwrap() {
            if s["Resource"] == "*" {
                assert_eq!(s["Action"], serde_json::json!(SUMMARY_ACTIONS), "{s}");
            }
        }
    }

    #[test]
    fn a_boundary_conditions_create_user_and_every_grant() {
        let b = "arn:aws:iam::123456789012:policy/boundary";
        let p = server_policy(&options(Some(b)));
        let bounded = &p["Statement"][0];
        assert_eq!(
            bounded["Condition"]["StringEquals"]["iam:PermissionsBoundary"],
            b
        );
        assert!(
            bounded["Action"]
                .as_array()
                .unwrap()
                .contains(&json!("iam:CreateUser"))
        );
        // CreateUser may not appear unconditioned anywhere else.
        let unconditioned: Vec<_> = p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s.get("Condition").is_none())
            .flat_map(|s| s["Action"].as_array().unwrap().clone())
            .collect();
        assert!(!unconditioned.contains(&json!("iam:CreateUser")));
        // The same actions in total, with or without a boundary.
        let mut with = actions(&p);
        let mut without = actions(&server_policy(&options(None)));
        with.sort();
        without.sort();
        assert_eq!(with, without);
    }

    #[test]
    fn the_trust_policy_requires_the_external_id() {
        let t = trust_policy(&options(None));
        assert_eq!(
            t["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
            "x".repeat(32)
        );
        assert_eq!(
            t["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::123456789012:user/admin"
        );
    }

    #[test]
    fn an_assumed_role_caller_is_trusted_as_its_role() {
        assert_eq!(
            principal_for("arn:aws:sts::123456789012:assumed-role/ops/alice"),
            "arn:aws:iam::123456789012:role/ops"
        );
        assert_eq!(
            principal_for("arn:aws:iam::123456789012:user/admin"),
            "arn:aws:iam::123456789012:user/admin"
        );
    }

    #[test]
    fn bad_prefixes_are_refused_with_a_reason() {
        let mut o = options(None);
        o.path_prefix = "iamlease".into();
        assert!(
            o.validate()
                .unwrap_err()
                .0
                .contains("start and end with '/'")
        );
        o.path_prefix = "/a*/".into();
        assert!(o.validate().is_err());
        o.path_prefix = "/iamlease/".into();
        assert!(o.validate().is_ok());
    }
}
