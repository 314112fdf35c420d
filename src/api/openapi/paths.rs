//! One description-only function per route, carrying its `#[utoipa::path]` annotation, so the
//! handlers stay as they are.

#![allow(dead_code)] // the path functions exist only to carry their annotations

use super::schemas::*;

// ---- paths: sys ----

/// Health; answers without a token (HEAD too). Vault's `activecode` and `uninitcode` query
/// parameters choose the status of an initialised or an uninitialised server.
#[utoipa::path(get, path = "/v1/sys/health", tag = "sys",
    responses((status = 200, description = "ready", body = Health),
              (status = 501, description = "not initialised yet (`await_init`): `PUT sys/init` first", body = Health),
              (status = 503, description = "the store is unreachable", body = Health)))]
pub(super) fn health() {}

/// Health for load balancers: the status alone, no body.
#[utoipa::path(head, path = "/v1/sys/health", tag = "sys", operation_id = "health_head",
    responses((status = 200, description = "ready"),
              (status = 501, description = "not initialised yet (`await_init`)"),
              (status = 503, description = "the store is unreachable")))]
pub(super) fn health_head() {}

/// Vault's seal status; iamlease is never sealed. Answers without a token.
#[utoipa::path(get, path = "/v1/sys/seal-status", tag = "sys",
    responses((status = 200, description = "`sealed: false`, `type`, `t`, `n`, `version`, `cluster_id`", body = Object)))]
pub(super) fn seal_status() {}

/// Whether the root token exists yet (false only on an empty store started with
/// `await_init`). Answers without a token.
#[utoipa::path(get, path = "/v1/sys/init", tag = "sys",
    responses((status = 200, description = "`initialized`", body = Object)))]
pub(super) fn init_status() {}

/// Makes the root token of a server started with `await_init` on an empty store, answered this
/// once; `keys` is empty (no unseal keys) and share parameters are ignored. No token needed.
#[utoipa::path(method(post, put), path = "/v1/sys/init", tag = "sys",
    request_body(content = Object, description = "optional; Vault's share parameters are ignored",
        example = json!({"secret_shares": 1, "secret_threshold": 1})),
    responses((status = 200, description = "`root_token`, `keys`, `keys_base64`", body = Object)))]
pub(super) fn init() {}

/// Never sealed: any key (or none) gets the seal status back. No token needed.
#[utoipa::path(method(post, put), path = "/v1/sys/unseal", tag = "sys",
    request_body(content = Object, description = "optional `key`, `reset`, `migrate`; ignored"),
    responses((status = 200, description = "the seal status (`sealed: false`)", body = Object)))]
pub(super) fn unseal() {}

/// Vault's leader status: no HA election, every replica is its own active node. Answers
/// without a token.
#[utoipa::path(get, path = "/v1/sys/leader", tag = "sys",
    responses((status = 200, description = "`ha_enabled: false`, `is_self: true`", body = Object)))]
pub(super) fn leader() {}

/// Every replica on this store (`nodes`, under `data` and at the top level): host, last
/// heartbeat (`last_echo`), whether it is alive (`active_node`), and which one answered.
#[utoipa::path(get, path = "/v1/sys/ha-status", tag = "sys",
    responses((status = 200, description = "the replicas", body = Envelope)))]
pub(super) fn ha_status() {}

/// The auth methods, keyed `"{path}/"` (`token/` always), under `data` and at the top level.
#[utoipa::path(get, path = "/v1/sys/auth", tag = "sys",
    responses((status = 200, description = "auth methods", body = Envelope)))]
pub(super) fn list_auth() {}

/// What the calling token may do on each of `paths` (`["root"]`, or `["deny"]` for nothing).
#[utoipa::path(method(post, put), path = "/v1/sys/capabilities-self", tag = "sys",
    request_body = CapabilitiesBody,
    responses((status = 200, description = "each path's capabilities, and `capabilities` for the first", body = Envelope)))]
pub(super) fn capabilities_self() {}

/// What the token in `token` may do on each of `paths`.
#[utoipa::path(method(post, put), path = "/v1/sys/capabilities", tag = "sys",
    request_body(content = CapabilitiesBody,
        example = json!({"token": "s.ExampleToken0000000000", "paths": ["aws/creds/dev"]})),
    responses((status = 200, description = "each path's capabilities", body = Envelope)))]
pub(super) fn capabilities() {}

/// What the token with `accessor` may do on each of `paths`.
#[utoipa::path(method(post, put), path = "/v1/sys/capabilities-accessor", tag = "sys",
    request_body(content = CapabilitiesBody,
        example = json!({"accessor": "ExampleAccessor000000000", "paths": ["aws/creds/dev"]})),
    responses((status = 200, description = "each path's capabilities", body = Envelope)))]
