//! AppRole's routes (`auth/{mount}/role/{name}`, `role-id`, `secret-id…`, `login`): Vault's
//! fields in, Vault's shapes out; the rules live in `auth::approle`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth_methods::{Peer, mount_path, role_name};
use super::error::ApiError;
use super::vault::{self, Input};
use super::{AppState, auth_forms, token};
use crate::auth::Caller;
use crate::auth::approle::{self as ar, AppRole, SecretIdRef};
use crate::clock::{now, rfc3339};
use crate::model::{MountPath, RoleName, SecretIdRecord};

type ApiResult = Result<Response, ApiError>;

fn role_view(role: &AppRole) -> Value {
    let t = &role.token;
    let cidrs =
        |c: &[crate::auth::Cidr]| -> Vec<String> { c.iter().cloned().map(String::from).collect() };
    json!({
        "bind_secret_id": role.bind_secret_id,
        "local_secret_ids": role.local_secret_ids,
        "secret_id_bound_cidrs": cidrs(&role.secret_id_bound_cidrs),
        "secret_id_num_uses": role.secret_id_num_uses,
        "secret_id_ttl": role.secret_id_ttl,
        "token_bound_cidrs": cidrs(&t.token_bound_cidrs),
        "token_explicit_max_ttl": t.token_explicit_max_ttl,
        "token_max_ttl": t.token_max_ttl,
        "token_no_default_policy": t.token_no_default_policy,
        "token_num_uses": t.token_num_uses,
        "token_period": t.token_period,
        "token_policies": t.token_policies,
        "policies": t.token_policies,
        "period": t.token_period,
        "token_ttl": t.token_ttl,
        "token_type": "default",
    })
}

pub(super) async fn login(
    state: &AppState,
    path: &MountPath,
    peer: Peer,
    mut input: Input,
) -> ApiResult {
    let f = &mut input.fields;
    let role_id = f
        .non_empty_string("role_id")?
        .ok_or_else(|| ApiError::bad_request("role_id is required"))?;
    let secret_id = f.non_empty_string("secret_id")?;
    let (client_token, record) = ar::login(
        state.engine.store(),
        path,
        &role_id,
        secret_id.as_deref(),
        peer.0,
        now(),
    )
    .await?;
    Ok(vault::auth_response(token::auth_data(
        &client_token,
        &record,
    )))
}

pub(super) async fn read_role(state: &AppState, path: &MountPath, name: &str) -> ApiResult {
    let name = role_name(name)?;
    match ar::read_role(state.engine.store(), path, &name).await? {
        Some(stored) => Ok(vault::read(role_view(&stored.role))),
        None => Err(ApiError::not_found(format!(
            "role {:?} does not exist",
            name.as_str()
        ))),
    }
}

pub(super) async fn write_role(
    state: &AppState,
    path: &MountPath,
    name: &str,
    input: Input,
) -> ApiResult {
    let name = role_name(name)?;
    let store = state.engine.store();
    let current = ar::read_role(store, path, &name).await?;
    let (role, role_id, warnings) =
        auth_forms::approle_role(current.as_ref().map(|c| &c.role), input.fields)?;
    ar::write_role(store, path, &name, &role, role_id).await?;
    Ok(vault::written(warnings))
}

fn names(mount: &str, name: &str) -> Result<(MountPath, RoleName), ApiError> {
    Ok((mount_path(mount)?, role_name(name)?))
}

pub async fn read_role_id(
    State(state): State<AppState>,
    _caller: Caller,
    Path((mount, name)): Path<(String, String)>,
) -> ApiResult {
    let (path, name) = names(&mount, &name)?;
    let stored = ar::read_role(state.engine.store(), &path, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("role {:?} does not exist", name.as_str())))?;
    Ok(vault::read(json!({ "role_id": stored.role_id })))
}

pub async fn write_role_id(
    State(state): State<AppState>,
    _caller: Caller,
    Path((mount, name)): Path<(String, String)>,
    mut input: Input,
) -> ApiResult {
    let (path, name) = names(&mount, &name)?;
    let role_id = input
        .fields
        .non_empty_string("role_id")?
        .ok_or_else(|| ApiError::bad_request("role_id is required"))?;
    ar::set_role_id(state.engine.store(), &path, &name, role_id).await?;
    Ok(vault::written(input.fields.unknown_field_warnings()))
}

