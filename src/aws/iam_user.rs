//! The `iam_user` credential type in AWS: the issue sequence (CreateUser → policies → groups →
//! CreateAccessKey), the full paginated revocation sequence, and the expiry tag.

use aws_sdk_iam::types::Tag;

use super::{AwsAccount, AwsError};
use crate::seal::Secret;

/// Tag naming the lease that owns a user; also how we recognise a user as ours.
pub const LEASE_ID_TAG: &str = "iamlease:lease-id";
pub const EXPIRES_AT_TAG: &str = "iamlease:expires-at";
pub const MOUNT_TAG: &str = "iamlease:mount";
/// Name of the inline policy built from the role's `policy_document`.
const INLINE_POLICY_NAME: &str = "iamlease";

/// Everything needed to create one IAM user for a lease.
#[derive(Debug, Clone)]
pub struct IamUserSpec {
    pub username: String,
    pub path: String,
    pub permissions_boundary_arn: Option<String>,
    /// Ours (`iamlease:*`) and the role's `iam_tags`.
    pub tags: Vec<(String, String)>,
    pub policy_arns: Vec<String>,
    pub policy_document: Option<String>,
    pub groups: Vec<String>,
    pub lease_id: String,
}

#[derive(Debug, Clone)]
pub struct IssuedAccessKey {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub user_arn: String,
}

/// An IAM user that carries our lease-id tag, as the sweeper sees it.
#[derive(Debug, Clone)]
pub struct TaggedUser {
    pub name: String,
    pub path: String,
    pub tags: Vec<(String, String)>,
}

impl TaggedUser {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// An issue that failed part-way. `user_may_exist` tells the caller whether a rollback is
/// needed; it is false only when AWS said the name belongs to a user we did not create.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct IssueError {
    pub error: AwsError,
    pub user_may_exist: bool,
}

impl AwsAccount {
    pub async fn create_iam_user(&self, spec: &IamUserSpec) -> Result<IssuedAccessKey, IssueError> {
        let user_arn = match self.create_user(spec).await {
            Ok(arn) => arn,
            Err(error) if error.is_code("EntityAlreadyExists") => {
                // A retried CreateUser whose first attempt succeeded lands here too: the user
                // is ours only if it carries our lease id. Anyone else's user is left alone.
                match self.owned_user_arn(&spec.username, &spec.lease_id).await {
                    Ok(Some(arn)) => arn,
                    Ok(None) => {
                        return Err(IssueError {
                            error,
                            user_may_exist: false,
                        });
                    }
                    // Cannot tell whose it is. The name holds 16+ random characters, so it is
                    // almost surely ours: roll back rather than risk leaving it behind.
                    Err(error) => {
                        return Err(IssueError {
                            error,
                            user_may_exist: true,
                        });
                    }
                }
            }
            Err(error) => {
                // Without credentials CreateUser was never sent, so there is nothing to undo.
                let user_may_exist = !error.credentials_unavailable;
                return Err(IssueError {
                    error,
                    user_may_exist,
                });
            }
        };
        self.complete_user(spec, user_arn)
            .await
            .map_err(|error| IssueError {
                error,
                user_may_exist: true,
            })
    }