pub(super) fn capabilities_accessor() {}

/// This document; answers without a token.
#[utoipa::path(get, path = "/v1/sys/openapi.json", tag = "sys",
    responses((status = 200, description = "the OpenAPI document", body = Object)))]
pub(super) fn openapi_json() {}

/// Every mount, keyed `"{path}/"`, both under `data` and at the top level.
#[utoipa::path(get, path = "/v1/sys/mounts", tag = "sys",
    responses((status = 200, description = "mounts", body = Envelope)))]
pub(super) fn list_mounts() {}

#[utoipa::path(get, path = "/v1/sys/mounts/{path}", tag = "sys",
    params(("path" = String, Path, description = "mount path", example = "aws")),
    responses((status = 200, description = "the mount", body = Envelope)))]
pub(super) fn read_mount() {}

#[utoipa::path(get, path = "/v1/sys/mounts/{path}/tune", tag = "sys",
    params(("path" = String, Path, description = "mount path", example = "aws")),
    responses((status = 200, description = "description, default_lease_ttl, max_lease_ttl, force_no_cache", body = Envelope)))]
pub(super) fn read_mount_tune() {}

/// Tunes a mount's description and TTLs (needs `sudo`).
#[utoipa::path(method(post, put), path = "/v1/sys/mounts/{path}/tune", tag = "sys",
    params(("path" = String, Path, description = "mount path", example = "aws")),
    request_body(content = MountTuneBody, example = json!({"description": "AWS credentials"})),
    responses((status = 204, description = "tuned")))]
pub(super) fn tune_mount() {}

/// Mounts an `aws` engine (needs `sudo`).
#[utoipa::path(method(post, put), path = "/v1/sys/mounts/{path}", tag = "sys",
    params(("path" = String, Path, description = "mount path, one segment", example = "aws-example")),
    request_body(content = MountBody,
        example = json!({"type": "aws", "description": "AWS credentials", "config": {"max_lease_ttl": "24h"}})),
    responses((status = 204, description = "mounted"),
              (status = 200, description = "mounted, with warnings", body = Envelope)))]
pub(super) fn enable_mount() {}

/// Revokes every lease of the mount, then removes it (needs `sudo`).
#[utoipa::path(delete, path = "/v1/sys/mounts/{path}", tag = "sys",
    params(("path" = String, Path, description = "mount path")),
    responses((status = 204, description = "unmounted")))]
pub(super) fn disable_mount() {}

#[utoipa::path(get, path = "/v1/sys/metrics", tag = "sys",
    params(("format" = Option<String>, Query, description = "`prometheus`")),
    responses((status = 200, description = "Prometheus text format", body = String,
               content_type = "text/plain; version=0.0.4")))]
pub(super) fn metrics() {}

/// HMAC-SHA256 of a value under the audit key, as the audit log writes it.
#[utoipa::path(method(post, put), path = "/v1/sys/audit-hash", tag = "sys",
    request_body = AuditHashBody,
    responses((status = 200, description = "`data.hash`", body = Envelope)))]
pub(super) fn audit_hash() {}

#[utoipa::path(method(post, put), path = "/v1/sys/audit-hash/{device}", tag = "sys",
    params(("device" = String, Path, description = "audit device (any; there is one)")),
    request_body = AuditHashBody,
    responses((status = 200, description = "`data.hash`", body = Envelope)))]
pub(super) fn audit_hash_device() {}

#[utoipa::path(method(post, put), path = "/v1/sys/leases/lookup", tag = "sys",
    request_body(content = LeaseIdBody, example = json!({"lease_id": "aws/creds/dev/ExampleLeaseId00000000"})),
    responses((status = 200, description = "`data`: id, issue_time, expire_time, last_renewal, renewable, ttl", body = Envelope)))]
pub(super) fn lookup_lease() {}

#[utoipa::path(get, path = "/v1/sys/leases/lookup", tag = "sys",
    params(("list" = bool, Query, description = "must be true (or use LIST)", example = true),
           ("state" = Option<String>, Query, description = "only leases in this state, e.g. `failed`")),
    responses((status = 200, description = "mount prefixes", body = ListEnvelope)))]
pub(super) fn list_leases_root() {}

#[utoipa::path(get, path = "/v1/sys/leases/lookup/{prefix}", tag = "sys",
    params(("prefix" = String, Path, description = "lease id prefix, e.g. `aws/creds/dev/`",
            example = "aws/creds/dev/"),
           ("list" = bool, Query, description = "must be true (or use LIST)", example = true),
           ("state" = Option<String>, Query, description = "only leases in this state, e.g. `failed`")),
    responses((status = 200, description = "keys under the prefix", body = ListEnvelope)))]
