//! The OpenAPI 3 document of the HTTP API: one `#[utoipa::path]` per route of `router.rs`
//! (on description-only functions here, so the handlers stay as they are), the Vault wire
//! shapes as schemas, and the error statuses every route can answer.
//!
//! Served at `GET /v1/sys/openapi.json` and committed as `docs/openapi.json`
//! (regenerate with `cargo run -- openapi > docs/openapi.json`).

#![allow(dead_code)] // the path functions exist only to carry their annotations

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::vault::json_response;

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
        health, health_head, openapi_json, list_mounts, read_mount, enable_mount, disable_mount, metrics,
        audit_hash, audit_hash_device, lookup_lease, list_leases_root, list_leases, renew_lease,
        renew_lease_by_path, revoke_lease, revoke_lease_by_path, revoke_prefix, revoke_force,
        token_lookup_self, token_create, token_lookup, token_lookup_accessor, token_renew_self,
        token_revoke_self, token_revoke_accessor, list_policies, read_policy, write_policy,
        delete_policy, list_policies_legacy, read_policy_legacy, write_policy_legacy,
        delete_policy_legacy, read_root_config, write_root_config, rotate_root, setup_plan,
        config_check, read_lease_config, write_lease_config, list_roles, read_role, write_role,
        delete_role, issue_creds, issue_sts, sweep
    ),
    components(schemas(
        Envelope, ListEnvelope, ErrorBody, Health, MountBody, MountConfig, Duration, StringList,
        Tags, RootConfigBody, LeaseConfigBody, RoleBody, CredentialType, CredsBody, LeaseIdBody,
        RenewBody, RevokeBody, TokenCreateBody, TokenLookupBody, AccessorBody, PolicyBody,
        AuditHashBody, SweepBody
    )),
    modifiers(&VaultConventions),
    tags(
        (name = "sys", description = "health, mounts, leases, metrics, audit"),
        (name = "auth", description = "tokens and ACL policies"),
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
const PUBLIC: &[&str] = &["/v1/sys/health", "/v1/sys/openapi.json"];

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
            let methods = [
                ("get", &mut item.get),
                ("head", &mut item.head),
                ("post", &mut item.post),
                ("put", &mut item.put),
                ("delete", &mut item.delete),
            ];
            for (method, operation) in methods {
                if let Some(op) = operation.as_mut() {
                    conventions(op, method, public);
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

fn conventions(op: &mut Operation, method: &str, public: bool) {
    // `method(post, put)` shares one operation; ids must be unique per method.
    if let Some(id) = op.operation_id.as_mut() {
        *id = format!("{method}_{id}");
    }
    if public {
        op.security = Some(vec![SecurityRequirement::default()]);
    }
    for (status, _) in ERROR_STATUSES {
        if public && !matches!(*status, "503" | "405" | "429") {
            continue;
        }
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{status}"))));
    }
}

// ---- schemas ----

/// Vault's response envelope. `data` holds the answer; credential and renewal answers fill
/// `lease_id`, `renewable` and `lease_duration`; token answers fill `auth`.
#[derive(ToSchema)]
struct Envelope {
    request_id: String,
    lease_id: String,
    renewable: bool,
    lease_duration: i64,
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
    #[schema(value_type = Option<Object>)]
    wrap_info: Option<Value>,
    warnings: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    auth: Option<Value>,
    mount_type: Option<String>,
}

/// The envelope of a LIST: `data.keys`.
#[derive(ToSchema)]
struct ListEnvelope {
    request_id: String,
    lease_id: String,
    renewable: bool,
    lease_duration: i64,
    data: ListData,
    warnings: Option<Vec<String>>,
}

#[derive(ToSchema)]
struct ListData {
    keys: Vec<String>,
}

/// Every error: `{"errors": ["a reason a person can act on"]}` (empty for an empty LIST).
#[derive(ToSchema)]
struct ErrorBody {
    errors: Vec<String>,
}

/// `sys/health`, unwrapped as in Vault.
#[derive(ToSchema)]
struct Health {
    initialized: bool,
    sealed: bool,
    standby: bool,
    performance_standby: bool,
    /// Unix seconds.
    server_time_utc: i64,
    version: String,
    cluster_name: String,
}

/// Seconds, or a Go-style duration (`"1h"`, `"90m"`, `"1h30m"`).
struct Duration;

impl PartialSchema for Duration {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .item(ObjectBuilder::new().schema_type(Type::String))
            .description(Some("seconds, or a Go-style duration such as \"1h30m\""))
            .into()
    }
}
impl ToSchema for Duration {}

/// A JSON array of strings, or one comma-separated string.
struct StringList;

impl PartialSchema for StringList {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)))
            .item(ObjectBuilder::new().schema_type(Type::String))
            .description(Some("a JSON array, or a comma-separated string"))
            .into()
    }
}
impl ToSchema for StringList {}

