//! Vault's wire shapes: the response envelope, request bodies (JSON with Vault's leniency,
//! merged with the query parameters), and the token header.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::canonical::{self, RequestQuery};
use super::error::ApiError;
use super::fields::Fields;

/// Bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON response with `Content-Type: application/json` exactly, as hvac checks.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("response serialises");
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub fn envelope(data: Value, warnings: Vec<String>) -> Map<String, Value> {
    let warnings = if warnings.is_empty() {
        Value::Null
    } else {
        json!(warnings)
    };
    match json!({
        "request_id": super::audit::current_request_id()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": warnings,
        "auth": null,
        "mount_type": "",
    }) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// 200 with `data` in Vault's envelope.
pub fn read(data: Value) -> Response {
    json_response(StatusCode::OK, &envelope(data, Vec::new()))
}

/// 200 with `data` in the envelope and its keys copied to the top level, as Vault's older
/// `sys/mounts` and `sys/policy` answers are shaped (clients read either place).
pub fn read_flat(data: Map<String, Value>) -> Response {
    let mut body = envelope(Value::Object(data.clone()), Vec::new());
    body.extend(data);
    json_response(StatusCode::OK, &body)
}

/// A lease-bearing response (credentials, renewals).
pub fn leased(
    lease_id: &str,
    renewable: bool,
    lease_duration: i64,
    data: Value,
    warnings: Vec<String>,
) -> Response {
    let mut body = envelope(data, warnings);
    body.insert("lease_id".into(), json!(lease_id));
    body.insert("renewable".into(), json!(renewable));
    body.insert("lease_duration".into(), json!(lease_duration));
    json_response(StatusCode::OK, &body)
}

/// An `auth` response (token create and renew), as Vault shapes it.
pub fn auth_response(auth: Value) -> Response {
    auth_response_with(auth, Vec::new())
}

/// An `auth` answer with warnings (unknown request fields).
pub fn auth_response_with(auth: Value, warnings: Vec<String>) -> Response {
    let mut body = envelope(Value::Null, warnings);
    body.insert("auth".into(), auth);
    json_response(StatusCode::OK, &body)
}

/// A write: 204, or 200 with the warnings when there are some (as Vault does).
pub fn written(warnings: Vec<String>) -> Response {
    if warnings.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        json_response(StatusCode::OK, &envelope(Value::Null, warnings))
    }
}

/// A LIST: `{keys: [...]}`, or Vault's empty 404.
pub fn list(keys: Vec<String>) -> Result<Response, ApiError> {
    if keys.is_empty() {
        Err(ApiError::empty_list())
    } else {
        Ok(read(json!({ "keys": keys })))
    }
}

/// Request fields: the JSON body (an object, or empty) with the query parameters under it (as
/// the gate parsed them, once). Content-Type is not required, as in Vault. Whether a request is
/// a LIST is the route's business (`routes.rs`), not a field.
pub struct Input {
    pub fields: Fields,
}

impl<S: Send + Sync> FromRequest<S> for Input {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let query = match parts.extensions.get::<RequestQuery>() {
            Some(q) => q.clone(),
            None => canonical::query(parts.uri.query()).map_err(|e| ApiError::bad_request(e.0))?,
        };
        let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                )
            })?;
        let mut map = if bytes.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => m,
                Ok(Value::Null) => Map::new(),
                Ok(_) => return Err(ApiError::bad_request("request body must be a JSON object")),
                Err(e) => {
                    return Err(ApiError::bad_request(format!(
                        "request body is not valid JSON: {e}"
                    )));
                }
            }
        };
        for (k, v) in query.params {
            map.entry(k).or_insert(Value::String(v));
        }
        Ok(Input {
            fields: Fields::new(map),
        })
    }
}

/// The token from `X-Vault-Token` or `Authorization: Bearer`.
pub(super) fn token_header(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-vault-token") {
        return v.to_str().ok().map(str::trim);
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