pub(super) fn list_leases() {}

#[utoipa::path(method(post, put), path = "/v1/sys/leases/renew", tag = "sys",
    request_body(content = RenewBody, example = json!({"lease_id": "aws/creds/dev/ExampleLeaseId00000000", "increment": "1h"})),
    responses((status = 200, description = "the lease with its new `lease_duration`", body = Envelope)))]
pub(super) fn renew_lease() {}

#[utoipa::path(method(post, put), path = "/v1/sys/leases/renew/{lease_id}", tag = "sys",
    params(("lease_id" = String, Path, description = "lease id", example = "aws/creds/dev/ExampleLeaseId00000000")),
    request_body(content = RenewBody, description = "optional", example = json!({"increment": "1h"})),
    responses((status = 200, description = "the lease with its new `lease_duration`", body = Envelope)))]
pub(super) fn renew_lease_by_path() {}

/// Revokes (deleting the IAM user first); an unknown lease is already revoked.
#[utoipa::path(method(post, put), path = "/v1/sys/leases/revoke", tag = "sys",
    request_body(content = RevokeBody, example = json!({"lease_id": "aws/creds/dev/ExampleLeaseId00000000"})),
    responses((status = 204, description = "revoked"),
              (status = 202, description = "`sync: false`: revocation queued")))]
pub(super) fn revoke_lease() {}

#[utoipa::path(method(post, put), path = "/v1/sys/leases/revoke/{lease_id}", tag = "sys",
    params(("lease_id" = String, Path, description = "lease id")),
    request_body(content = RevokeBody, description = "optional"),
    responses((status = 204, description = "revoked"),
              (status = 202, description = "`sync: false`: revocation queued")))]
pub(super) fn revoke_lease_by_path() {}

/// Vault's older form of `sys/leases/renew`.
#[utoipa::path(method(post, put), path = "/v1/sys/renew", tag = "sys",
    request_body(content = RenewBody, example = json!({"lease_id": "aws/creds/dev/ExampleLeaseId00000000", "increment": "1h"})),
    responses((status = 200, description = "the lease with its new `lease_duration`", body = Envelope)))]
pub(super) fn renew_legacy() {}

#[utoipa::path(method(post, put), path = "/v1/sys/renew/{lease_id}", tag = "sys",
    params(("lease_id" = String, Path, description = "lease id", example = "aws/creds/dev/ExampleLeaseId00000000")),
    request_body(content = RenewBody, description = "optional", example = json!({"increment": "1h"})),
    responses((status = 200, description = "the lease with its new `lease_duration`", body = Envelope)))]
pub(super) fn renew_legacy_by_path() {}

/// Vault's older form of `sys/leases/revoke`.
#[utoipa::path(method(post, put), path = "/v1/sys/revoke", tag = "sys",
    request_body(content = RevokeBody, example = json!({"lease_id": "aws/creds/dev/ExampleLeaseId00000000"})),
    responses((status = 204, description = "revoked (or already gone)"),
              (status = 202, description = "`sync: false`: revocation queued")))]
pub(super) fn revoke_legacy() {}

#[utoipa::path(method(post, put), path = "/v1/sys/revoke/{lease_id}", tag = "sys",
    params(("lease_id" = String, Path, description = "lease id")),
    request_body(content = RevokeBody, description = "optional"),
    responses((status = 204, description = "revoked (or already gone)"),
              (status = 202, description = "`sync: false`: revocation queued")))]
pub(super) fn revoke_legacy_by_path() {}

/// Vault's older form of `sys/leases/revoke-prefix` (needs `sudo`).
#[utoipa::path(method(post, put), path = "/v1/sys/revoke-prefix/{prefix}", tag = "sys",
    params(("prefix" = String, Path, description = "lease id prefix (a directory)")),
    responses((status = 204, description = "revoked")))]
pub(super) fn revoke_prefix_legacy() {}

/// Revokes every lease under a prefix (needs `sudo`).
#[utoipa::path(method(post, put), path = "/v1/sys/leases/revoke-prefix/{prefix}", tag = "sys",
    params(("prefix" = String, Path, description = "lease id prefix (a directory)")),
    responses((status = 204, description = "revoked")))]
pub(super) fn revoke_prefix() {}

/// Forgets leases without AWS clean-up: the operator's escape hatch (needs `sudo`, audited).
#[utoipa::path(method(post, put), path = "/v1/sys/leases/revoke-force/{prefix}", tag = "sys",
    params(("prefix" = String, Path, description = "lease id prefix (a directory)")),
    responses((status = 204, description = "forgotten")))]
pub(super) fn revoke_force() {}

// ---- paths: auth ----

#[utoipa::path(method(get, post), path = "/v1/auth/token/lookup-self", tag = "auth",
    responses((status = 200, description = "the calling token: accessor, policies, ttl, display_name", body = Envelope)))]