    async fn create_user(&self, spec: &IamUserSpec) -> Result<String, AwsError> {
        let tags = spec
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AwsError::local("iam:CreateUser", e.to_string()))?;
        let out = self
            .iam
            .create_user()
            .user_name(&spec.username)
            .path(&spec.path)
            .set_permissions_boundary(spec.permissions_boundary_arn.clone())
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam:CreateUser", e))?;
        Ok(out.user().map(|u| u.arn().to_owned()).unwrap_or_default())
    }

    /// Whether the existing user of that name is the one this lease created (a retried
    /// CreateUser whose first answer was lost). An error here means we cannot tell.
    async fn owned_user_arn(
        &self,
        username: &str,
        lease_id: &str,
    ) -> Result<Option<String>, AwsError> {
        let tags = self
            .iam
            .list_user_tags()
            .user_name(username)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| AwsError::from_sdk("iam:ListUserTags", e))?;
        let ours = tags
            .iter()
            .any(|t| t.key() == LEASE_ID_TAG && t.value() == lease_id);
        if !ours {
            return Ok(None);
        }
        let user = self
            .iam
            .get_user()
            .user_name(username)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam:GetUser", e))?;
        Ok(user.user().map(|u| u.arn().to_owned()))
    }

    async fn complete_user(
        &self,
        spec: &IamUserSpec,
        user_arn: String,
    ) -> Result<IssuedAccessKey, AwsError> {
        let user = spec.username.as_str();
        for arn in &spec.policy_arns {
            self.iam
                .attach_user_policy()
                .user_name(user)
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("iam:AttachUserPolicy", e))?;
        }
        if let Some(doc) = &spec.policy_document {
            self.iam
                .put_user_policy()
                .user_name(user)
                .policy_name(INLINE_POLICY_NAME)
                .policy_document(doc)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("iam:PutUserPolicy", e))?;
        }
        for group in &spec.groups {
            self.iam
                .add_user_to_group()
                .user_name(user)
                .group_name(group)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("iam:AddUserToGroup", e))?;
        }
        let key = self.create_user_access_key(user).await?;
        Ok(IssuedAccessKey {
            access_key_id: key.access_key_id,
            secret_access_key: key.secret_access_key,
            user_arn,
        })
    }

    /// Sets the `iamlease:expires-at` tag after a renewal.
    pub async fn tag_user_expiry(&self, username: &str, expires_at: &str) -> Result<(), AwsError> {
        let tag = Tag::builder()
            .key(EXPIRES_AT_TAG)
            .value(expires_at)
            .build()
            .map_err(|e| AwsError::local("iam:TagUser", e.to_string()))?;
        self.iam
            .tag_user()
            .user_name(username)
            .tags(tag)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam:TagUser", e))?;
        Ok(())
    }

    /// Deletes a user and everything attached to it. Idempotent: a user (or a part of it) that
    /// is already gone counts as deleted, so a retried or resumed revocation converges.
    ///
    /// Access keys go first, so the credential stops working even if a later step fails. What
    /// our issue path attaches (keys, policies, groups) is always removed; the rarer blockers
    /// (login profile, MFA, SSH keys, certificates, service credentials) are only looked for
    /// when AWS answers DeleteUser with DeleteConflict, which keeps the common case short.
    pub async fn delete_iam_user(&self, username: &str) -> Result<(), AwsError> {
        match self.delete_user_attachments(username).await {
            Err(e) if e.is_no_such_entity() => return Ok(()),
            other => other?,
        }
        let conflict = match self.delete_user(username).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_code("DeleteConflict") => e,
            Err(e) => return Err(e),
        };
        // Something else still holds the user: clear everything, then try once more.
        match self.delete_user_attachments(username).await {
            Err(e) if e.is_no_such_entity() => return Ok(()),
            other => other?,
        }
        let skipped = self.delete_other_blockers(username).await;
        self.delete_user(username).await.map_err(|e| {
            if skipped.is_empty() {
                e
            } else {
                AwsError {
                    operation: e.operation,
                    credentials_unavailable: e.credentials_unavailable,
                    code: e.code.clone().or(conflict.code),
                    message: format!("{}; {}", e.message, describe_skipped(&skipped)),
                }
            }
        })
    }

    async fn delete_user(&self, username: &str) -> Result<(), AwsError> {
        match self.iam.delete_user().user_name(username).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from_sdk("iam:DeleteUser", e);
                if e.is_no_such_entity() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Every IAM user under `path_prefix` that carries an `iamlease:lease-id` tag, with its
    /// tags (ListUsers does not return them, so each user's are read apart). Users without
    /// our tag are not returned at all, so nothing downstream can touch them.
    pub async fn list_tagged_users(&self, path_prefix: &str) -> Result<Vec<TaggedUser>, AwsError> {
        let users = self
            .iam
            .list_users()
            .path_prefix(path_prefix)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| AwsError::from_sdk("iam:ListUsers", e))?;
        let mut tagged = Vec::new();
        for user in users {
            let tags = match self
                .iam
                .list_user_tags()
                .user_name(user.user_name())
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
            {
                Ok(tags) => tags,
                Err(e) => {
                    let e = AwsError::from_sdk("iam:ListUserTags", e);
                    // Deleted between the two calls: nothing to sweep.
                    if e.is_no_such_entity() {
                        continue;
                    }
                    return Err(e);
                }
            };
            let tags: Vec<(String, String)> = tags
                .into_iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect();
            if tags.iter().any(|(k, _)| k == LEASE_ID_TAG) {
                tagged.push(TaggedUser {
                    name: user.user_name().to_owned(),
                    path: user.path().to_owned(),
                    tags,
                });
            }
        }
        Ok(tagged)
    }

    /// Keys, managed policies, inline policies, groups: each list paginated.
    async fn delete_user_attachments(&self, user: &str) -> Result<(), AwsError> {
        for key in self.list_user_access_keys(user).await? {
            // A key already gone counts as deleted.
            self.delete_access_key(user, &key.access_key_id).await?;
        }

        let attached = self
            .iam
            .list_attached_user_policies()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| AwsError::from_sdk("iam:ListAttachedUserPolicies", e))?;
        for policy in attached {
            if let Some(arn) = policy.policy_arn() {
                let r = self
                    .iam
                    .detach_user_policy()
                    .user_name(user)
                    .policy_arn(arn)
                    .send()
                    .await;
                ignore_missing(r.map_err(|e| AwsError::from_sdk("iam:DetachUserPolicy", e)))?;
            }
        }

        let inline = self
            .iam
            .list_user_policies()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| AwsError::from_sdk("iam:ListUserPolicies", e))?;
        for name in inline {
            let r = self
                .iam
                .delete_user_policy()
                .user_name(user)
                .policy_name(name)
                .send()
                .await;
            ignore_missing(r.map_err(|e| AwsError::from_sdk("iam:DeleteUserPolicy", e)))?;
        }

        let groups = self
            .iam
            .list_groups_for_user()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| AwsError::from_sdk("iam:ListGroupsForUser", e))?;
        for group in groups {
            let r = self
                .iam
                .remove_user_from_group()
                .user_name(user)
                .group_name(group.group_name())
                .send()
                .await;
            ignore_missing(r.map_err(|e| AwsError::from_sdk("iam:RemoveUserFromGroup", e)))?;
        }
        Ok(())
    }

    /// Best effort: each step that fails is reported, and the others still run.
    async fn delete_other_blockers(&self, user: &str) -> Vec<AwsError> {
        let mut failures = Vec::new();
        let mut note = |r: Result<(), AwsError>| {
            if let Err(e) = ignore_missing(r) {
                failures.push(e);
            }
        };

        note(
            self.iam
                .delete_login_profile()
                .user_name(user)
                .send()
                .await
                .map(drop)
                .map_err(|e| AwsError::from_sdk("iam:DeleteLoginProfile", e)),
        );

        match self
            .iam
            .list_mfa_devices()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
        {
            Err(e) => note(Err(AwsError::from_sdk("iam:ListMFADevices", e))),
            Ok(devices) => {
                for d in devices {
                    let serial = d.serial_number();
                    note(
                        self.iam
                            .deactivate_mfa_device()
                            .user_name(user)
                            .serial_number(serial)
                            .send()
                            .await
                            .map(drop)
                            .map_err(|e| AwsError::from_sdk("iam:DeactivateMFADevice", e)),
                    );
                    // Virtual devices have ARNs; they would otherwise linger unassigned.
                    if serial.starts_with("arn:") {
                        note(
                            self.iam
                                .delete_virtual_mfa_device()
                                .serial_number(serial)
                                .send()
                                .await
                                .map(drop)
                                .map_err(|e| AwsError::from_sdk("iam:DeleteVirtualMFADevice", e)),
                        );
                    }
                }
            }
        }

        match self
            .iam
            .list_ssh_public_keys()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
        {
            Err(e) => note(Err(AwsError::from_sdk("iam:ListSSHPublicKeys", e))),
            Ok(keys) => {
                for k in keys {
                    note(
                        self.iam
                            .delete_ssh_public_key()
                            .user_name(user)
                            .ssh_public_key_id(k.ssh_public_key_id())
                            .send()
                            .await
                            .map(drop)
                            .map_err(|e| AwsError::from_sdk("iam:DeleteSSHPublicKey", e)),
                    );
                }
            }
        }

        match self
            .iam
            .list_signing_certificates()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
        {
            Err(e) => note(Err(AwsError::from_sdk("iam:ListSigningCertificates", e))),
            Ok(certs) => {
                for c in certs {
                    note(
                        self.iam
                            .delete_signing_certificate()
                            .user_name(user)
                            .certificate_id(c.certificate_id())
                            .send()
                            .await
                            .map(drop)
                            .map_err(|e| AwsError::from_sdk("iam:DeleteSigningCertificate", e)),
                    );
                }
            }
        }

        // Not paginated in the IAM API.
        match self
            .iam
            .list_service_specific_credentials()
            .user_name(user)
            .send()
            .await
        {
            Err(e) => note(Err(AwsError::from_sdk(
                "iam:ListServiceSpecificCredentials",
                e,
            ))),
            Ok(out) => {
                for c in out.service_specific_credentials() {
                    note(
                        self.iam
                            .delete_service_specific_credential()
                            .user_name(user)
                            .service_specific_credential_id(c.service_specific_credential_id())
                            .send()
                            .await
                            .map(drop)
                            .map_err(|e| {
                                AwsError::from_sdk("iam:DeleteServiceSpecificCredential", e)
                            }),
                    );
                }
            }
        }
        failures
    }
}

