//! `auth/token/*` (create, look up, renew, revoke) and `sys/policies/acl/*` (plus Vault's
//! older `sys/policy/*` form, which hvac's `create_or_update_policy` still uses).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::vault::{self, Input};
use crate::auth::policy::Capability;
use crate::auth::{self, Caller, TokenRequest};
use crate::clock::{now, rfc3339};
use crate::store::TokenRecord;

type ApiResult = Result<Response, ApiError>;

/// What a token looks like when looked up (Vault's fields). `id` is the token itself for
/// `lookup` and `lookup-self`, `""` for `lookup-accessor`; nothing else ever shows it.
fn token_data(t: &TokenRecord, id: &str) -> Value {
    let mut data = json!({
        "accessor": t.accessor,
        "creation_time": t.created_at,
        "creation_ttl": t.ttl.unwrap_or(0),
        "display_name": t.display_name,
        "entity_id": "",
        "expire_time": t.expire_at.map(rfc3339),
        "explicit_max_ttl": t.explicit_max_ttl.unwrap_or(0),
        "id": id,
        "issue_time": rfc3339(t.created_at),
        "meta": meta(t),
        "num_uses": t.num_uses,
        "orphan": t.orphan,
        "path": t.path,
        "policies": t.policies,
        "renewable": t.renewable && t.ttl.is_some(),
        "ttl": t.expire_at.map_or(0, |e| (e - now()).max(0)),
        "type": "service",
    });
    if let Some(period) = t.period {
        data["period"] = json!(period);
    }
    data
}

/// Vault shows no metadata as `null`.
fn meta(t: &TokenRecord) -> Value {
    if t.meta.is_empty() {
        Value::Null
    } else {
        json!(t.meta)
    }
}

/// Vault's `auth` block, as every token creation and renewal answers it.
pub(super) fn auth_data(client_token: &str, t: &TokenRecord) -> Value {
    json!({
        "client_token": client_token,
        "accessor": t.accessor,
        "policies": t.policies,
        "token_policies": t.policies,
        "identity_policies": null,
        "metadata": meta(t),
        "lease_duration": t.expire_at.map_or(0, |e| (e - now()).max(0)),
        "renewable": t.renewable && t.ttl.is_some(),
        "entity_id": "",
        "token_type": "service",
        "orphan": t.orphan,
        "mfa_requirement": null,
        "num_uses": t.num_uses,
    })
}

/// Whether the caller could use `sudo` on `path` (root always can).
fn has_sudo(caller: &Caller, path: &str) -> bool {
    caller.is_root() || caller.acl.allows(path, &[Capability::Update], true)
}

fn token_request(
    caller: &Caller,
    input: &mut Input,
    orphan_path: bool,
) -> Result<TokenRequest, ApiError> {
    let f = &mut input.fields;
    if f.non_empty_string("id")?.is_some() {
        return Err(ApiError::bad_request(
            "id: tokens with a chosen id are not supported; leave id out and use the token returned",
        ));
    }
    if f.non_empty_string("role_name")?.is_some() {
        return Err(ApiError::bad_request(
            "role_name: token roles are not supported; set policies, ttl and the other fields directly",
        ));
    }
    if f.non_empty_string("entity_alias")?.is_some() {
        return Err(ApiError::bad_request("entity_alias is not supported"));
    }
    match f.non_empty_string("type")?.as_deref().map(str::trim) {
        None | Some("service" | "default") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "type {other:?} is not supported; iamlease issues service tokens"
            )));
        }
    }
    let no_parent = f.bool("no_parent")?.unwrap_or(false);
    let period = f.ttl("period")?.filter(|t| !t.is_zero());
    let path = if orphan_path {
        "auth/token/create-orphan"
    } else {
        "auth/token/create"
    };
    // A 400, as Vault answers these ("root or sudo privileges required").
    if no_parent && !orphan_path && !has_sudo(caller, path) {
        return Err(ApiError::bad_request(
            "root or sudo privileges required to create an orphan token with no_parent; or use auth/token/create-orphan",
        ));
    }
    if period.is_some() && !has_sudo(caller, path) {
        return Err(ApiError::bad_request(format!(
            "root or sudo privileges required to create a periodic token (sudo on {path})"
        )));
    }
    Ok(TokenRequest {
        policies: f.list("policies")?.unwrap_or_default(),
        ttl: f.ttl("ttl")?,
        display_name: f.string("display_name")?,
        no_default_policy: f.bool("no_default_policy")?.unwrap_or(false),
        orphan: orphan_path || no_parent,
        num_uses: f.int("num_uses")?.unwrap_or(0),
        period,
        explicit_max_ttl: f.ttl("explicit_max_ttl")?,
        meta: f.tags("meta")?.unwrap_or_default(),
        renewable: f.bool("renewable")?.unwrap_or(true),
        path,
        any_policies: has_sudo(caller, path),
    })
}

async fn create_with(s: AppState, caller: Caller, mut input: Input, orphan: bool) -> ApiResult {
    let request = token_request(&caller, &mut input, orphan)?;
    let warnings = input.fields.unknown_field_warnings();
    let (token, record) = auth::create_child(s.engine.store(), &caller, request, now()).await?;
    Ok(vault::auth_response_with(
        auth_data(&token, &record),
        warnings,
    ))
}

