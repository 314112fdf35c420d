//! Routes of a mount's static roles: `static-roles/` (write, read, list, delete, and
//! iamlease's `rotate`) and `static-creds/`. Fields in, records out, in Vault's shapes
//! (`rotation_period` and `overlap` read back in seconds, times in RFC 3339).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::fields::Fields;
use super::vault::{self, Input};
use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::engine::StaticRoleWrite;
use crate::model::{MountPath, StaticRoleRecord};

type ApiResult = Result<Response, ApiError>;

fn mount(raw: &str) -> Result<MountPath, ApiError> {
    MountPath::parse(raw)
        .map_err(|_| ApiError::not_found(format!("no secrets engine is mounted at {raw}/")))
}

/// `username`, `rotation_period`, `overlap`, `assume_role_arn`, `assume_role_session_name`,
/// `external_id`; anything else becomes a warning.
fn form(mut input: Fields) -> Result<(StaticRoleWrite, Vec<String>), ApiError> {
    let write = StaticRoleWrite {
        username: input.string("username")?,
        rotation_period: input.ttl("rotation_period")?,
        overlap: input.ttl("overlap")?,
        assume_role_arn: input.string("assume_role_arn")?,
        assume_role_session_name: input.string("assume_role_session_name")?,
        external_id: input.string("external_id")?,
    };
    Ok((write, input.unknown_field_warnings()))
}

/// A static role as it reads back: Vault's fields, then iamlease's (the overlap and where the
/// rotation stands). Never a secret.
pub fn view(r: &StaticRoleRecord) -> Value {
    let c = &r.config;
    let time = |t: Option<i64>| t.map(rfc3339).unwrap_or_default();
    json!({
        "name": r.name.as_str(),
        "username": c.username.as_str(),
        "rotation_period": c.rotation_period,
        "assume_role_arn": c.assume_role_arn.clone().unwrap_or_default(),
        "assume_role_session_name": c.assume_role_session_name.clone().unwrap_or_default(),
        "external_id": c.external_id.clone().unwrap_or_default(),
        "overlap": c.overlap,
        "access_key_id": r.access_key_id.clone().unwrap_or_default(),
        "previous_access_key_id": r.previous_key_id.clone().unwrap_or_default(),
        "previous_key_expires": time(r.previous_until.filter(|_| r.previous_key_id.is_some())),
        "last_rotation": time(r.last_rotation),
        "next_rotation": rfc3339(r.next_rotation),
        "rotating": r.claim.is_some(),
        "failed_attempts": r.attempts,
        "last_error": r.last_error.clone().unwrap_or_default(),
        "last_error_time": time(r.last_error_time),
    })
}

fn role_answer(role: &StaticRoleRecord, warnings: Vec<String>) -> Response {
    vault::json_response(StatusCode::OK, &vault::envelope(view(role), warnings))
}

pub async fn list(State(s): State<AppState>, _c: Caller, Path(m): Path<String>) -> ApiResult {
    let roles = s.engine.list_static_roles(&mount(&m)?).await?;
    vault::list(roles.into_iter().map(|r| r.name.to_string()).collect())
}

pub async fn read(
    State(s): State<AppState>,
    _c: Caller,
    Path((m, name)): Path<(String, String)>,
) -> ApiResult {
    let role = s.engine.read_static_role(&mount(&m)?, &name).await?;
    Ok(role_answer(&role, Vec::new()))
}

/// Answers the role as stored (Vault does), with a warning when its first rotation failed.
pub async fn write(
    State(s): State<AppState>,
    _c: Caller,
    Path((m, name)): Path<(String, String)>,
    input: Input,
) -> ApiResult {
    let (write, mut warnings) = form(input.fields)?;
    let (role, more) = s
        .engine
        .write_static_role(&mount(&m)?, &name, write)
        .await?;
    warnings.extend(more);
    Ok(role_answer(&role, warnings))
}

pub async fn delete(
    State(s): State<AppState>,
    _c: Caller,
    Path((m, name)): Path<(String, String)>,
) -> ApiResult {
    s.engine.delete_static_role(&mount(&m)?, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// iamlease's manual rotation (Vault has none for AWS static roles).
pub async fn rotate(
    State(s): State<AppState>,
    _c: Caller,
    Path((m, name)): Path<(String, String)>,
) -> ApiResult {
    let role = s.engine.rotate_static_role(&mount(&m)?, &name).await?;
    Ok(role_answer(&role, Vec::new()))
}

/// `access_key`, `secret_key`, `expiration` (the next rotation), as Vault answers; not leased.
pub async fn creds(
    State(s): State<AppState>,
    _c: Caller,
    Path((m, name)): Path<(String, String)>,
) -> ApiResult {
    let creds = s.engine.static_creds(&mount(&m)?, &name).await?;
    Ok(vault::read(json!({
        "access_key": creds.access_key,
        "secret_key": creds.secret_key.expose(),
        "expiration": rfc3339(creds.expiration),
    })))
}