/// What kept DeleteUser from succeeding, naming each IAM permission the server lacks, so an
/// operator knows exactly what to add to its policy (`iamlease setup aws` lists them all).
fn describe_skipped(skipped: &[AwsError]) -> String {
    let (denied, other): (Vec<_>, Vec<_>) = skipped
        .iter()
        .partition(|e| e.is_code("AccessDenied") || e.is_code("AccessDeniedException"));
    let mut parts = Vec::new();
    if !denied.is_empty() {
        parts.push(format!(
            "the server's AWS identity lacks the permission {} (add it to its IAM policy, see `iamlease setup aws`)",
            denied
                .iter()
                .map(|e| e.operation)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !other.is_empty() {
        parts.push(format!(
            "could not clear: {}",
            other
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    parts.join("; ")
}

/// Deleting something that is already gone is success.
fn ignore_missing<T>(r: Result<T, AwsError>) -> Result<(), AwsError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_no_such_entity() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(op: &'static str, code: &str) -> AwsError {
        AwsError {
            operation: op,
            code: Some(code.into()),
            message: format!("{code}: not allowed"),
            credentials_unavailable: false,
        }
    }

    #[test]
    fn a_refused_optional_step_names_the_missing_permission() {
        let text = describe_skipped(&[
            err("iam:ListMFADevices", "AccessDenied"),
            err("iam:ListSSHPublicKeys", "AccessDenied"),
            err("iam:DeleteLoginProfile", "ServiceFailure"),
        ]);
        assert!(
            text.contains("lacks the permission iam:ListMFADevices, iam:ListSSHPublicKeys"),
            "{text}"
        );
        assert!(
            text.contains("could not clear: iam:DeleteLoginProfile: ServiceFailure"),
            "{text}"
        );
    }
}
