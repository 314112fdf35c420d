//! Waiting out IAM's eventual consistency (`wait_ready`): a freshly issued key is tried with
//! sts:GetCallerIdentity, through the mount's STS endpoint, until AWS accepts it several times
//! in a row, or a deadline passes.

use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_credential_types::Credentials;

use super::{AwsAccount, AwsError};
use crate::seal::Secret;

/// How hard to try before calling a key ready, or giving up on it.
#[derive(Debug, Clone, Copy)]
pub struct ReadyCheck {
    /// Consecutive successes that make a key ready: one success can come from an IAM replica
    /// that already knows the key while the next request lands on one that does not.
    pub successes: u32,
    /// Pause between attempts.
    pub interval: Duration,
    /// Give up after this long.
    pub timeout: Duration,
}

/// How a wait ended: the identity AWS named, and how many calls it took.
#[derive(Debug, Clone)]
pub struct KeyReady {
    pub arn: String,
    pub attempts: u32,
}

impl AwsAccount {
    /// Polls sts:GetCallerIdentity signed with the new key until `check.successes` calls in a
    /// row succeed. A failure resets the count. On timeout, the error carries AWS's last reason.
    pub async fn wait_until_key_works(
        &self,
        access_key_id: &str,
        secret_access_key: &Secret,
        session_token: Option<&Secret>,
        check: ReadyCheck,
    ) -> Result<KeyReady, AwsError> {
        const OP: &str = "sts:GetCallerIdentity";
        // The mount's STS client (region, endpoint, timeouts) with the new key instead of the
        // root config's, and no SDK retries: this loop is the retry policy.
        let config = self
            .sts
            .config()
            .to_builder()
            .credentials_provider(Credentials::new(
                access_key_id,
                secret_access_key.expose(),
                session_token.map(|t| t.expose().to_owned()),
                None,
                "iamlease-wait-ready",
            ))
            .retry_config(RetryConfig::disabled())
            .build();
        let sts = aws_sdk_sts::Client::from_conf(config);
        let started = Instant::now();
        let deadline = started + check.timeout;
        let (mut attempts, mut in_a_row) = (0u32, 0u32);
        let mut last_error: Option<AwsError> = None;
        loop {
            attempts += 1;
            match sts.get_caller_identity().send().await {
                Ok(out) => {
                    in_a_row += 1;
                    if in_a_row >= check.successes.max(1) {
                        return Ok(KeyReady {
                            arn: out.arn().unwrap_or_default().to_owned(),
                            attempts,
                        });
                    }
                }
                Err(e) => {
                    in_a_row = 0;
                    let e = AwsError::from_sdk(OP, e);
                    tracing::debug!(access_key_id, attempts, error = %e, "new key not accepted yet");
                    last_error = Some(e);
                }
            }
            if Instant::now() + check.interval > deadline {
                let reason = match &last_error {
                    Some(e) => format!("last refusal: {}", e.message),
                    None => "it never succeeded enough times in a row".to_owned(),
                };
                return Err(AwsError {
                    operation: OP,
                    code: last_error.and_then(|e| e.code),
                    message: format!(
                        "the new access key {access_key_id} was not accepted by AWS {} times in a row within {}s ({attempts} attempts; {reason})",
                        check.successes.max(1),
                        check.timeout.as_secs()
                    ),
                    credentials_unavailable: false,
                });
            }
            tokio::time::sleep(check.interval).await;
        }
    }
}
