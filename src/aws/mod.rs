//! The only code that calls AWS: one `AwsAccount` per mount (IAM and STS clients of the official
//! SDK, built from the mount's root config), and the credential types' AWS call sequences.

mod iam_user;

pub use iam_user::{IamUserSpec, IssueError, IssuedAccessKey};

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_sdk_iam::config::Region;
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::seal::Secret;

/// How a mount reaches AWS (the decrypted form of its root config).
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub access_key: Option<String>,
    pub secret_key: Option<Secret>,
    pub region: String,
    pub iam_endpoint: Option<String>,
    pub sts_endpoint: Option<String>,
    /// Retries after the first attempt; `None` is the SDK's default (2).
    pub max_retries: Option<u32>,
}

/// A failed AWS call, with AWS's own error code and message kept for the caller.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub code: Option<String>,
    pub message: String,
}

impl AwsError {
    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    pub fn is_no_such_entity(&self) -> bool {
        self.is_code("NoSuchEntity")
    }

    fn from_sdk<E, R>(operation: &'static str, e: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let code = e.code().map(str::to_owned);
        let message = match (e.code(), e.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.to_owned(),
            _ => DisplayErrorContext(&e).to_string(),
        };
        AwsError {
            operation,
            code,
            message,
        }
    }
}

/// The SDK clients for one mount. Built once per root-config version and shared, so
/// connections are pooled across requests.
#[derive(Debug, Clone)]
pub struct AwsAccount {
    iam: aws_sdk_iam::Client,
    #[allow(dead_code)] // used by the STS credential types
    sts: aws_sdk_sts::Client,
}

impl AwsAccount {
    pub async fn connect(settings: &ConnectionSettings) -> Self {
        let retry = match settings.max_retries {
            Some(n) => RetryConfig::standard().with_max_attempts(n.saturating_add(1)),
            None => RetryConfig::standard(),
        };
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(20))
            .operation_timeout(Duration::from_secs(60))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .retry_config(retry)
            .timeout_config(timeouts);
        if let (Some(key), Some(secret)) = (&settings.access_key, &settings.secret_key) {
            loader = loader.credentials_provider(Credentials::new(
                key.clone(),
                secret.expose().to_owned(),
                None,
                None,
                "iamlease-root-config",
            ));
        }
        let shared = loader.load().await;
        let mut iam = aws_sdk_iam::config::Builder::from(&shared);
        if let Some(url) = &settings.iam_endpoint {
            iam = iam.endpoint_url(url);
        }
        let mut sts = aws_sdk_sts::config::Builder::from(&shared);
        if let Some(url) = &settings.sts_endpoint {
            sts = sts.endpoint_url(url);
        }
        AwsAccount {
            iam: aws_sdk_iam::Client::from_conf(iam.build()),
            sts: aws_sdk_sts::Client::from_conf(sts.build()),
        }
    }
}
