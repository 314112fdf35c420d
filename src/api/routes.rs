//! The route table: every path the API serves, once, with what each method *is* for the ACL
//! (read, list, write, delete), whether it needs a token and `sudo`, how the audit log names it,
//! and whether a trailing `/` is part of it. The router, the authorization gate, the audit log
//! and the OpenAPI check all read this table, so a route is known in one place.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::handler::Handler;
use axum::routing::MethodRouter;

use super::AppState;
use super::{
    approle, auth_methods, jwt, openapi, secrets, setup, static_roles, status, sys, telemetry,
    token,
};
use crate::auth::policy::Capability;

/// What a request does, as Vault's ACL sees it. It comes from the route and the method only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    List,
    /// POST or PUT: Vault's "create or update" (either capability will do).
    Write,
    Delete,
}

impl Operation {
    /// The capabilities of which one is needed.
    pub fn capabilities(self) -> &'static [Capability] {
        match self {
            Operation::Read => &[Capability::Read],
            Operation::List => &[Capability::List],
            Operation::Write => &[Capability::Create, Capability::Update],
            Operation::Delete => &[Capability::Delete],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::List => "list",
            Operation::Write => "update",
            Operation::Delete => "delete",
        }
    }
}

/// The methods a route may answer. `HEAD` is only ever served where it is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Head,
    /// The `LIST` method, or `GET` with `list=true`.
    List,
    Post,
    Put,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Head => "HEAD",
            Verb::List => "LIST",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token (health, the OpenAPI document).
    Public,
    /// A token whose policies grant the operation on the path.
    Token,
    /// `sys/metrics`: a token, unless `metrics_unauthenticated` is set.
    Metrics,
}

/// When `sudo` is needed on top of the operation's capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sudo {
    Never,
    Always,
    /// Everything but reading (enabling and disabling mounts).
    ForChanges,
}

/// One route of the table.
pub struct Route {
    /// The axum path pattern, `/v1/…`.
    pub path: &'static str,
    /// Each method served and the operation it is.
    pub endpoints: Vec<(Verb, Operation)>,
    pub access: Access,
    pub sudo: Sudo,
    /// Health and metrics probes are not written to the audit log.
    pub audited: bool,
    /// A trailing `/` is part of the path (lease prefixes), not Vault's ignorable slash.
    pub keeps_slash: bool,
    /// The path parameters the audit log names the request by.
    pub audit_mount: Option<&'static str>,
    pub audit_role: Option<&'static str>,
    pub audit_lease: Option<&'static str>,
    /// A parameter stored in lower case (policy names): the ACL sees the stored spelling.
    pub lowercased: Option<&'static str>,
    method_router: MethodRouter<AppState>,
}

impl Route {
    fn new(path: &'static str) -> Route {
        Route {
            path,
            endpoints: Vec::new(),
            access: Access::Token,
            sudo: Sudo::Never,
            audited: true,
            keeps_slash: false,
            audit_mount: None,
            audit_role: None,
            audit_lease: None,
            lowercased: None,
            method_router: MethodRouter::new(),
        }
    }

    /// A route under a secrets mount (`/v1/{mount}/…`), named by its mount in the audit log.
    fn mount(path: &'static str) -> Route {
        Route {
            audit_mount: Some("mount"),
            ..Route::new(path)
        }
    }

