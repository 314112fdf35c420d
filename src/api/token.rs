//! `auth/token/*` (create, look up, renew, revoke) and `sys/policies/acl/*` (plus Vault's
//! older `sys/policy/*` form, which hvac's `create_or_update_policy` still uses).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::vault::{self, Input};
use crate::auth::{self, Caller, TokenRequest};
use crate::clock::{now, rfc3339};
use crate::store::TokenRecord;

type ApiResult = Result<Response, ApiError>;

/// What a token looks like when looked up. Never the token itself.
fn token_data(c: &Caller) -> Value {
    json!({
        "accessor": c.accessor,
        "creation_time": c.created_at,
        "creation_ttl": c.ttl.unwrap_or(0),
        "display_name": c.display_name,
        "entity_id": "",
        "expire_time": c.expire_at.map(rfc3339),
        "explicit_max_ttl": 0,
        "meta": null,
        "num_uses": 0,
        "orphan": false,
        "path": "auth/token/create",
        "policies": c.policies,
        "renewable": c.ttl.is_some(),
        "ttl": c.expire_at.map_or(0, |e| (e - now()).max(0)),
        "type": "service",
    })
}

fn auth_data(token: &str, record: &TokenRecord) -> Value {
    json!({
        "client_token": token,
        "accessor": record.accessor,
        "policies": record.policies,
        "token_policies": record.policies,
        "metadata": null,
        "lease_duration": record.ttl.unwrap_or(0),
        "renewable": record.ttl.is_some(),
        "entity_id": "",
        "token_type": "service",
        "orphan": false,
    })
}

pub async fn create(State(s): State<AppState>, caller: Caller, mut input: Input) -> ApiResult {
    let request = TokenRequest {
        policies: input.fields.list("policies")?.unwrap_or_default(),
        ttl: input.fields.ttl("ttl")?,
        display_name: input.fields.string("display_name")?,
        no_default_policy: input.fields.bool("no_default_policy")?.unwrap_or(false),
    };
    let (token, record) = auth::create_child(s.engine.store(), &caller, request, now()).await?;
    Ok(vault::auth_response(auth_data(&token, &record)))
}

pub async fn lookup_self(caller: Caller) -> ApiResult {
    Ok(vault::read(token_data(&caller)))
}

/// `auth/token/lookup` with a token in the body (Vault's form for looking up another token).
pub async fn lookup(State(s): State<AppState>, _caller: Caller, mut input: Input) -> ApiResult {
    let token = input
        .fields
        .non_empty_string("token")?
        .ok_or_else(|| ApiError::bad_request("token is required"))?;
    let other = auth::authenticate(s.engine.store(), &token, now())
        .await?
        .ok_or_else(|| ApiError::bad_request("bad token: unknown or expired"))?;
    Ok(vault::read(token_data(&other)))
}

pub async fn lookup_accessor(
    State(s): State<AppState>,
    _caller: Caller,
    mut input: Input,
) -> ApiResult {
    let accessor = input
        .fields
        .non_empty_string("accessor")?
        .ok_or_else(|| ApiError::bad_request("accessor is required"))?;
    let other = auth::lookup_accessor(s.engine.store(), &accessor).await?;
    Ok(vault::read(token_data(&other)))
}

pub async fn renew_self(State(s): State<AppState>, caller: Caller, mut input: Input) -> ApiResult {
    let increment = input.fields.ttl("increment")?;
    let expire_at = auth::renew(s.engine.store(), &caller, increment, now()).await?;
    let lease_duration = expire_at.map_or(0, |e| (e - now()).max(0));
    Ok(vault::auth_response(json!({
        "accessor": caller.accessor,
        "policies": caller.policies,
        "token_policies": caller.policies,
        "lease_duration": lease_duration,
        "renewable": expire_at.is_some(),
    })))
}

pub async fn revoke_self(State(s): State<AppState>, caller: Caller) -> ApiResult {
    auth::revoke_accessor(s.engine.store(), &caller.accessor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn revoke_accessor(
    State(s): State<AppState>,
    _caller: Caller,
    mut input: Input,
) -> ApiResult {
    let accessor = input
        .fields
        .non_empty_string("accessor")?
        .ok_or_else(|| ApiError::bad_request("accessor is required"))?;
    auth::revoke_accessor(s.engine.store(), &accessor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_policies(State(s): State<AppState>, _caller: Caller) -> ApiResult {
    let names = auth::list_policies(s.engine.store()).await?;
    // The older sys/policy answers with `policies` as well as `keys`.
    let data = json!({ "keys": names, "policies": names });
    Ok(vault::read_flat(data.as_object().expect("object").clone()))
}

pub async fn read_policy(
    State(s): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> ApiResult {
    let (name, text) = auth::read_policy(s.engine.store(), &name).await?;
    let data = json!({"name": name, "policy": text, "rules": text});
    Ok(vault::read_flat(data.as_object().expect("object").clone()))
}

pub async fn write_policy(
    State(s): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
    mut input: Input,
) -> ApiResult {
    // JSON may come as an object or as text (hvac dumps dicts); HCL comes as text.
    let text = match input.fields.clone().json_document("policy") {
        Ok(Some(json)) => json,
        _ => input
            .fields
            .non_empty_string("policy")?
            .or(input.fields.non_empty_string("rules")?)
            .ok_or_else(|| ApiError::bad_request("policy is required: HCL or JSON text"))?,
    };
    auth::write_policy(s.engine.store(), &name, &text).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn delete_policy(
    State(s): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> ApiResult {
    auth::delete_policy(s.engine.store(), &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
