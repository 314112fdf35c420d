//! AppRole (Vault's `auth/approle/…`): roles, their `role_id`, secret IDs (generated or custom,
//! kept only as hashes scoped to their role), and the login that trades the two for a token.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::login::{Cidr, LoginIdentity, TokenSettings, allowed_from, login_token};
use super::{AuthError, mounts};
use crate::model::{
    AuthKind, AuthMountRecord, AuthRoleRecord, MountPath, RoleName, SecretIdRecord,
};
use crate::seal::token_hash;
use crate::store::{Store, TokenRecord};

/// An AppRole role. Seconds and counts; 0 is "no limit" as in Vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppRole {
    pub bind_secret_id: bool,
    pub secret_id_bound_cidrs: Vec<Cidr>,
    pub secret_id_num_uses: i64,
    pub secret_id_ttl: i64,
    pub local_secret_ids: bool,
    #[serde(flatten)]
    pub token: TokenSettings,
}

impl Default for AppRole {
    fn default() -> Self {
        AppRole {
            bind_secret_id: true,
            secret_id_bound_cidrs: Vec::new(),
            secret_id_num_uses: 0,
            secret_id_ttl: 0,
            local_secret_ids: false,
            token: TokenSettings::default(),
        }
    }
}

impl AppRole {
    pub fn validate(&self) -> Result<(), AuthError> {
        self.token.validate()?;
        if self.secret_id_num_uses < 0 || self.secret_id_ttl < 0 {
            return Err(AuthError::Invalid(
                "secret_id_num_uses and secret_id_ttl must not be negative".into(),
            ));
        }
        // Vault's rule: a role anyone who knows its role_id could log in with is refused.
        if !self.bind_secret_id
            && self.secret_id_bound_cidrs.is_empty()
            && self.token.token_bound_cidrs.is_empty()
        {
            return Err(AuthError::Invalid(
                "at least one constraint must be enabled on the role: bind_secret_id, secret_id_bound_cidrs or token_bound_cidrs".into(),
            ));
        }
        Ok(())
    }
}

/// A role as stored: its settings and `role_id`.
pub struct StoredRole {
    pub role: AppRole,
    pub role_id: String,
}

async fn mount(store: &Arc<dyn Store>, path: &MountPath) -> Result<AuthMountRecord, AuthError> {
    mounts::find(store, path, &[AuthKind::AppRole]).await
}

fn not_found(name: &RoleName) -> AuthError {
    AuthError::NotFound(format!("role {:?} does not exist", name.as_str()))
}

pub async fn read_role(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
) -> Result<Option<StoredRole>, AuthError> {
    mount(store, path).await?;
    let Some(record) = store.get_auth_role(path, name).await? else {
        return Ok(None);
    };
    let role = serde_json::from_str(&record.body)
        .map_err(|e| AuthError::Invalid(format!("stored role {name} cannot be read: {e}")))?;
    Ok(Some(StoredRole {
        role,
        role_id: record.role_id.unwrap_or_default(),
    }))
}

async fn existing(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
) -> Result<StoredRole, AuthError> {
    read_role(store, path, name)
        .await?
        .ok_or_else(|| not_found(name))
}

/// Creates or replaces a role. A new role gets a random `role_id` unless one is given; an
/// existing one keeps its own unless one is given.
pub async fn write_role(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
    role: &AppRole,
    role_id: Option<String>,
) -> Result<(), AuthError> {
    role.validate()?;
    let current = read_role(store, path, name).await?;
    let role_id = match (role_id, current) {
        (Some(id), _) => checked_role_id(id)?,
        (None, Some(c)) => c.role_id,
        (None, None) => uuid::Uuid::new_v4().to_string(),
    };
    put(store, path, name, role, role_id).await
}

fn checked_role_id(id: String) -> Result<String, AuthError> {
    let id = id.trim().to_owned();
    if id.is_empty() || id.len() > 256 {
        return Err(AuthError::Invalid(
            "role_id must be 1 to 256 characters".into(),
        ));
    }
    Ok(id)
}

