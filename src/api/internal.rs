//! In-process calls to the API, for the web console: a request goes through the very same
//! router, token check, ACL and handlers as one from hvac, so the console can do exactly what
//! its token may do, and its errors are the API's own messages. Also the console's sessions
//! (`auth::console_session`, kept in the store), which are not API routes.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use super::AppState;
use super::error::ApiError;
use super::vault::MAX_BODY_BYTES;
use crate::auth::console_session::{self, SessionError};
use crate::clock::now;

pub use crate::auth::console_session::{ConsoleSession, NewSession};
pub use crate::model::ConsoleFlash as Flash;

/// The API said no: its status and `{"errors": […]}` messages.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub errors: Vec<String>,
}

impl From<SessionError> for ApiFailure {
    fn from(e: SessionError) -> Self {
        let e = ApiError::from(e);
        ApiFailure {
            status: e.status,
            errors: e.errors,
        }
    }
}

impl ApiFailure {
    pub fn message(&self) -> String {
        if self.errors.is_empty() {
            format!("the server answered {}", self.status)
        } else {
            self.errors.join("; ")
        }
    }
}

/// Sends `method /v1/{path}` with `token`; returns the JSON body (`Null` for 204).
pub async fn call(
    state: &AppState,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, ApiFailure> {
    let request = Request::builder()
        .method(method)
        .uri(format!("/v1/{}", path.trim_start_matches('/')))
        .header("x-vault-token", token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(match body {
            Some(v) => Body::from(v.to_string()),
            None => Body::empty(),
        })
        .map_err(|e| ApiFailure {
            status: StatusCode::BAD_REQUEST,
            errors: vec![format!("cannot build the request for {path}: {e}")],
        })?;
    let response = super::router::api_routes(state.clone())
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_BODY_BYTES * 16)
        .await
        .unwrap_or_default();
    let json: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    if status.is_success() {
        return Ok(json);
    }
    let errors = json
        .get("errors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    e.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| e.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    Err(ApiFailure { status, errors })
}

/// Starts a console session for `token` (refused unless the token is live); the id is the
/// cookie's value.
pub async fn open_session(state: &AppState, token: &str) -> Result<NewSession, ApiFailure> {
    let engine = &state.engine;
    Ok(console_session::open(engine.store(), engine.sealer(), token, now()).await?)
}

/// The live session whose cookie holds `id`, on whichever replica it was made.
pub async fn find_session(
    state: &AppState,
    id: &str,
) -> Result<Option<ConsoleSession>, ApiFailure> {
    let engine = &state.engine;
    Ok(console_session::find(engine.store(), engine.sealer(), id, now()).await?)
}

/// Leaves a message for the session's next page.
pub async fn set_flash(state: &AppState, id: &str, flash: &Flash) -> Result<(), ApiFailure> {
    Ok(console_session::set_flash(state.engine.store(), id, flash, now()).await?)
}

/// Takes the message left for this page, if any.
pub async fn take_flash(state: &AppState, id: &str) -> Result<Option<Flash>, ApiFailure> {
    Ok(console_session::take_flash(state.engine.store(), id, now()).await?)
}

/// Signs the session out, on every replica.
pub async fn end_session(state: &AppState, id: &str) -> Result<(), ApiFailure> {
    Ok(console_session::end(state.engine.store(), id).await?)
}

/// Signs out every console session of this session's token; how many ended.
pub async fn end_sessions_of_token(state: &AppState, id: &str) -> Result<u64, ApiFailure> {
    Ok(console_session::end_everywhere(state.engine.store(), id).await?)
}