pub(super) fn token_lookup_self() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/create", tag = "auth",
    request_body = TokenCreateBody,
    responses((status = 200, description = "`auth`: client_token, accessor, policies, lease_duration", body = Envelope)))]
pub(super) fn token_create() {}

/// A token without a parent; its own path's policy decides who may (as in Vault).
#[utoipa::path(method(post, put), path = "/v1/auth/token/create-orphan", tag = "auth",
    request_body = TokenCreateBody,
    responses((status = 200, description = "`auth`: client_token, accessor, policies, lease_duration, orphan", body = Envelope)))]
pub(super) fn token_create_orphan() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/renew", tag = "auth",
    request_body(content = TokenRenewBody, example = json!({"token": "s.ExampleToken0000000000", "increment": "1h"})),
    responses((status = 200, description = "`auth` with the new lease_duration", body = Envelope)))]
pub(super) fn token_renew() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/renew-accessor", tag = "auth",
    request_body(content = AccessorBody, example = json!({"accessor": "ExampleAccessor000000000"})),
    responses((status = 200, description = "`auth` with the new lease_duration (`client_token` empty)", body = Envelope)))]
pub(super) fn token_renew_accessor() {}

/// Revokes a token, its descendants and every lease any of them holds.
#[utoipa::path(method(post, put), path = "/v1/auth/token/revoke", tag = "auth",
    request_body = TokenLookupBody,
    responses((status = 204, description = "revoked; the leases follow through the reaper")))]
pub(super) fn token_revoke() {}

/// Revokes a token and its leases; its children become orphans (needs `sudo`).
#[utoipa::path(method(post, put), path = "/v1/auth/token/revoke-orphan", tag = "auth",
    request_body(content = TokenLookupBody, example = json!({"token": "s.ExampleToken0000000000"})),
    responses((status = 204, description = "revoked")))]
pub(super) fn token_revoke_orphan() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/lookup", tag = "auth",
    request_body(content = TokenLookupBody, example = json!({"token": "s.ExampleToken0000000000"})),
    responses((status = 200, description = "the token", body = Envelope)))]
pub(super) fn token_lookup() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/lookup-accessor", tag = "auth",
    request_body(content = AccessorBody, example = json!({"accessor": "ExampleAccessor000000000"})),
    responses((status = 200, description = "the token", body = Envelope)))]
pub(super) fn token_lookup_accessor() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/renew-self", tag = "auth",
    request_body(content = TokenCreateBody, description = "optional `increment`"),
    responses((status = 200, description = "`auth` with the new lease_duration", body = Envelope)))]
pub(super) fn token_renew_self() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/revoke-self", tag = "auth",
    responses((status = 204, description = "revoked")))]
pub(super) fn token_revoke_self() {}

#[utoipa::path(method(post, put), path = "/v1/auth/token/revoke-accessor", tag = "auth",
    request_body = AccessorBody,
    responses((status = 204, description = "revoked")))]
pub(super) fn token_revoke_accessor() {}

#[utoipa::path(get, path = "/v1/sys/policies/acl", tag = "auth",
    params(("list" = Option<bool>, Query, description = "LIST form")),
    responses((status = 200, description = "policy names", body = Envelope)))]
pub(super) fn list_policies() {}

#[utoipa::path(get, path = "/v1/sys/policies/acl/{name}", tag = "auth",
    params(("name" = String, Path, description = "policy name", example = "dev-creds")),
    responses((status = 200, description = "`name`, `policy`", body = Envelope)))]
pub(super) fn read_policy() {}

#[utoipa::path(method(post, put), path = "/v1/sys/policies/acl/{name}", tag = "auth",
    params(("name" = String, Path, description = "policy name", example = "dev-creds")),
    request_body(content = PolicyBody, example = json!({"policy": "path \"aws/creds/dev\" {\n  capabilities = [\"read\"]\n}\n"})),
    responses((status = 204, description = "written")))]
pub(super) fn write_policy() {}

#[utoipa::path(delete, path = "/v1/sys/policies/acl/{name}", tag = "auth",
    params(("name" = String, Path, description = "policy name")),
    responses((status = 204, description = "deleted")))]
pub(super) fn delete_policy() {}

/// Vault's older policy path, the same as `sys/policies/acl`.
#[utoipa::path(get, path = "/v1/sys/policy", tag = "auth",
    responses((status = 200, description = "policy names", body = Envelope)))]
pub(super) fn list_policies_legacy() {}

#[utoipa::path(get, path = "/v1/sys/policy/{name}", tag = "auth",
    params(("name" = String, Path, description = "policy name", example = "dev-creds")),
    responses((status = 200, description = "`name`, `rules`", body = Envelope)))]
