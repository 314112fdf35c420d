//! IAM's user quota in view: each mount reads `iam:GetAccountSummary` at most once a minute and
//! refuses `iam_user` issues while fewer than `iam_user_quota_reserve` of the quota are free, so
//! issuing stops with a clear answer before AWS's own limit refuses CreateUser (and before
//! other tools sharing the account are starved). STS credential types make no users and are
//! never refused here.

use std::time::{Duration, Instant};

use super::{Engine, EngineError, Result};
use crate::aws::AwsAccount;
use crate::model::MountPath;

/// How long one reading of the account summary is used.
const READ_EVERY: Duration = Duration::from_secs(60);

/// One reading of a mount's account: its IAM users and their quota (`None`: AWS would not say,
/// e.g. the server's policy lacks `iam:GetAccountSummary`; issuing is then not held back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaReading {
    pub users: i64,
    pub quota: i64,
}

/// What `{mount}/iam-quota` shows.
#[derive(Debug, Clone)]
pub struct QuotaView {
    pub reading: Option<QuotaReading>,
    /// The fraction of the quota kept free.
    pub reserve: f64,
    /// Users that may still be made before issues are refused.
    pub available: Option<i64>,
    /// Unix seconds of the reading.
    pub checked_at: Option<i64>,
    pub error: Option<String>,
}

/// Users kept free: `reserve` of the quota, rounded up.
fn reserved(quota: i64, reserve: f64) -> i64 {
    (quota as f64 * reserve).ceil() as i64
}

impl Engine {
    /// The mount's current reading, made anew when the last is older than a minute.
    async fn quota_reading(
        &self,
        mount: &MountPath,
        account: &AwsAccount,
    ) -> (Option<QuotaReading>, i64, Option<String>) {
        if let Some(cached) = self
            .quota
            .lock()
            .expect("quota lock")
            .get(mount)
            .filter(|c| c.0.elapsed() < READ_EVERY)
        {
            return (cached.1, cached.2, cached.3.clone());
        }
        let (reading, error) = match account.user_count_and_quota().await {
            Ok((users, quota)) => {
                let labels = [("mount", mount.to_string())];
                metrics::gauge!("iamlease_iam_users", &labels).set(users as f64);
                metrics::gauge!("iamlease_iam_users_quota", &labels).set(quota as f64);
                (Some(QuotaReading { users, quota }), None)
            }
            Err(e) => {
                tracing::warn!(%mount, error = %e, "cannot read the IAM user quota; issuing is not held back by it");
                (None, Some(e.to_string()))
            }
        };
        let at = crate::clock::now();
        self.quota
            .lock()
            .expect("quota lock")
            .insert(mount.clone(), (Instant::now(), reading, at, error.clone()));
        (reading, at, error)
    }

    /// Refuses an `iam_user` issue when the account is within the reserve of its user quota.
    pub(super) async fn check_user_quota(
        &self,
        mount: &MountPath,
        account: &AwsAccount,
    ) -> Result<()> {
        let reserve = self.settings.iam_user_quota_reserve;
        let (Some(r), _, _) = self.quota_reading(mount, account).await else {
            return Ok(());
        };
        let keep = reserved(r.quota, reserve);
        if r.quota - r.users <= keep {
            return Err(EngineError::Unavailable(format!(
                "the AWS account is near its IAM user quota: {} of {} users exist and iam_user_quota_reserve keeps {keep} free; revoke leases, delete unused IAM users or raise the quota (STS roles are not affected)",
                r.users, r.quota
            )));
        }
        // Counted until the next reading, so a burst cannot run through the reserve.
        if let Some(entry) = self.quota.lock().expect("quota lock").get_mut(mount)
            && let Some(reading) = entry.1.as_mut()
        {
            reading.users += 1;
        }
        Ok(())
    }

    /// `GET {mount}/iam-quota`: the reading the mount issues by (read now if none is fresh).
    pub async fn iam_quota(&self, mount: &MountPath) -> Result<QuotaView> {
        self.mount(mount).await?;
        let account = self.account(mount).await?;
        let (reading, at, error) = self.quota_reading(mount, &account).await;
        let reserve = self.settings.iam_user_quota_reserve;
        Ok(QuotaView {
            reading,
            reserve,
            available: reading.map(|r| (r.quota - r.users - reserved(r.quota, reserve)).max(0)),
            checked_at: Some(at),
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::reserved;

    #[test]
    fn the_reserve_rounds_up() {
        assert_eq!(reserved(5000, 0.05), 250);
        assert_eq!(reserved(5000, 0.0), 0);
        assert_eq!(reserved(7, 0.05), 1);
    }
}
