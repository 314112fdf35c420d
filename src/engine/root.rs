//! A mount's root configuration: the AWS connection (keys sealed, endpoints checked against
//! the operator's allow-list) and the rotation of its access key.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::role::{check_external_id, check_role_arn};
use super::{Engine, EngineError, Result, aws_failed};
use crate::aws::{AwsAccount, RetryMode};
use crate::model::MountPath;
use crate::seal::Secret;

/// How long rotate-root waits for a new root key to authenticate before giving up on it.
const NEW_ROOT_KEY_WAIT: Duration = Duration::from_secs(30);

/// An endpoint override, checked: an http(s) URL with a host and nothing else that could hide
/// where it goes (no user or password, query or fragment), within the operator's allow-list. A
/// bare host means `https://host`, as in Vault. Empty clears the override.
pub(super) fn endpoint(key: &str, raw: &str, allowed: &[String]) -> Result<Option<String>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let text = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("https://{raw}")
    };
    let bad = |why: &str| {
        EngineError::Invalid(format!(
            "{key} {raw:?} {why}; use an http:// or https:// URL such as https://iam.amazonaws.com"
        ))
    };
    let url = url::Url::parse(&text).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("carries a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("has a query or fragment"));
    }
    let normalised = url.as_str().trim_end_matches('/').to_owned();
    if !allowed.is_empty()
        && !allowed
            .iter()
            .any(|p| normalised.starts_with(p.trim_end_matches('/')))
    {
        return Err(EngineError::Invalid(format!(
            "{key} {normalised:?} is not within the server's allowed_aws_endpoints ({})",
            allowed.join(", ")
        )));
    }
    Ok(Some(normalised))
}

/// The root config as stored: everything but the secret key, which is sealed apart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct RootConfig {
    pub(super) access_key: Option<String>,
    pub(super) region: Option<String>,
    pub(super) iam_endpoint: Option<String>,
    pub(super) sts_endpoint: Option<String>,
    pub(super) max_retries: Option<i64>,
    /// `adaptive` adds client-side rate limiting on throttling to the standard retries.
    #[serde(default)]
    pub(super) retry_mode: Option<RetryMode>,
    pub(super) role_arn: Option<String>,
    pub(super) external_id: Option<String>,
}

pub(super) fn root_context(mount: &MountPath) -> String {
    crate::model::SealedValue::RootConfig {
        mount: mount.to_string(),
    }
    .context()
}

/// A write to `{mount}/config/root`. A field left out keeps its value; an empty `access_key`
/// forgets the static keys (back to the default credential chain), and an empty endpoint,
/// `role_arn` or `external_id` unsets it, as in Vault.
#[derive(Debug, Clone, Default)]
pub struct RootConfigUpdate {
    pub access_key: Option<String>,
    pub secret_key: Option<Secret>,
    pub region: Option<String>,
    pub iam_endpoint: Option<String>,
    pub sts_endpoint: Option<String>,
    pub max_retries: Option<i64>,
    pub retry_mode: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
}

/// `{mount}/config/root` as it reads back: never the secret key; defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootConfigView {
    pub access_key: String,
    pub region: String,
    pub iam_endpoint: String,
    pub sts_endpoint: String,
    pub max_retries: i64,
    pub retry_mode: RetryMode,
    pub role_arn: String,
    pub external_id: String,
}