pub(super) fn read_policy_legacy() {}

#[utoipa::path(method(post, put), path = "/v1/sys/policy/{name}", tag = "auth",
    params(("name" = String, Path, description = "policy name", example = "dev-creds")),
    request_body(content = PolicyBody, example = json!({"policy": "path \"aws/creds/dev\" {\n  capabilities = [\"read\"]\n}\n"})),
    responses((status = 204, description = "written")))]
pub(super) fn write_policy_legacy() {}

#[utoipa::path(delete, path = "/v1/sys/policy/{name}", tag = "auth",
    params(("name" = String, Path, description = "policy name")),
    responses((status = 204, description = "deleted")))]
pub(super) fn delete_policy_legacy() {}

// ---- paths: an aws mount ----

#[utoipa::path(get, path = "/v1/{mount}/config/root", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    responses((status = 200, description = "the root config, without `secret_key`", body = Envelope)))]
pub(super) fn read_root_config() {}

#[utoipa::path(method(post, put), path = "/v1/{mount}/config/root", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    request_body = RootConfigBody,
    responses((status = 204, description = "written"),
              (status = 200, description = "written, with warnings", body = Envelope)))]
pub(super) fn write_root_config() {}

/// A new access key for the stored root user; the old one is deleted in AWS.
#[utoipa::path(method(post, put), path = "/v1/{mount}/config/rotate-root", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    responses((status = 200, description = "`data.access_key`", body = Envelope)))]
pub(super) fn rotate_root() {}

/// What the server needs in AWS: the least-privilege policy and trust policy.
#[utoipa::path(get, path = "/v1/{mount}/setup", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    responses((status = 200, description = "the setup plan", body = Envelope)))]
pub(super) fn setup_plan() {}

/// `sts:GetCallerIdentity` with the mount's root config.
#[utoipa::path(method(post, put), path = "/v1/{mount}/config/check", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    responses((status = 200, description = "`data.arn`", body = Envelope)))]
pub(super) fn config_check() {}

#[utoipa::path(get, path = "/v1/{mount}/config/lease", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    responses((status = 200, description = "`lease`, `lease_max`, Go-style", body = Envelope)))]
pub(super) fn read_lease_config() {}

#[utoipa::path(method(post, put), path = "/v1/{mount}/config/lease", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    request_body = LeaseConfigBody,
    responses((status = 204, description = "written"),
              (status = 200, description = "written, with warnings", body = Envelope)))]
pub(super) fn write_lease_config() {}

#[utoipa::path(get, path = "/v1/{mount}/roles", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("list" = bool, Query, description = "must be true (or use LIST)")),
    responses((status = 200, description = "role names", body = ListEnvelope)))]
pub(super) fn list_roles() {}

#[utoipa::path(get, path = "/v1/{mount}/roles/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "role name", example = "dev")),
    responses((status = 200, description = "the role; durations in seconds", body = Envelope)))]
pub(super) fn read_role() {}

#[utoipa::path(method(post, put), path = "/v1/{mount}/roles/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "role name", example = "dev")),
    request_body(content = RoleBody, example = json!({
        "credential_type": "iam_user",
        "policy_document": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:ListBucket\",\"Resource\":\"*\"}]}",
        "default_ttl": "1h", "max_ttl": "8h"})),
    responses((status = 204, description = "written"),
              (status = 200, description = "written, with warnings", body = Envelope)))]
pub(super) fn write_role() {}

#[utoipa::path(delete, path = "/v1/{mount}/roles/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "role name", example = "retired")),
    responses((status = 204, description = "deleted")))]
pub(super) fn delete_role() {}

#[utoipa::path(get, path = "/v1/{mount}/static-roles", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("list" = bool, Query, description = "must be true (or use LIST)")),
    responses((status = 200, description = "static role names", body = ListEnvelope)))]
pub(super) fn list_static_roles() {}

/// A static role: Vault's `name`, `username`, `rotation_period` (seconds),
/// `assume_role_arn`, `assume_role_session_name`, `external_id`; iamlease's `overlap`
/// (seconds), `access_key_id`, `previous_access_key_id`, `previous_key_expires`,
/// `last_rotation`, `next_rotation`, `rotating`, `failed_attempts`, `last_error`,
/// `last_error_time`. Never a secret.
#[utoipa::path(get, path = "/v1/{mount}/static-roles/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "static role name", example = "legacy-app")),
    responses((status = 200, description = "the static role", body = Envelope)))]
pub(super) fn read_static_role() {}

