//! The orphan sweeper and the force-revoke escape hatch: the two ways to reconcile AWS and the
//! store by hand. The sweeper deletes IAM users that carry our tags but have no lease; force-
//! revoke forgets leases whose AWS side can no longer be cleaned up.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use super::lease::directory_prefix;
use super::{EngineError, REVOKE_CONCURRENCY, Result, aws_failed};
use crate::aws::{LEASE_ID_TAG, MOUNT_TAG, TaggedUser};
use crate::engine::Engine;
use crate::model::MountPath;

/// How long force-revoke spends trying to clean up one lease in AWS before forgetting it.
const FORCE_ATTEMPT: Duration = Duration::from_secs(5);

/// An IAM user the sweeper found without a live lease.
#[derive(Debug, Clone, Serialize)]
pub struct Orphan {
    pub username: String,
    pub path: String,
    pub lease_id: String,
    pub role: Option<String>,
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub mount: String,
    pub dry_run: bool,
    /// The path prefixes that were listed.
    pub path_prefixes: Vec<String>,
    /// Users carrying our lease-id tag for this mount, orphaned or not.
    pub tagged_users: usize,
    pub orphans: Vec<Orphan>,
    /// User names deleted (empty on a dry run).
    pub deleted: Vec<String>,
    /// User names whose deletion failed, with AWS's reason.
    pub failed: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForceRevoked {
    pub lease_id: String,
    pub username: Option<String>,
    /// Whether the best-effort AWS clean-up worked; when it did not, the user may still exist
    /// and `iamlease sweep` will find it once its AWS access works again.
    pub cleaned_up: bool,
}

impl Engine {
    /// Finds IAM users under the mount's path prefixes (`/iamlease/<mount>/` and every role's own
    /// `user_path`) that carry this mount's `iamlease:*` tags but whose lease is not in the store,
    /// and deletes them the way revocation does. Users without our tags, or tagged for another
    /// mount, are never touched.
    pub async fn sweep(&self, mount: &str, dry_run: bool) -> Result<SweepReport> {
        let mount = MountPath::parse(mount).map_err(EngineError::Invalid)?;
        self.mount(&mount).await?;
        let account = self.account(&mount).await?;
        let mut prefixes = BTreeSet::from([format!("/iamlease/{mount}/")]);
        for name in self.store.list_roles(&mount).await? {
            let Ok(role_name) = crate::model::RoleName::parse(&name) else {
                continue;
            };
            if let Some(role) = self.load_role(&mount, &role_name).await? {
                prefixes.insert(role.user_path(&mount, &role_name));
            }
        }
        // A prefix inside another is listed by the outer one already.
        let prefixes: Vec<String> = prefixes
            .iter()
            .filter(|p| {
                !prefixes
                    .iter()
                    .any(|o| o != *p && p.starts_with(o.as_str()))
            })
            .cloned()
            .collect();

        let mut tagged: Vec<TaggedUser> = Vec::new();
        for prefix in &prefixes {
            let users = account
                .list_tagged_users(prefix)
                .await
                .map_err(|e| aws_failed("sweeping", &e))?;
            tagged.extend(
                users
                    .into_iter()
                    .filter(|u| u.tag(MOUNT_TAG) == Some(mount.as_str())),
            );
        }

        let mut orphans = Vec::new();
        for user in &tagged {
            let lease_id = user.tag(LEASE_ID_TAG).unwrap_or_default();
            // A lease row exists from before CreateUser until after DeleteUser, so a user whose
            // lease is in the store (in any state) is being issued, is live, or is being revoked.
            let live = match self.store.get_lease(lease_id).await? {
                Some(lease) => lease.username.as_deref() == Some(user.name.as_str()),
                None => false,
            };
            if !live {
                orphans.push(Orphan {
                    username: user.name.clone(),
                    path: user.path.clone(),
                    lease_id: lease_id.to_owned(),
                    role: user.tag("iamlease:role").map(str::to_owned),
                    expires_at: user.tag("iamlease:expires-at").map(str::to_owned),
                });
            }
        }

        let mut deleted = Vec::new();
        let mut failed = Vec::new();
        if !dry_run {
            let names: Vec<String> = orphans.iter().map(|o| o.username.clone()).collect();
            let results: Vec<(String, std::result::Result<(), String>)> =
                futures::stream::iter(names)
                    .map(|name| {
                        let account = account.clone();
                        async move {
                            let r = account.delete_iam_user(&name).await;
                            (name, r.map_err(|e| e.to_string()))
                        }
                    })
                    .buffer_unordered(REVOKE_CONCURRENCY)
                    .collect()
                    .await;
            for (name, r) in results {
                match r {
                    Ok(()) => {
                        tracing::warn!(mount = %mount, username = %name, "sweeper deleted an orphaned IAM user");
                        deleted.push(name);
                    }
                    Err(e) => {
                        tracing::warn!(mount = %mount, username = %name, error = %e, "sweeper could not delete an orphaned IAM user");
                        failed.push((name, e));
                    }
                }
            }
            deleted.sort();
            failed.sort();
        }
        Ok(SweepReport {
            mount: mount.to_string(),
            dry_run,
            path_prefixes: prefixes,
            tagged_users: tagged.len(),
            orphans,
            deleted,
            failed,
        })
    }

