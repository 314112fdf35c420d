//! iamlease extensions for guided AWS setup: `GET {mount}/setup` (the policy, trust policy and
//! commands) and `POST {mount}/config/check` (who the mount acts as in AWS).

use axum::extract::{Path, State};
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use super::vault::{self, Input};
use super::{forms, views};
use crate::auth::Caller;
use crate::model::MountPath;

fn mount(raw: &str) -> Result<MountPath, ApiError> {
    MountPath::parse(raw)
        .map_err(|_| ApiError::not_found(format!("no secrets engine is mounted at {raw}/")))
}

pub async fn plan(
    State(s): State<AppState>,
    _c: Caller,
    Path(m): Path<String>,
    input: Input,
) -> Result<Response, ApiError> {
    let plan = s
        .engine
        .setup_plan(&mount(&m)?, forms::setup(input.fields)?)
        .await?;
    Ok(vault::read(views::setup_plan(&plan)))
}

pub async fn check(
    State(s): State<AppState>,
    _c: Caller,
    Path(m): Path<String>,
) -> Result<Response, ApiError> {
    let identity = s.engine.check_connection(&mount(&m)?).await?;
    Ok(vault::read(views::caller_identity(&identity)))
}