/// A map of strings, or `["key=value", …]`.
struct Tags;

impl PartialSchema for Tags {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String))),
            )
            .item(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)))
            .description(Some("a map, or a list of \"key=value\" strings"))
            .into()
    }
}
impl ToSchema for Tags {}

/// `sys/mounts/{path}`: only `aws` engines exist.
#[derive(ToSchema)]
struct MountBody {
    #[schema(rename = "type")]
    kind: String,
    description: Option<String>,
    config: Option<MountConfig>,
}

#[derive(ToSchema)]
struct MountConfig {
    #[schema(value_type = Option<Duration>)]
    default_lease_ttl: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    max_lease_ttl: Option<Value>,
}

/// How the mount reaches AWS. `secret_key` is sealed at rest and never read back.
#[derive(ToSchema)]
struct RootConfigBody {
    access_key: Option<String>,
    secret_key: Option<String>,
    region: Option<String>,
    iam_endpoint: Option<String>,
    sts_endpoint: Option<String>,
    max_retries: Option<i64>,
    role_arn: Option<String>,
    external_id: Option<String>,
}

#[derive(ToSchema)]
struct LeaseConfigBody {
    #[schema(value_type = Option<Duration>)]
    lease: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    lease_max: Option<Value>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum CredentialType {
    IamUser,
    AssumedRole,
    FederationToken,
    SessionToken,
}

/// A role. A write merges with the stored role; `null` means "not set".
#[derive(ToSchema)]
struct RoleBody {
    credential_type: Option<CredentialType>,
    #[schema(value_type = Option<StringList>)]
    policy_arns: Option<Value>,
    policy_document: Option<String>,
    #[schema(value_type = Option<StringList>)]
    iam_groups: Option<Value>,
    #[schema(value_type = Option<Tags>)]
    iam_tags: Option<Value>,
    user_path: Option<String>,
    permissions_boundary_arn: Option<String>,
    username_template: Option<String>,
    #[schema(value_type = Option<Duration>)]
    default_ttl: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    max_ttl: Option<Value>,
    #[schema(value_type = Option<StringList>)]
    role_arns: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    default_sts_ttl: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    max_sts_ttl: Option<Value>,
    #[schema(value_type = Option<Tags>)]
    session_tags: Option<Value>,
    external_id: Option<String>,
    mfa_serial_number: Option<String>,
    #[schema(value_type = Option<Tags>)]
    key_map: Option<Value>,
    max_leases: Option<i64>,
}

/// A credential request; every field is optional.
#[derive(ToSchema)]
struct CredsBody {
    #[schema(value_type = Option<Duration>)]
    ttl: Option<Value>,
    role_arn: Option<String>,
    role_session_name: Option<String>,
    mfa_code: Option<String>,
    wait_ready: Option<bool>,
}

#[derive(ToSchema)]
struct LeaseIdBody {
    lease_id: String,
}

#[derive(ToSchema)]
struct RenewBody {
    lease_id: Option<String>,
    #[schema(value_type = Option<Duration>)]
    increment: Option<Value>,
}

#[derive(ToSchema)]
struct RevokeBody {
    lease_id: Option<String>,
    /// Wait for the AWS clean-up (default true).
    sync: Option<bool>,
}

#[derive(ToSchema)]
struct TokenCreateBody {
    #[schema(value_type = Option<StringList>)]
    policies: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    ttl: Option<Value>,
    display_name: Option<String>,
}

#[derive(ToSchema)]
struct TokenLookupBody {
    token: String,
}

#[derive(ToSchema)]
struct AccessorBody {
    accessor: String,
}

/// Vault's HCL (or its JSON form).
#[derive(ToSchema)]
struct PolicyBody {
    policy: String,
}

#[derive(ToSchema)]
struct AuditHashBody {
    input: String,
}

#[derive(ToSchema)]
struct SweepBody {
    /// List what would be deleted without deleting it.
    dry_run: Option<bool>,
}

// ---- paths: sys ----

/// Health; answers without a token (HEAD too).
#[utoipa::path(get, path = "/v1/sys/health", tag = "sys",
    responses((status = 200, description = "ready", body = Health),
              (status = 503, description = "the store is unreachable", body = Health)))]
