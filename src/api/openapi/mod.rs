//! The OpenAPI 3 document of the HTTP API: one `#[utoipa::path]` per route of `router.rs`
//! (on description-only functions here, so the handlers stay as they are), the Vault wire
//! shapes as schemas, and the error statuses every route can answer.
//!
//! `schemas` holds the wire shapes, `paths` the one annotated function per route.
//!
//! Served at `GET /v1/sys/openapi.json` and committed as `docs/openapi.json`
//! (regenerate with `cargo run -- openapi > docs/openapi.json`).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use paths::*;
use schemas::*;

use super::vault::json_response;

mod paths;
mod schemas;

/// The document, built once per call (it is small; the route serves it rarely).
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// The document as pretty JSON, exactly what `docs/openapi.json` holds.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("the document serialises");
    text.push('\n');
    text
}

/// `GET /v1/sys/openapi.json`: no token needed, like `sys/health`.
pub async fn serve() -> Response {
    let doc: Value = serde_json::to_value(document()).expect("the document serialises");
    json_response(StatusCode::OK, &doc)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "iamlease",
        description = "Dynamic AWS credentials over HashiCorp Vault's HTTP API (AWS secrets engine, leases, tokens, ACL policies). `LIST` is accepted wherever `GET ?list=true` is documented.",
        license(name = "see the repository")
    ),
    paths(
        health, health_head, seal_status, init_status, init, unseal, leader, ha_status, list_auth, capabilities_self, capabilities,
        capabilities_accessor, openapi_json, list_mounts, read_mount,
        read_mount_tune, tune_mount, enable_mount, disable_mount, metrics, renew_legacy,
        renew_legacy_by_path, revoke_legacy, revoke_legacy_by_path, revoke_prefix_legacy,
        token_create_orphan, token_renew, token_renew_accessor, token_revoke, token_revoke_orphan,
        audit_hash, audit_hash_device, lookup_lease, list_leases_root, list_leases, renew_lease,
        renew_lease_by_path, revoke_lease, revoke_lease_by_path, revoke_prefix, revoke_force,
        token_lookup_self, token_create, token_lookup, token_lookup_accessor, token_renew_self,
        token_revoke_self, token_revoke_accessor, list_policies, read_policy, write_policy,
        delete_policy, list_policies_legacy, read_policy_legacy, write_policy_legacy,
        delete_policy_legacy, read_root_config, write_root_config, rotate_root, setup_plan,
        config_check, read_lease_config, write_lease_config, list_roles, read_role, write_role,
        delete_role, issue_creds, issue_sts, whois, iam_quota, sweep, list_static_roles, read_static_role,
        write_static_role, delete_static_role, rotate_static_role, static_creds, read_auth, enable_auth, disable_auth, read_auth_tune, tune_auth,
        auth_login, auth_list_roles, auth_read_role, auth_write_role, auth_delete_role,
        approle_read_role_id, approle_write_role_id, approle_secret_id, approle_list_secret_ids,
        approle_custom_secret_id, approle_lookup_secret_id, approle_destroy_secret_id,
        approle_lookup_secret_id_accessor, approle_destroy_secret_id_accessor, jwt_read_config,
        jwt_write_config, oidc_auth_url, oidc_callback, oidc_callback_post
    ),
    components(schemas(
        Envelope, ListEnvelope, ErrorBody, Health, MountBody, MountConfig, MountTuneBody,
        TokenRenewBody, CapabilitiesBody, Duration, StringList,
        Tags, RootConfigBody, LeaseConfigBody, RoleBody, StaticRoleBody, CredentialType, CredsBody, LeaseIdBody,
        RenewBody, RevokeBody, TokenCreateBody, TokenLookupBody, AccessorBody, PolicyBody,
        AuditHashBody, SweepBody, AuthMountBody, AuthRoleBody, RoleIdBody, SecretIdBody,
        SecretIdValueBody, SecretIdAccessorBody, LoginBody, JwtConfigBody, OidcAuthUrlBody, OidcCallbackBody
    )),
    modifiers(&VaultConventions),
    tags(
        (name = "sys", description = "health, mounts, leases, metrics, audit"),
        (name = "auth", description = "tokens, ACL policies and auth methods (AppRole)"),
        (name = "aws", description = "an AWS secrets engine mount: configuration, roles, credentials")
    )
)]
struct ApiDoc;

/// What every route shares, added after the paths are collected rather than repeated in
/// each annotation: the token header, an operation id per method, and the error answers.
struct VaultConventions;

/// The error statuses of the API's error policy (`error.rs`), all with `{"errors": [...]}`.
const ERROR_STATUSES: &[(&str, &str)] = &[
    (
        "400",
        "bad input; the message says what was wrong and what would be right",
    ),
    (
        "403",
        "missing, unknown or expired token, or the token's policies do not allow it",
    ),
    (
        "404",
        "unknown path, mount, role, lease, token or policy; an empty LIST",
    ),
    ("405", "method not supported on this path"),
    ("413", "request body over 1 MiB"),
    (
        "429",
        "rate limited (with `Retry-After`), or the role's `max_leases` reached",
    ),
    (
        "502",
        "AWS refused or failed after retries; the message carries AWS's reason",
    ),
    (
        "503",
        "not ready: storage cannot take writes, or the audit log cannot be written",
    ),
];