/// Creates (the user must exist and hold at most one key; the key is rotated at once) or
/// updates a static role (the new schedule applies at once; `username` cannot change).
#[utoipa::path(method(post, put), path = "/v1/{mount}/static-roles/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "static role name", example = "legacy-app")),
    request_body(content = StaticRoleBody, example = json!({
        "username": "legacy-app-user", "rotation_period": "24h", "overlap": "1h"})),
    responses((status = 200, description = "the static role as stored; a failed first rotation is a warning", body = Envelope)))]
pub(super) fn write_static_role() {}

/// Deletes the static role and the access keys it created.
#[utoipa::path(delete, path = "/v1/{mount}/static-roles/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "static role name", example = "retired")),
    responses((status = 204, description = "deleted")))]
pub(super) fn delete_static_role() {}

/// iamlease's extension: rotates now (a previous key still in its overlap is deleted first).
#[utoipa::path(method(post, put), path = "/v1/{mount}/static-roles/{name}/rotate", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "static role name", example = "legacy-app")),
    responses((status = 200, description = "the static role after the rotation", body = Envelope)))]
pub(super) fn rotate_static_role() {}

/// The current key: `access_key`, `secret_key` and `expiration` (the next rotation, RFC
/// 3339). Not leased. Served from the store, so it keeps working while a rotation fails.
#[utoipa::path(get, path = "/v1/{mount}/static-creds/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "static role name", example = "legacy-app")),
    responses((status = 200, description = "the current key", body = Envelope),
              (status = 502, description = "the role has no key of its own yet (its first rotation failed)", body = ErrorBody)))]
pub(super) fn static_creds() {}

/// Issues a credential: top-level `lease_id`, `lease_duration`, `renewable`; `data` holds
/// `access_key`, `secret_key`, `security_token`, `arn`, `region` (and `username` for IAM users).
#[utoipa::path(method(get, post, put), path = "/v1/{mount}/creds/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "role name", example = "dev")),
    request_body(content = CredsBody, description = "optional"),
    responses((status = 200, description = "the credential, shown once", body = Envelope)))]
pub(super) fn issue_creds() {}

#[utoipa::path(method(get, post, put), path = "/v1/{mount}/sts/{name}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("name" = String, Path, description = "role name", example = "federated")),
    request_body(content = CredsBody, description = "optional", example = json!({"ttl": "1h"})),
    responses((status = 200, description = "STS credentials, not renewable; `data.ttl` is their lifetime", body = Envelope)))]
pub(super) fn issue_sts() {}

/// iamlease's extension: the account's IAM users against their quota (`users`, `users_quota`,
/// `reserve_percent`, `available`, `checked_at`, `error`), read at most once a minute;
/// `iam_user` issues answer 503 once `available` is 0.
#[utoipa::path(get, path = "/v1/{mount}/iam-quota", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    responses((status = 200, description = "the quota reading", body = Envelope)))]
pub(super) fn iam_quota() {}

/// Who held an access key: `lease_id`, `role`, `credential_type`, `requester`,
/// `token_accessor`, `meta`, `issue_time`, `expire_time`, `revoke_time` and `state`, during
/// the lease and for `key_history_retention` after it.
#[utoipa::path(get, path = "/v1/{mount}/access-keys/{access_key_id}", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws"),
           ("access_key_id" = String, Path, description = "an access key id (AKIA… or ASIA…)",
            example = "AKIAIOSFODNN7EXAMPLE")),
    responses((status = 200, description = "the key's history", body = Envelope),
              (status = 404, description = "no record of the key at this mount", body = ErrorBody)))]
pub(super) fn whois() {}

/// Finds (and unless `dry_run`, deletes) IAM users with our tags but no live lease (needs `sudo`).
#[utoipa::path(method(post, put), path = "/v1/{mount}/sweep", tag = "aws",
    params(("mount" = String, Path, description = "mount path", example = "aws")),
    request_body(content = SweepBody, description = "optional"),
    responses((status = 200, description = "the sweep report", body = Envelope)))]
pub(super) fn sweep() {}

// ---- paths: auth methods ----

#[utoipa::path(get, path = "/v1/sys/auth/{path}", tag = "sys",
    params(("path" = String, Path, description = "auth mount path", example = "approle")),
    responses((status = 200, description = "the auth method", body = Envelope)))]
pub(super) fn read_auth() {}

/// Enables an auth method (needs `sudo`).
#[utoipa::path(method(post, put), path = "/v1/sys/auth/{path}", tag = "sys",
    params(("path" = String, Path, description = "auth mount path, one segment",
            example = "approle-example")),
    request_body(content = AuthMountBody, example = json!({"type": "approle", "description": "CI jobs"})),
    responses((status = 204, description = "enabled"),
              (status = 200, description = "enabled, with warnings", body = Envelope)))]
pub(super) fn enable_auth() {}