fn health() {}

/// Health for load balancers: the status alone, no body.
#[utoipa::path(head, path = "/v1/sys/health", tag = "sys", operation_id = "health_head",
    responses((status = 200, description = "ready"),
              (status = 503, description = "the store is unreachable")))]
fn health_head() {}

/// This document; answers without a token.
#[utoipa::path(get, path = "/v1/sys/openapi.json", tag = "sys",
    responses((status = 200, description = "the OpenAPI document", body = Object)))]
fn openapi_json() {}

/// Every mount, keyed `"{path}/"`, both under `data` and at the top level.
#[utoipa::path(get, path = "/v1/sys/mounts", tag = "sys",
    responses((status = 200, description = "mounts", body = Envelope)))]
fn list_mounts() {}

#[utoipa::path(get, path = "/v1/sys/mounts/{path}", tag = "sys",
    params(("path" = String, Path, description = "mount path")),
    responses((status = 200, description = "the mount", body = Envelope)))]
fn read_mount() {}

/// Mounts an `aws` engine (needs `sudo`).
#[utoipa::path(method(post, put), path = "/v1/sys/mounts/{path}", tag = "sys",
    params(("path" = String, Path, description = "mount path, one segment")),
    request_body = MountBody,
    responses((status = 204, description = "mounted"),
              (status = 200, description = "mounted, with warnings", body = Envelope)))]
fn enable_mount() {}

/// Revokes every lease of the mount, then removes it (needs `sudo`).
#[utoipa::path(delete, path = "/v1/sys/mounts/{path}", tag = "sys",
    params(("path" = String, Path, description = "mount path")),
    responses((status = 204, description = "unmounted")))]
fn disable_mount() {}

#[utoipa::path(get, path = "/v1/sys/metrics", tag = "sys",
    params(("format" = Option<String>, Query, description = "`prometheus`")),
    responses((status = 200, description = "Prometheus text format", body = String,
               content_type = "text/plain; version=0.0.4")))]
fn metrics() {}

/// HMAC-SHA256 of a value under the audit key, as the audit log writes it.
#[utoipa::path(method(post, put), path = "/v1/sys/audit-hash", tag = "sys",
    request_body = AuditHashBody,
    responses((status = 200, description = "`data.hash`", body = Envelope)))]
fn audit_hash() {}

#[utoipa::path(method(post, put), path = "/v1/sys/audit-hash/{device}", tag = "sys",
    params(("device" = String, Path, description = "audit device (any; there is one)")),
    request_body = AuditHashBody,
    responses((status = 200, description = "`data.hash`", body = Envelope)))]
fn audit_hash_device() {}

#[utoipa::path(method(post, put), path = "/v1/sys/leases/lookup", tag = "sys",
    request_body = LeaseIdBody,
    responses((status = 200, description = "`data`: id, issue_time, expire_time, last_renewal, renewable, ttl", body = Envelope)))]
fn lookup_lease() {}

#[utoipa::path(get, path = "/v1/sys/leases/lookup", tag = "sys",
    params(("list" = bool, Query, description = "must be true (or use LIST)"),
           ("state" = Option<String>, Query, description = "only leases in this state, e.g. `failed`")),
    responses((status = 200, description = "mount prefixes", body = ListEnvelope)))]
fn list_leases_root() {}

#[utoipa::path(get, path = "/v1/sys/leases/lookup/{prefix}", tag = "sys",
    params(("prefix" = String, Path, description = "lease id prefix, e.g. `aws/creds/dev/`"),
           ("list" = bool, Query, description = "must be true (or use LIST)"),
           ("state" = Option<String>, Query, description = "only leases in this state, e.g. `failed`")),
    responses((status = 200, description = "keys under the prefix", body = ListEnvelope)))]
fn list_leases() {}

#[utoipa::path(method(post, put), path = "/v1/sys/leases/renew", tag = "sys",
    request_body = RenewBody,
    responses((status = 200, description = "the lease with its new `lease_duration`", body = Envelope)))]
fn renew_lease() {}

#[utoipa::path(method(post, put), path = "/v1/sys/leases/renew/{lease_id}", tag = "sys",
    params(("lease_id" = String, Path, description = "lease id")),
    request_body(content = RenewBody, description = "optional"),
    responses((status = 200, description = "the lease with its new `lease_duration`", body = Envelope)))]
