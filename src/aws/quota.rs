//! The account's IAM user quota (`iam:GetAccountSummary`), so a mount can stop issuing
//! `iam_user` credentials before AWS's 5,000-user limit is reached.

use super::{AwsAccount, AwsError};

impl AwsAccount {
    /// `iam:GetAccountSummary`: how many IAM users the account has, and its quota for them.
    pub async fn user_count_and_quota(&self) -> Result<(i64, i64), AwsError> {
        use aws_sdk_iam::types::SummaryKeyType;
        let out = self
            .iam
            .get_account_summary()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam:GetAccountSummary", e))?;
        let map = out.summary_map.unwrap_or_default();
        match (
            map.get(&SummaryKeyType::Users),
            map.get(&SummaryKeyType::UsersQuota),
        ) {
            (Some(users), Some(quota)) => Ok((i64::from(*users), i64::from(*quota))),
            _ => Err(AwsError::local(
                "iam:GetAccountSummary",
                "AWS answered without Users and UsersQuota",
            )),
        }
    }
}
