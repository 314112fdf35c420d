//! The API's error policy, in one place:
//! - bad input → 400, with a message that says what was wrong and what would be right;
//! - a missing, unknown or expired token → 403 (never 401: Vault clients expect 403);
//! - an unknown path, mount, role or lease → 404; a wrong method → 405; a body over 1 MiB → 413;
//! - a rate limit (with `Retry-After`) or a role's `max_leases` reached → 429;
//! - AWS refusing or failing after the SDK's retries → 502, with AWS's own reason;
//! - storage that cannot take writes (disk full, read-only, locked) → 503;
//! - anything else → 500, logged; bad input must never end up here.
//!
//! Every error body is `{"errors": ["…"]}` with `Content-Type: application/json`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::vault::json_response;
use crate::engine::EngineError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            errors: vec![message.into()],
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// The empty 404 Vault answers for a LIST with nothing in it.
    pub fn empty_list() -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            errors: Vec::new(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match &e {
            EngineError::Invalid(_) => StatusCode::BAD_REQUEST,
            EngineError::NotFound(_) => StatusCode::NOT_FOUND,
            EngineError::Aws(_) => StatusCode::BAD_GATEWAY,
            EngineError::LimitReached(_) => StatusCode::TOO_MANY_REQUESTS,
            EngineError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Store(_) | EngineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %e, "request failed");
        }
        ApiError::new(status, e.to_string())
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match e {
            AuthError::Invalid(m) => ApiError::bad_request(m),
            AuthError::NotFound(m) => ApiError::not_found(m),
            AuthError::Forbidden(m) => ApiError::forbidden(m),
            AuthError::Unavailable(m) => ApiError::new(StatusCode::BAD_GATEWAY, m),
            AuthError::Store(s) => s.into(),
        }
    }
}

impl From<crate::auth::console_session::SessionError> for ApiError {
    fn from(e: crate::auth::console_session::SessionError) -> Self {
        use crate::auth::console_session::SessionError;
        match e {
            SessionError::UnknownToken => ApiError::forbidden(e.to_string()),
            SessionError::Store(s) => s.into(),
            SessionError::Seal(_) => {
                EngineError::Internal(format!("a console session: {e}")).into()
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        EngineError::Store(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &json!({ "errors": self.errors }))
    }
}

impl From<super::fields::FieldError> for ApiError {
    fn from(e: super::fields::FieldError) -> Self {
        ApiError::bad_request(e.0)
    }
}
