//! The AWS side of `iamlease setup aws --apply`: who the caller is, and creating (or, run again,
//! updating) the server's policy and role with the caller's own credentials from the default
//! chain.

use aws_config::BehaviorVersion;
use aws_sdk_iam::config::Region;

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::AwsError;

/// The caller's SDK clients from the default credential chain (environment, profile, SSO,
/// IMDS…), honouring `AWS_ENDPOINT_URL` like the aws CLI does.
#[derive(Debug, Clone)]
pub struct AdminSession {
    iam: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
}

/// What `--apply` left in AWS: the policy and role, and which of them this run created (a
/// second run updates what the first made instead of failing on it).
#[derive(Debug, Clone)]
pub struct AppliedSetup {
    pub policy_arn: String,
    pub role_arn: String,
    pub policy_created: bool,
    pub role_created: bool,
}

/// IAM keeps at most five versions of a managed policy.
const MAX_POLICY_VERSIONS: usize = 5;

/// The caller's own credentials, not the mount's: a failure to find them says how to set them.
fn admin_err<E>(operation: &'static str, e: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut err = AwsError::from_sdk(operation, e);
    if err.credentials_unavailable {
        err.message = "no AWS credentials of yours were found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws sso login`)".into();
    }
    err
}

impl AdminSession {
    pub async fn from_default_chain(region: &str) -> Self {
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .load()
            .await;
        AdminSession {
            iam: aws_sdk_iam::Client::new(&shared),
            sts: aws_sdk_sts::Client::new(&shared),
        }
    }

    /// The caller's ARN (sts:GetCallerIdentity needs no permission).
    pub async fn caller_arn(&self) -> Result<String, AwsError> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| admin_err("sts:GetCallerIdentity", e))?;
        out.arn()
            .map(str::to_owned)
            .ok_or_else(|| AwsError::local("sts:GetCallerIdentity", "AWS returned no ARN"))
    }

    /// Converges on the policy and role: CreatePolicy (or, when it exists, a new default
    /// version of it), CreateRole (or, when it exists, its trust policy replaced),
    /// AttachRolePolicy. A failure deletes only what this run created, so a retry starts
    /// from what was there before.
    pub async fn apply_role_with_policy(
        &self,
        account: &str,
        policy_name: &str,
        policy: &str,
        role_name: &str,
        trust: &str,
    ) -> Result<AppliedSetup, AwsError> {
        let (policy_arn, policy_created) = self.put_policy(account, policy_name, policy).await?;
        let role = self.put_role(role_name, trust).await;
        let (role_arn, role_created) = match role {
            Ok(r) => r,
            Err(e) => {
                let undo = (policy_created.then_some(policy_arn.as_str()), None);
                return Err(self.roll_back(e, undo).await);
            }
        };
        if let Err(e) = self
            .iam
            .attach_role_policy()
            .role_name(role_name)
            .policy_arn(&policy_arn)
            .send()
            .await
        {
            let undo = (
                policy_created.then_some(policy_arn.as_str()),
                role_created.then_some(role_name),
            );
            return Err(self
                .roll_back(admin_err("iam:AttachRolePolicy", e), undo)
                .await);
        }
        Ok(AppliedSetup {
            policy_arn,
            role_arn,
            policy_created,
            role_created,
        })
    }

    /// Deletes what this run created (`(policy_arn, role_name)`), role first, and says in the
    /// error exactly what is left in AWS.
    async fn roll_back(
        &self,
        mut e: AwsError,
        (policy, role): (Option<&str>, Option<&str>),
    ) -> AwsError {
        let mut left = Vec::new();
        if let Some(role) = role
            && let Err(d) = self.iam.delete_role().role_name(role).send().await
        {
            left.push(format!("role {role} ({})", admin_err("iam:DeleteRole", d)));
        }
        if let Some(arn) = policy
            && let Err(d) = self.iam.delete_policy().policy_arn(arn).send().await
        {
            left.push(format!(
                "policy {arn} ({})",
                admin_err("iam:DeletePolicy", d)
            ));
        }
        if left.is_empty() {
            e.message
                .push_str("; nothing this run created is left in AWS");
        } else {
            e.message.push_str(&format!(
                "; left in AWS, delete by hand: {}",
                left.join(", ")
            ));
        }
        e
    }

    /// The managed policy with `document` as its default version; whether this created it.
    async fn put_policy(
        &self,
        account: &str,
        name: &str,
        document: &str,
    ) -> Result<(String, bool), AwsError> {
        // No Description: moto 5.2 refuses the signature of a request that carries one.
        match self
            .iam
            .create_policy()
            .policy_name(name)
            .policy_document(document)
            .send()
            .await
        {
            Ok(out) => {
                let arn = out.policy.and_then(|p| p.arn).ok_or_else(|| {
                    AwsError::local("iam:CreatePolicy", "AWS returned no policy ARN")
                })?;
                return Ok((arn, true));
            }
            Err(e) => {
                let e = admin_err("iam:CreatePolicy", e);
                if !e.is_code("EntityAlreadyExists") {
                    return Err(e);
                }
            }
        }
        let arn = format!("arn:aws:iam::{account}:policy/{name}");
        let versions = self
            .iam
            .list_policy_versions()
            .policy_arn(&arn)
            .send()
            .await
            .map_err(|e| admin_err("iam:ListPolicyVersions", e))?
            .versions
            .unwrap_or_default();
        if versions.len() >= MAX_POLICY_VERSIONS {
            // Room for the new version: the oldest that is not the default goes.
            if let Some(oldest) = versions
                .iter()
                .filter(|v| !v.is_default_version)
                .min_by_key(|v| v.create_date.map(|d| d.secs()))
                .and_then(|v| v.version_id.clone())
            {
                self.iam
                    .delete_policy_version()
                    .policy_arn(&arn)
                    .version_id(oldest)
                    .send()
                    .await
                    .map_err(|e| admin_err("iam:DeletePolicyVersion", e))?;
            }
        }
        self.iam
            .create_policy_version()
            .policy_arn(&arn)
            .policy_document(document)
            .set_as_default(true)
            .send()
            .await
            .map_err(|e| admin_err("iam:CreatePolicyVersion", e))?;
        Ok((arn, false))
    }

    /// The role with `trust` as its trust policy; whether this created it.
    async fn put_role(&self, name: &str, trust: &str) -> Result<(String, bool), AwsError> {
        match self
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust)
            .send()
            .await
        {
            Ok(out) => return Ok((out.role.map(|r| r.arn).unwrap_or_default(), true)),
            Err(e) => {
                let e = admin_err("iam:CreateRole", e);
                if !e.is_code("EntityAlreadyExists") {
                    return Err(e);
                }
            }
        }
        self.iam
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(trust)
            .send()
            .await
            .map_err(|e| admin_err("iam:UpdateAssumeRolePolicy", e))?;
        let role = self
            .iam
            .get_role()
            .role_name(name)
            .send()
            .await
            .map_err(|e| admin_err("iam:GetRole", e))?;
        Ok((role.role.map(|r| r.arn).unwrap_or_default(), false))
    }
}
