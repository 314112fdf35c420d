//! The root config's own access key, for `config/rotate-root`: a new key for the IAM user that
//! owns the current one, a check that it authenticates, and the deletion of the old key.

use std::time::{Duration, Instant};

use super::{AwsAccount, AwsError};
use crate::seal::Secret;

/// A freshly created access key for the root config's IAM user.
#[derive(Debug, Clone)]
pub struct NewRootKey {
    pub user_name: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

impl AwsAccount {
    /// Creates another access key for the IAM user this account's static keys belong to.
    /// IAM allows two keys per user, so this fails with `LimitExceeded` when a second key
    /// (say, from an interrupted rotation) is still there.
    pub async fn create_root_access_key(&self) -> Result<NewRootKey, AwsError> {
        // GetUser without a name describes the user whose key signed the request.
        let user = self
            .iam
            .get_user()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam:GetUser", e))?;
        let user_name = user
            .user()
            .map(|u| u.user_name().to_owned())
            .ok_or_else(|| AwsError::local("iam:GetUser", "AWS described no user"))?;
        let out = self
            .iam
            .create_access_key()
            .user_name(&user_name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam:CreateAccessKey", e))?;
        let key = out
            .access_key()
            .ok_or_else(|| AwsError::local("iam:CreateAccessKey", "AWS returned no access key"))?;
        Ok(NewRootKey {
            user_name,
            access_key_id: key.access_key_id().to_owned(),
            secret_access_key: Secret::new(key.secret_access_key()),
        })
    }

    /// Deletes one access key of `user_name`; a key that is already gone counts as deleted.
    pub async fn delete_access_key(&self, user_name: &str, key_id: &str) -> Result<(), AwsError> {
        match self
            .iam
            .delete_access_key()
            .user_name(user_name)
            .access_key_id(key_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from_sdk("iam:DeleteAccessKey", e);
                if e.is_no_such_entity() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Waits until this account's credentials authenticate (IAM is eventually consistent: a
    /// new key can be refused for several seconds), or gives up after `within`.
    pub async fn wait_until_authenticated(&self, within: Duration) -> Result<(), AwsError> {
        let deadline = Instant::now() + within;
        loop {
            match self.caller_arn().await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
}
