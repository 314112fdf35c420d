//! The HTTP side of the audit log and of request ids: the gate (`gate.rs`) writes every `/v1/`
//! request's line (except health and metrics probes) *before* its handler runs and a response
//! line after; a request whose line cannot be written is refused with 503 and never reaches a
//! handler.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::canonical::{CanonicalPath, RequestQuery};
use super::error::ApiError;
use super::routes::Route;
use super::vault;
use crate::audit::AuditLog;
use crate::auth::Caller;
use crate::clock::{now, rfc3339};

tokio::task_local! {
    /// The current request's id, so the response envelope's `request_id` matches the logs.
    pub(super) static REQUEST_ID: String;
}

/// The id of the request being handled, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// What the gate decided for a request.
#[derive(Debug, Clone)]
pub enum Decision {
    Allowed,
    Denied(String),
    /// No route matched: the fallback answers 404; the audit log says not allowed.
    NoRoute,
}

/// A request as the gate saw it, for its audit line.
pub struct AuditedRequest<'a> {
    pub request_id: &'a str,
    pub parts: &'a Parts,
    pub route: Option<&'a Route>,
    pub body: &'a [u8],
    pub caller: Option<&'a Caller>,
    pub decision: &'a Decision,
}

/// Writes the request line (before the handler runs) and returns it, to be completed by the
/// response line; a line that cannot be written refuses the request (503).
pub fn write_request(audit: &AuditLog, r: &AuditedRequest<'_>) -> Result<Value, ApiError> {
    let parts = r.parts;
    let remote = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let path = parts
        .extensions
        .get::<CanonicalPath>()
        .map_or_else(|| parts.uri.path().to_owned(), |c| c.decoded.clone());
    let params = named_params(r.route, parts);
    let mut data = match serde_json::from_slice::<Value>(r.body) {
        Ok(Value::Object(m)) => m,
        // Unparseable bodies are not logged at all: they might hold a secret we cannot find.
        _ => Map::new(),
    };
    if let Some(q) = parts.extensions.get::<RequestQuery>() {
        for (k, v) in &q.params {
            data.entry(k.clone()).or_insert(Value::String(v.clone()));
        }
    }
    let lease_id = data
        .get("lease_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or(params.lease);
    let allowed = matches!(r.decision, Decision::Allowed);
    let auth = match (r.caller, vault::token_header(&parts.headers)) {
        (Some(caller), _) => json!({
            "accessor": caller.accessor,
            "display_name": caller.display_name,
            "policies": caller.policies,
            "policy_results": {"allowed": allowed},
        }),
        (None, Some(t)) if !t.is_empty() => {
            json!({"policy_results": {"allowed": false}, "error": "unknown or expired token"})
        }
        _ => Value::Null,
    };
    let mut line = json!({
        "time": rfc3339(now()),
        "type": "request",
        "request_id": r.request_id,
        "remote_address": remote,
        "auth": auth,
        "request": {
            "method": parts.method.as_str(),
            "path": path,
            "mount": params.mount,
            "role": params.role,
            "lease_id": lease_id,
            "data": data,
        },
    });
    audit.hasher().redact(&mut line);
    match audit.write(&line) {
        Ok(()) => Ok(line),
        Err(e) => {
            tracing::error!(error = %e, "audit log write failed; refusing the request");
            Err(refusal(&e))
        }
    }
}

/// Writes the response line; an answer whose line cannot be written is withheld (503).
pub async fn write_response(audit: &AuditLog, request_line: Value, response: Response) -> Response {
    let (rparts, rbody) = response.into_parts();
    let rbytes = axum::body::to_bytes(rbody, usize::MAX)
        .await
        .unwrap_or_default();
    let mut body = serde_json::from_slice::<Value>(&rbytes).unwrap_or(Value::Null);
    let errors = body.get("errors").cloned();
    let response_lease_id = body
        .get("lease_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    audit.hasher().redact(&mut body);
    // A token lookup answers the token itself as `data.id` (Vault's shape); elsewhere `id` is a
    // lease id, which the log must keep readable.
    let token_path = request_line["request"]["path"].as_str().is_some_and(|p| {
        p.trim_start_matches('/')
            .trim_start_matches("v1/")
            .starts_with("auth/token/")
    });
    if token_path
        && let Some(id) = body.pointer_mut("/data/id")
        && let Some(text) = id.as_str().filter(|t| !t.is_empty())
    {
        *id = json!(audit.hasher().hash(text));
    }
    let mut response_line = request_line;
    response_line["type"] = json!("response");
    response_line["time"] = json!(rfc3339(now()));
    if let Some(id) = response_lease_id {
        response_line["request"]["lease_id"] = json!(id);
    }
    response_line["response"] = json!({
        "status": rparts.status.as_u16(),
        "error": errors,
        "data": if errors.is_some() { Value::Null } else { body },
    });
    if let Err(e) = audit.write(&response_line) {
        // The action is done (a lease, if any, is recorded and will expire), but an unaudited
        // secret must not leave the server.
        tracing::error!(error = %e, "audit log write failed after the request ran; withholding the response");
        return refusal(&e).into_response();
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

fn refusal(e: &crate::audit::AuditError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the audit log cannot be written ({e}); requests are refused until it can"),
    )
}

/// How the audit log names a request: the route table says which path parameters are its
/// mount, role and lease.
#[derive(Debug, Default, PartialEq, Eq)]
struct Named {
    mount: Option<String>,
    role: Option<String>,
    lease: Option<String>,
}

fn named_params(route: Option<&Route>, parts: &Parts) -> Named {
    let (Some(route), Some(params)) = (route, parts.extensions.get::<PathParams>()) else {
        return Named::default();
    };
    let get = |name: Option<&str>| {
        name.and_then(|n| {
            params
                .0
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        })
    };
    Named {
        mount: get(route.audit_mount),
        role: get(route.audit_role),
        lease: get(route.audit_lease),
    }
}

/// The router's decoded path parameters, kept by the gate for the audit line.
#[derive(Debug, Clone, Default)]
pub struct PathParams(pub Vec<(String, String)>);