    fn read<H: Handler<T, AppState>, T: 'static>(mut self, h: H) -> Self {
        self.endpoints.push((Verb::Get, Operation::Read));
        self.method_router = self.method_router.get(h);
        self
    }

    /// `GET` on a path that only lists is the list operation (so it needs `list`, as `LIST` does).
    fn list<H: Handler<T, AppState>, T: 'static>(mut self, h: H) -> Self {
        self.endpoints.push((Verb::Get, Operation::List));
        self.endpoints.push((Verb::List, Operation::List));
        self.method_router = self.method_router.get(h);
        self
    }

    fn head<H: Handler<T, AppState>, T: 'static>(mut self, h: H) -> Self {
        self.endpoints.push((Verb::Head, Operation::Read));
        self.method_router = self.method_router.head(h);
        self
    }

    /// POST and PUT, Vault's create-or-update.
    fn write<H: Handler<T, AppState> + Clone, T: 'static>(mut self, h: H) -> Self {
        self.endpoints.push((Verb::Post, Operation::Write));
        self.endpoints.push((Verb::Put, Operation::Write));
        self.method_router = self.method_router.post(h.clone()).put(h);
        self
    }

    /// POST alone (`lookup-self` takes POST as a read with a body, as Vault does).
    fn post<H: Handler<T, AppState>, T: 'static>(mut self, h: H) -> Self {
        self.endpoints.push((Verb::Post, Operation::Write));
        self.method_router = self.method_router.post(h);
        self
    }

    fn delete<H: Handler<T, AppState>, T: 'static>(mut self, h: H) -> Self {
        self.endpoints.push((Verb::Delete, Operation::Delete));
        self.method_router = self.method_router.delete(h);
        self
    }

    fn public(self) -> Self {
        self.access(Access::Public)
    }

    fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    fn sudo(mut self, sudo: Sudo) -> Self {
        self.sudo = sudo;
        self
    }

    fn unaudited(mut self) -> Self {
        self.audited = false;
        self
    }

    fn keeps_slash(mut self) -> Self {
        self.keeps_slash = true;
        self
    }

    fn role(mut self, param: &'static str) -> Self {
        self.audit_role = Some(param);
        self
    }

    fn lease(mut self, param: &'static str) -> Self {
        self.audit_lease = Some(param);
        self
    }

    fn lowercase(mut self, param: &'static str) -> Self {
        self.lowercased = Some(param);
        self
    }

    /// The operation `verb` is on this route, if the route serves it.
    pub fn operation(&self, verb: Verb) -> Option<Operation> {
        self.endpoints
            .iter()
            .find(|(v, _)| *v == verb)
            .map(|(_, op)| *op)
    }

    pub fn needs_sudo(&self, op: Operation) -> bool {
        match self.sudo {
            Sudo::Never => false,
            Sudo::Always => true,
            Sudo::ForChanges => op != Operation::Read,
        }
    }

    /// The static part of a path that keeps its slash (`/v1/sys/leases/lookup/`).
    pub fn slash_prefix(&self) -> Option<&'static str> {
        self.keeps_slash
            .then(|| self.path.split("{*").next().unwrap_or(self.path))
    }

    pub(super) fn method_router(&self) -> MethodRouter<AppState> {
        self.method_router.clone()
    }
}