async fn put(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
    role: &AppRole,
    role_id: String,
) -> Result<(), AuthError> {
    let record = AuthRoleRecord {
        name: name.clone(),
        body: serde_json::to_string(role).expect("a role serialises"),
        role_id: Some(role_id),
    };
    if !store.put_auth_role(path, &record).await? {
        return Err(AuthError::Invalid(
            "role_id is already in use by another role of this mount; choose another".into(),
        ));
    }
    Ok(())
}

pub async fn set_role_id(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
    role_id: String,
) -> Result<(), AuthError> {
    let current = existing(store, path, name).await?;
    put(store, path, name, &current.role, checked_role_id(role_id)?).await
}

/// What `secret-id` and `custom-secret-id` ask for.
#[derive(Debug, Clone, Default)]
pub struct SecretIdRequest {
    /// `custom-secret-id`: the operator's own value.
    pub custom: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub cidr_list: Vec<Cidr>,
    pub token_bound_cidrs: Vec<Cidr>,
    /// At most the role's `secret_id_num_uses` (when that is set); `None` takes the role's.
    pub num_uses: Option<i64>,
    pub ttl: Option<i64>,
}

/// A new secret ID, shown once.
pub struct IssuedSecretId {
    pub secret_id: String,
    pub accessor: String,
    pub ttl: i64,
    pub num_uses: i64,
}

/// The stored key of a secret ID: a hash scoped to its mount and role, so the same custom
/// value on two roles are two secret IDs, and a copy of the store holds no usable secret.
fn secret_hash(path: &MountPath, name: &RoleName, secret_id: &str) -> Vec<u8> {
    token_hash(&format!("approle\0{path}\0{name}\0{secret_id}"))
}

/// Vault's rule: a limit on a secret ID can only tighten the role's.
fn within(asked: Option<i64>, role: i64, what: &str) -> Result<i64, AuthError> {
    match asked {
        None => Ok(role),
        Some(v) if v < 0 => Err(AuthError::Invalid(format!("{what} must not be negative"))),
        Some(v) if role > 0 && (v == 0 || v > role) => Err(AuthError::Invalid(format!(
            "{what} of {v} is above the role's {role}; ask for at most {role}"
        ))),
        Some(v) => Ok(v),
    }
}