#[utoipa::path(get, path = "/v1/sys/auth/{path}/tune", tag = "sys",
    params(("path" = String, Path, description = "auth mount path", example = "approle")),
    responses((status = 200, description = "description, default_lease_ttl, max_lease_ttl, force_no_cache, token_type", body = Envelope)))]
pub(super) fn read_auth_tune() {}

/// Tunes an auth method's description and token TTLs (needs `sudo`).
#[utoipa::path(method(post, put), path = "/v1/sys/auth/{path}/tune", tag = "sys",
    params(("path" = String, Path, description = "auth mount path", example = "approle")),
    request_body(content = MountTuneBody, example = json!({"description": "CI jobs", "max_lease_ttl": "8h"})),
    responses((status = 204, description = "tuned"),
              (status = 200, description = "tuned, with warnings", body = Envelope)))]
pub(super) fn tune_auth() {}

/// Disables an auth method: every token it issued is revoked, and their leases (needs `sudo`).
#[utoipa::path(delete, path = "/v1/sys/auth/{path}", tag = "sys",
    params(("path" = String, Path, description = "auth mount path")),
    responses((status = 204, description = "disabled")))]
pub(super) fn disable_auth() {}

/// Logs in (no token): AppRole takes `role_id` and `secret_id`, JWT `role` and `jwt`.
#[utoipa::path(post, path = "/v1/auth/{mount}/login", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle")),
    request_body(content = LoginBody, example = json!({
        "role_id": "ExampleRoleId-0000", "secret_id": "ExampleSecretId-0000"})),
    responses((status = 200, description = "`auth`: client_token, accessor, policies, metadata, lease_duration", body = Envelope)))]
pub(super) fn auth_login() {}

/// A JWT/OIDC mount's config (never its `oidc_client_secret`).
#[utoipa::path(get, path = "/v1/auth/{mount}/config", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "jwt")),
    responses((status = 200, description = "the config", body = Envelope)))]
pub(super) fn jwt_read_config() {}

/// Configures a JWT/OIDC mount; the keys are fetched now, so a bad URL is a 400 here.
#[utoipa::path(method(post, put), path = "/v1/auth/{mount}/config", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "jwt")),
    request_body(content = JwtConfigBody, example = json!({
        "oidc_discovery_url": "https://idp.example.com", "oidc_client_id": "iamlease",
        "oidc_client_secret": "ExampleClientSecret-0000", "default_role": "person"})),
    responses((status = 204, description = "written"),
              (status = 200, description = "written, with warnings", body = Envelope)))]
pub(super) fn jwt_write_config() {}

/// Starts an OIDC sign-in (no token): the provider's authorization URL, with PKCE, `state` and
/// `nonce`.
#[utoipa::path(post, path = "/v1/auth/{mount}/oidc/auth_url", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "jwt")),
    request_body(content = OidcAuthUrlBody, example = json!({
        "role": "person", "redirect_uri": "http://127.0.0.1:8250/oidc/callback"})),
    responses((status = 200, description = "`auth_url`", body = Envelope)))]
pub(super) fn oidc_auth_url() {}

/// Finishes an OIDC sign-in (no token): the code is exchanged and the ID token checked.
#[utoipa::path(get, path = "/v1/auth/{mount}/oidc/callback", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "jwt"),
           ("state" = String, Query, description = "the `state` the provider sent back",
            example = "ExampleState-0000"),
           ("code" = String, Query, description = "the authorization code", example = "ExampleCode-0000"),
           ("client_nonce" = Option<String>, Query, description = "the nonce given to `auth_url`")),
    responses((status = 200, description = "`auth`: client_token, accessor, policies, metadata", body = Envelope)))]
pub(super) fn oidc_callback() {}

/// The callback with its fields in a JSON body.
#[utoipa::path(post, path = "/v1/auth/{mount}/oidc/callback", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "jwt")),
    request_body(content = OidcCallbackBody, example = json!({
        "state": "ExampleState-0000", "code": "ExampleCode-0000"})),
    responses((status = 200, description = "`auth`", body = Envelope)))]
pub(super) fn oidc_callback_post() {}

#[utoipa::path(get, path = "/v1/auth/{mount}/role", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle"),
           ("list" = Option<bool>, Query, description = "`true`", example = true)),
    responses((status = 200, description = "role names", body = ListEnvelope)))]
pub(super) fn auth_list_roles() {}

#[utoipa::path(get, path = "/v1/auth/{mount}/role/{name}", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle"),
           ("name" = String, Path, description = "role name", example = "ci")),
    responses((status = 200, description = "the role", body = Envelope)))]
pub(super) fn auth_read_role() {}

