//! The only code that calls AWS: one `AwsAccount` per mount (IAM and STS clients of the official
//! SDK, built from the mount's root config), the credential types' AWS call sequences, and KMS
//! for the master key.

mod call_metrics;
mod iam_user;
mod kms;
mod quota;
mod ready;
mod root_key;
mod setup;
mod static_keys;
mod sts;

pub use iam_user::{IamUserSpec, IssueError, IssuedAccessKey, LEASE_ID_TAG, MOUNT_TAG, TaggedUser};
pub use kms::{DataKey, MasterKeyKms};
pub use ready::{KeyReady, ReadyCheck};
pub use root_key::NewRootKey;
pub use setup::{AdminSession, AppliedSetup};
pub use static_keys::{CreatedAccessKey, UserAccessKey};
pub use sts::{AssumeRoleSpec, FederationTokenSpec, SessionTokenSpec, StsCredentials};

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_iam::config::Region;
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response as HttpResponse;

use crate::seal::Secret;

/// The SDK's retry strategies: both retry throttling and transient errors with exponential
/// backoff and jitter; `adaptive` also slows the client down while AWS keeps throttling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryMode {
    #[default]
    Standard,
    Adaptive,
}

/// How a mount reaches AWS (the decrypted form of its root config).
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Static keys; without them the SDK's default credential chain is used (environment,
    /// shared profile, web identity / IRSA, ECS, IMDS).
    pub access_key: Option<String>,
    pub secret_key: Option<Secret>,
    pub region: String,
    pub iam_endpoint: Option<String>,
    pub sts_endpoint: Option<String>,
    /// Retries after the first attempt; `None` is the SDK's default (2).
    pub max_retries: Option<u32>,
    pub retry_mode: RetryMode,
    /// Assume this role with the credentials above and act as it.
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    /// The session name of that AssumeRole, so CloudTrail says which mount acted.
    pub role_session_name: String,
}

/// A failed AWS call, with AWS's own error code and message kept for the caller.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub code: Option<String>,
    pub message: String,
    /// The SDK could not get credentials to sign with (e.g. the root config's AssumeRole was
    /// refused), so the request was never sent and AWS changed nothing.
    pub credentials_unavailable: bool,
}

impl AwsError {
    /// A failure found on our side of the wire (a value the SDK would not build, an answer
    /// missing a part).
    fn local(operation: &'static str, message: impl Into<String>) -> Self {
        AwsError {
            operation,
            code: None,
            message: message.into(),
            credentials_unavailable: false,
        }
    }

    /// A call that did not answer in time (the caller gave up waiting).
    pub fn timed_out(operation: &'static str) -> Self {
        Self::local(operation, "AWS did not answer in time")
    }

    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    pub fn is_no_such_entity(&self) -> bool {
        self.is_code("NoSuchEntity")
    }

    /// What a client may see of a failed call: AWS's error code and message, or a sentence
    /// naming the kind of failure. Never the upstream body, its headers, the request or its
    /// signature: an endpoint override could point anywhere, and its answer is not ours to echo.
    fn from_sdk<E>(operation: &'static str, e: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let credentials_unavailable = caused_by_credentials(&e);
        let (code, message) = match (e.code(), e.message()) {
            (Some(c), Some(m)) => (Some(c.to_owned()), format!("{c}: {}", clean(m))),
            (Some(c), None) => (Some(c.to_owned()), c.to_owned()),
            _ => {
                let context = DisplayErrorContext(&e).to_string();
                match aws_error_in_body(&context) {
                    Some((c, m)) => (Some(c.clone()), format!("{c}: {}", clean(&m))),
                    None => (None, failure_kind(&e)),
                }
            }
        };
        metrics::counter!("iamlease_aws_errors_total", "operation" => operation, "code" => code.clone().unwrap_or_else(|| "none".into()))
            .increment(1);
        let message = if credentials_unavailable {
            format!("the mount's AWS credentials could not be obtained: {message}")
        } else {
            message
        };
        AwsError {
            operation,
            code,
            message,
            credentials_unavailable,
        }
    }
}

/// A failure without an AWS error code, named by its kind only.
fn failure_kind<E>(e: &SdkError<E, HttpResponse>) -> String {
    match e {
        SdkError::ConstructionFailure(_) => "the request could not be built".into(),
        SdkError::TimeoutError(_) => "AWS did not answer in time".into(),
        SdkError::DispatchFailure(d) if d.is_timeout() => "AWS did not answer in time".into(),
        SdkError::DispatchFailure(d) if d.is_io() => {
            "the endpoint could not be reached (the connection failed)".into()
        }
        SdkError::DispatchFailure(_) => "the request could not be sent to the endpoint".into(),
        SdkError::ResponseError(r) => format!(
            "the endpoint answered HTTP {} with a reply that is not an AWS response",
            r.raw().status().as_u16()
        ),
        SdkError::ServiceError(r) => format!(
            "the endpoint answered HTTP {} without an AWS error code",
            r.raw().status().as_u16()
        ),
        _ => "the AWS call failed".into(),
    }
}