impl Engine {
    pub async fn write_root_config(
        &self,
        mount: &MountPath,
        update: RootConfigUpdate,
    ) -> Result<()> {
        self.mount(mount).await?;
        let existing = self.store.get_root_config(mount).await?;
        let mut config: RootConfig = match &existing {
            Some(r) => serde_json::from_str(&r.config)
                .map_err(|e| EngineError::Internal(format!("stored root config: {e}")))?,
            None => RootConfig::default(),
        };
        // An explicitly empty access_key forgets the static keys, so the mount falls back to
        // the default credential chain.
        let (access_key, clear_keys) = match update.access_key {
            Some(k) if k.trim().is_empty() => (None, true),
            Some(k) => (Some(k.trim().to_owned()), false),
            None => (None, false),
        };
        let secret_key = update.secret_key.filter(|s| !s.expose().trim().is_empty());
        if let Some(region) = update.region.filter(|r| !r.trim().is_empty()) {
            if !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(EngineError::Invalid(format!(
                    "region {region:?} is not an AWS region name such as us-east-1"
                )));
            }
            config.region = Some(region);
        }
        for (key, slot, given) in [
            (
                "iam_endpoint",
                &mut config.iam_endpoint,
                update.iam_endpoint,
            ),
            (
                "sts_endpoint",
                &mut config.sts_endpoint,
                update.sts_endpoint,
            ),
        ] {
            if let Some(raw) = given {
                *slot = endpoint(key, &raw, &self.settings.allowed_aws_endpoints)?;
            }
        }
        if let Some(n) = update.max_retries {
            if !(-1..=20).contains(&n) {
                return Err(EngineError::Invalid(format!(
                    "max_retries is {n}; use -1 for the SDK default or 0 to 20"
                )));
            }
            config.max_retries = Some(n);
        }
        if let Some(mode) = update.retry_mode.filter(|m| !m.trim().is_empty()) {
            config.retry_mode = Some(match mode.trim() {
                "standard" => RetryMode::Standard,
                "adaptive" => RetryMode::Adaptive,
                other => {
                    return Err(EngineError::Invalid(format!(
                        "retry_mode {other:?} is not one of standard, adaptive"
                    )));
                }
            });
        }
        // An empty string unsets either of these, as in Vault.
        if let Some(arn) = update.role_arn {
            let arn = arn.trim().to_owned();
            if !arn.is_empty() {
                check_role_arn(&arn, "role_arn")?;
            }
            config.role_arn = Some(arn).filter(|a| !a.is_empty());
        }
        if let Some(id) = update.external_id {
            let id = id.trim().to_owned();
            if !id.is_empty() {
                check_external_id(&id)?;
            }
            config.external_id = Some(id).filter(|a| !a.is_empty());
        }
        if config.external_id.is_some() && config.role_arn.is_none() {
            return Err(EngineError::Invalid(
                "external_id is only used to assume role_arn; set role_arn too, or leave external_id empty".into(),
            ));
        }
        let sealed = match (&access_key, &secret_key) {
            (Some(_), Some(secret)) => Some(
                self.sealer
                    .seal(&root_context(mount), secret.expose().as_bytes())?,
            ),
            (None, None) if clear_keys => None,
            (None, None) => existing.and_then(|r| r.secret_sealed),
            _ => {
                return Err(EngineError::Invalid(
                    "access_key and secret_key must be given together (or neither, to use the AWS default credential chain)".into(),
                ));
            }
        };
        if access_key.is_some() || clear_keys {
            config.access_key = access_key;
        }
        let text = serde_json::to_string(&config).expect("config serialises");
        self.store
            .put_root_config(mount, &text, sealed.as_deref())
            .await?;
        Ok(())
    }

    /// The root config without its secret key.
    pub async fn read_root_config(&self, mount: &MountPath) -> Result<RootConfigView> {
        self.mount(mount).await?;
        let record = self.store.get_root_config(mount).await?.ok_or_else(|| {
            EngineError::NotFound(format!("{mount}/config/root has not been written"))
        })?;
        let c: RootConfig = serde_json::from_str(&record.config)
            .map_err(|e| EngineError::Internal(format!("stored root config: {e}")))?;
        Ok(RootConfigView {
            access_key: c.access_key.unwrap_or_default(),
            region: c.region.unwrap_or_else(|| "us-east-1".into()),
            iam_endpoint: c.iam_endpoint.unwrap_or_default(),
            sts_endpoint: c.sts_endpoint.unwrap_or_default(),
            max_retries: c.max_retries.unwrap_or(-1),
            retry_mode: c.retry_mode.unwrap_or_default(),
            role_arn: c.role_arn.unwrap_or_default(),
            external_id: c.external_id.unwrap_or_default(),
        })
    }

    /// Replaces the root config's access key with a new one for the same IAM user and deletes
    /// the old one. The order makes a crash at any point safe: the new key is stored (sealed,
    /// with a new config version so cached clients are rebuilt) before the old one is deleted,
    /// so the stored key always works. A crash between CreateAccessKey and the store leaves an
    /// unused second key on the user, and the next rotation says so (IAM's LimitExceeded).
    pub async fn rotate_root(&self, mount: &MountPath) -> Result<String> {
        self.mount(mount).await?;
        let record = self.store.get_root_config(mount).await?.ok_or_else(|| {
            EngineError::Invalid(format!(
                "{mount}/config/root has not been written; there is no key to rotate"
            ))
        })?;
        let mut config: RootConfig = serde_json::from_str(&record.config)
            .map_err(|e| EngineError::Internal(format!("stored root config: {e}")))?;
        let old_key = match (&config.access_key, &record.secret_sealed) {
            (Some(key), Some(_)) => key.clone(),
            _ => {
                return Err(EngineError::Invalid(format!(
                    "{mount}/config/root has no static access_key to rotate: the mount uses the AWS default credential chain; rotate those credentials where they come from"
                )));
            }
        };
        // The key belongs to an IAM user, not to the role the mount may assume with it, so
        // rotation talks to IAM with the keys themselves.
        let mut settings = self.connection_settings(mount, &record)?;
        settings.role_arn = None;
        settings.external_id = None;
        let old = AwsAccount::connect(&settings).await;
        let new_key = old
            .create_root_access_key()
            .await
            .map_err(|e| aws_failed("creating the new root access key", &e))?;

        settings.access_key = Some(new_key.access_key_id.clone());
        settings.secret_key = Some(new_key.secret_access_key.clone());
        let new = AwsAccount::connect(&settings).await;
        if let Err(e) = new.wait_until_authenticated(NEW_ROOT_KEY_WAIT).await {
            // Never switch to a key that does not work; take it away again.
            if let Err(cleanup) = old
                .delete_access_key(&new_key.user_name, &new_key.access_key_id)
                .await
            {
                tracing::warn!(error = %cleanup, "could not delete the unusable new root key");
            }
            return Err(aws_failed("checking the new root access key", &e));
        }

        let sealed = self.sealer.seal(
            &root_context(mount),
            new_key.secret_access_key.expose().as_bytes(),
        )?;
        config.access_key = Some(new_key.access_key_id.clone());
        let text = serde_json::to_string(&config).expect("config serialises");
        self.store
            .put_root_config(mount, &text, Some(&sealed))
            .await?;
        tracing::info!(%mount, new_access_key = %new_key.access_key_id, "rotated the root access key");

        // Deleted with the new key: if that works, the switch is proven end to end.
        new.delete_access_key(&new_key.user_name, &old_key)
            .await
            .map_err(|e| {
                EngineError::Aws(format!(
                    "the new root access key {} is stored and in use, but deleting the old key {old_key} failed; delete it by hand: {e}",
                    new_key.access_key_id
                ))
            })?;
        Ok(new_key.access_key_id)
    }
}
