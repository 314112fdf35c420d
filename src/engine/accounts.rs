//! The SDK client cache: one `AwsAccount` per mount, rebuilt when its root config's version
//! changes, so a rotated or rewritten key is used by the next call.

use super::cache::Snapshot;
use super::root::{RootConfig, root_context};
use super::{Engine, EngineError, Result};
use crate::aws::{AwsAccount, ConnectionSettings};
use crate::model::MountPath;
use crate::seal::Secret;
use crate::store::RootConfigRecord;

impl Engine {
    /// The mount's SDK clients, from the root config as it is now.
    pub(super) async fn account(&self, mount: &MountPath) -> Result<AwsAccount> {
        let at = self.snapshot().await?;
        self.account_at(at, mount).await
    }

    /// The mount's SDK clients, from the root config as of `at`.
    pub(super) async fn account_at(&self, at: Snapshot, mount: &MountPath) -> Result<AwsAccount> {
        let record = self.root_config_at(at, mount).await?.ok_or_else(|| {
            EngineError::Invalid(format!(
                "{mount}/ has no AWS connection yet: write {mount}/config/root first"
            ))
        })?;
        if let Some((version, account)) = self.accounts.lock().expect("accounts lock").get(mount)
            && *version == record.version
        {
            return Ok(account.clone());
        }
        let account = AwsAccount::connect(&self.connection_settings(mount, &record)?).await;
        self.accounts
            .lock()
            .expect("accounts lock")
            .insert(mount.clone(), (record.version, account.clone()));
        Ok(account)
    }

    /// The root config as the SDK needs it, the secret key unsealed.
    pub(super) fn connection_settings(
        &self,
        mount: &MountPath,
        record: &RootConfigRecord,
    ) -> Result<ConnectionSettings> {
        let c: RootConfig = serde_json::from_str(&record.config)
            .map_err(|e| EngineError::Internal(format!("stored root config: {e}")))?;
        let secret_key = match &record.secret_sealed {
            Some(sealed) => Some(Secret::new(
                String::from_utf8(self.sealer.open(&root_context(mount), sealed)?)
                    .map_err(|_| EngineError::Internal("sealed secret is not UTF-8".into()))?,
            )),
            None => None,
        };
        // RoleSessionName allows 64 characters; mount paths are already in its character set.
        let mut role_session_name = format!("iamlease-{mount}");
        role_session_name.truncate(64);
        Ok(ConnectionSettings {
            access_key: c.access_key,
            secret_key,
            region: c.region.unwrap_or_else(|| "us-east-1".into()),
            iam_endpoint: c.iam_endpoint,
            sts_endpoint: c.sts_endpoint,
            max_retries: c.max_retries.and_then(|n| u32::try_from(n).ok()),
            retry_mode: c.retry_mode.unwrap_or_default(),
            role_arn: c.role_arn,
            external_id: c.external_id,
            role_session_name,
        })
    }
}