/// AWS's message as a client may see it: one line, bounded, and cut before anything that
/// describes the signed request.
fn clean(message: &str) -> String {
    const MAX: usize = 400;
    let mut text: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    for marker in [
        "AWS4-HMAC-SHA256",
        "Signature=",
        "Credential=",
        "Authorization",
    ] {
        if let Some(i) = text.find(marker) {
            text.truncate(i);
            text.push_str("(request details withheld)");
        }
    }
    if text.len() > MAX {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text.trim().to_owned()
}

/// AWS's `<Code>` and `<Message>` from an XML error body quoted in `text`. The SDK cannot
/// parse every error shape (moto answers authorization failures in EC2's `<Errors>` shape, and
/// a credentials provider's failure arrives wrapped in others), but the reason is still there.
fn aws_error_in_body(text: &str) -> Option<(String, String)> {
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let len = text[start..].find(close)?;
        Some(text[start..start + len].to_owned())
    };
    let code = between("<Code>", "</Code>")?;
    let message = between("<Message>", "</Message>").unwrap_or_default();
    Some((code, message))
}

/// Whether a credentials provider failed somewhere in the error's chain of causes: the SDK
/// resolves credentials before it sends anything, and reports that failure as a dispatch failure.
fn caused_by_credentials(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if err.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        next = err.source();
    }
    false
}

/// The SDK clients for one mount. Built once per root-config version and shared, so
/// connections are pooled across requests.
#[derive(Debug, Clone)]
pub struct AwsAccount {
    iam: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
}

impl AwsAccount {
    /// The region the mount talks to AWS in.
    pub fn region(&self) -> Option<String> {
        self.sts.config().region().map(|r| r.to_string())
    }

    pub async fn connect(settings: &ConnectionSettings) -> Self {
        let retry = match settings.retry_mode {
            RetryMode::Standard => RetryConfig::standard(),
            RetryMode::Adaptive => RetryConfig::adaptive(),
        };
        let retry = match settings.max_retries {
            Some(n) => retry.with_max_attempts(n.saturating_add(1)),
            None => retry,
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
        let mut shared = loader.load().await;
        if let Some(role_arn) = &settings.role_arn {
            // The base credentials (keys or the default chain) only ever call sts:AssumeRole;
            // everything else acts as the role. The provider's answer goes through the shared
            // identity cache, which reuses it and refreshes it before it expires.
            let mut sts_base = shared.to_builder();
            if let Some(url) = &settings.sts_endpoint {
                sts_base.set_endpoint_url(Some(url.clone()));
            }
            let mut provider = AssumeRoleProvider::builder(role_arn.clone())
                .configure(&sts_base.build())
                .session_name(settings.role_session_name.clone());
            if let Some(id) = &settings.external_id {
                provider = provider.external_id(id.clone());
            }
            let provider = provider.build().await;
            shared = shared
                .into_builder()
                .credentials_provider(SharedCredentialsProvider::new(provider))
                .build();
        }
        let mut iam =
            aws_sdk_iam::config::Builder::from(&shared).interceptor(call_metrics::CallMetrics);
        if let Some(url) = &settings.iam_endpoint {
            iam = iam.endpoint_url(url);
        }
        let mut sts =
            aws_sdk_sts::config::Builder::from(&shared).interceptor(call_metrics::CallMetrics);
        if let Some(url) = &settings.sts_endpoint {
            sts = sts.endpoint_url(url);
        }
        AwsAccount {
            iam: aws_sdk_iam::Client::from_conf(iam.build()),
            sts: aws_sdk_sts::Client::from_conf(sts.build()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_reason_in_an_unparsed_error_body() {
        let text = r#"unhandled error (raw: b"<?xml version=\"1.0\"?>\n<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: arn:aws:iam::1:user/a is not authorized</Message></Error></Errors></ErrorResponse>")"#;
        assert_eq!(
            aws_error_in_body(text),
            Some((
                "AccessDenied".to_owned(),
                "User: arn:aws:iam::1:user/a is not authorized".to_owned()
            ))
        );
        assert_eq!(aws_error_in_body("connection refused"), None);
    }

    #[test]
    fn messages_are_cut_before_request_details() {
        let m = clean(
            "The request signature we calculated does not match. Authorization: AWS4-HMAC-SHA256 Credential=AKIA/x, Signature=abc",
        );
        assert!(!m.contains("Signature=") && !m.contains("AKIA"), "{m}");
        assert!(m.starts_with("The request signature we calculated does not match."));
        assert!(clean(&"x".repeat(5000)).len() < 500);
        assert_eq!(clean("a\nb"), "a b");
    }
}
