//! Routes of an `aws` mount: `config/root`, `config/rotate-root`, `config/lease`, `roles/`,
//! `creds/`, `sts/`, `access-keys/`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::vault::{self, Input};
use super::{forms, views};
use crate::auth::Caller;
use crate::auth::policy::Capability;
use crate::engine::IssuePath;
use crate::model::{AccessKeyId, MountPath};

type ApiResult = Result<Response, ApiError>;

/// A mount path that cannot exist is an unknown path, not bad input.
fn mount(raw: &str) -> Result<MountPath, ApiError> {
    MountPath::parse(raw)
        .map_err(|_| ApiError::not_found(format!("no secrets engine is mounted at {raw}/")))
}

pub async fn read_root_config(
    State(s): State<AppState>,
    _c: Caller,
    Path(m): Path<String>,
) -> ApiResult {
    let config = s.engine.read_root_config(&mount(&m)?).await?;
    Ok(vault::read(views::root_config(&config)))
}

/// Root-config fields that send the mount's signed AWS calls elsewhere.
const ENDPOINT_FIELDS: &[&str] = &["iam_endpoint", "sts_endpoint"];

pub async fn write_root_config(
    State(s): State<AppState>,
    caller: Caller,
    Path(m): Path<String>,
    input: Input,
) -> ApiResult {
    // An endpoint override decides where the root key signs requests to (and whose answers the
    // mount trusts), so it needs sudo; clearing one (back to AWS) does not.
    let overrides: Vec<&str> = ENDPOINT_FIELDS
        .iter()
        .copied()
        .filter(|f| {
            input
                .fields
                .peek(f)
                .is_some_and(|v| v.as_str().is_none_or(|s| !s.trim().is_empty()))
        })
        .collect();
    let path = format!("{m}/config/root");
    if !overrides.is_empty()
        && !caller.is_root()
        && !caller
            .acl
            .allows(&path, &[Capability::Create, Capability::Update], true)
    {
        return Err(ApiError::forbidden(format!(
            "permission denied: setting {} needs sudo on {path}: an endpoint override decides \
             where the mount's signed AWS calls go",
            overrides.join(" and ")
        )));
    }
    let (update, warnings) = forms::root_config(input.fields)?;
    s.engine.write_root_config(&mount(&m)?, update).await?;
    Ok(vault::written(warnings))
}

/// Answers with the new access key id (the secret stays sealed in the store).
pub async fn rotate_root(
    State(s): State<AppState>,
    _c: Caller,
    Path(m): Path<String>,
) -> ApiResult {
    let access_key = s.engine.rotate_root(&mount(&m)?).await?;
    Ok(vault::read(json!({ "access_key": access_key })))
}

/// Finds (and unless `dry_run`, deletes) IAM users with our tags but no live lease. Needs sudo.
pub async fn sweep(
    State(s): State<AppState>,
    _c: Caller,
    Path(m): Path<String>,
    input: Input,
) -> ApiResult {
    let mut fields = input.fields;
    let dry_run = fields.bool("dry_run")?.unwrap_or(false);
    let report = s.engine.sweep(&m, dry_run).await?;
    Ok(vault::read(json!(report)))
}

pub async fn read_lease_config(
    State(s): State<AppState>,
    _c: Caller,
    Path(m): Path<String>,
) -> ApiResult {
    let config = s.engine.read_lease_config(&mount(&m)?).await?;
    Ok(vault::read(views::lease_config(&config)))
}

pub async fn write_lease_config(
    State(s): State<AppState>,
    _c: Caller,
    Path(m): Path<String>,
    input: Input,
) -> ApiResult {
    let (update, warnings) = forms::lease_config(input.fields)?;
    s.engine.write_lease_config(&mount(&m)?, update).await?;
    Ok(vault::written(warnings))
}

pub async fn list_roles(State(s): State<AppState>, _c: Caller, Path(m): Path<String>) -> ApiResult {
    vault::list(s.engine.list_roles(&mount(&m)?).await?)
}

