//! Configuration of a mount: enabling and disabling it, `config/lease`, and its roles.

use serde_json::{Value, json};

use super::role::Role;
use super::{DEFAULT_LEASE_MAX, DEFAULT_LEASE_TTL, Engine, EngineError, Result};
use crate::clock::now;
use crate::duration::Ttl;
use crate::fields::Fields;
use crate::model::{MountPath, RoleName};
use crate::store::MountRecord;

impl Engine {
    // ---- mounts -------------------------------------------------------------------------

    pub async fn enable_mount(&self, path: &str, mut input: Fields) -> Result<Vec<String>> {
        let path = MountPath::parse(path).map_err(EngineError::Invalid)?;
        let kind = input.string("type")?.unwrap_or_else(|| "aws".into());
        if kind != "aws" {
            return Err(EngineError::Invalid(format!(
                "mount type {kind:?} is not supported; iamlease serves the \"aws\" secrets engine"
            )));
        }
        let description = input.string("description")?.unwrap_or_default();
        let mut config = match input.into_map().remove("config") {
            Some(Value::Object(m)) => Fields::new(m),
            None | Some(Value::Null) => Fields::default(),
            Some(_) => return Err(EngineError::Invalid("config must be an object".into())),
        };
        let default_lease_ttl = config.ttl("default_lease_ttl")?.filter(|t| !t.is_zero());
        let max_lease_ttl = config.ttl("max_lease_ttl")?.filter(|t| !t.is_zero());
        if let (Some(d), Some(m)) = (default_lease_ttl, max_lease_ttl)
            && d > m
        {
            return Err(EngineError::Invalid(format!(
                "default_lease_ttl ({d}) must not exceed max_lease_ttl ({m})"
            )));
        }
        let warnings = config.unknown_field_warnings();
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
        Ok(warnings)
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
    pub async fn disable_mount(&self, path: &str) -> Result<()> {
        let path = MountPath::parse(path).map_err(EngineError::Invalid)?;
        if self.store.get_mount(&path).await?.is_none() {
            return Ok(());
        }
        self.revoke_prefix(&format!("{path}/")).await?;
        self.store.delete_mount(&path).await?;
        self.accounts.lock().expect("accounts lock").remove(&path);
        Ok(())
    }

    // ---- config/lease ---------------------------------------------------------------

    pub async fn write_lease_config(
        &self,
        mount: &MountPath,
        mut input: Fields,
    ) -> Result<Vec<String>> {
        let current = self.mount(mount).await?;
        let lease = input
            .ttl("lease")?
            .map(|t| t.as_secs() as i64)
            .or(current.lease_ttl);
        let lease_max = input
            .ttl("lease_max")?
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
        let warnings = input.unknown_field_warnings();
        self.store
            .set_mount_lease_config(mount, lease, lease_max)
            .await?;
        Ok(warnings)
    }

    pub async fn read_lease_config(&self, mount: &MountPath) -> Result<Value> {
        let m = self.mount(mount).await?;
        let lease = m
            .lease_ttl
            .or(m.default_lease_ttl)
            .unwrap_or(DEFAULT_LEASE_TTL as i64);
        let max = m
            .lease_max
            .or(m.max_lease_ttl)
            .unwrap_or(DEFAULT_LEASE_MAX as i64);
        Ok(json!({
            "lease": Ttl::from_secs(lease as u64).to_go_string(),
            "lease_max": Ttl::from_secs(max as u64).to_go_string(),
        }))
    }

    // ---- roles --------------------------------------------------------------------------

    pub async fn write_role(
        &self,
        mount: &MountPath,
        name: &str,
        input: Fields,
    ) -> Result<Vec<String>> {
        self.mount(mount).await?;
        let name = RoleName::parse(name).map_err(EngineError::Invalid)?;
        let existing = self.load_role(mount, &name).await?;
        let (role, warnings) = Role::parse(existing.as_ref(), input)?;
        let body = serde_json::to_string(&role).expect("role serialises");
        self.store.put_role(mount, &name, &body).await?;
        Ok(warnings)
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

    pub(super) async fn role(&self, mount: &MountPath, name: &str) -> Result<(RoleName, Role)> {
        self.mount(mount).await?;
        let name = RoleName::parse(name).map_err(EngineError::Invalid)?;
        let role = self.load_role(mount, &name).await?.ok_or_else(|| {
            EngineError::NotFound(format!("role \"{name}\" does not exist in {mount}/"))
        })?;
        Ok((name, role))
    }

    pub async fn read_role(&self, mount: &MountPath, name: &str) -> Result<Value> {
        let (name, role) = self.role(mount, name).await?;
        Ok(role.to_read_data(mount, &name))
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
