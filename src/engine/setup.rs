//! The server's side of guided AWS setup: the policy and trust documents for a mount (with
//! the principal the mount's base credentials belong to), and the "test connection" check.

use serde_json::Value;

use super::{Engine, EngineError, Result};
use crate::aws::AwsAccount;
use crate::model::MountPath;
use crate::setup::{self, SetupOptions};

/// `GET {mount}/setup`: what the person wants created; each left out has a default.
#[derive(Debug, Clone, Default)]
pub struct SetupRequest {
    pub path_prefix: Option<String>,
    pub boundary_arn: Option<String>,
    pub sts_role_arns: Vec<String>,
    /// Generated when absent.
    pub external_id: Option<String>,
    pub role_name: Option<String>,
    pub policy_name: Option<String>,
}

/// The documents and commands that set a mount up in AWS. The policies are IAM's own JSON.
#[derive(Debug, Clone)]
pub struct SetupPlan {
    pub principal_arn: String,
    pub external_id: String,
    pub path_prefix: String,
    pub policy: Value,
    pub trust_policy: Value,
    pub commands: Vec<String>,
    /// What the person must still fill in by hand, and why.
    pub notes: Vec<String>,
}

/// Who a mount acts as in AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub arn: String,
    pub account: String,
}

/// How long a mount's page waits to learn who the server runs as.
const PRINCIPAL_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Stands in for the principal when the mount's base credentials cannot be resolved yet.
const PRINCIPAL_PLACEHOLDER: &str = "arn:aws:iam::ACCOUNT_ID:user/IAMLEASE_SERVER";

impl Engine {
    /// `GET {mount}/setup`: what to create in AWS so this mount can act through a role.
    pub async fn setup_plan(&self, mount: &MountPath, request: SetupRequest) -> Result<SetupPlan> {
        self.store.get_mount(mount).await?.ok_or_else(|| {
            EngineError::NotFound(format!("no secrets engine is mounted at {mount}/"))
        })?;
        let mut warnings = Vec::new();
        // The principal is whoever the server is before it assumes any role: the stored keys,
        // or the server's default credential chain.
        let principal = match self.store.get_root_config(mount).await? {
            Some(record) => {
                let mut settings = self.connection_settings(mount, &record)?;
                settings.role_arn = None;
                settings.external_id = None;
                // Bounded: the console shows this on every visit to a mount's page.
                let lookup = async { AwsAccount::connect(&settings).await.caller_arn().await };
                match tokio::time::timeout(PRINCIPAL_LOOKUP_TIMEOUT, lookup)
                    .await
                    .unwrap_or_else(|_| {
                        Err(crate::aws::AwsError::timed_out("sts:GetCallerIdentity"))
                    }) {
                    Ok(arn) => setup::principal_for(&arn),
                    Err(e) => {
                        warnings.push(format!(
                            "could not find out who the server runs as ({e}); replace {PRINCIPAL_PLACEHOLDER} in the trust policy"
                        ));
                        PRINCIPAL_PLACEHOLDER.to_owned()
                    }
                }
            }
            None => {
                warnings.push(format!(
                    "{mount}/ has no root config yet; replace {PRINCIPAL_PLACEHOLDER} in the trust policy with the server's principal"
                ));
                PRINCIPAL_PLACEHOLDER.to_owned()
            }
        };
        let options = SetupOptions {
            path_prefix: request.path_prefix.unwrap_or_else(|| "/iamlease/".into()),
            boundary_arn: request.boundary_arn,
            sts_role_arns: request.sts_role_arns,
            external_id: request
                .external_id
                .unwrap_or_else(setup::generate_external_id),
            role_name: request
                .role_name
                .unwrap_or_else(|| format!("iamlease-{mount}")),
            policy_name: request
                .policy_name
                .unwrap_or_else(|| format!("iamlease-{mount}")),
            principal_arn: principal.clone(),
        };
        options.validate().map_err(|e| EngineError::Invalid(e.0))?;
        let account = setup::account_of(&principal).unwrap_or("ACCOUNT_ID");
        Ok(SetupPlan {
            policy: setup::server_policy(&options),
            trust_policy: setup::trust_policy(&options),
            commands: setup::commands(&options, mount.as_str(), account),
            principal_arn: principal,
            external_id: options.external_id,
            path_prefix: options.path_prefix,
            notes: warnings,
        })
    }

    /// `POST {mount}/config/check`: sts:GetCallerIdentity with the mount's credentials (after
    /// any AssumeRole), so a person sees who the mount acts as, or AWS's reason why not.
    pub async fn check_connection(&self, mount: &MountPath) -> Result<CallerIdentity> {
        let account = self.account(mount).await?;
        let arn = account
            .caller_arn()
            .await
            .map_err(|e| EngineError::Aws(e.to_string()))?;
        Ok(CallerIdentity {
            account: setup::account_of(&arn).unwrap_or_default().to_owned(),
            arn,
        })
    }
}
