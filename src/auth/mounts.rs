//! Auth mounts (`sys/auth/{path}`): enabling an auth method, listing them, and disabling one,
//! which revokes every token it issued, and so their leases.

use std::sync::Arc;

use super::AuthError;
use crate::model::{AuthKind, AuthMountRecord, MountPath, RoleName, TokenRevocation};
use crate::seal::{ALNUM, random_string};
use crate::store::{Store, TokenRoots};

/// What `sys/auth/{path}` asks for.
#[derive(Debug, Clone)]
pub struct AuthMountRequest {
    pub path: MountPath,
    pub kind: AuthKind,
    pub description: Option<String>,
    pub default_lease_ttl: Option<i64>,
    pub max_lease_ttl: Option<i64>,
}

/// The token store's own path: always there, never enabled or disabled.
const TOKEN_PATH: &str = "token";

pub async fn enable(
    store: &Arc<dyn Store>,
    request: AuthMountRequest,
    now: i64,
) -> Result<AuthMountRecord, AuthError> {
    if request.path.as_str() == TOKEN_PATH {
        return Err(AuthError::Invalid(
            "auth/token/ is the token store, always enabled; choose another path".into(),
        ));
    }
    if let (Some(d), Some(m)) = (request.default_lease_ttl, request.max_lease_ttl)
        && m > 0
        && d > m
    {
        return Err(AuthError::Invalid(
            "default_lease_ttl must not be greater than max_lease_ttl".into(),
        ));
    }
    let record = AuthMountRecord {
        accessor: format!(
            "auth_{}_{}",
            request.kind,
            random_string(8, ALNUM).to_lowercase()
        ),
        path: request.path,
        kind: request.kind,
        description: request.description.unwrap_or_default(),
        config: "{}".into(),
        secret_sealed: None,
        default_lease_ttl: request.default_lease_ttl.filter(|t| *t > 0),
        max_lease_ttl: request.max_lease_ttl.filter(|t| *t > 0),
        created_at: now,
    };
    if !store.insert_auth_mount(&record).await? {
        return Err(AuthError::Invalid(format!(
            "path is already in use at auth/{}/; disable it first or choose another path",
            record.path
        )));
    }
    tracing::info!(path = %record.path, kind = %record.kind, "enabled an auth method");
    Ok(record)
}

/// `sys/auth/{path}/tune`: a field left out keeps its value; 0 returns a TTL to the default.
pub async fn tune(
    store: &Arc<dyn Store>,
    path: &MountPath,
    description: Option<String>,
    default_lease_ttl: Option<i64>,
    max_lease_ttl: Option<i64>,
) -> Result<AuthMountRecord, AuthError> {
    let kinds = [AuthKind::AppRole, AuthKind::Jwt, AuthKind::Oidc];
    let mut mount = find(store, path, &kinds).await?;
    if let Some(d) = description {
        mount.description = d;
    }
    if let Some(t) = default_lease_ttl {
        mount.default_lease_ttl = (t > 0).then_some(t);
    }
    if let Some(t) = max_lease_ttl {
        mount.max_lease_ttl = (t > 0).then_some(t);
    }
    if let (Some(d), Some(m)) = (mount.default_lease_ttl, mount.max_lease_ttl)
        && d > m
    {
        return Err(AuthError::Invalid(
            "default_lease_ttl must not be greater than max_lease_ttl".into(),
        ));
    }
    if !store.update_auth_mount(&mount).await? {
        return Err(AuthError::NotFound(format!(
            "no auth method is enabled at auth/{path}/"
        )));
    }
    Ok(mount)
}

/// The auth mount at `path`, if it is of one of `kinds`.
pub async fn find(
    store: &Arc<dyn Store>,
    path: &MountPath,
    kinds: &[AuthKind],
) -> Result<AuthMountRecord, AuthError> {
    let mount = store.get_auth_mount(path).await?.ok_or_else(|| {
        AuthError::NotFound(format!(
            "no auth method is enabled at auth/{path}/ (enable one with sys/auth/{path})"
        ))
    })?;
    if !kinds.contains(&mount.kind) {
        let wanted: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        return Err(AuthError::NotFound(format!(
            "auth/{path}/ is a {} auth method; this path belongs to {}",
            mount.kind,
            wanted.join(" or ")
        )));
    }
    Ok(mount)
}

/// Disables an auth method: its roles and secret IDs are deleted and every token it issued is
/// revoked with its children and leases. The tokens stop working when the mount row is gone
/// (they are tied to its accessor), before this returns; should the process die between the
/// two steps, the reaper finds those tokens and revokes them.
pub async fn disable(
    store: &Arc<dyn Store>,
    path: &MountPath,
    now: i64,
) -> Result<TokenRevocation, AuthError> {
    let Some(accessor) = store.delete_auth_mount(path).await? else {
        return Ok(TokenRevocation::default());
    };
    let done = store
        .revoke_token_trees(TokenRoots::AuthMount(&accessor), now, false)
        .await?;
    tracing::info!(
        path = %path,
        tokens = done.tokens,
        leases = done.leases,
        "disabled an auth method and revoked its tokens"
    );
    Ok(done)
}

/// The role names of any auth mount (the kind is the caller's business).
pub async fn list_roles(
    store: &Arc<dyn Store>,
    path: &MountPath,
) -> Result<Vec<String>, AuthError> {
    Ok(store.list_auth_roles(path).await?)
}

/// Deletes a role of any auth mount, with AppRole's secret IDs; a missing role is no error.
pub async fn delete_role(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
) -> Result<(), AuthError> {
    store.delete_auth_role(path, name).await?;
    Ok(())
}
