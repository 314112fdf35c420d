//! `GET /v1/sys/metrics` and the per-request HTTP metrics (by route template and status).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::vault::{self, Input};
use crate::auth::Caller;
use crate::clock::now;

/// Prometheus text (`?format=prometheus`, the only format). Needs a token with `read` on
/// `sys/metrics` unless `metrics_unauthenticated` is set.
/// The gate has already asked for a token unless `metrics_unauthenticated` is set.
pub async fn metrics(
    State(state): State<AppState>,
    mut input: Input,
) -> Result<Response, ApiError> {
    match input.fields.string("format")?.as_deref() {
        None | Some("prometheus") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format {other:?} is not supported; use format=prometheus"
            )));
        }
    }
    let text = crate::telemetry::render(state.engine.store().as_ref(), now()).await?;
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(response)
}

/// Counts each routed request by its route template (`/v1/{mount}/creds/{name}`, so label
/// values stay few) and status, and times it.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("iamlease_http_request_duration_seconds", "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("iamlease_http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

/// Vault's `sys/audit-hash`: the audit log's hash of `input`, so an operator can find a
/// credential or token in the log without the log holding it.
pub async fn audit_hash(
    State(state): State<AppState>,
    _caller: Caller,
    mut input: Input,
) -> Result<Response, ApiError> {
    let value = input
        .fields
        .string("input")?
        .ok_or_else(|| ApiError::bad_request("input is required: the value to hash"))?;
    Ok(vault::read(
        serde_json::json!({ "hash": state.audit_hasher.hash(&value) }),
    ))
}