/// Every route of the API. Order does not matter (axum matches static segments first).
fn table() -> Vec<Route> {
    vec![
        Route::new("/v1/sys/health")
            .read(status::health)
            .head(status::health)
            .public()
            .unaudited(),
        Route::new("/v1/sys/seal-status")
            .read(status::seal_status)
            .public()
            .unaudited(),
        Route::new("/v1/sys/init")
            .read(status::init_status)
            .write(status::init)
            .public(),
        Route::new("/v1/sys/unseal")
            .write(status::unseal)
            .public()
            .unaudited(),
        Route::new("/v1/sys/leader")
            .read(status::leader)
            .public()
            .unaudited(),
        Route::new("/v1/sys/ha-status").read(status::ha_status),
        Route::new("/v1/sys/auth").read(status::list_auth),
        Route::new("/v1/sys/auth/{path}/tune")
            .read(auth_methods::read_tune)
            .write(auth_methods::write_tune)
            .sudo(Sudo::ForChanges),
        Route::new("/v1/sys/auth/{path}")
            .read(auth_methods::read)
            .write(auth_methods::enable)
            .delete(auth_methods::disable)
            .sudo(Sudo::ForChanges),
        Route::new("/v1/auth/{mount}/login")
            .post(auth_methods::login)
            .public(),
        Route::new("/v1/auth/{mount}/config")
            .read(jwt::read_config)
            .write(jwt::write_config),
        Route::new("/v1/auth/{mount}/oidc/auth_url")
            .post(jwt::auth_url)
            .public(),
        Route::new("/v1/auth/{mount}/oidc/callback")
            .read(jwt::callback)
            .post(jwt::callback)
            .public(),
        Route::new("/v1/auth/{mount}/role").list(auth_methods::list_roles),
        Route::new("/v1/auth/{mount}/role/{name}")
            .read(auth_methods::read_role)
            .write(auth_methods::write_role)
            .delete(auth_methods::delete_role),
        Route::new("/v1/auth/{mount}/role/{name}/role-id")
            .read(approle::read_role_id)
            .write(approle::write_role_id),
        Route::new("/v1/auth/{mount}/role/{name}/secret-id")
            .list(approle::list_secret_ids)
            .write(approle::generate_secret_id),
        Route::new("/v1/auth/{mount}/role/{name}/custom-secret-id")
            .write(approle::custom_secret_id),
        Route::new("/v1/auth/{mount}/role/{name}/secret-id/lookup")
            .write(approle::lookup_secret_id),
        Route::new("/v1/auth/{mount}/role/{name}/secret-id/destroy")
            .write(approle::destroy_secret_id)
            .delete(approle::destroy_secret_id),
        Route::new("/v1/auth/{mount}/role/{name}/secret-id-accessor/lookup")
            .write(approle::lookup_secret_id_accessor),
        Route::new("/v1/auth/{mount}/role/{name}/secret-id-accessor/destroy")
            .write(approle::destroy_secret_id_accessor)
            .delete(approle::destroy_secret_id_accessor),
        Route::new("/v1/sys/capabilities-self").write(status::capabilities_self),
        Route::new("/v1/sys/capabilities").write(status::capabilities),
        Route::new("/v1/sys/capabilities-accessor").write(status::capabilities_accessor),
        Route::new("/v1/sys/openapi.json")
            .read(openapi::serve)
            .public(),
        Route::new("/v1/sys/mounts").read(sys::list_mounts),
        Route::new("/v1/sys/metrics")
            .read(telemetry::metrics)
            .access(Access::Metrics)
            .unaudited(),
        Route::new("/v1/sys/audit-hash").write(telemetry::audit_hash),
        Route::new("/v1/sys/audit-hash/{device}").write(telemetry::audit_hash),
        Route::new("/v1/sys/mounts/{path}/tune")
            .read(sys::read_tune)
            .write(sys::write_tune)
            .sudo(Sudo::ForChanges),
        Route::new("/v1/sys/mounts/{path}")
            .read(sys::read_mount)
            .write(sys::enable_mount)
            .delete(sys::disable_mount)
            .sudo(Sudo::ForChanges),
        Route::new("/v1/sys/leases/lookup")
            .list(sys::list_leases_root)
            .write(sys::lookup_lease),
        Route::new("/v1/sys/leases/lookup/")
            .list(sys::list_leases_root)
            .keeps_slash(),
        Route::new("/v1/sys/leases/lookup/{*prefix}")
            .list(sys::list_leases)
            .keeps_slash(),
        Route::new("/v1/sys/leases/renew").write(sys::renew_lease),
        Route::new("/v1/sys/leases/renew/{*lease_id}")
            .write(sys::renew_lease_by_path)
            .lease("lease_id"),
        Route::new("/v1/sys/leases/revoke").write(sys::revoke_lease),
        Route::new("/v1/sys/leases/revoke/{*lease_id}")
            .write(sys::revoke_lease_by_path)
            .lease("lease_id"),
        Route::new("/v1/sys/leases/revoke-prefix/{*prefix}")
            .write(sys::revoke_prefix)
            .sudo(Sudo::Always)
            .keeps_slash(),
        // Vault's older lease paths, still what some clients call.
        Route::new("/v1/sys/renew").write(sys::renew_lease),
        Route::new("/v1/sys/renew/{*lease_id}")
            .write(sys::renew_lease_by_path)
            .lease("lease_id"),
        Route::new("/v1/sys/revoke").write(sys::revoke_lease),
        Route::new("/v1/sys/revoke/{*lease_id}")
            .write(sys::revoke_lease_by_path)
            .lease("lease_id"),
        Route::new("/v1/sys/revoke-prefix/{*prefix}")
            .write(sys::revoke_prefix)
            .sudo(Sudo::Always)
            .keeps_slash(),
        Route::new("/v1/sys/leases/revoke-force/{*prefix}")
            .write(sys::revoke_force)
            .sudo(Sudo::Always)
            .keeps_slash(),
        Route::new("/v1/auth/token/lookup-self")
            .read(token::lookup_self)
            .post(token::lookup_self),
        Route::new("/v1/auth/token/create").write(token::create),
        Route::new("/v1/auth/token/create-orphan").write(token::create_orphan),
        Route::new("/v1/auth/token/lookup").write(token::lookup),
        Route::new("/v1/auth/token/lookup-accessor").write(token::lookup_accessor),
        Route::new("/v1/auth/token/renew").write(token::renew),
        Route::new("/v1/auth/token/renew-self").write(token::renew_self),
        Route::new("/v1/auth/token/renew-accessor").write(token::renew_accessor),
        Route::new("/v1/auth/token/revoke").write(token::revoke),
        Route::new("/v1/auth/token/revoke-self").write(token::revoke_self),
        Route::new("/v1/auth/token/revoke-accessor").write(token::revoke_accessor),
        Route::new("/v1/auth/token/revoke-orphan")
            .write(token::revoke_orphan)
            .sudo(Sudo::Always),
        Route::new("/v1/sys/policies/acl").list(token::list_policies),
        Route::new("/v1/sys/policies/acl/{name}")
            .read(token::read_policy)
            .write(token::write_policy)
            .delete(token::delete_policy)
            .lowercase("name"),
        // Vault's older form: `GET sys/policy` is a read that answers the names.
        Route::new("/v1/sys/policy").read(token::list_policies),
        Route::new("/v1/sys/policy/{name}")
            .read(token::read_policy)
            .write(token::write_policy)
            .delete(token::delete_policy)
            .lowercase("name"),
        Route::mount("/v1/{mount}/config/root")
            .read(secrets::read_root_config)
            .write(secrets::write_root_config),
        Route::mount("/v1/{mount}/config/rotate-root").write(secrets::rotate_root),
        Route::mount("/v1/{mount}/setup").read(setup::plan),
        Route::mount("/v1/{mount}/config/check").write(setup::check),
        Route::mount("/v1/{mount}/config/lease")
            .read(secrets::read_lease_config)
            .write(secrets::write_lease_config),
        Route::mount("/v1/{mount}/roles").list(secrets::list_roles),
        Route::mount("/v1/{mount}/roles/{name}")
            .read(secrets::read_role)
            .write(secrets::write_role)
            .delete(secrets::delete_role)
            .role("name"),
        Route::mount("/v1/{mount}/creds/{name}")
            .read(secrets::issue)
            .write(secrets::issue)
            .role("name"),
        Route::mount("/v1/{mount}/sweep")
            .write(secrets::sweep)
            .sudo(Sudo::Always),
        Route::mount("/v1/{mount}/sts/{name}")
            .read(secrets::issue_sts)
            .write(secrets::issue_sts)
            .role("name"),
        Route::mount("/v1/{mount}/access-keys/{access_key_id}").read(secrets::whois),
        Route::mount("/v1/{mount}/iam-quota").read(secrets::iam_quota),
        Route::mount("/v1/{mount}/static-roles").list(static_roles::list),
        Route::mount("/v1/{mount}/static-roles/{name}")
            .read(static_roles::read)
            .write(static_roles::write)
            .delete(static_roles::delete)
            .role("name"),
        Route::mount("/v1/{mount}/static-roles/{name}/rotate")
            .write(static_roles::rotate)
            .role("name"),
        Route::mount("/v1/{mount}/static-creds/{name}")
            .read(static_roles::creds)
            .role("name"),
    ]
}