async fn issue_secret_id(
    state: AppState,
    mount: String,
    name: String,
    input: Input,
    custom: bool,
) -> ApiResult {
    let (path, name) = names(&mount, &name)?;
    let (request, warnings) = auth_forms::secret_id(input.fields, custom)?;
    let issued = ar::create_secret_id(state.engine.store(), &path, &name, request, now()).await?;
    let data = json!({
        "secret_id": issued.secret_id,
        "secret_id_accessor": issued.accessor,
        "secret_id_ttl": issued.ttl,
        "secret_id_num_uses": issued.num_uses,
    });
    Ok(vault::json_response(
        StatusCode::OK,
        &vault::envelope(data, warnings),
    ))
}

pub async fn generate_secret_id(
    State(state): State<AppState>,
    _caller: Caller,
    Path((mount, name)): Path<(String, String)>,
    input: Input,
) -> ApiResult {
    issue_secret_id(state, mount, name, input, false).await
}

pub async fn custom_secret_id(
    State(state): State<AppState>,
    _caller: Caller,
    Path((mount, name)): Path<(String, String)>,
    input: Input,
) -> ApiResult {
    issue_secret_id(state, mount, name, input, true).await
}

pub async fn list_secret_ids(
    State(state): State<AppState>,
    _caller: Caller,
    Path((mount, name)): Path<(String, String)>,
) -> ApiResult {
    let (path, name) = names(&mount, &name)?;
    vault::list(ar::list_secret_ids(state.engine.store(), &path, &name).await?)
}

/// A secret ID as lookups answer it (never the secret ID itself).
fn secret_id_view(s: &SecretIdRecord) -> Value {
    json!({
        "cidr_list": s.cidr_list,
        "creation_time": rfc3339(s.created_at),
        "expiration_time": s.expire_at.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), rfc3339),
        "last_updated_time": rfc3339(s.updated_at),
        "metadata": s.metadata,
        "secret_id_accessor": s.accessor,
        "secret_id_num_uses": s.uses_left.max(0),
        "secret_id_ttl": s.ttl,
        "token_bound_cidrs": s.token_bound_cidrs,
    })
}

/// Vault answers a lookup of an unknown secret ID with 204 and no body.
fn found(s: Option<SecretIdRecord>) -> ApiResult {
    Ok(match s {
        Some(s) => vault::read(secret_id_view(&s)),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

fn field(input: &mut Input, key: &str) -> Result<String, ApiError> {
    input
        .fields
        .non_empty_string(key)?
        .ok_or_else(|| ApiError::bad_request(format!("{key} is required")))
}

pub async fn lookup_secret_id(
    State(state): State<AppState>,
    _caller: Caller,
    Path((mount, name)): Path<(String, String)>,
    mut input: Input,
) -> ApiResult {
    let (path, name) = names(&mount, &name)?;
    let secret_id = field(&mut input, "secret_id")?;
    found(ar::lookup_secret_id(state.engine.store(), &path, &name, &secret_id, now()).await?)
}

pub async fn lookup_secret_id_accessor(
    State(state): State<AppState>,
    _caller: Caller,
    Path((mount, name)): Path<(String, String)>,
    mut input: Input,
) -> ApiResult {
    let (path, name) = names(&mount, &name)?;
    let accessor = field(&mut input, "secret_id_accessor")?;
    found(
        ar::lookup_secret_id_accessor(state.engine.store(), &path, &name, &accessor, now()).await?,
    )
}

pub async fn destroy_secret_id(
    State(state): State<AppState>,
    _caller: Caller,
    Path((mount, name)): Path<(String, String)>,
    mut input: Input,
) -> ApiResult {
    let (path, name) = names(&mount, &name)?;
    let secret_id = field(&mut input, "secret_id")?;
    ar::destroy_secret_id(
        state.engine.store(),
        &path,
        &name,
        SecretIdRef::Value(&secret_id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn destroy_secret_id_accessor(
    State(state): State<AppState>,
    _caller: Caller,
    Path((mount, name)): Path<(String, String)>,
    mut input: Input,
) -> ApiResult {
    let (path, name) = names(&mount, &name)?;
    let accessor = field(&mut input, "secret_id_accessor")?;
    ar::destroy_secret_id(
        state.engine.store(),
        &path,
        &name,
        SecretIdRef::Accessor(&accessor),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
