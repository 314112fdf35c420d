//! The HTTP side of the audit log and of request ids: every `/v1/` request (except health and
//! metrics probes) gets a request line written *before* its handler runs and a response line
//! after; a request whose line cannot be written is refused with 503 and never reaches a handler.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::ApiError;
use super::vault::{self, MAX_BODY_BYTES};
use crate::audit::AuditLog;
use crate::engine::{now, rfc3339};

tokio::task_local! {
    /// The current request's id, so the response envelope's `request_id` matches the logs.
    static REQUEST_ID: String;
}

/// The id of the request being handled, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Paths probed often and carrying nothing worth auditing.
fn is_unaudited(path: &str) -> bool {
    matches!(path, "/v1/sys/health" | "/v1/sys/metrics")
}

pub async fn audit_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let audit = match &state.audit {
        Some(a) if !is_unaudited(req.uri().path()) => a.clone(),
        _ => return REQUEST_ID.scope(request_id, next.run(req)).await,
    };
    REQUEST_ID
        .scope(
            request_id.clone(),
            audited(state, audit, request_id, req, next),
        )
        .await
}

async fn audited(
    state: AppState,
    audit: std::sync::Arc<AuditLog>,
    request_id: String,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let remote = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let path = parts.uri.path().to_owned();
    let (mount, role) = mount_and_role(&path);

    // The body is read here, once, so it can be audited; the handler gets the same bytes.
    let (bytes, too_large) = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => (b, false),
        Err(_) => (Default::default(), true),
    };
    let mut data = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => m,
        // Unparseable bodies are not logged at all: they might hold a secret we cannot find.
        _ => Map::new(),
    };
    if let Some(q) = parts.uri.query() {
        for (k, v) in form_urlencoded(q) {
            data.entry(k).or_insert(Value::String(v));
        }
    }
    let lease_id = data
        .get("lease_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| lease_id_in_path(&path));

    let mut auth = Value::Null;
    if let Some(token) = vault::token_from(&parts).filter(|t| !t.is_empty()) {
        auth = match crate::auth::authenticate(state.engine.store(), token, now()).await {
            Ok(Some(caller)) => json!({
                "accessor": caller.accessor,
                "display_name": caller.display_name,
                "policies": caller.policies,
                "policy_results": {"allowed": vault::authorize(&caller, &parts).is_ok()},
            }),
            Ok(None) => {
                json!({"policy_results": {"allowed": false}, "error": "unknown or expired token"})
            }
            Err(e) => json!({"policy_results": {"allowed": false}, "error": e.to_string()}),
        };
    }
    let mut request_line = json!({
        "time": rfc3339(now()),
        "type": "request",
        "request_id": request_id,
        "remote_address": remote,
        "auth": auth,
        "request": {
            "method": parts.method.as_str(),
            "path": path,
            "mount": mount,
            "role": role,
            "lease_id": lease_id,
            "data": data,
        },
    });
    audit.hasher().redact(&mut request_line);
    if let Err(e) = audit.write(&request_line) {
        tracing::error!(error = %e, "audit log write failed; refusing the request");
        return refused(&e);
    }

    let response = if too_large {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response()
    } else {
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    };

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
        return refused(&e);
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

fn refused(e: &crate::audit::AuditError) -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the audit log cannot be written ({e}); requests are refused until it can"),
    )
    .into_response()
}

/// `{mount}/creds|sts|roles/{role}` → (mount, role); `sys/…` and `auth/…` have neither.
fn mount_and_role(path: &str) -> (Option<String>, Option<String>) {
    let mut segs = path.trim_start_matches("/v1/").split('/');
    match (segs.next(), segs.next(), segs.next()) {
        (Some("sys" | "auth"), _, _) | (None, _, _) => (None, None),
        (Some(m), Some("creds" | "sts" | "roles"), Some(r)) => (Some(m.into()), Some(r.into())),
        (Some(m), _, _) => (Some(m.into()), None),
    }
}

fn lease_id_in_path(path: &str) -> Option<String> {
    ["/v1/sys/leases/renew/", "/v1/sys/leases/revoke/"]
        .iter()
        .find_map(|p| path.strip_prefix(p))
        .map(str::to_owned)
}

fn form_urlencoded(query: &str) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}").parse().unwrap_or_default(),
    )
    .map(|q| q.0)
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_and_role_come_from_the_path() {
        assert_eq!(
            mount_and_role("/v1/aws/creds/dev"),
            (Some("aws".into()), Some("dev".into()))
        );
        assert_eq!(
            mount_and_role("/v1/aws/config/root"),
            (Some("aws".into()), None)
        );
        assert_eq!(mount_and_role("/v1/sys/leases/revoke"), (None, None));
        assert_eq!(
            lease_id_in_path("/v1/sys/leases/revoke/aws/creds/dev/x").as_deref(),
            Some("aws/creds/dev/x")
        );
    }
}
