//! The lease lifecycle after issue: lookup and listing, renewal, revocation (one, by prefix)
//! and the retry policy for revocations that fail.

use std::sync::Arc;

use futures::StreamExt;

use super::{Engine, EngineError, REVOKE_CONCURRENCY, Result, aws_failed};
use crate::audit::LeaseEvent;
use crate::aws::AwsAccount;
use crate::clock::{now, rfc3339};
use crate::duration::Ttl;
use crate::model::{CredentialType, Lease, LeaseState};
use crate::seal::random_below;

/// The outcome of a renewal.
#[derive(Debug, Clone)]
pub struct Renewed {
    pub lease: Lease,
    pub lease_duration: i64,
    pub warnings: Vec<String>,
}

impl Engine {
    pub async fn lookup(&self, lease_id: &str) -> Result<Lease> {
        self.store
            .get_lease(lease_id.trim())
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("lease {lease_id:?} does not exist")))
    }

    /// Vault-style listing: the next path segment under `prefix`, folders ending in `/`.
    pub async fn list_lease_keys(
        &self,
        prefix: &str,
        state: Option<LeaseState>,
    ) -> Result<Vec<String>> {
        let prefix = &directory_prefix(prefix);
        let mut keys: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_lease_ids(
                    prefix,
                    state.map(LeaseState::as_str),
                    after.as_deref(),
                    1000,
                )
                .await?;
            for id in &page {
                let rest = &id[prefix.len()..];
                let key = match rest.find('/') {
                    Some(i) => &rest[..=i],
                    None => rest,
                };
                if keys.last().map(String::as_str) != Some(key) {
                    keys.push(key.to_owned());
                }
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.clone()),
                _ => break,
            }
        }
        Ok(keys)
    }

    pub async fn renew(&self, lease_id: &str, increment: Option<Ttl>) -> Result<Renewed> {
        let lease = self.lookup(lease_id).await?;
        if !lease.renewable {
            return Err(EngineError::Invalid(format!(
                "lease {} is not renewable: {} credentials expire in AWS",
                lease.id,
                lease.credential_type.as_str()
            )));
        }
        if lease.state != LeaseState::Active {
            return Err(EngineError::Invalid(format!(
                "lease {} is {} and can no longer be renewed",
                lease.id, lease.state
            )));
        }
        let now = now();
        let increment = increment
            .filter(|t| !t.is_zero())
            .map(|t| t.as_secs() as i64)
            .unwrap_or(lease.ttl);
        let wanted = now.saturating_add(increment);
        // Vault's rule: the new TTL is the increment from now (shorter than what is left, if
        // asked), capped by the lease's maximum.
        let new_expire = wanted.min(lease.max_expire_time);
        let mut warnings = Vec::new();
        if wanted > lease.max_expire_time {
            warnings.push(format!(
                "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
                Ttl::from_secs(increment as u64),
                Ttl::from_secs((lease.max_expire_time - now).max(0) as u64)
            ));
        }
        if let Some(username) = &lease.username {
            let account = self.account(&lease.mount).await?;
            account
                .tag_user_expiry(username, &rfc3339(new_expire))
                .await
                .map_err(|e| aws_failed("renewing the lease", &e))?;
        }
        if !self.store.renew_lease(&lease.id, new_expire, now).await? {
            return Err(EngineError::Invalid(format!(
                "lease {} is being revoked and can no longer be renewed",
                lease.id
            )));
        }
        let lease = self.lookup(&lease.id).await?;
        Ok(Renewed {
            lease_duration: (new_expire - now).max(0),
            lease,
            warnings,
        })
    }

    /// Revokes one lease. With `sync`, answers after AWS has deleted everything; without, the
    /// revocation runs in the background (and, through the claim deadline, survives a crash).
    /// An unknown lease is already revoked, as in Vault.
    pub async fn revoke(self: &Arc<Self>, lease_id: &str, sync: bool) -> Result<()> {
        let now = now();
        let Some(lease) = self
            .store
            .claim_lease(
                lease_id.trim(),
                now,
                now + self.settings.claim_timeout.as_secs() as i64,
            )
            .await?
        else {
            return Ok(());
        };
        if sync {
            self.finish_revocation(&lease, None).await
        } else {
            let engine = Arc::clone(self);
            self.background
                .spawn(async move { engine.finish_revocation(&lease, None).await });
            Ok(())
        }
    }

    /// Revokes every lease whose id starts with `prefix`; each is tried once here, and failures
    /// stay `failed` for the reaper to retry.
    pub async fn revoke_prefix(&self, prefix: &str) -> Result<()> {
        let prefix = &directory_prefix(prefix);
        let mut after: Option<String> = None;
        let mut failed = 0usize;
        let mut first_error = None;
        loop {
            let page = self
                .store
                .list_lease_ids(prefix, None, after.as_deref(), 500)
                .await?;
            let results: Vec<Result<()>> = futures::stream::iter(page.clone())
                .map(|id| self.revoke_one(id))
                .buffer_unordered(REVOKE_CONCURRENCY)
                .collect()
                .await;
            for r in results {
                if let Err(e) = r {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
            match page.last() {
                Some(last) if page.len() == 500 => after = Some(last.clone()),
                _ => break,
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(EngineError::Aws(format!(
                "{failed} revocation(s) under {prefix:?} failed and will be retried; first error: {e}"
            ))),
        }
    }

    /// Claims one lease by id and revokes it; nothing to do when someone else holds it.
    pub(super) async fn revoke_one(&self, id: String) -> Result<()> {
        let now = now();
        let deadline = now + self.settings.claim_timeout.as_secs() as i64;
        match self.store.claim_lease(&id, now, deadline).await? {
            Some(lease) => self.finish_revocation(&lease, None).await,
            None => Ok(()),
        }
    }

    /// Does the AWS side of a claimed lease and then forgets it; on failure records the error
    /// and schedules a retry with backoff. Never drops a lease that still has something in AWS.
    pub(super) async fn finish_revocation(
        &self,
        lease: &Lease,
        account: Option<&AwsAccount>,
    ) -> Result<()> {
        match self.revoke_in_aws(lease, account).await {
            Ok(()) => {
                self.store.delete_lease(&lease.id).await?;
                tracing::info!(lease_id = %lease.id, "revoked");
                self.audit_revoked(lease);
                Ok(())
            }
            Err(e) => self.record_revoke_failure(lease, e).await,
        }
    }

    /// Audits a lease that is gone from the store, as expired or revoked.
    pub(super) fn audit_revoked(&self, lease: &Lease) {
        let expired = lease.expire_time <= now();
        let username = lease.username.as_deref();
        let event = if expired {
            LeaseEvent::Expired { username }
        } else {
            LeaseEvent::Revoked { username }
        };
        self.audit_lease(event, lease);
    }

    /// The AWS side of a revocation, timed and counted.
    pub(super) async fn revoke_in_aws(
        &self,
        lease: &Lease,
        account: Option<&AwsAccount>,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let result = self.delete_in_aws(lease, account).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::histogram!("iamlease_revoke_duration_seconds", "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("iamlease_revocations_total", "outcome" => outcome).increment(1);
        result
    }

    pub(super) async fn delete_in_aws(
        &self,
        lease: &Lease,
        account: Option<&AwsAccount>,
    ) -> Result<()> {
        match (&lease.credential_type, &lease.username) {
            (CredentialType::IamUser, Some(username)) => {
                let account = match account {
                    Some(a) => a.clone(),
                    None => self.account(&lease.mount).await?,
                };
                account
                    .delete_iam_user(username)
                    .await
                    .map_err(|e| aws_failed("revoking", &e))
            }
            // STS credentials cannot be revoked in AWS; they expire there on their own.
            _ => Ok(()),
        }
    }

    /// Schedules a retry with backoff and hands the error back.
    pub(super) async fn record_revoke_failure(&self, lease: &Lease, e: EngineError) -> Result<()> {
        let attempt = lease.attempts + 1;
        let delay = revoke_backoff_secs(attempt, self.settings.revoke_max_backoff.as_secs());
        tracing::warn!(lease_id = %lease.id, attempt, retry_in_secs = delay, error = %e, "revocation failed; will retry");
        let error = e.to_string();
        self.audit_lease(
            LeaseEvent::RevokeFailed {
                attempt,
                retry_in_secs: delay,
                error: &error,
            },
            lease,
        );
        self.store
            .fail_lease(&lease.id, &e.to_string(), now() + delay as i64)
            .await?;
        Err(e)
    }
}

/// Prefixes are directories, as in Vault: `aws/creds/dev` means `aws/creds/dev/`, so it never
/// reaches `aws/creds/dev2/`. (Clients such as hvac strip the trailing slash.)
pub(super) fn directory_prefix(prefix: &str) -> String {
    let p = prefix.trim();
    if p.is_empty() || p.ends_with('/') {
        p.to_owned()
    } else {
        format!("{p}/")
    }
}

/// Delay before retry `attempt` (1-based) of a failed revocation: exponential from 1 s, capped
/// at `max_secs`, with full jitter so that many failures after an outage do not retry in step.
pub fn revoke_backoff_secs(attempt: i64, max_secs: u64) -> u64 {
    let exp = 1u64 << attempt.clamp(0, 20);
    let ceiling = exp.min(max_secs.max(1));
    // Never less than one second, never more than the cap.
    1 + random_below(ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..40 {
            let d = revoke_backoff_secs(attempt, 3600);
            assert!((1..=3600).contains(&d), "attempt {attempt}: {d}");
        }
        // Early attempts stay short.
        assert!(revoke_backoff_secs(1, 3600) <= 2);
        // With jitter, late attempts spread across the whole window.
        let late: Vec<u64> = (0..200).map(|_| revoke_backoff_secs(30, 60)).collect();
        assert!(late.iter().all(|d| *d <= 60));
        assert!(late.iter().any(|d| *d > 30));
    }
}