pub async fn create_secret_id(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
    request: SecretIdRequest,
    now: i64,
) -> Result<IssuedSecretId, AuthError> {
    let role = existing(store, path, name).await?.role;
    if !role.bind_secret_id {
        return Err(AuthError::Invalid(format!(
            "role {name:?} has bind_secret_id=false: it logs in with its role_id alone"
        )));
    }
    let num_uses = within(request.num_uses, role.secret_id_num_uses, "num_uses")?;
    let ttl = within(request.ttl, role.secret_id_ttl, "ttl")?;
    if let Some(outside) = request.cidr_list.iter().find(|c| {
        !role.secret_id_bound_cidrs.is_empty()
            && !role.secret_id_bound_cidrs.iter().any(|r| r.covers(c))
    }) {
        return Err(AuthError::Invalid(format!(
            "cidr_list: {} is not within the role's secret_id_bound_cidrs",
            String::from(outside.clone())
        )));
    }
    let secret_id = match request.custom {
        Some(custom) => {
            let custom = custom.trim().to_owned();
            if custom.is_empty() || custom.len() > 256 {
                return Err(AuthError::Invalid(
                    "secret_id must be 1 to 256 characters".into(),
                ));
            }
            custom
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let record = SecretIdRecord {
        hash: secret_hash(path, name, &secret_id),
        accessor: uuid::Uuid::new_v4().to_string(),
        mount: path.clone(),
        role: name.clone(),
        uses_left: num_uses,
        ttl,
        expire_at: (ttl > 0).then_some(now + ttl),
        cidr_list: request.cidr_list.into_iter().map(String::from).collect(),
        token_bound_cidrs: request
            .token_bound_cidrs
            .into_iter()
            .map(String::from)
            .collect(),
        metadata: request.metadata,
        created_at: now,
        updated_at: now,
    };
    if !store.insert_secret_id(&record).await? {
        return Err(AuthError::Invalid(
            "that secret_id already exists for this role; choose another".into(),
        ));
    }
    Ok(IssuedSecretId {
        secret_id,
        accessor: record.accessor,
        ttl,
        num_uses,
    })
}

/// A live secret ID by its value (`None` when unknown or expired).
pub async fn lookup_secret_id(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
    secret_id: &str,
    now: i64,
) -> Result<Option<SecretIdRecord>, AuthError> {
    existing(store, path, name).await?;
    let found = store
        .find_secret_id(&secret_hash(path, name, secret_id.trim()))
        .await?;
    Ok(found.filter(|s| live(s, now)))
}

fn live(s: &SecretIdRecord, now: i64) -> bool {
    s.uses_left >= 0 && s.expire_at.is_none_or(|e| e > now)
}

pub async fn lookup_secret_id_accessor(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
    accessor: &str,
    now: i64,
) -> Result<Option<SecretIdRecord>, AuthError> {
    existing(store, path, name).await?;
    let found = store
        .find_secret_id_by_accessor(path, name, accessor.trim())
        .await?;
    Ok(found.filter(|s| live(s, now)))
}

/// Destroys a secret ID by value or accessor. Destroying one that is gone is not an error.
pub async fn destroy_secret_id(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
    by: SecretIdRef<'_>,
) -> Result<(), AuthError> {
    existing(store, path, name).await?;
    let accessor = match by {
        SecretIdRef::Accessor(a) => a.trim().to_owned(),
        SecretIdRef::Value(v) => match store
            .find_secret_id(&secret_hash(path, name, v.trim()))
            .await?
        {
            Some(s) => s.accessor,
            None => return Ok(()),
        },
    };
    store.delete_secret_id(path, name, &accessor).await?;
    Ok(())
}

/// A secret ID named by its value or by its accessor.
pub enum SecretIdRef<'a> {
    Value(&'a str),
    Accessor(&'a str),
}

pub async fn list_secret_ids(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
) -> Result<Vec<String>, AuthError> {
    existing(store, path, name).await?;
    Ok(store.list_secret_id_accessors(path, name).await?)
}

/// `auth/{mount}/login`: `role_id` and, when the role binds one, `secret_id`, from `peer`.
/// Every refusal says why and issues nothing; a refused source spends no use of the secret ID.
pub async fn login(
    store: &Arc<dyn Store>,
    path: &MountPath,
    role_id: &str,
    secret_id: Option<&str>,
    peer: Option<IpAddr>,
    now: i64,
) -> Result<(String, TokenRecord), AuthError> {
    let mount = mount(store, path).await?;
    let record = store
        .find_auth_role_by_role_id(path, role_id.trim())
        .await?
        .ok_or_else(|| AuthError::Invalid("invalid role_id: no role has it".into()))?;
    let name = record.name.clone();
    let role: AppRole = serde_json::from_str(&record.body)
        .map_err(|e| AuthError::Invalid(format!("stored role {name} cannot be read: {e}")))?;
    let source = peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    if !allowed_from(&role.secret_id_bound_cidrs, peer) {
        return Err(AuthError::Forbidden(format!(
            "source address {source} is not allowed by the role's secret_id_bound_cidrs"
        )));
    }
    let mut metadata = BTreeMap::new();
    let mut extra_bound_cidrs = Vec::new();
    if role.bind_secret_id {
        let secret_id = secret_id
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                AuthError::Invalid("secret_id is required: the role binds a secret ID".into())
            })?;
        let hash = secret_hash(path, &name, secret_id);
        let invalid =
            || AuthError::Invalid("invalid secret_id: it is unknown, expired or used up".into());
        let found = store
            .find_secret_id(&hash)
            .await?
            .filter(|s| live(s, now))
            .ok_or_else(invalid)?;
        let cidrs = super::parse_cidrs(&found.cidr_list)?;
        if !allowed_from(&cidrs, peer) {
            return Err(AuthError::Forbidden(format!(
                "source address {source} is not allowed by the secret ID's cidr_list"
            )));
        }
        let used = store.use_secret_id(&hash, now).await?.ok_or_else(invalid)?;
        metadata = used.metadata;
        extra_bound_cidrs = super::parse_cidrs(&used.token_bound_cidrs)?;
    }
    metadata.insert("role_name".into(), name.to_string());
    let who = LoginIdentity {
        name: name.to_string(),
        metadata,
        extra_policies: Vec::new(),
        extra_bound_cidrs,
    };
    login_token(store, &mount, &role.token, who, now).await
}
