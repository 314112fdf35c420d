//! The AWS side of `iamlease setup aws --apply`: who the caller is, and creating the server's
//! policy and role with the caller's own (admin) credentials from the default chain.

use aws_config::BehaviorVersion;
use aws_sdk_iam::config::Region;

use super::AwsError;

/// The caller's SDK clients from the default credential chain (environment, profile, SSO,
/// IMDS…), honouring `AWS_ENDPOINT_URL` like the aws CLI does.
#[derive(Debug, Clone)]
pub struct AdminSession {
    iam: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
}

/// What `--apply` created.
#[derive(Debug, Clone)]
pub struct AppliedSetup {
    pub policy_arn: String,
    pub role_arn: String,
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
            .map_err(|e| AwsError::from_sdk("sts:GetCallerIdentity", e))?;
        out.arn()
            .map(str::to_owned)
            .ok_or_else(|| AwsError::local("sts:GetCallerIdentity", "AWS returned no ARN"))
    }

    /// CreatePolicy, CreateRole (with the trust policy), AttachRolePolicy. A failure after
    /// CreatePolicy deletes what was created, so a retry starts clean.
    pub async fn create_role_with_policy(
        &self,
        policy_name: &str,
        policy: &str,
        role_name: &str,
        trust: &str,
    ) -> Result<AppliedSetup, AwsError> {
        let policy_arn = self
            .iam
            .create_policy()
            // No Description: moto 5.2 refuses the signature of a request that carries one.
            .policy_name(policy_name)
            .policy_document(policy)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam:CreatePolicy", e))?
            .policy
            .and_then(|p| p.arn)
            .ok_or_else(|| AwsError::local("iam:CreatePolicy", "AWS returned no policy ARN"))?;
        let role = self
            .iam
            .create_role()
            .role_name(role_name)
            .assume_role_policy_document(trust)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam:CreateRole", e));
        let role_arn = match role {
            Ok(out) => out.role.map(|r| r.arn).unwrap_or_default(),
            Err(e) => {
                let _ = self
                    .iam
                    .delete_policy()
                    .policy_arn(&policy_arn)
                    .send()
                    .await;
                return Err(e);
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
            let _ = self.iam.delete_role().role_name(role_name).send().await;
            let _ = self
                .iam
                .delete_policy()
                .policy_arn(&policy_arn)
                .send()
                .await;
            return Err(AwsError::from_sdk("iam:AttachRolePolicy", e));
        }
        Ok(AppliedSetup {
            policy_arn,
            role_arn,
        })
    }
}