/// Routes that need no token.
const PUBLIC: &[&str] = &[
    "/v1/sys/health",
    "/v1/sys/seal-status",
    "/v1/sys/init",
    "/v1/sys/unseal",
    "/v1/sys/leader",
    "/v1/sys/openapi.json",
    "/v1/auth/{mount}/login",
    "/v1/auth/{mount}/oidc/auth_url",
    "/v1/auth/{mount}/oidc/callback",
];

/// Public routes that still refuse bad input (a login): they keep the client-error answers.
const PUBLIC_WITH_INPUT: &[&str] = &[
    "/v1/sys/init",
    "/v1/sys/unseal",
    "/v1/auth/{mount}/login",
    "/v1/auth/{mount}/oidc/auth_url",
    "/v1/auth/{mount}/oidc/callback",
];

impl Modify for VaultConventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "vault_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Vault-Token",
                "a token (`Authorization: Bearer <token>` works too)",
            ))),
        );
        doc.security = Some(vec![SecurityRequirement::new(
            "vault_token",
            Vec::<String>::new(),
        )]);
        for (status, description) in ERROR_STATUSES {
            components
                .responses
                .insert(status.to_string(), RefOr::T(error_response(description)));
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let public = PUBLIC.contains(&path.as_str());
            let takes_input = PUBLIC_WITH_INPUT.contains(&path.as_str());
            let methods = [
                ("get", &mut item.get),
                ("head", &mut item.head),
                ("post", &mut item.post),
                ("put", &mut item.put),
                ("delete", &mut item.delete),
            ];
            for (method, operation) in methods {
                if let Some(op) = operation.as_mut() {
                    conventions(op, method, public, takes_input);
                }
            }
        }
    }
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

fn conventions(op: &mut Operation, method: &str, public: bool, takes_input: bool) {
    // `method(post, put)` shares one operation; ids must be unique per method.
    if let Some(id) = op.operation_id.as_mut() {
        *id = format!("{method}_{id}");
    }
    if public {
        op.security = Some(vec![SecurityRequirement::default()]);
    }
    for (status, _) in ERROR_STATUSES {
        let kept = matches!(*status, "503" | "405" | "429")
            || (takes_input && matches!(*status, "400" | "403" | "404" | "413"));
        if public && !kept {
            continue;
        }
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{status}"))));
    }
}

/// Every route the router serves must be in the document, and the reverse; checked by a
/// unit test so a new route cannot be added without its description.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// `docs/openapi.json` is the generated document, byte for byte.
    #[test]
    fn committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        let generated = document_json();
        if std::env::var_os("IAMLEASE_WRITE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("write docs/openapi.json");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is out of date; regenerate it with \
             `cargo run -- openapi > docs/openapi.json` (or IAMLEASE_WRITE_OPENAPI=1 cargo test --lib openapi)"
        );
    }

    #[test]
    fn every_path_is_documented_once_with_unique_operation_ids() {
        let doc = document();
        let mut ids = BTreeMap::new();
        for (path, item) in &doc.paths.paths {
            for op in [&item.get, &item.head, &item.post, &item.put, &item.delete]
                .into_iter()
                .flatten()
            {
                let id = op.operation_id.clone().expect("every operation has an id");
                assert!(ids.insert(id.clone(), path.clone()).is_none(), "{id} twice");
            }
        }
        // The document and the route table (`routes.rs`) name the same paths and methods.
        let documented: std::collections::BTreeSet<(String, &str)> = doc
            .paths
            .paths
            .iter()
            .flat_map(|(path, item)| {
                [
                    ("GET", item.get.is_some()),
                    ("HEAD", item.head.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter(|(_, on)| *on)
                .map(move |(m, _)| (path.clone(), m))
            })
            .collect();
        let routed: std::collections::BTreeSet<(String, &str)> =
            super::super::routes::Routes::get()
                .iter()
                .flat_map(|r| {
                    let path = r
                        .path
                        .replace("{*prefix}", "{prefix}")
                        .replace("{*lease_id}", "{lease_id}")
                        .trim_end_matches('/')
                        .to_owned();
                    r.endpoints
                        .iter()
                        .map(|(verb, _)| verb.as_str())
                        // LIST is documented as GET ?list=true.
                        .filter(|v| *v != "LIST")
                        .map(move |v| (path.clone(), v))
                        .collect::<Vec<_>>()
                })
                .collect();
        assert_eq!(
            documented.difference(&routed).collect::<Vec<_>>(),
            Vec::<&(String, &str)>::new(),
            "documented in openapi/paths.rs but not in the route table"
        );
        assert_eq!(
            routed.difference(&documented).collect::<Vec<_>>(),
            Vec::<&(String, &str)>::new(),
            "in the route table but not documented in openapi/paths.rs"
        );
        // The public routes are the table's.
        for r in super::super::routes::Routes::get().iter() {
            let public = r.access == super::super::routes::Access::Public;
            assert_eq!(PUBLIC.contains(&r.path), public, "{} public?", r.path);
        }
    }
}
