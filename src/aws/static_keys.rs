//! The access keys of an IAM user that iamlease did not create (static roles): list, create,
//! delete, and the same calls in another account through an assumed role.

use aws_credential_types::Credentials;

use super::{AwsAccount, AwsError};
use crate::seal::Secret;

/// One access key of a user, as ListAccessKeys describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccessKey {
    pub access_key_id: String,
    /// Unix seconds, when AWS says.
    pub created: Option<i64>,
}

/// A new access key: the one moment its secret can be had.
#[derive(Debug, Clone)]
pub struct CreatedAccessKey {
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

impl AwsAccount {
    /// Every access key of `user` (IAM allows two). `NoSuchEntity` when the user does not exist.
    pub async fn list_user_access_keys(&self, user: &str) -> Result<Vec<UserAccessKey>, AwsError> {
        let keys = self
            .iam
            .list_access_keys()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| AwsError::from_sdk("iam:ListAccessKeys", e))?;
        Ok(keys
            .into_iter()
            .filter_map(|k| {
                Some(UserAccessKey {
                    access_key_id: k.access_key_id()?.to_owned(),
                    created: k.create_date().map(|d| d.secs()),
                })
            })
            .collect())
    }

    /// A new access key for `user`; `LimitExceeded` when it already has two.
    pub async fn create_user_access_key(&self, user: &str) -> Result<CreatedAccessKey, AwsError> {
        let out = self
            .iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam:CreateAccessKey", e))?;
        let key = out
            .access_key()
            .ok_or_else(|| AwsError::local("iam:CreateAccessKey", "AWS returned no access key"))?;
        Ok(CreatedAccessKey {
            access_key_id: key.access_key_id().to_owned(),
            secret_access_key: Secret::new(key.secret_access_key()),
        })
    }

    /// This account's clients acting as `role_arn` (sts:AssumeRole with this account's
    /// credentials, for a user in another account): same endpoints, retries and timeouts.
    pub async fn assumed(
        &self,
        role_arn: &str,
        session_name: &str,
        external_id: Option<&str>,
    ) -> Result<AwsAccount, AwsError> {
        let out = self
            .sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .set_external_id(external_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sts:AssumeRole", e))?;
        let c = out.credentials().ok_or_else(|| {
            AwsError::local("sts:AssumeRole", "the answer carried no credentials")
        })?;
        let creds = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            None,
            "iamlease-static-role",
        );
        let iam = self
            .iam
            .config()
            .to_builder()
            .credentials_provider(creds.clone())
            .build();
        let sts = self
            .sts
            .config()
            .to_builder()
            .credentials_provider(creds)
            .build();
        Ok(AwsAccount {
            iam: aws_sdk_iam::Client::from_conf(iam),
            sts: aws_sdk_sts::Client::from_conf(sts),
        })
    }
}