    /// Sweeps every mount that has an AWS connection (the periodic sweeper). Failures are
    /// logged and the next mount is tried.
    pub async fn sweep_all(&self) -> Result<usize> {
        let mut deleted = 0;
        for mount in self.store.list_mounts().await? {
            if self.store.get_root_config(&mount.path).await?.is_none() {
                continue;
            }
            match self.sweep(mount.path.as_str(), false).await {
                Ok(report) => deleted += report.deleted.len(),
                Err(e) => {
                    tracing::warn!(mount = %mount.path, error = %e, "periodic sweep failed; will try again")
                }
            }
        }
        Ok(deleted)
    }

    /// The operator's escape hatch for leases that cannot be revoked (say the AWS account is
    /// gone): each lease under `prefix` gets one short, best-effort clean-up in AWS, and is then
    /// forgotten whatever the outcome. Every forgotten lease is logged with its user name.
    pub async fn revoke_force(&self, prefix: &str) -> Result<Vec<ForceRevoked>> {
        let prefix = &directory_prefix(prefix);
        if prefix.is_empty() {
            return Err(EngineError::Invalid(
                "revoke-force needs a prefix such as aws/creds/dev/; it never forgets every lease at once"
                    .into(),
            ));
        }
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_lease_ids(prefix, None, after.as_deref(), 500)
                .await?;
            let results: Vec<Result<Option<ForceRevoked>>> = futures::stream::iter(page.clone())
                .map(|id| self.force_one(id))
                .buffer_unordered(REVOKE_CONCURRENCY)
                .collect()
                .await;
            for r in results {
                if let Some(done) = r? {
                    out.push(done);
                }
            }
            match page.last() {
                Some(last) if page.len() == 500 => after = Some(last.clone()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.lease_id.cmp(&b.lease_id));
        Ok(out)
    }

    async fn force_one(&self, id: String) -> Result<Option<ForceRevoked>> {
        let Some(lease) = self.store.get_lease(&id).await? else {
            return Ok(None);
        };
        let cleaned_up = match &lease.username {
            None => true,
            Some(username) => {
                let attempt = async {
                    let account = self.account(&lease.mount).await?;
                    account
                        .delete_iam_user(username)
                        .await
                        .map_err(|e| aws_failed("revoking", &e))
                };
                matches!(
                    tokio::time::timeout(FORCE_ATTEMPT, attempt).await,
                    Ok(Ok(()))
                )
            }
        };
        self.store.delete_lease(&lease.id).await?;
        tracing::warn!(
            lease_id = %lease.id,
            username = lease.username.as_deref().unwrap_or("-"),
            state = %lease.state,
            cleaned_up,
            last_error = lease.last_error.as_deref().unwrap_or("-"),
            "lease force-revoked: forgotten by the store"
        );
        Ok(Some(ForceRevoked {
            lease_id: lease.id,
            username: lease.username,
            cleaned_up,
        }))
    }
}
