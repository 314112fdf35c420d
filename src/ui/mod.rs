//! The web console at `/ui/`: server-rendered pages (askama templates, checked at compile time)
//! with a little of our own JavaScript and CSS embedded in the binary. Every action goes through
//! the HTTP API in-process (`api::internal`), with the signed-in token, so the console may do
//! exactly what that token's policies allow.
//!
//! Sessions: the cookie holds only a random session id (HttpOnly, SameSite=Strict, Path=/ui);
//! the session is in the store (the id's hash, the token sealed), so any replica serves it.
//! Every form carries a CSRF token, derived from the id, checked in constant time.
//! Responses carry a strict Content-Security-Policy (no inline script, nothing from elsewhere)
//! and `Cache-Control: no-store`, so credentials shown once are not kept by the browser.
//!
//! The pages, one module per job: `signin`, `sso` (sign-in through an OIDC provider), `mounts`
//! (a mount and its AWS connection), `roles` (and Generate), `leases`, `keys` (who held an
//! access key); what they share is in `page`. Each handler checks the session (and the CSRF
//! token on a POST), calls the API in-process with the session's token, and renders a
//! template or redirects with a flash. API errors are shown next to the field they name, or at
//! the top of the page; nothing fails silently.

mod keys;
mod leases;
mod mounts;
mod page;
mod roles;
mod session;
mod signin;
mod sso;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::api::AppState;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's routes, to be merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(signin::home))
        .route("/ui/login", get(signin::login_form).post(signin::login))
        .route("/ui/logout", post(signin::logout))
        .route("/ui/sso", post(sso::start))
        .route("/ui/oidc/callback", get(sso::callback))
        .route("/ui/mounts", get(mounts::mounts).post(mounts::enable_mount))
        .route("/ui/mounts/{mount}", get(mounts::mount))
        .route(
            "/ui/mounts/{mount}/connection",
            post(mounts::save_connection),
        )
        .route("/ui/mounts/{mount}/check", post(mounts::check_connection))
        .route(
            "/ui/mounts/{mount}/roles",
            get(roles::new_role).post(roles::save_new_role),
        )
        .route("/ui/mounts/{mount}/roles/{role}", get(roles::role))
        .route(
            "/ui/mounts/{mount}/roles/{role}/edit",
            get(roles::edit_role).post(roles::save_role),
        )
        .route(
            "/ui/mounts/{mount}/roles/{role}/generate",
            post(roles::generate),
        )
        .route(
            "/ui/mounts/{mount}/roles/{role}/delete",
            post(roles::delete_role),
        )
        .route("/ui/leases", get(leases::leases))
        .route("/ui/leases/renew", post(leases::renew_lease))
        .route("/ui/leases/revoke", post(leases::revoke_lease))
        .route("/ui/leases/revoke-role", post(leases::revoke_role))
        .route("/ui/keys", get(keys::key))
        .route("/ui/assets/app.css", get(css))
        .route("/ui/assets/app.js", get(js))
        .layer(middleware::from_fn(security_headers))
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("assets/app.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("assets/app.js"),
    )
}
