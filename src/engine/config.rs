//! Configuration of a mount: enabling and disabling it, `config/lease`, and its roles.

use super::role::Role;
use super::{DEFAULT_LEASE_MAX, DEFAULT_LEASE_TTL, Engine, EngineError, Result};
use crate::clock::now;
use crate::duration::Ttl;
use crate::model::{MountPath, RoleName};
use crate::store::MountRecord;

/// `sys/mounts/{path}`: what a new mount is.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub path: MountPath,
    /// The secrets engine type; only `aws` is served.
    pub kind: String,
    pub description: String,
    pub default_lease_ttl: Option<Ttl>,
    pub max_lease_ttl: Option<Ttl>,
}

impl MountRequest {
    /// An `aws` mount at `path` with no description and the default TTLs.
    pub fn aws(path: MountPath) -> Self {
        MountRequest {
            path,
            kind: "aws".into(),
            description: String::new(),
            default_lease_ttl: None,
            max_lease_ttl: None,
        }
    }
}

/// `sys/mounts/{path}/tune`: a field left out keeps its value; a zero TTL means the default.
#[derive(Debug, Clone, Default)]
pub struct MountTune {
    pub description: Option<String>,
    pub default_lease_ttl: Option<Ttl>,
    pub max_lease_ttl: Option<Ttl>,
}

/// A write to `{mount}/config/lease`: a field left out keeps its value.
#[derive(Debug, Clone, Default)]
pub struct LeaseConfigUpdate {
    pub lease: Option<Ttl>,
    pub lease_max: Option<Ttl>,
}

/// `{mount}/config/lease` as it is in force: the mount's own values or the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    pub lease: Ttl,
    pub lease_max: Ttl,
}

impl Engine {
    // ---- mounts -------------------------------------------------------------------------

    pub async fn enable_mount(&self, request: MountRequest) -> Result<()> {
        let MountRequest {
            path,
            kind,
            description,
            default_lease_ttl,
            max_lease_ttl,
        } = request;
        if kind != "aws" {
            return Err(EngineError::Invalid(format!(
                "mount type {kind:?} is not supported; iamlease serves the \"aws\" secrets engine"
            )));
        }
        let default_lease_ttl = default_lease_ttl.filter(|t| !t.is_zero());
        let max_lease_ttl = max_lease_ttl.filter(|t| !t.is_zero());
        if let (Some(d), Some(m)) = (default_lease_ttl, max_lease_ttl)
            && d > m
        {
            return Err(EngineError::Invalid(format!(
                "default_lease_ttl ({d}) must not exceed max_lease_ttl ({m})"
            )));
        }
        let record = MountRecord {
            path: path.clone(),
            kind,
            description,
            default_lease_ttl: default_lease_ttl.map(|t| t.as_secs() as i64),
            max_lease_ttl: max_lease_ttl.map(|t| t.as_secs() as i64),
            lease_ttl: None,
            lease_max: None,
            created_at: now(),
        };
        if !self.store.insert_mount(&record).await? {
            return Err(EngineError::Invalid(format!(
                "path is already in use at {path}/"
            )));
        }
        Ok(())
    }

    pub async fn tune_mount(&self, path: &MountPath, tune: MountTune) -> Result<()> {
        let mut m = self.mount(path).await?;
        if let Some(d) = tune.description {
            m.description = d;
        }
        let secs = |t: Ttl| (!t.is_zero()).then_some(t.as_secs() as i64);
        if let Some(t) = tune.default_lease_ttl {
            m.default_lease_ttl = secs(t);
        }
        if let Some(t) = tune.max_lease_ttl {
            m.max_lease_ttl = secs(t);
        }
        if let (Some(d), Some(max)) = (m.default_lease_ttl, m.max_lease_ttl)
            && d > max
        {
            return Err(EngineError::Invalid(format!(
                "default_lease_ttl ({}) must not exceed max_lease_ttl ({})",
                Ttl::from_secs(d as u64),
                Ttl::from_secs(max as u64)
            )));
        }
        self.store.tune_mount(&m).await?;
        Ok(())
    }

    pub async fn list_mounts(&self) -> Result<Vec<MountRecord>> {
        Ok(self.store.list_mounts().await?)
    }