pub async fn read_role(
    State(s): State<AppState>,
    _c: Caller,
    Path((m, name)): Path<(String, String)>,
) -> ApiResult {
    let mount = mount(&m)?;
    let (name, role) = s.engine.read_role(&mount, &name).await?;
    Ok(vault::read(views::role(&role, &mount, &name)))
}

pub async fn write_role(
    State(s): State<AppState>,
    _c: Caller,
    Path((m, name)): Path<(String, String)>,
    input: Input,
) -> ApiResult {
    let mount = mount(&m)?;
    let (name, existing) = s.engine.find_role(&mount, &name).await?;
    let (role, warnings) = forms::role(existing.as_ref(), input.fields)?;
    s.engine.write_role(&mount, &name, &role).await?;
    Ok(vault::written(warnings))
}

pub async fn delete_role(
    State(s): State<AppState>,
    _c: Caller,
    Path((m, name)): Path<(String, String)>,
) -> ApiResult {
    s.engine.delete_role(&mount(&m)?, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn issue(
    state: State<AppState>,
    caller: Caller,
    path: Path<(String, String)>,
    input: Input,
) -> ApiResult {
    issue_via(IssuePath::Creds, state, caller, path, input).await
}

/// `sts/` is for STS credential types; the engine refuses an `iam_user` role there.
pub async fn issue_sts(
    state: State<AppState>,
    caller: Caller,
    path: Path<(String, String)>,
    input: Input,
) -> ApiResult {
    issue_via(IssuePath::Sts, state, caller, path, input).await
}

async fn issue_via(
    via: IssuePath,
    State(s): State<AppState>,
    caller: Caller,
    Path((m, name)): Path<(String, String)>,
    input: Input,
) -> ApiResult {
    let (request, warnings) = forms::issue(via, input.fields)?;
    let started = std::time::Instant::now();
    let cred = s.engine.issue(&mount(&m)?, &name, request, &caller).await;
    metrics::histogram!("iamlease_issue_duration_seconds", "outcome" => if cred.is_ok() { "ok" } else { "error" })
        .record(started.elapsed().as_secs_f64());
    let cred = cred?;
    let mut data = json!({
        "access_key": cred.access_key,
        "secret_key": cred.secret_key.expose(),
        "security_token": cred.security_token.as_ref().map(|t| t.expose()),
        "arn": cred.arn,
        "username": cred.username,
        "region": cred.region,
    });
    // STS credentials carry their remaining lifetime in `data.ttl`, as Vault's engine sends.
    if cred.security_token.is_some() {
        data["ttl"] = json!(cred.lease_duration);
    }
    // Only roles that rename fields add key_map, so other answers keep Vault's shape.
    if !cred.key_map.is_empty() {
        data["key_map"] = json!(cred.key_map);
    }
    Ok(vault::leased(
        &cred.lease_id,
        cred.renewable,
        cred.lease_duration,
        data,
        warnings,
    ))
}

/// `GET {mount}/access-keys/{access_key_id}`: who held the key, during its lease and for
/// `key_history_retention` after.
/// `GET {mount}/iam-quota`: the account's IAM users against their quota, as the mount issues by.
pub async fn iam_quota(State(s): State<AppState>, _c: Caller, Path(m): Path<String>) -> ApiResult {
    let q = s.engine.iam_quota(&mount(&m)?).await?;
    let pct = (q.reserve * 10_000.0).round() / 100.0;
    Ok(vault::read(serde_json::json!({
        "users": q.reading.map(|r| r.users),
        "users_quota": q.reading.map(|r| r.quota),
        "reserve_percent": pct,
        "available": q.available,
        "checked_at": q.checked_at.map(crate::clock::rfc3339),
        "error": q.error,
    })))
}

pub async fn whois(
    State(s): State<AppState>,
    _c: Caller,
    Path((m, key)): Path<(String, String)>,
) -> ApiResult {
    let mount = mount(&m)?;
    let key = AccessKeyId::parse(key.trim()).map_err(ApiError::bad_request)?;
    let history = s.engine.whois(&mount, &key).await?;
    Ok(vault::read(views::key_history(&history)))
}
