//! Every route of the API, in one place.

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, Uri};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use tower::Layer;
use tower::util::MapRequestLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use super::error::ApiError;
use super::{AppState, audit, limits, openapi, secrets, setup, sys, telemetry, token};

fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sys/health", get(sys::health).head(sys::health))
        .route("/v1/sys/openapi.json", get(openapi::serve))
        .route("/v1/sys/mounts", get(sys::list_mounts))
        .route("/v1/sys/metrics", get(telemetry::metrics))
        .route(
            "/v1/sys/audit-hash",
            post(telemetry::audit_hash).put(telemetry::audit_hash),
        )
        .route(
            "/v1/sys/audit-hash/{device}",
            post(telemetry::audit_hash).put(telemetry::audit_hash),
        )
        .route(
            "/v1/sys/mounts/{path}",
            get(sys::read_mount)
                .post(sys::enable_mount)
                .put(sys::enable_mount)
                .delete(sys::disable_mount),
        )
        .route(
            "/v1/sys/leases/lookup",
            get(sys::list_leases_root)
                .put(sys::lookup_lease)
                .post(sys::lookup_lease),
        )
        .route("/v1/sys/leases/lookup/", get(sys::list_leases_root))
        .route("/v1/sys/leases/lookup/{*prefix}", get(sys::list_leases))
        .route(
            "/v1/sys/leases/renew",
            post(sys::renew_lease).put(sys::renew_lease),
        )
        .route(
            "/v1/sys/leases/renew/{*lease_id}",
            post(sys::renew_lease_by_path).put(sys::renew_lease_by_path),
        )
        .route(
            "/v1/sys/leases/revoke",
            post(sys::revoke_lease).put(sys::revoke_lease),
        )
        .route(
            "/v1/sys/leases/revoke/{*lease_id}",
            post(sys::revoke_lease_by_path).put(sys::revoke_lease_by_path),
        )
        .route(
            "/v1/sys/leases/revoke-prefix/{*prefix}",
            post(sys::revoke_prefix).put(sys::revoke_prefix),
        )
        .route(
            "/v1/sys/leases/revoke-force/{*prefix}",
            post(sys::revoke_force).put(sys::revoke_force),
        )
        .route(
            "/v1/auth/token/lookup-self",
            get(token::lookup_self).post(token::lookup_self),
        )
        .route(
            "/v1/auth/token/create",
            post(token::create).put(token::create),
        )
        .route(
            "/v1/auth/token/lookup",
            post(token::lookup).put(token::lookup),
        )
        .route(
            "/v1/auth/token/lookup-accessor",
            post(token::lookup_accessor).put(token::lookup_accessor),
        )
        .route(
            "/v1/auth/token/renew-self",
            post(token::renew_self).put(token::renew_self),
        )
        .route(
            "/v1/auth/token/revoke-self",
            post(token::revoke_self).put(token::revoke_self),
        )
        .route(
            "/v1/auth/token/revoke-accessor",
            post(token::revoke_accessor).put(token::revoke_accessor),
        )
        .route("/v1/sys/policies/acl", get(token::list_policies))
        .route(
            "/v1/sys/policies/acl/{name}",
            get(token::read_policy)
                .put(token::write_policy)
                .post(token::write_policy)
                .delete(token::delete_policy),
        )
        .route("/v1/sys/policy", get(token::list_policies))
        .route(
            "/v1/sys/policy/{name}",
            get(token::read_policy)
                .put(token::write_policy)
                .post(token::write_policy)
                .delete(token::delete_policy),
        )
        .route(
            "/v1/{mount}/config/root",
            get(secrets::read_root_config)
                .post(secrets::write_root_config)
                .put(secrets::write_root_config),
        )
        .route(
            "/v1/{mount}/config/rotate-root",
            post(secrets::rotate_root).put(secrets::rotate_root),
        )
        .route("/v1/{mount}/setup", get(setup::plan))
        .route(
            "/v1/{mount}/config/check",
            post(setup::check).put(setup::check),
        )
        .route(
            "/v1/{mount}/config/lease",
            get(secrets::read_lease_config)
                .post(secrets::write_lease_config)
                .put(secrets::write_lease_config),
        )
        .route("/v1/{mount}/roles", get(secrets::list_roles))
        .route(
            "/v1/{mount}/roles/{name}",
            get(secrets::read_role)
                .post(secrets::write_role)
                .put(secrets::write_role)
                .delete(secrets::delete_role),
        )
        .route(
            "/v1/{mount}/creds/{name}",
            get(secrets::issue).post(secrets::issue).put(secrets::issue),
        )
        .route(
            "/v1/{mount}/sweep",
            post(secrets::sweep).put(secrets::sweep),
        )
        .route(
            "/v1/{mount}/sts/{name}",
            post(secrets::issue_sts).put(secrets::issue_sts),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// The API alone, for in-process calls from the web console (`api::internal`): audited like
/// any other request (the console's own form posts are not JSON, so they are not logged).
pub(crate) fn api_routes(state: AppState) -> Router {
    routes()
        .layer(from_fn_with_state(state.clone(), audit::audit_requests))
        .with_state(state)
}

/// The whole application as a service: routes, tracing, and Vault's request conventions.
pub fn app(
    state: AppState,
) -> impl tower::Service<
    Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ Sync
+ 'static {
    // The last layer added is the outermost: an id first, so every log line and audit line of
    // the request carries it; rate limits before the audit log, so a flood cannot fill it;
    // the timeout inside the audit log, so a timed-out request still gets its response line.
    let router = routes()
        .merge(crate::ui::routes())
        .route_layer(from_fn(telemetry::track))
        .layer(from_fn_with_state(state.clone(), limits::timeout))
        .layer(from_fn_with_state(state.clone(), audit::audit_requests))
        .layer(from_fn_with_state(state.clone(), limits::rate_limit))
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
        .with_state(state);
    // Runs before routing, which is where a method rewrite has to happen.
    MapRequestLayer::new(vault_conventions).layer(router)
}

/// Vault accepts `LIST` as a method (the same as `GET ?list=true`) and ignores a trailing `/`
/// on ordinary paths; prefix paths keep theirs because it is part of the prefix.
fn vault_conventions(mut req: Request) -> Request {
    let is_list = req.method().as_str() == "LIST";
    let path = req.uri().path();
    let keeps_slash = path.starts_with("/v1/sys/leases/lookup/")
        || path.starts_with("/v1/sys/leases/revoke-prefix/")
        || path.starts_with("/v1/sys/leases/revoke-force/");
    let new_path = if path.len() > 1 && path.ends_with('/') && !keeps_slash {
        path.trim_end_matches('/').to_owned()
    } else {
        path.to_owned()
    };
    if is_list || new_path != path {
        *req.method_mut() = if is_list {
            Method::GET
        } else {
            req.method().clone()
        };
        let mut query = req.uri().query().unwrap_or("").to_owned();
        if is_list {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str("list=true");
        }
        let pq = if query.is_empty() {
            new_path
        } else {
            format!("{new_path}?{query}")
        };
        if let Ok(uri) = pq.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req
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