/// The table, built once.
pub struct Routes {
    routes: Vec<Route>,
    by_path: HashMap<&'static str, usize>,
}

impl Routes {
    pub fn get() -> &'static Routes {
        static ROUTES: OnceLock<Routes> = OnceLock::new();
        ROUTES.get_or_init(|| {
            let routes = table();
            let by_path = routes
                .iter()
                .enumerate()
                .map(|(i, r)| (r.path, i))
                .collect();
            Routes { routes, by_path }
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The route axum matched (its `MatchedPath`).
    pub fn matched(&self, pattern: &str) -> Option<&Route> {
        self.by_path.get(pattern).map(|&i| &self.routes[i])
    }

    /// Whether `path` is under a route whose trailing slash is meaningful.
    pub fn keeps_slash(&self, path: &str) -> bool {
        self.routes
            .iter()
            .filter_map(Route::slash_prefix)
            .any(|prefix| path.starts_with(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_listed_once_and_every_method_once_per_path() {
        let routes = Routes::get();
        assert_eq!(routes.by_path.len(), routes.routes.len(), "a path twice");
        for r in routes.iter() {
            let mut verbs: Vec<&str> = r.endpoints.iter().map(|(v, _)| v.as_str()).collect();
            let n = verbs.len();
            verbs.sort();
            verbs.dedup();
            assert_eq!(verbs.len(), n, "{}: a method twice", r.path);
            assert!(r.path.starts_with("/v1/"), "{}", r.path);
        }
    }

    #[test]
    fn head_and_list_are_served_only_where_declared() {
        let routes = Routes::get();
        let creds = routes.matched("/v1/{mount}/creds/{name}").unwrap();
        assert_eq!(creds.operation(Verb::Head), None);
        assert_eq!(creds.operation(Verb::List), None);
        assert_eq!(creds.operation(Verb::Get), Some(Operation::Read));
        let roles = routes.matched("/v1/{mount}/roles").unwrap();
        assert_eq!(roles.operation(Verb::Get), Some(Operation::List));
        let health = routes.matched("/v1/sys/health").unwrap();
        assert_eq!(health.operation(Verb::Head), Some(Operation::Read));
        assert!(routes.keeps_slash("/v1/sys/leases/revoke-prefix/aws/creds/"));
        assert!(!routes.keeps_slash("/v1/aws/roles/"));
    }
}
