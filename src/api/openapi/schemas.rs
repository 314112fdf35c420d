//! The Vault wire shapes the OpenAPI document names: envelopes, bodies, and Vault's lenient
//! field types (durations, lists, tags).

#![allow(dead_code)] // the types exist only to carry their schemas

use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// Vault's response envelope. `data` holds the answer; credential and renewal answers fill
/// `lease_id`, `renewable` and `lease_duration`; token answers fill `auth`.
#[derive(ToSchema)]
pub(super) struct Envelope {
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
pub(super) struct ListEnvelope {
    request_id: String,
    lease_id: String,
    renewable: bool,
    lease_duration: i64,
    data: ListData,
    warnings: Option<Vec<String>>,
}

#[derive(ToSchema)]
pub(super) struct ListData {
    keys: Vec<String>,
}

/// Every error: `{"errors": ["a reason a person can act on"]}` (empty for an empty LIST).
#[derive(ToSchema)]
pub(super) struct ErrorBody {
    errors: Vec<String>,
}

/// `sys/health`, unwrapped as in Vault.
#[derive(ToSchema)]
pub(super) struct Health {
    initialized: bool,
    sealed: bool,
    standby: bool,
    performance_standby: bool,
    /// Always `disabled` (no Vault Enterprise replication).
    replication_performance_mode: String,
    replication_dr_mode: String,
    /// Unix seconds.
    server_time_utc: i64,
    version: String,
    enterprise: bool,
    cluster_name: String,
    cluster_id: String,
}

/// Seconds, or a Go-style duration (`"1h"`, `"90m"`, `"1h30m"`).
pub(super) struct Duration;

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
pub(super) struct StringList;

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
pub(super) struct Tags;

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
pub(super) struct MountBody {
    #[schema(rename = "type")]
    kind: String,
    description: Option<String>,
    config: Option<MountConfig>,
}

#[derive(ToSchema)]
pub(super) struct MountConfig {
    #[schema(value_type = Option<Duration>)]
    default_lease_ttl: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    max_lease_ttl: Option<Value>,
}

#[derive(ToSchema)]
pub(super) struct MountTuneBody {
    description: Option<String>,
    #[schema(value_type = Option<Duration>)]
    default_lease_ttl: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    max_lease_ttl: Option<Value>,
}

/// How the mount reaches AWS. `secret_key` is sealed at rest and never read back.
#[derive(ToSchema)]
pub(super) struct RootConfigBody {
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
pub(super) struct LeaseConfigBody {
    #[schema(value_type = Option<Duration>)]
    lease: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    lease_max: Option<Value>,
}

/// A static role write: `username` and `rotation_period` are required when it is created.
#[derive(ToSchema)]
pub(super) struct StaticRoleBody {
    /// The existing IAM user whose access key is rotated; holding at most one key.
    username: Option<String>,
    /// At least 1 m; seconds or a Go duration. Reads back in seconds.
    #[schema(value_type = Option<Duration>)]
    rotation_period: Option<Value>,
    /// iamlease's extension: how long the previous key keeps working after a rotation
    /// (default 0, at most half of `rotation_period`). Reads back in seconds.
    #[schema(value_type = Option<Duration>)]
    overlap: Option<Value>,
    /// For a user in another account: the rotation runs as this role.
    assume_role_arn: Option<String>,
    assume_role_session_name: Option<String>,
    external_id: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(super) enum CredentialType {
    IamUser,
    AssumedRole,
    FederationToken,
    SessionToken,
}

/// A role. A write merges with the stored role; `null` means "not set".
#[derive(ToSchema)]
pub(super) struct RoleBody {
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
pub(super) struct CredsBody {
    #[schema(value_type = Option<Duration>)]
    ttl: Option<Value>,
    role_arn: Option<String>,
    role_session_name: Option<String>,
    mfa_code: Option<String>,
    wait_ready: Option<bool>,
}

#[derive(ToSchema)]
pub(super) struct LeaseIdBody {
    lease_id: String,
}

#[derive(ToSchema)]
pub(super) struct RenewBody {
    lease_id: Option<String>,
    #[schema(value_type = Option<Duration>)]
    increment: Option<Value>,
}

#[derive(ToSchema)]
pub(super) struct RevokeBody {
    lease_id: Option<String>,
    /// Wait for the AWS clean-up (default true).
    sync: Option<bool>,
}

#[derive(ToSchema)]
pub(super) struct TokenCreateBody {
    #[schema(value_type = Option<StringList>)]
    policies: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    ttl: Option<Value>,
    display_name: Option<String>,
    no_default_policy: Option<bool>,
    /// Root or `sudo` only: a token without a parent.
    no_parent: Option<bool>,
    /// Uses before the token is revoked; 0 is unlimited.
    num_uses: Option<i64>,
    /// Root or `sudo` only: a periodic token, renewed by this much each time.
    #[schema(value_type = Option<Duration>)]
    period: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    explicit_max_ttl: Option<Value>,
    #[schema(value_type = Option<Tags>)]
    meta: Option<Value>,
    renewable: Option<bool>,
    /// `service` (the only type served).
    #[serde(rename = "type")]
    token_type: Option<String>,
}

#[derive(ToSchema)]
pub(super) struct CapabilitiesBody {
    #[schema(value_type = StringList)]
    paths: Value,
    /// `sys/capabilities`: the token to check.
    token: Option<String>,
    /// `sys/capabilities-accessor`: the accessor of the token to check.
    accessor: Option<String>,
}

#[derive(ToSchema)]
pub(super) struct TokenRenewBody {
    token: String,
    #[schema(value_type = Option<Duration>)]
    increment: Option<Value>,
}

#[derive(ToSchema)]
pub(super) struct TokenLookupBody {
    token: String,
}

#[derive(ToSchema)]
pub(super) struct AccessorBody {
    accessor: String,
}

/// Vault's HCL (or its JSON form).
#[derive(ToSchema)]
pub(super) struct PolicyBody {
    policy: String,
}

#[derive(ToSchema)]
pub(super) struct AuditHashBody {
    input: String,
}

#[derive(ToSchema)]
pub(super) struct SweepBody {
    /// List what would be deleted without deleting it.
    dry_run: Option<bool>,
}

/// `sys/auth/{path}`: `type` is `approle`, `jwt` or `oidc`.
#[derive(ToSchema)]
pub(super) struct AuthMountBody {
    #[schema(rename = "type")]
    kind: String,
    description: Option<String>,
    config: Option<MountConfig>,
}

/// A role of an auth method: AppRole's or JWT/OIDC's fields as the mount's kind takes them, the
/// `token_*` ones shared (durations as seconds or Go strings, lists as arrays or
/// comma-separated strings).
#[derive(ToSchema)]
pub(super) struct AuthRoleBody {
    /// JWT/OIDC: `jwt` or `oidc` (Vault's default).
    role_type: Option<String>,
    #[schema(value_type = Option<StringList>)]
    bound_audiences: Option<Value>,
    user_claim: Option<String>,
    user_claim_json_pointer: Option<bool>,
    bound_subject: Option<String>,
    /// Claim name (or JSON pointer such as `/kubernetes.io/namespace`) → a value or a list.
    bound_claims: Option<Value>,
    /// `string` (exact) or `glob`.
    bound_claims_type: Option<String>,
    groups_claim: Option<String>,
    #[schema(value_type = Option<Tags>)]
    claim_mappings: Option<Value>,
    #[schema(value_type = Option<StringList>)]
    oidc_scopes: Option<Value>,
    #[schema(value_type = Option<StringList>)]
    allowed_redirect_uris: Option<Value>,
    verbose_oidc_logging: Option<bool>,
    #[schema(value_type = Option<Duration>)]
    max_age: Option<Value>,
    /// Seconds; 0 the default (60), -1 none.
    clock_skew_leeway: Option<i64>,
    /// Seconds; 0 the default (150), -1 none.
    expiration_leeway: Option<i64>,
    /// Seconds; 0 the default (150), -1 none.
    not_before_leeway: Option<i64>,
    bind_secret_id: Option<bool>,
    #[schema(value_type = Option<StringList>)]
    secret_id_bound_cidrs: Option<Value>,
    secret_id_num_uses: Option<i64>,
    #[schema(value_type = Option<Duration>)]
    secret_id_ttl: Option<Value>,
    role_id: Option<String>,
    #[schema(value_type = Option<StringList>)]
    token_policies: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    token_ttl: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    token_max_ttl: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    token_explicit_max_ttl: Option<Value>,
    #[schema(value_type = Option<Duration>)]
    token_period: Option<Value>,
    token_num_uses: Option<i64>,
    token_no_default_policy: Option<bool>,
    #[schema(value_type = Option<StringList>)]
    token_bound_cidrs: Option<Value>,
    token_type: Option<String>,
}

#[derive(ToSchema)]
pub(super) struct RoleIdBody {
    role_id: String,
}

/// A new secret ID's limits; `secret_id` only for `custom-secret-id`.
#[derive(ToSchema)]
pub(super) struct SecretIdBody {
    secret_id: Option<String>,
    /// A JSON object of strings, encoded as a string (Vault's form) or as an object.
    metadata: Option<Value>,
    #[schema(value_type = Option<StringList>)]
    cidr_list: Option<Value>,
    #[schema(value_type = Option<StringList>)]
    token_bound_cidrs: Option<Value>,
    num_uses: Option<i64>,
    #[schema(value_type = Option<Duration>)]
    ttl: Option<Value>,
}

#[derive(ToSchema)]
pub(super) struct SecretIdValueBody {
    secret_id: String,
}

#[derive(ToSchema)]
pub(super) struct SecretIdAccessorBody {
    secret_id_accessor: String,
}

/// AppRole takes `role_id` and `secret_id`; JWT takes `role` (or the mount's `default_role`)
/// and `jwt`.
#[derive(ToSchema)]
pub(super) struct LoginBody {
    role_id: Option<String>,
    secret_id: Option<String>,
    role: Option<String>,
    jwt: Option<String>,
}

/// A JWT/OIDC mount's config: exactly one of `oidc_discovery_url`, `jwks_url` and
/// `jwt_validation_pubkeys`. Written whole, as Vault does.
#[derive(ToSchema)]
pub(super) struct JwtConfigBody {
    oidc_discovery_url: Option<String>,
    oidc_discovery_ca_pem: Option<String>,
    oidc_client_id: Option<String>,
    /// Sealed in the store, never returned.
    oidc_client_secret: Option<String>,
    /// `query` (`form_post` is refused).
    oidc_response_mode: Option<String>,
    #[schema(value_type = Option<StringList>)]
    oidc_response_types: Option<Value>,
    jwks_url: Option<String>,
    jwks_ca_pem: Option<String>,
    #[schema(value_type = Option<StringList>)]
    jwt_validation_pubkeys: Option<Value>,
    #[schema(value_type = Option<StringList>)]
    jwt_supported_algs: Option<Value>,
    bound_issuer: Option<String>,
    default_role: Option<String>,
    namespace_in_state: Option<bool>,
}

#[derive(ToSchema)]
pub(super) struct OidcAuthUrlBody {
    role: Option<String>,
    redirect_uri: String,
    client_nonce: Option<String>,
}

#[derive(ToSchema)]
pub(super) struct OidcCallbackBody {
    state: String,
    code: String,
    client_nonce: Option<String>,
}