pub async fn create(State(s): State<AppState>, caller: Caller, input: Input) -> ApiResult {
    create_with(s, caller, input, false).await
}

/// `auth/token/create-orphan`: a token without a parent (its path's ACL decides, as in Vault).
pub async fn create_orphan(State(s): State<AppState>, caller: Caller, input: Input) -> ApiResult {
    create_with(s, caller, input, true).await
}

/// The token named in the body (`token`), as `lookup`, `renew`, `revoke` and `revoke-orphan`
/// take it. An unknown or expired token is a 400 (Vault's "bad token").
pub(super) async fn named_token(
    s: &AppState,
    input: &mut Input,
) -> Result<(String, Caller), ApiError> {
    let token = input
        .fields
        .non_empty_string("token")?
        .ok_or_else(|| ApiError::bad_request("token is required"))?;
    let other = auth::authenticate(s.engine.store(), token.trim(), now())
        .await?
        .ok_or_else(|| ApiError::bad_request("bad token: unknown or expired"))?;
    Ok((token, other))
}

pub(super) fn accessor_field(input: &mut Input) -> Result<String, ApiError> {
    input
        .fields
        .non_empty_string("accessor")?
        .map(|a| a.trim().to_owned())
        .ok_or_else(|| ApiError::bad_request("accessor is required"))
}

pub async fn lookup_self(caller: Caller, headers: HeaderMap) -> ApiResult {
    // The token is the one the request carries; it is shown back only to its holder.
    let token = vault::token_header(&headers).unwrap_or_default();
    Ok(vault::read(token_data(&caller.token, token)))
}

/// `auth/token/lookup` with a token in the body (Vault's form for looking up another token).
pub async fn lookup(State(s): State<AppState>, _caller: Caller, mut input: Input) -> ApiResult {
    let (token, other) = named_token(&s, &mut input).await?;
    Ok(vault::read(token_data(&other.token, &token)))
}

pub async fn lookup_accessor(
    State(s): State<AppState>,
    _caller: Caller,
    mut input: Input,
) -> ApiResult {
    let accessor = accessor_field(&mut input)?;
    let other = auth::lookup_accessor(s.engine.store(), &accessor).await?;
    Ok(vault::read(token_data(&other.token, "")))
}

async fn renew_answer(
    s: &AppState,
    token: &TokenRecord,
    client_token: &str,
    input: &mut Input,
) -> ApiResult {
    let increment = input.fields.ttl("increment")?;
    let expire_at = auth::renew(s.engine.store(), token, increment, now()).await?;
    let mut renewed = token.clone();
    if expire_at.is_some() {
        renewed.expire_at = expire_at;
    }
    Ok(vault::auth_response(auth_data(client_token, &renewed)))
}

pub async fn renew_self(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    mut input: Input,
) -> ApiResult {
    let token = vault::token_header(&headers).unwrap_or_default().to_owned();
    renew_answer(&s, &caller.token, &token, &mut input).await
}

pub async fn renew(State(s): State<AppState>, _caller: Caller, mut input: Input) -> ApiResult {
    let (token, other) = named_token(&s, &mut input).await?;
    renew_answer(&s, &other.token, &token, &mut input).await
}

pub async fn renew_accessor(
    State(s): State<AppState>,
    _caller: Caller,
    mut input: Input,
) -> ApiResult {
    let accessor = accessor_field(&mut input)?;
    let other = auth::lookup_accessor(s.engine.store(), &accessor).await?;
    renew_answer(&s, &other.token, "", &mut input).await
}

/// Revokes the token (and, unless `orphan_children`, its descendants), then wakes the reaper
/// to revoke their leases in AWS at once.
async fn revoke_and_answer(s: &AppState, accessor: &str, orphan_children: bool) -> ApiResult {
    let done = auth::revoke(s.engine.store(), accessor, now(), orphan_children).await?;
    if done.leases > 0 {
        s.engine.wake_reaper();
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn revoke_self(State(s): State<AppState>, caller: Caller) -> ApiResult {
    revoke_and_answer(&s, &caller.accessor, false).await
}

/// An unknown or expired token is already revoked, as in Vault (204).
pub async fn revoke(State(s): State<AppState>, _caller: Caller, mut input: Input) -> ApiResult {
    let token = input
        .fields
        .non_empty_string("token")?
        .ok_or_else(|| ApiError::bad_request("token is required"))?;
    match auth::authenticate(s.engine.store(), token.trim(), now()).await? {
        Some(other) => revoke_and_answer(&s, &other.accessor, false).await,
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `auth/token/revoke-orphan` (sudo): the token goes, its children stay, as orphans.
pub async fn revoke_orphan(
    State(s): State<AppState>,
    _caller: Caller,
    mut input: Input,
) -> ApiResult {
    let (_, other) = named_token(&s, &mut input).await?;
    revoke_and_answer(&s, &other.accessor, true).await
}

pub async fn revoke_accessor(
    State(s): State<AppState>,
    _caller: Caller,
    mut input: Input,
) -> ApiResult {
    let accessor = accessor_field(&mut input)?;
    revoke_and_answer(&s, &accessor, false).await
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
