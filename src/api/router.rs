//! The API router, built from the route table (`routes.rs`), and the whole application: the
//! API and the console side by side behind one canonical-path step.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, Uri, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use super::canonical::{self, Refused};
use super::error::ApiError;
use super::gate::{self, ListMethod};
use super::routes::Routes;
use super::{AppState, limits, telemetry};

/// The API's routes, from the table (`routes.rs`), behind the gate.
fn api(state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    for route in Routes::get().iter() {
        router = router.route(route.path, route.method_router());
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(from_fn(telemetry::track))
        .layer(from_fn_with_state(state.clone(), gate::gate))
}

/// The API alone, for in-process calls from the web console (`api::internal`): the same
/// canonical paths, gate and audit log as any other request.
pub(crate) fn api_routes(state: AppState) -> Router {
    canonical_paths(api(&state).with_state(state))
}

/// The whole application as a service: the API and, beside it, `console` (the server composes
/// the two; the API does not know the console), with tracing, request ids and rate limits.
pub fn app(state: AppState, console: Router<AppState>) -> Router {
    // The last layer added is the outermost: an id first, so every log line and audit line of
    // the request carries it; rate limits before the audit log, so a flood cannot fill it.
    let router = api(&state)
        .merge(console.layer(from_fn_with_state(state.clone(), limits::timeout)))
        .layer(from_fn_with_state(state.clone(), limits::rate_limit))
        .layer(from_fn_with_state(state.clone(), secure_transport))
        .with_state(state);
    canonical_paths(router)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            // The path only: a query string may carry request fields.
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Wraps `inner` so every request reaches it with its one canonical path (`canonical.rs`), the
/// query parsed once, and Vault's `LIST` method as `GET` marked as a list.
fn canonical_paths(inner: Router) -> Router {
    Router::new()
        .fallback_service(inner)
        .layer(from_fn(canonicalize))
}

async fn canonicalize(mut req: Request, next: Next) -> Response {
    let path = match canonical::path(req.uri().path(), |p| Routes::get().keeps_slash(p)) {
        Ok(p) => p,
        Err(Refused(message)) => return ApiError::bad_request(message).into_response(),
    };
    let query = match canonical::query(req.uri().query()) {
        Ok(q) => q,
        Err(Refused(message)) => return ApiError::bad_request(message).into_response(),
    };
    if req.method().as_str() == "LIST" {
        *req.method_mut() = Method::GET;
        req.extensions_mut().insert(ListMethod);
    }
    let uri = match req.uri().query() {
        Some(q) => format!("{}?{q}", path.encoded),
        None => path.encoded.clone(),
    };
    match uri.parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(e) => {
            return ApiError::bad_request(format!("the path cannot be read: {e}")).into_response();
        }
    }
    req.extensions_mut().insert(path);
    req.extensions_mut().insert(query);
    next.run(req).await
}

/// Under TLS, every cookie is `Secure` and every answer tells browsers to keep to HTTPS.
async fn secure_transport(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    if !state.https {
        return response;
    }
    let headers = response.headers_mut();
    let cookies: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| match v.to_str() {
            Ok(text) if !text.to_ascii_lowercase().contains("; secure") => {
                HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or_else(|_| v.clone())
            }
            _ => v.clone(),
        })
        .collect();
    headers.remove(header::SET_COOKIE);
    for c in cookies {
        headers.append(header::SET_COOKIE, c);
    }
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no handler for route {:?}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not supported on {}", uri.path()),
    )
}
