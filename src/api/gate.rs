//! The one decision per request. After routing, the gate finds the route in the table, takes the
//! operation from the route and the method (never from anything else the client sends),
//! authenticates the token once, checks the ACL on exactly the path the router matched, writes
//! the audit request line, and only then lets the handler run. Handlers get the caller from
//! here (the `Caller` extractor), so no handler can run unchecked.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::audit::{self, AuditedRequest, Decision, PathParams};
use super::canonical::{CanonicalPath, RequestQuery};
use super::error::ApiError;
use super::routes::{Access, Operation, Route, Routes, Verb};
use super::vault::{MAX_BODY_BYTES, token_header};
use super::{AppState, limits};
use crate::auth::{self, Caller, Use};
use crate::clock::now;

/// Set by the pre-routing step when the method was Vault's `LIST`.
#[derive(Debug, Clone, Copy)]
pub struct ListMethod;

pub async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    audit::REQUEST_ID
        .scope(
            request_id.clone(),
            decide_and_run(state, request_id, req, next),
        )
        .await
}

async fn decide_and_run(state: AppState, request_id: String, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .and_then(|m| Routes::get().matched(m.as_str()));

    // The operation, from the route and the method alone.
    let query = parts
        .extensions
        .get::<RequestQuery>()
        .cloned()
        .unwrap_or_default();
    // A request refused before the ACL (a method the route does not serve, a path or body it
    // cannot read) is still audited, with its refusal.
    let mut refusal = None;
    let operation = match route.map(|r| operation(r, &parts.method, &parts.extensions, &query)) {
        Some(Ok(op)) => Some(op),
        Some(Err(e)) => {
            refusal = Some(e);
            None
        }
        None => None,
    };
    let acl_path = match route {
        Some(route) => match acl_path(route, &mut parts).await {
            Ok(p) => Some(p),
            Err(e) => {
                refusal = Some(e);
                None
            }
        },
        None => None,
    };

    // The body, read once, within its size cap and its deadline.
    let bytes = match read_body(body, state.limits.body_read_timeout).await {
        Ok(b) => b,
        Err(e) => {
            refusal.get_or_insert(e);
            Default::default()
        }
    };

    // The caller, authenticated once, and the decision.
    let token = token_header(&parts.headers)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let needs_token = match route.map(|r| r.access) {
        Some(Access::Public) => false,
        Some(Access::Metrics) => !state.limits.metrics_unauthenticated,
        Some(Access::Token) | None => true,
    };
    let mut caller = match &token {
        Some(t) => match auth::authenticate(state.engine.store(), t, now()).await {
            Ok(c) => c,
            Err(e) => return ApiError::from(e).into_response(),
        },
        None => None,
    };
    // A token bound to networks (`token_bound_cidrs`) is no token at all from elsewhere.
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if caller
        .as_ref()
        .is_some_and(|c| !auth::usable_from(&c.token, peer))
    {
        caller = None;
    }
    let decision = match (route, operation, &acl_path) {
        // Refused before the ACL: nothing is allowed to run.
        _ if refusal.is_some() => Decision::Denied(String::new()),
        (Some(route), Some(op), Some(path)) if needs_token => {
            decide(route, op, path, &caller, &token)
        }
        (Some(_), _, _) => Decision::Allowed,
        // No route: the fallback answers 404, and nothing was allowed.
        (None, _, _) => Decision::NoRoute,
    };
    let audited = route.is_none_or(|r| r.audited);
    let log = state.audit.clone().filter(|_| audited);
    let mut line = None;
    if let Some(log) = &log {
        let request = AuditedRequest {
            request_id: &request_id,
            parts: &parts,
            route,
            body: &bytes,
            caller: caller.as_ref(),
            decision: &decision,
        };
        match audit::write_request(log, &request) {
            Ok(l) => line = Some(l),
            Err(refused) => return refused.into_response(),
        }
    }

    // A token with `num_uses` spends one on every request it is allowed to make; after its
    // last, it is revoked (with its children and leases) once the answer is ready.
    let uses = match (&decision, &caller) {
        (Decision::Allowed, Some(c)) if refusal.is_none() => {
            match auth::spend_use(state.engine.store(), c).await {
                Ok(u) => u,
                Err(e) => return ApiError::from(e).into_response(),
            }
        }
        _ => Use::Granted,
    };
    // What the handler sees is the token after this use, as Vault shows it: the uses left,
    // and -1 once the last is spent (the reference server answers the same).
    if let Some(c) = caller.as_mut().filter(|c| c.token.num_uses > 0) {
        c.token.num_uses = match uses {
            Use::Granted => c.token.num_uses - 1,
            Use::Last | Use::Exhausted => -1,
        };
    }
    let last_use = (uses == Use::Last).then(|| caller.as_ref().map(|c| c.accessor.clone()));
    let response = match (refusal, decision) {
        (Some(refused), _) => refused.into_response(),
        (None, Decision::Allowed) if uses == Use::Exhausted => {
            ApiError::forbidden("permission denied: the token has no uses left").into_response()
        }
        (None, Decision::Allowed | Decision::NoRoute) => {
            if let Some(c) = caller {
                parts.extensions.insert(c);
            }
            parts.extensions.insert(query);
            let run = next.run(Request::from_parts(parts, Body::from(bytes)));
            json_errors(limits::within(state.limits.request_timeout, run).await).await
        }
        (None, Decision::Denied(message)) => ApiError::forbidden(message).into_response(),
    };
    if let Some(Some(accessor)) = last_use {
        match auth::revoke(state.engine.store(), &accessor, now(), false).await {
            Ok(done) if done.leases > 0 => state.engine.wake_reaper(),
            Ok(_) => {}
            // It has no uses left, so it can no longer act; its expiry revokes it later.
            Err(e) => tracing::warn!(error = %e, "revoking a token after its last use failed"),
        }
    }
    match (&log, line) {
        (Some(log), Some(line)) => audit::write_response(log, line, response).await,
        _ => response,
    }
}

