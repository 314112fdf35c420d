//! Mounts, roles and root configs served from memory while the store's config epoch stands
//! still. Any write to them, on any replica, moves the epoch in the same transaction, so a
//! request that reads the epoch first never gets a record older than that epoch: a replica
//! never serves a role or root config another one has changed or deleted.
//!
//! The rule (`Store::config_epoch`): read the epoch, then the records; an entry is stored only
//! under the epoch it was read at, and only while that is still the cache's epoch. Missing
//! records are not cached, so requests for names that do not exist cannot fill memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::role::Role;
use super::{Engine, EngineError, Result};
use crate::model::{MountPath, RoleName};
use crate::store::{MountRecord, RootConfigRecord};

/// The config epoch one piece of work reads its configuration at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Snapshot(i64);

#[derive(Default)]
pub(super) struct ConfigCache {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    epoch: i64,
    mounts: HashMap<MountPath, Arc<MountRecord>>,
    roles: HashMap<(MountPath, RoleName), Arc<Role>>,
    roots: HashMap<MountPath, Arc<RootConfigRecord>>,
}

impl ConfigCache {
    /// Moves the cache to `epoch` when it is newer, dropping everything read before it.
    fn advance(&self, epoch: i64) {
        let mut e = self.inner.lock().expect("config cache lock");
        if epoch > e.epoch {
            *e = Entries {
                epoch,
                ..Entries::default()
            };
        }
    }

    fn get<T: Clone>(&self, at: Snapshot, pick: impl FnOnce(&Entries) -> Option<T>) -> Option<T> {
        let e = self.inner.lock().expect("config cache lock");
        if e.epoch == at.0 { pick(&e) } else { None }
    }

    fn put(&self, at: Snapshot, store: impl FnOnce(&mut Entries)) {
        let mut e = self.inner.lock().expect("config cache lock");
        if e.epoch == at.0 {
            store(&mut e);
        }
    }
}

impl Engine {
    /// Reads the config epoch: what the lookups below are valid for.
    pub(super) async fn snapshot(&self) -> Result<Snapshot> {
        let epoch = self.store.config_epoch().await?;
        self.config.advance(epoch);
        Ok(Snapshot(epoch))
    }

    /// The epoch a request already read with its token (`Caller::config_epoch`), else a
    /// fresh read. Either way it was read before any of the records it will fetch.
    pub(super) async fn snapshot_with(&self, known: Option<i64>) -> Result<Snapshot> {
        match known {
            Some(epoch) => {
                self.config.advance(epoch);
                Ok(Snapshot(epoch))
            }
            None => self.snapshot().await,
        }
    }

    /// The mount at `path` as of `at`; `NotFound` when nothing is mounted there.
    pub(super) async fn mount_at(
        &self,
        at: Snapshot,
        path: &MountPath,
    ) -> Result<Arc<MountRecord>> {
        if let Some(m) = self.config.get(at, |e| e.mounts.get(path).cloned()) {
            return Ok(m);
        }
        let record = Arc::new(self.store.get_mount(path).await?.ok_or_else(|| {
            EngineError::NotFound(format!("no secrets engine is mounted at {path}/"))
        })?);
        self.config.put(at, |e| {
            e.mounts.insert(path.clone(), record.clone());
        });
        Ok(record)
    }

    /// The role `name` of `mount` as of `at`, if it exists.
    pub(super) async fn role_at(
        &self,
        at: Snapshot,
        mount: &MountPath,
        name: &RoleName,
    ) -> Result<Option<Arc<Role>>> {
        let key = (mount.clone(), name.clone());
        if let Some(r) = self.config.get(at, |e| e.roles.get(&key).cloned()) {
            return Ok(Some(r));
        }
        let Some(role) = self.load_role(mount, name).await? else {
            return Ok(None);
        };
        let role = Arc::new(role);
        self.config.put(at, |e| {
            e.roles.insert(key, role.clone());
        });
        Ok(Some(role))
    }

    /// The mount's root config as of `at`, if it has one.
    pub(super) async fn root_config_at(
        &self,
        at: Snapshot,
        mount: &MountPath,
    ) -> Result<Option<Arc<RootConfigRecord>>> {
        if let Some(r) = self.config.get(at, |e| e.roots.get(mount).cloned()) {
            return Ok(Some(r));
        }
        let Some(record) = self.store.get_root_config(mount).await? else {
            return Ok(None);
        };
        let record = Arc::new(record);
        self.config.put(at, |e| {
            e.roots.insert(mount.clone(), record.clone());
        });
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(path: &str) -> Arc<MountRecord> {
        Arc::new(MountRecord {
            path: MountPath::parse(path).unwrap(),
            kind: "aws".into(),
            description: String::new(),
            default_lease_ttl: None,
            max_lease_ttl: None,
            lease_ttl: None,
            lease_max: None,
            created_at: 0,
        })
    }

    #[test]
    fn entries_live_only_under_the_epoch_they_were_read_at() {
        let cache = ConfigCache::default();
        let aws = MountPath::parse("aws").unwrap();
        let get = |at| cache.get(at, |e| e.mounts.get(&aws).cloned());
        cache.advance(5);
        cache.put(Snapshot(5), |e| {
            e.mounts.insert(aws.clone(), mount("aws"));
        });
        assert!(get(Snapshot(5)).is_some());
        // A newer epoch drops it; a request still holding the old one gets nothing either.
        cache.advance(6);
        assert!(get(Snapshot(5)).is_none());
        assert!(get(Snapshot(6)).is_none());
        // What a slow request read at the old epoch is not stored under the new one.
        cache.put(Snapshot(5), |e| {
            e.mounts.insert(aws.clone(), mount("aws"));
        });
        assert!(get(Snapshot(6)).is_none());
        // An older epoch read late never moves the cache back.
        cache.advance(4);
        cache.put(Snapshot(6), |e| {
            e.mounts.insert(aws.clone(), mount("aws"));
        });
        assert!(get(Snapshot(6)).is_some());
    }
}
