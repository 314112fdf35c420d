//! The STS credential types in AWS: AssumeRole, GetFederationToken and GetSessionToken. There is
//! no revocation sequence: STS credentials cannot be revoked, they expire in AWS on their own.

use aws_sdk_sts::types::{PolicyDescriptorType, Tag};

use super::{AwsAccount, AwsError};
use crate::seal::Secret;

/// sts:AssumeRole, as an `assumed_role` role asks for it.
#[derive(Debug, Clone)]
pub struct AssumeRoleSpec {
    pub role_arn: String,
    pub session_name: String,
    pub duration_secs: u64,
    pub policy_document: Option<String>,
    pub policy_arns: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub external_id: Option<String>,
    /// Who asked: kept on this session and every one chained from it.
    pub source_identity: Option<String>,
}

/// sts:GetFederationToken, as a `federation_token` role asks for it.
#[derive(Debug, Clone)]
pub struct FederationTokenSpec {
    pub name: String,
    pub duration_secs: u64,
    pub policy_document: Option<String>,
    pub policy_arns: Vec<String>,
}

/// sts:GetSessionToken; `mfa` is the device serial and the one-time code, when the role has one.
#[derive(Debug, Clone)]
pub struct SessionTokenSpec {
    pub duration_secs: u64,
    pub mfa: Option<(String, Secret)>,
}

/// Temporary credentials as STS hands them out. The secret parts stay in `Secret`s.
#[derive(Debug, Clone)]
pub struct StsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Secret,
    /// When AWS stops accepting them, in unix seconds.
    pub expiration: i64,
    /// The assumed-role or federated-user ARN; for a session token, the caller's ARN if known.
    pub arn: String,
}

fn duration(secs: u64) -> i32 {
    // Validated against AWS's limits (at most 36 h) before we get here.
    i32::try_from(secs).unwrap_or(i32::MAX)
}

fn policy_descriptors(arns: &[String]) -> Option<Vec<PolicyDescriptorType>> {
    if arns.is_empty() {
        return None;
    }
    Some(
        arns.iter()
            .map(|a| PolicyDescriptorType::builder().arn(a).build())
            .collect(),
    )
}

fn credentials(
    operation: &'static str,
    creds: Option<&aws_sdk_sts::types::Credentials>,
    arn: String,
) -> Result<StsCredentials, AwsError> {
    let c = creds.ok_or_else(|| AwsError::local(operation, "the answer carried no credentials"))?;
    Ok(StsCredentials {
        access_key_id: c.access_key_id().to_owned(),
        secret_access_key: Secret::new(c.secret_access_key()),
        session_token: Secret::new(c.session_token()),
        expiration: c.expiration().secs(),
        arn,
    })
}

impl AwsAccount {
    pub async fn assume_role(&self, spec: &AssumeRoleSpec) -> Result<StsCredentials, AwsError> {
        const OP: &str = "sts:AssumeRole";
        let tags = spec
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AwsError::local(OP, e.to_string()))?;
        let out = self
            .sts
            .assume_role()
            .role_arn(&spec.role_arn)
            .role_session_name(&spec.session_name)
            .duration_seconds(duration(spec.duration_secs))
            .set_policy(spec.policy_document.clone())
            .set_policy_arns(policy_descriptors(&spec.policy_arns))
            .set_tags(Some(tags).filter(|t| !t.is_empty()))
            .set_external_id(spec.external_id.clone())
            .set_source_identity(spec.source_identity.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        let arn = out
            .assumed_role_user()
            .map(|u| u.arn().to_owned())
            .unwrap_or_default();
        credentials(OP, out.credentials(), arn)
    }

    pub async fn get_federation_token(
        &self,
        spec: &FederationTokenSpec,
    ) -> Result<StsCredentials, AwsError> {
        const OP: &str = "sts:GetFederationToken";
        let out = self
            .sts
            .get_federation_token()
            .name(&spec.name)
            .duration_seconds(duration(spec.duration_secs))
            .set_policy(spec.policy_document.clone())
            .set_policy_arns(policy_descriptors(&spec.policy_arns))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        let arn = out
            .federated_user()
            .map(|u| u.arn().to_owned())
            .unwrap_or_default();
        credentials(OP, out.credentials(), arn)
    }

    pub async fn get_session_token(
        &self,
        spec: &SessionTokenSpec,
    ) -> Result<StsCredentials, AwsError> {
        const OP: &str = "sts:GetSessionToken";
        let (serial, code) = match &spec.mfa {
            Some((serial, code)) => (Some(serial.clone()), Some(code.expose().to_owned())),
            None => (None, None),
        };
        let out = self
            .sts
            .get_session_token()
            .duration_seconds(duration(spec.duration_secs))
            .set_serial_number(serial)
            .set_token_code(code)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        // A session token acts as the identity that asked for it; name it when AWS tells us.
        // Only informative, so a failure here does not fail the issue.
        let arn = self.caller_arn().await.unwrap_or_default();
        credentials(OP, out.credentials(), arn)
    }

    /// The ARN of the identity this mount acts as (sts:GetCallerIdentity).
    pub async fn caller_arn(&self) -> Result<String, AwsError> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sts:GetCallerIdentity", e))?;
        Ok(out.arn().unwrap_or_default().to_owned())
    }
}