#[utoipa::path(method(post, put), path = "/v1/auth/{mount}/role/{name}", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle"),
           ("name" = String, Path, description = "role name", example = "ci")),
    request_body(content = AuthRoleBody, example = json!({"token_policies": ["dev-creds"], "token_ttl": "20m", "secret_id_ttl": "1h"})),
    responses((status = 204, description = "written"),
              (status = 200, description = "written, with warnings", body = Envelope)))]
pub(super) fn auth_write_role() {}

#[utoipa::path(delete, path = "/v1/auth/{mount}/role/{name}", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle"),
           ("name" = String, Path, description = "role name", example = "retired")),
    responses((status = 204, description = "deleted, with its secret IDs")))]
pub(super) fn auth_delete_role() {}

#[utoipa::path(get, path = "/v1/auth/{mount}/role/{name}/role-id", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle"),
           ("name" = String, Path, description = "role name", example = "ci")),
    responses((status = 200, description = "`role_id`", body = Envelope)))]
pub(super) fn approle_read_role_id() {}

#[utoipa::path(method(post, put), path = "/v1/auth/{mount}/role/{name}/role-id", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle"),
           ("name" = String, Path, description = "role name", example = "ci")),
    request_body(content = RoleIdBody, example = json!({"role_id": "ExampleRoleId-0001"})),
    responses((status = 204, description = "written"),
              (status = 200, description = "written, with warnings", body = Envelope)))]
pub(super) fn approle_write_role_id() {}

/// A new secret ID, shown once (only its hash is kept).
#[utoipa::path(method(post, put), path = "/v1/auth/{mount}/role/{name}/secret-id", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle"),
           ("name" = String, Path, description = "role name", example = "ci")),
    request_body(content = SecretIdBody, example = json!({"ttl": "10m", "num_uses": 1})),
    responses((status = 200, description = "secret_id, secret_id_accessor, secret_id_ttl, secret_id_num_uses", body = Envelope)))]
pub(super) fn approle_secret_id() {}

#[utoipa::path(get, path = "/v1/auth/{mount}/role/{name}/secret-id", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle"),
           ("name" = String, Path, description = "role name", example = "ci"),
           ("list" = Option<bool>, Query, description = "`true`", example = true)),
    responses((status = 200, description = "secret ID accessors", body = ListEnvelope)))]
pub(super) fn approle_list_secret_ids() {}

#[utoipa::path(method(post, put), path = "/v1/auth/{mount}/role/{name}/custom-secret-id", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle"),
           ("name" = String, Path, description = "role name", example = "ci")),
    request_body(content = SecretIdBody, example = json!({"secret_id": "ExampleCustomSecretId-0000"})),
    responses((status = 200, description = "secret_id, secret_id_accessor, secret_id_ttl, secret_id_num_uses", body = Envelope)))]
pub(super) fn approle_custom_secret_id() {}

#[utoipa::path(method(post, put), path = "/v1/auth/{mount}/role/{name}/secret-id/lookup", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle"),
           ("name" = String, Path, description = "role name", example = "ci")),
    request_body(content = SecretIdValueBody, example = json!({"secret_id": "ExampleSecretId-0000"})),
    responses((status = 200, description = "the secret ID's properties (never the secret ID)", body = Envelope),
              (status = 204, description = "no such secret ID")))]
pub(super) fn approle_lookup_secret_id() {}

#[utoipa::path(method(post, put, delete), path = "/v1/auth/{mount}/role/{name}/secret-id/destroy", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle"),
           ("name" = String, Path, description = "role name", example = "ci")),
    request_body(content = SecretIdValueBody, example = json!({"secret_id": "ExampleSecretId-0000"})),
    responses((status = 204, description = "destroyed (or already gone)")))]
pub(super) fn approle_destroy_secret_id() {}

#[utoipa::path(method(post, put), path = "/v1/auth/{mount}/role/{name}/secret-id-accessor/lookup", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle"),
           ("name" = String, Path, description = "role name", example = "ci")),
    request_body(content = SecretIdAccessorBody, example = json!({"secret_id_accessor": "ExampleSecretIdAccessor-0000"})),
    responses((status = 200, description = "the secret ID's properties", body = Envelope),
              (status = 204, description = "no such secret ID")))]
pub(super) fn approle_lookup_secret_id_accessor() {}

#[utoipa::path(method(post, put, delete), path = "/v1/auth/{mount}/role/{name}/secret-id-accessor/destroy", tag = "auth",
    params(("mount" = String, Path, description = "auth mount path", example = "approle"),
           ("name" = String, Path, description = "role name", example = "ci")),
    request_body(content = SecretIdAccessorBody, example = json!({"secret_id_accessor": "ExampleSecretIdAccessor-0000"})),
    responses((status = 204, description = "destroyed (or already gone)")))]
pub(super) fn approle_destroy_secret_id_accessor() {}
