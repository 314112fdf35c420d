//! The HTTP API, shaped like Vault's so Vault clients work unchanged. The only module that
//! knows about HTTP: it turns requests into engine calls and engine results into responses.

mod approle;
mod audit;
mod auth_forms;
mod auth_methods;
mod canonical;
mod error;
mod fields;
mod forms;
mod gate;
pub mod internal;
mod jwt;
mod jwt_forms;
mod limits;
mod openapi;
mod router;
mod routes;
mod secrets;
mod setup;
mod static_roles;
mod status;
mod sys;
mod telemetry;
mod token;
mod vault;
mod views;

pub use limits::Limits;
pub use openapi::document_json as openapi_json;
pub use router::app;
pub use status::cluster_id;

use std::sync::Arc;

use crate::engine::Engine;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// The audit log, when `audit_log` is set.
    pub audit: Option<Arc<crate::audit::AuditLog>>,
    /// The audit HMAC key, for `sys/audit-hash` (present even without an audit log).
    pub audit_hasher: crate::audit::AuditHasher,
    pub limits: Limits,
    /// Served over TLS: cookies are `Secure` and responses carry HSTS.
    pub https: bool,
    /// The store is PostgreSQL (else SQLite), as `sys/seal-status` reports it.
    pub postgres: bool,
    /// When this server started serving (Unix seconds), as `sys/leader` reports it.
    pub started_at: i64,
    /// The store's cluster id (`status::cluster_id`), read once at start-up.
    pub cluster_id: String,
    /// JWT/OIDC mounts' verification keys, fetched once and shared by every login.
    pub jwt_keys: Arc<crate::auth::jwt::KeyCache>,
}

/// Every route's path pattern and the methods it serves (`LIST` where it lists), from the one
/// route table: for tests and tools that must cover the whole API.
pub fn route_methods() -> Vec<(&'static str, Vec<&'static str>)> {
    routes::Routes::get()
        .iter()
        .map(|r| {
            (
                r.path,
                r.endpoints.iter().map(|(v, _)| v.as_str()).collect(),
            )
        })
        .collect()
}
