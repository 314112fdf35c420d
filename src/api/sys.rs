//! `sys/` routes for mounts and leases (health and the other status routes are `status.rs`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::ApiError;
use super::vault::{self, Input};
use super::{forms, views};
use crate::auth::Caller;
use crate::auth::policy::Capability;
use crate::clock::{now, rfc3339};
use crate::engine::EngineError;
use crate::model::{Lease, LeaseState, MountPath};
use crate::store::MountRecord;

type ApiResult = Result<Response, ApiError>;

pub async fn list_mounts(State(state): State<AppState>, _caller: Caller) -> ApiResult {
    let mut mounts = Map::new();
    for m in state.engine.list_mounts().await? {
        mounts.insert(format!("{}/", m.path), views::mount(&m));
    }
    // Vault puts the mounts both at the top level (older clients) and under `data`.
    Ok(vault::read_flat(mounts))
}

async fn find_mount(state: &AppState, path: &str) -> Result<MountRecord, ApiError> {
    let mounts = state.engine.list_mounts().await?;
    mounts
        .into_iter()
        .find(|m| m.path.as_str() == path.trim_matches('/'))
        .ok_or_else(|| ApiError::not_found(format!("no secrets engine is mounted at {path}/")))
}

/// `GET sys/mounts/{path}`: the same entry the list shows.
pub async fn read_mount(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
) -> ApiResult {
    Ok(vault::read(views::mount(&find_mount(&state, &path).await?)))
}

/// `GET sys/mounts/{path}/tune`.
pub async fn read_tune(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
) -> ApiResult {
    Ok(vault::read(views::mount_tune(
        &find_mount(&state, &path).await?,
    )))
}

/// `POST sys/mounts/{path}/tune`: `default_lease_ttl`, `max_lease_ttl`, `description`.
pub async fn write_tune(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
    input: Input,
) -> ApiResult {
    let path = MountPath::parse(&path).map_err(ApiError::bad_request)?;
    let (tune, warnings) = forms::mount_tune(input.fields)?;
    state.engine.tune_mount(&path, tune).await?;
    Ok(vault::written(warnings))
}

pub async fn enable_mount(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
    input: Input,
) -> ApiResult {
    let path = MountPath::parse(&path).map_err(ApiError::bad_request)?;
    let (request, warnings) = forms::mount(path, input.fields)?;
    state.engine.enable_mount(request).await?;
    Ok(vault::written(warnings))
}

pub async fn disable_mount(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
) -> ApiResult {
    let path = MountPath::parse(&path).map_err(ApiError::bad_request)?;
    state.engine.disable_mount(&path).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Vault's lookup fields, then iamlease's: the lease's state, its last revocation error, and
/// the key it handed out with who asked for it (`null` before a key exists).
fn lease_data(lease: &Lease, requester: Option<&str>) -> Value {
    json!({
        "id": lease.id,
        "issue_time": rfc3339(lease.issue_time),
        "expire_time": rfc3339(lease.expire_time),
        "last_renewal": lease.last_renewal.map(rfc3339),
        "renewable": lease.renewable && lease.state == LeaseState::Active,
        "ttl": (lease.expire_time - now()).max(0),
        "state": lease.state.as_str(),
        "last_error": lease.last_error,
        "revoke_attempts": lease.attempts,
        "access_key_id": lease.access_key_id,
        "requester": requester,
    })
}

fn lease_id_field(input: &mut Input) -> Result<String, ApiError> {
    input
        .fields
        .non_empty_string("lease_id")?
        .ok_or_else(|| ApiError::bad_request("lease_id is required"))
}

/// A token may act on the leases it created; on others' only with a policy that grants
/// `sys/leases/{op}/{lease_id}` (e.g. `path "sys/leases/*"`). Root may do anything.
fn check_owner(caller: &Caller, lease: &Lease, op: &str) -> Result<(), ApiError> {
    let owner = lease.token_accessor.as_deref() == Some(caller.accessor.as_str());
    let granted = caller.acl.allows(
        &format!("sys/leases/{op}/{}", lease.id),
        &[Capability::Update],
        false,
    );
    if owner || granted {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "permission denied: lease {} was issued to another token",
            lease.id
        )))
    }
}