/// The method names the operation; the route says whether it serves it.
fn operation(
    route: &Route,
    method: &Method,
    extensions: &axum::http::Extensions,
    query: &RequestQuery,
) -> Result<Operation, ApiError> {
    let path = route.path.trim_start_matches("/v1/");
    let verb = match method.as_str() {
        "GET" if extensions.get::<ListMethod>().is_some() || query.list => Verb::List,
        "GET" => Verb::Get,
        "HEAD" => Verb::Head,
        "POST" => Verb::Post,
        "PUT" => Verb::Put,
        "DELETE" => Verb::Delete,
        other => {
            return Err(method_not_allowed(format!(
                "{other} is not supported on {path}"
            )));
        }
    };
    route.operation(verb).ok_or_else(|| {
        method_not_allowed(match verb {
            Verb::List => format!("LIST is not supported on {path}"),
            v => format!("{} is not supported on {path}", v.as_str()),
        })
    })
}

fn method_not_allowed(message: String) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, message)
}

/// The path the ACL checks: the matched pattern with the router's own (decoded) parameters in
/// it, so it is exactly what the handler will act on.
async fn acl_path(
    route: &Route,
    parts: &mut axum::http::request::Parts,
) -> Result<String, ApiError> {
    let params = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("the path cannot be read: {e}")))?;
    parts.extensions.insert(PathParams(
        params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    ));
    let mut path = String::new();
    for seg in route.path.trim_start_matches("/v1/").split('/') {
        if !path.is_empty() {
            path.push('/');
        }
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                let name = name.trim_start_matches('*');
                let value = params
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                if route.lowercased == Some(name) {
                    path.push_str(&value.to_lowercase());
                } else {
                    path.push_str(value);
                }
            }
            None => path.push_str(seg),
        }
    }
    // The catch-all parameter keeps a trailing slash; the router matched it that way.
    if let Some(c) = parts.extensions.get::<CanonicalPath>()
        && c.decoded.ends_with('/')
        && !path.ends_with('/')
        && route.keeps_slash
    {
        path.push('/');
    }
    Ok(path)
}

fn decide(
    route: &Route,
    op: Operation,
    path: &str,
    caller: &Option<Caller>,
    token: &Option<String>,
) -> Decision {
    let Some(caller) = caller else {
        return Decision::Denied(if token.is_none() {
            "permission denied: no token; send it in the X-Vault-Token header".into()
        } else {
            "permission denied: the token is unknown or expired".into()
        });
    };
    if caller.is_root() {
        return Decision::Allowed;
    }
    let sudo = route.needs_sudo(op);
    let wanted = op.capabilities();
    let trimmed = path.trim_end_matches('/');
    let allowed = caller.acl.allows(trimmed, wanted, sudo)
        || (op == Operation::List && caller.acl.allows(&format!("{trimmed}/"), wanted, sudo));
    if allowed {
        Decision::Allowed
    } else {
        Decision::Denied(format!(
            "permission denied: the token's policies ({}) do not grant {}{} on {path}",
            caller.policies.join(", "),
            op.as_str(),
            if sudo { " with sudo" } else { "" }
        ))
    }
}

async fn read_body(body: Body, deadline: Duration) -> Result<axum::body::Bytes, ApiError> {
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::bad_request(format!("the request body could not be read: {e}"))
            })
        }
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within body_read_timeout ({}s)",
                deadline.as_secs()
            ),
        )),
    }
}

/// axum's own rejections (a path or body it cannot read) answer plain text; every error of the
/// API is `{"errors": [...]}`.
async fn json_errors(response: Response) -> Response {
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    if !(response.status().is_client_error() || response.status().is_server_error()) || !plain {
        return response;
    }
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&bytes).trim().to_owned();
    let mut response = ApiError::new(status, message).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The caller the gate authenticated. A handler that names `Caller` can only run behind it.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.remove::<Caller>().ok_or_else(|| {
            ApiError::forbidden("permission denied: no token; send it in the X-Vault-Token header")
        })
    }
}
