//! `sys/auth` (enable, read, list, disable auth methods) and the routes every auth method
//! shares (`auth/{mount}/login`, `auth/{mount}/role/…`), sent on by the mount's kind.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::vault::{self, Input};
use super::{AppState, approle, auth_forms, jwt};
use crate::auth::{Caller, mounts};
use crate::clock::now;
use crate::model::{AuthKind, AuthMountRecord, MountPath, RoleName};
use crate::store::Store;

type ApiResult = Result<Response, ApiError>;

/// The client's address, when the request came over the network (not the console's in-process
/// calls): what CIDR bindings are checked against.
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

pub(super) fn mount_path(raw: &str) -> Result<MountPath, ApiError> {
    MountPath::parse(raw).map_err(ApiError::bad_request)
}

pub(super) fn role_name(raw: &str) -> Result<RoleName, ApiError> {
    RoleName::parse(raw).map_err(ApiError::bad_request)
}

/// An auth mount as `sys/auth` lists it, with the fields Vault's typed clients expect.
fn view(m: &AuthMountRecord) -> Value {
    let config = json!({
        "default_lease_ttl": m.default_lease_ttl.unwrap_or(0),
        "max_lease_ttl": m.max_lease_ttl.unwrap_or(0),
        "force_no_cache": false,
        "token_type": "default-service",
    });
    let uuid = super::views::uuid_form(&hex_of(&m.accessor, m.created_at));
    super::views::mount_entry(m.kind.as_str(), &m.description, &m.accessor, &uuid, config)
}

fn hex_of(accessor: &str, created_at: i64) -> String {
    crate::seal::token_hash(&format!("auth:{accessor}:{created_at}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every enabled auth method by `path/`, for `sys/auth` (which adds `token/`).
pub(super) async fn enabled(
    store: &std::sync::Arc<dyn Store>,
) -> Result<Map<String, Value>, ApiError> {
    Ok(store
        .list_auth_mounts()
        .await?
        .iter()
        .map(|m| (format!("{}/", m.path), view(m)))
        .collect())
}

pub async fn enable(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
    input: Input,
) -> ApiResult {
    let (request, warnings) = auth_forms::auth_mount(mount_path(&path)?, input.fields)?;
    mounts::enable(state.engine.store(), request, now()).await?;
    Ok(vault::written(warnings))
}

pub async fn read(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
) -> ApiResult {
    let path = mount_path(&path)?;
    let kinds = [AuthKind::AppRole, AuthKind::Jwt, AuthKind::Oidc];
    let mount = mounts::find(state.engine.store(), &path, &kinds).await?;
    Ok(vault::read(view(&mount)))
}

/// What Vault answers for a TTL left at the system default (32 days).
const SYSTEM_TTL: i64 = 768 * 3600;

fn tune_view(m: &AuthMountRecord) -> Value {
    json!({
        "description": m.description,
        "default_lease_ttl": m.default_lease_ttl.unwrap_or(SYSTEM_TTL),
        "max_lease_ttl": m.max_lease_ttl.unwrap_or(SYSTEM_TTL),
        "force_no_cache": false,
        "token_type": "default-service",
    })
}

pub async fn read_tune(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
) -> ApiResult {
    let path = mount_path(&path)?;
    let kinds = [AuthKind::AppRole, AuthKind::Jwt, AuthKind::Oidc];
    let mount = mounts::find(state.engine.store(), &path, &kinds).await?;
    Ok(vault::read(tune_view(&mount)))
}

/// `POST sys/auth/{path}/tune`: `description`, `default_lease_ttl`, `max_lease_ttl`; they
/// bound the tokens the method issues from then on.
pub async fn write_tune(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
    input: Input,
) -> ApiResult {
    let path = mount_path(&path)?;
    let (tune, warnings) = super::forms::mount_tune(input.fields)?;
    let secs = |t: Option<crate::duration::Ttl>| t.map(|t| t.as_secs() as i64);
    mounts::tune(
        state.engine.store(),
        &path,
        tune.description,
        secs(tune.default_lease_ttl),
        secs(tune.max_lease_ttl),
    )
    .await?;
    Ok(vault::written(warnings))
}

/// Disabling revokes every token the method issued, and their leases (Vault's 204).
pub async fn disable(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
) -> ApiResult {
    let path = mount_path(&path)?;
    let done = mounts::disable(state.engine.store(), &path, now()).await?;
    state.jwt_keys.forget(path.as_str());
    if done.leases > 0 {
        state.engine.wake_reaper();
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn kind_of(state: &AppState, path: &MountPath) -> Result<AuthKind, ApiError> {
    let kinds = [AuthKind::AppRole, AuthKind::Jwt, AuthKind::Oidc];
    Ok(mounts::find(state.engine.store(), path, &kinds).await?.kind)
}

/// `auth/{mount}/login`: no token needed; the method decides.
pub async fn login(
    State(state): State<AppState>,
    Path(path): Path<String>,
    peer: Peer,
    input: Input,
) -> ApiResult {
    let path = mount_path(&path)?;
    match kind_of(&state, &path).await? {
        AuthKind::AppRole => approle::login(&state, &path, peer, input).await,
        AuthKind::Jwt | AuthKind::Oidc => jwt::login(&state, &path, peer, input).await,
    }
}

pub async fn list_roles(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
) -> ApiResult {
    let path = mount_path(&path)?;
    kind_of(&state, &path).await?;
    vault::list(mounts::list_roles(state.engine.store(), &path).await?)
}

pub async fn read_role(
    State(state): State<AppState>,
    _caller: Caller,
    Path((path, name)): Path<(String, String)>,
) -> ApiResult {
    let path = mount_path(&path)?;
    match kind_of(&state, &path).await? {
        AuthKind::AppRole => approle::read_role(&state, &path, &name).await,
        AuthKind::Jwt | AuthKind::Oidc => jwt::read_role(&state, &path, &name).await,
    }
}

pub async fn write_role(
    State(state): State<AppState>,
    _caller: Caller,
    Path((path, name)): Path<(String, String)>,
    input: Input,
) -> ApiResult {
    let path = mount_path(&path)?;
    match kind_of(&state, &path).await? {
        AuthKind::AppRole => approle::write_role(&state, &path, &name, input).await,
        AuthKind::Jwt | AuthKind::Oidc => jwt::write_role(&state, &path, &name, input).await,
    }
}

pub async fn delete_role(
    State(state): State<AppState>,
    _caller: Caller,
    Path((path, name)): Path<(String, String)>,
) -> ApiResult {
    let path = mount_path(&path)?;
    kind_of(&state, &path).await?;
    let name = role_name(&name)?;
    mounts::delete_role(state.engine.store(), &path, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