fn renew_lease_by_path() {}

/// Revokes (deleting the IAM user first); an unknown lease is already revoked.
#[utoipa::path(method(post, put), path = "/v1/sys/leases/revoke", tag = "sys",
    request_body = RevokeBody,
    responses((status = 204, description = "revoked"),
              (status = 202, description = "`sync: false`: revocation queued")))]
fn revoke_lease() {}

#[utoipa::path(method(post, put), path = "/v1/sys/leases/revoke/{lease_id}", tag = "sys",
    params(("lease_id" = String, Path, description = "lease id")),
    request_body(content = RevokeBody, description = "optional"),
    responses((status = 204, description = "revoked"),
              (status = 202, description = "`sync: false`: revocation queued")))]
fn revoke_lease_by_path() {}

/// Revokes every lease under a prefix (needs `sudo`).
#[utoipa::path(method(post, put), path = "/v1/sys/leases/revoke-prefix/{prefix}", tag = "sys",
    params(("prefix" = String, Path, description = "lease id prefix (a directory)")),
    responses((status = 204, description = "revoked")))]
fn revoke_prefix() {}

/// Forgets leases without AWS clean-up: the operator's escape hatch (needs `sudo`, audited).
#[utoipa::path(method(post, put), path = "/v1/sys/leases/revoke-force/{prefix}", tag = "sys",
    params(("prefix" = String, Path, description = "lease id prefix (a directory)")),
    responses((status = 204, description = "forgotten")))]
fn revoke_force() {}

// ---- paths: auth ----

#[utoipa::path(method(get, post), path = "/v1/auth/token/lookup-self", tag = "auth",
    responses((status = 200, description = "the calling token: accessor, policies, ttl, display_name", body = Envelope)))]
fn token_lookup_self() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/create", tag = "auth",
    request_body = TokenCreateBody,
    responses((status = 200, description = "`auth`: client_token, accessor, policies, lease_duration", body = Envelope)))]
fn token_create() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/lookup", tag = "auth",
    request_body = TokenLookupBody,
    responses((status = 200, description = "the token", body = Envelope)))]
fn token_lookup() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/lookup-accessor", tag = "auth",
    request_body = AccessorBody,
    responses((status = 200, description = "the token", body = Envelope)))]
fn token_lookup_accessor() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/renew-self", tag = "auth",
    request_body(content = TokenCreateBody, description = "optional `increment`"),
    responses((status = 200, description = "`auth` with the new lease_duration", body = Envelope)))]
fn token_renew_self() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/revoke-self", tag = "auth",
    responses((status = 204, description = "revoked")))]
fn token_revoke_self() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/revoke-accessor", tag = "auth",
    request_body = AccessorBody,
    responses((status = 204, description = "revoked")))]
fn token_revoke_accessor() {}

#[utoipa::path(get, path = "/v1/sys/policies/acl", tag = "auth",
    params(("list" = Option<bool>, Query, description = "LIST form")),
    responses((status = 200, description = "policy names", body = Envelope)))]
fn list_policies() {}

#[utoipa::path(get, path = "/v1/sys/policies/acl/{name}", tag = "auth",
    params(("name" = String, Path, description = "policy name")),
    responses((status = 200, description = "`name`, `policy`", body = Envelope)))]
fn read_policy() {}

#[utoipa::path(method(post, put), path = "/v1/sys/policies/acl/{name}", tag = "auth",
    params(("name" = String, Path, description = "policy name")),
    request_body = PolicyBody,
    responses((status = 204, description = "written")))]
fn write_policy() {}

#[utoipa::path(delete, path = "/v1/sys/policies/acl/{name}", tag = "auth",
    params(("name" = String, Path, description = "policy name")),
    responses((status = 204, description = "deleted")))]
fn delete_policy() {}

/// Vault's older policy path, the same as `sys/policies/acl`.
#[utoipa::path(get, path = "/v1/sys/policy", tag = "auth",
    responses((status = 200, description = "policy names", body = Envelope)))]
fn list_policies_legacy() {}

#[utoipa::path(get, path = "/v1/sys/policy/{name}", tag = "auth",
    params(("name" = String, Path, description = "policy name")),
    responses((status = 200, description = "`name`, `rules`", body = Envelope)))]
fn read_policy_legacy() {}

#[utoipa::path(method(post, put), path = "/v1/sys/policy/{name}", tag = "auth",
    params(("name" = String, Path, description = "policy name")),
    request_body = PolicyBody,
    responses((status = 204, description = "written")))]