pub async fn lookup_lease(
    State(state): State<AppState>,
    caller: Caller,
    mut input: Input,
) -> ApiResult {
    let id = lease_id_field(&mut input)?;
    let (lease, requester) = state.engine.lookup_with_requester(&id).await?;
    check_owner(&caller, &lease, "lookup")?;
    Ok(vault::read(lease_data(&lease, requester.as_deref())))
}

pub async fn list_leases_root(
    State(state): State<AppState>,
    caller: Caller,
    input: Input,
) -> ApiResult {
    list_under(state, caller, String::new(), input).await
}

pub async fn list_leases(
    State(state): State<AppState>,
    caller: Caller,
    Path(prefix): Path<String>,
    input: Input,
) -> ApiResult {
    list_under(state, caller, prefix, input).await
}

async fn list_under(
    state: AppState,
    _caller: Caller,
    prefix: String,
    mut input: Input,
) -> ApiResult {
    let filter = match input.fields.non_empty_string("state")? {
        None => None,
        Some(s) => Some(LeaseState::parse(&s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state {s:?} is not one of pending, active, revoking, failed"
            ))
        })?),
    };
    vault::list(state.engine.list_lease_keys(&prefix, filter).await?)
}

async fn renew(state: &AppState, caller: &Caller, id: &str, mut input: Input) -> ApiResult {
    check_owner(caller, &state.engine.lookup(id).await?, "renew")?;
    let increment = input.fields.ttl("increment")?;
    let renewed = state.engine.renew(id, increment).await?;
    Ok(vault::leased(
        &renewed.lease.id,
        true,
        renewed.lease_duration,
        Value::Null,
        renewed.warnings,
    ))
}

pub async fn renew_lease(
    State(state): State<AppState>,
    caller: Caller,
    mut input: Input,
) -> ApiResult {
    let id = lease_id_field(&mut input)?;
    renew(&state, &caller, &id, input).await
}

pub async fn renew_lease_by_path(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    input: Input,
) -> ApiResult {
    renew(&state, &caller, &id, input).await
}

async fn revoke(state: &AppState, caller: &Caller, id: &str, mut input: Input) -> ApiResult {
    // An unknown lease is already revoked (204, as in Vault); a known one must be ours.
    match state.engine.lookup(id).await {
        Ok(lease) => check_owner(caller, &lease, "revoke")?,
        Err(EngineError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let sync = input.fields.bool("sync")?.unwrap_or(true);
    state.engine.revoke(id, sync).await?;
    Ok(if sync {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    }
    .into_response())
}

pub async fn revoke_lease(
    State(state): State<AppState>,
    caller: Caller,
    mut input: Input,
) -> ApiResult {
    let id = lease_id_field(&mut input)?;
    revoke(&state, &caller, &id, input).await
}

pub async fn revoke_lease_by_path(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    input: Input,
) -> ApiResult {
    revoke(&state, &caller, &id, input).await
}

/// Forgets every lease under the prefix after one best-effort AWS clean-up each (Vault's
/// revoke-force). Needs sudo; each forgotten lease is logged.
pub async fn revoke_force(
    State(state): State<AppState>,
    caller: Caller,
    Path(prefix): Path<String>,
) -> ApiResult {
    let forced = state.engine.revoke_force(&prefix).await?;
    tracing::warn!(
        prefix = %prefix,
        leases = forced.len(),
        by = %caller.accessor,
        "revoke-force"
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn revoke_prefix(
    State(state): State<AppState>,
    _caller: Caller,
    Path(prefix): Path<String>,
) -> ApiResult {
    state.engine.revoke_prefix(&prefix).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