    pub(super) async fn mount(&self, path: &MountPath) -> Result<MountRecord> {
        self.store.get_mount(path).await?.ok_or_else(|| {
            EngineError::NotFound(format!("no secrets engine is mounted at {path}/"))
        })
    }

    /// Revokes every lease of the mount in AWS, then forgets the mount, its roles and config.
    pub async fn disable_mount(&self, path: &MountPath) -> Result<()> {
        if self.store.get_mount(path).await?.is_none() {
            return Ok(());
        }
        self.revoke_prefix(&format!("{path}/")).await?;
        self.store.delete_mount(path).await?;
        self.accounts.lock().expect("accounts lock").remove(path);
        Ok(())
    }

    // ---- config/lease -------------------------------------------------------------------

    pub async fn write_lease_config(
        &self,
        mount: &MountPath,
        update: LeaseConfigUpdate,
    ) -> Result<()> {
        let current = self.mount(mount).await?;
        let lease = update
            .lease
            .map(|t| t.as_secs() as i64)
            .or(current.lease_ttl);
        let lease_max = update
            .lease_max
            .map(|t| t.as_secs() as i64)
            .or(current.lease_max);
        if let (Some(l), Some(m)) = (lease, lease_max)
            && l > m
        {
            return Err(EngineError::Invalid(format!(
                "lease ({}) must not exceed lease_max ({})",
                Ttl::from_secs(l as u64),
                Ttl::from_secs(m as u64)
            )));
        }
        self.store
            .set_mount_lease_config(mount, lease, lease_max)
            .await?;
        Ok(())
    }

    pub async fn read_lease_config(&self, mount: &MountPath) -> Result<LeaseConfig> {
        let m = self.mount(mount).await?;
        let lease = m
            .lease_ttl
            .or(m.default_lease_ttl)
            .unwrap_or(DEFAULT_LEASE_TTL as i64);
        let max = m
            .lease_max
            .or(m.max_lease_ttl)
            .unwrap_or(DEFAULT_LEASE_MAX as i64);
        Ok(LeaseConfig {
            lease: Ttl::from_secs(lease as u64),
            lease_max: Ttl::from_secs(max as u64),
        })
    }

    // ---- roles --------------------------------------------------------------------------

    /// Stores `role` (checked again here, so nothing invalid is ever stored) under `name`.
    pub async fn write_role(&self, mount: &MountPath, name: &RoleName, role: &Role) -> Result<()> {
        self.mount(mount).await?;
        role.validate()?;
        let body = serde_json::to_string(role).expect("role serialises");
        self.store.put_role(mount, name, &body).await?;
        Ok(())
    }

    /// The stored role, if any, that a write to `name` would update (the mount must exist).
    pub async fn find_role(
        &self,
        mount: &MountPath,
        name: &str,
    ) -> Result<(RoleName, Option<Role>)> {
        self.mount(mount).await?;
        let name = RoleName::parse(name).map_err(EngineError::Invalid)?;
        let role = self.load_role(mount, &name).await?;
        Ok((name, role))
    }

    pub(super) async fn load_role(
        &self,
        mount: &MountPath,
        name: &RoleName,
    ) -> Result<Option<Role>> {
        match self.store.get_role(mount, name).await? {
            None => Ok(None),
            Some(body) => serde_json::from_str(&body)
                .map(Some)
                .map_err(|e| EngineError::Internal(format!("stored role {name}: {e}"))),
        }
    }

    /// The role `name` of `mount`; `NotFound` when the mount or the role does not exist.
    pub async fn read_role(&self, mount: &MountPath, name: &str) -> Result<(RoleName, Role)> {
        let (name, role) = self.find_role(mount, name).await?;
        let role = role.ok_or_else(|| {
            EngineError::NotFound(format!("role \"{name}\" does not exist in {mount}/"))
        })?;
        Ok((name, role))
    }

    pub async fn list_roles(&self, mount: &MountPath) -> Result<Vec<String>> {
        self.mount(mount).await?;
        Ok(self.store.list_roles(mount).await?)
    }

    /// Deleting a role leaves its leases alone: they still expire and revoke normally.
    pub async fn delete_role(&self, mount: &MountPath, name: &str) -> Result<()> {
        self.mount(mount).await?;
        let name = RoleName::parse(name).map_err(EngineError::Invalid)?;
        self.store.delete_role(mount, &name).await?;
        Ok(())
    }
}