fn write_policy_legacy() {}

#[utoipa::path(delete, path = "/v1/sys/policy/{name}", tag = "auth",
    params(("name" = String, Path, description = "policy name")),
    responses((status = 204, description = "deleted")))]
fn delete_policy_legacy() {}

// ---- paths: an aws mount ----

#[utoipa::path(get, path = "/v1/{mount}/config/root", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    responses((status = 200, description = "the root config, without `secret_key`", body = Envelope)))]
fn read_root_config() {}

#[utoipa::path(method(post, put), path = "/v1/{mount}/config/root", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    request_body = RootConfigBody,
    responses((status = 204, description = "written"),
              (status = 200, description = "written, with warnings", body = Envelope)))]
fn write_root_config() {}

/// A new access key for the stored root user; the old one is deleted in AWS.
#[utoipa::path(method(post, put), path = "/v1/{mount}/config/rotate-root", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    responses((status = 200, description = "`data.access_key`", body = Envelope)))]
fn rotate_root() {}

/// What the server needs in AWS: the least-privilege policy and trust policy.
#[utoipa::path(get, path = "/v1/{mount}/setup", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    responses((status = 200, description = "the setup plan", body = Envelope)))]
fn setup_plan() {}

/// `sts:GetCallerIdentity` with the mount's root config.
#[utoipa::path(method(post, put), path = "/v1/{mount}/config/check", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    responses((status = 200, description = "`data.arn`", body = Envelope)))]
fn config_check() {}

#[utoipa::path(get, path = "/v1/{mount}/config/lease", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    responses((status = 200, description = "`lease`, `lease_max`, Go-style", body = Envelope)))]
fn read_lease_config() {}

#[utoipa::path(method(post, put), path = "/v1/{mount}/config/lease", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    request_body = LeaseConfigBody,
    responses((status = 204, description = "written"),
              (status = 200, description = "written, with warnings", body = Envelope)))]
fn write_lease_config() {}

#[utoipa::path(get, path = "/v1/{mount}/roles", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("list" = bool, Query, description = "must be true (or use LIST)")),
    responses((status = 200, description = "role names", body = ListEnvelope)))]
fn list_roles() {}

#[utoipa::path(get, path = "/v1/{mount}/roles/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "role name", example = "dev")),
    responses((status = 200, description = "the role; durations in seconds", body = Envelope)))]
fn read_role() {}

#[utoipa::path(method(post, put), path = "/v1/{mount}/roles/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "role name", example = "dev")),
    request_body = RoleBody,
    responses((status = 204, description = "written"),
              (status = 200, description = "written, with warnings", body = Envelope)))]
fn write_role() {}

#[utoipa::path(delete, path = "/v1/{mount}/roles/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "role name", example = "dev")),
    responses((status = 204, description = "deleted")))]
fn delete_role() {}

/// Issues a credential: top-level `lease_id`, `lease_duration`, `renewable`; `data` holds
/// `access_key`, `secret_key`, `security_token`, `arn`, `region` (and `username` for IAM users).
#[utoipa::path(method(get, post, put), path = "/v1/{mount}/creds/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "role name", example = "dev")),
    request_body(content = CredsBody, description = "optional"),
    responses((status = 200, description = "the credential, shown once", body = Envelope)))]
fn issue_creds() {}

#[utoipa::path(method(post, put), path = "/v1/{mount}/sts/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "role name", example = "dev")),
    request_body(content = CredsBody, description = "optional"),
    responses((status = 200, description = "STS credentials, not renewable", body = Envelope)))]
fn issue_sts() {}

/// Finds (and unless `dry_run`, deletes) IAM users with our tags but no live lease (needs `sudo`).
#[utoipa::path(method(post, put), path = "/v1/{mount}/sweep", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    request_body(content = SweepBody, description = "optional"),
    responses((status = 200, description = "the sweep report", body = Envelope)))]
fn sweep() {}

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
            "documented in openapi.rs but not in the route table"
        );
        assert_eq!(
            routed.difference(&documented).collect::<Vec<_>>(),
            Vec::<&(String, &str)>::new(),
            "in the route table but not documented in openapi.rs"
        );
        // The public routes are the table's.
        for r in super::super::routes::Routes::get().iter() {
            let public = r.access == super::super::routes::Access::Public;
            assert_eq!(PUBLIC.contains(&r.path), public, "{} public?", r.path);
        }
    }
}
