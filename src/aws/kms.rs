//! AWS KMS for the master key (envelope encryption): a 256-bit data key made by
//! `GenerateDataKey` under the configured KMS key, kept in the store only as KMS's ciphertext,
//! and unwrapped by `Decrypt` at start-up. Every call names the key and an encryption context,
//! so a ciphertext copied to another store, or unwrapped under another key, is refused by KMS.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_iam::config::Region;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;

use super::AwsError;

/// A data key fresh from KMS: the plaintext for this process, the ciphertext for the store.
pub struct DataKey {
    pub plaintext: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// A KMS client bound to one key and one encryption context.
pub struct MasterKeyKms {
    client: aws_sdk_kms::Client,
    key_id: String,
    context: HashMap<String, String>,
}

impl MasterKeyKms {
    /// `key_id` is a key id, key ARN, alias (`alias/…`) or alias ARN; `endpoint` is for
    /// emulators and private endpoints; `region` defaults to the default chain's. Credentials
    /// come from the AWS default chain (environment, profile, web identity, ECS, IMDS), never
    /// from iamlease's store. `context` is the encryption context every call carries.
    pub async fn connect(
        key_id: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
        context: HashMap<String, String>,
    ) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_timeout(Duration::from_secs(30))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
        if let Some(region) = region {
            loader = loader.region(Region::new(region.to_owned()));
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_kms::config::Builder::from(&shared);
        if let Some(url) = endpoint {
            config = config.endpoint_url(url);
        }
        MasterKeyKms {
            client: aws_sdk_kms::Client::from_conf(config.build()),
            key_id: key_id.to_owned(),
            context,
        }
    }

    /// `kms:GenerateDataKey` (AES-256): a new master key.
    pub async fn generate(&self) -> Result<DataKey, AwsError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(self.context.clone()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("kms:GenerateDataKey", e))?;
        match (out.plaintext, out.ciphertext_blob) {
            (Some(p), Some(c)) => Ok(DataKey {
                plaintext: p.into_inner(),
                ciphertext: c.into_inner(),
            }),
            _ => Err(AwsError::local(
                "kms:GenerateDataKey",
                "KMS answered without the data key",
            )),
        }
    }

    /// `kms:Encrypt`: wraps an existing master key (moving a file key under KMS).
    pub async fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, AwsError> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(plaintext))
            .set_encryption_context(Some(self.context.clone()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("kms:Encrypt", e))?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| AwsError::local("kms:Encrypt", "KMS answered without a ciphertext"))
    }

    /// `kms:Decrypt` of the stored ciphertext, naming the configured key (KMS refuses a
    /// ciphertext of another key) and the encryption context.
    pub async fn unwrap(&self, ciphertext: &[u8]) -> Result<Vec<u8>, AwsError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .set_encryption_context(Some(self.context.clone()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("kms:Decrypt", e))?;
        out.plaintext
            .map(Blob::into_inner)
            .ok_or_else(|| AwsError::local("kms:Decrypt", "KMS answered without the plaintext"))
    }
}
