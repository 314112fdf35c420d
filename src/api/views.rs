//! The engine's typed answers shaped as Vault's response data: field names, defaults shown
//! as Vault shows them (empty strings, 0 for "unset", durations as seconds or Go strings).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::duration::Ttl;
use crate::engine::role::Role;
use crate::engine::{CallerIdentity, LeaseConfig, RootConfigView, SetupPlan};
use crate::model::{CredentialType, KeyHistory, MountPath, RoleName};
use crate::seal::token_hash;
use crate::store::MountRecord;

/// What Vault answers for a mount TTL left at the system default (32 days).
const DEFAULT_MOUNT_TTL: i64 = 768 * 3600;

/// A role as the API reads it back: every field, defaults filled in, durations in seconds.
pub fn role(role: &Role, mount: &MountPath, name: &RoleName) -> Value {
    let secs = |t: Option<Ttl>| t.map_or(0, Ttl::as_secs);
    let is_user = role.credential_type == CredentialType::IamUser;
    json!({
        "credential_type": role.credential_type.as_str(),
        "credential_types": [role.credential_type.as_str()],
        "policy_arns": role.policy_arns,
        "policy_document": role.policy_document.clone().unwrap_or_default(),
        "iam_groups": role.iam_groups,
        "iam_tags": role.iam_tags,
        "user_path": if is_user { role.user_path(mount, name) } else { String::new() },
        "permissions_boundary_arn": role.permissions_boundary_arn.clone().unwrap_or_default(),
        "username_template": if role.credential_type == CredentialType::SessionToken {
            String::new()
        } else {
            role.name_template().as_str().to_owned()
        },
        "default_ttl": secs(role.default_ttl),
        "max_ttl": secs(role.max_ttl),
        "role_arns": role.role_arns,
        "default_sts_ttl": secs(role.default_sts_ttl),
        "max_sts_ttl": secs(role.max_sts_ttl),
        "session_tags": role.session_tags,
        "external_id": role.external_id.clone().unwrap_or_default(),
        "mfa_serial_number": role.mfa_serial_number.clone().unwrap_or_default(),
        "key_map": crate::key_map::resolve(&role.key_map)
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        "max_leases": role.max_leases.unwrap_or(0),
    })
}

/// A mount as `sys/mounts` lists it and `sys/mounts/{path}` reads it, with every field
/// Vault's typed clients expect. Its `uuid` and `accessor` are derived from the path and the
/// creation time, so they are stable and the same on every replica.
pub fn mount(m: &MountRecord) -> Value {
    let digest = token_hash(&format!("mount:{}:{}", m.path, m.created_at));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let config = json!({
        "default_lease_ttl": m.default_lease_ttl.unwrap_or(0),
        "max_lease_ttl": m.max_lease_ttl.unwrap_or(0),
        "force_no_cache": false,
    });
    mount_entry(
        &m.kind,
        &m.description,
        &format!("{}_{}", m.kind, &hex[..8]),
        &uuid_form(&hex),
        config,
    )
}

/// One entry of `sys/mounts` or `sys/auth`: every field Vault's typed clients expect, with
/// the open-source values for what iamlease does not have (plugins, seal wrapping, …).
pub(super) fn mount_entry(
    kind: &str,
    description: &str,
    accessor: &str,
    uuid: &str,
    config: Value,
) -> Value {
    json!({
        "type": kind,
        "description": description,
        "accessor": accessor,
        "uuid": uuid,
        "config": config,
        "options": null,
        "local": false,
        "seal_wrap": false,
        "external_entropy_access": false,
        "plugin_version": "",
        "running_plugin_version": format!("v{}+builtin.iamlease", env!("CARGO_PKG_VERSION")),
        "running_sha256": "",
        "deprecation_status": "supported",
    })
}

/// The first 32 hex digits of `hex` in UUID form (`8-4-4-4-12`).
pub(super) fn uuid_form(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `sys/mounts/{path}/tune` as it reads back.
pub fn mount_tune(m: &MountRecord) -> Value {
    json!({
        "description": m.description,
        "default_lease_ttl": m.default_lease_ttl.unwrap_or(DEFAULT_MOUNT_TTL),
        "max_lease_ttl": m.max_lease_ttl.unwrap_or(DEFAULT_MOUNT_TTL),
        "force_no_cache": false,
    })
}

/// `{mount}/config/root`, never with the secret key.
pub fn root_config(c: &RootConfigView) -> Value {
    json!({
        "access_key": c.access_key,
        "region": c.region,
        "iam_endpoint": c.iam_endpoint,
        "sts_endpoint": c.sts_endpoint,
        "max_retries": c.max_retries,
        "retry_mode": c.retry_mode,
        "role_arn": c.role_arn,
        "external_id": c.external_id,
    })
}

/// `{mount}/config/lease`, durations as Go prints them (`768h0m0s`), as Vault answers.
pub fn lease_config(c: &LeaseConfig) -> Value {
    json!({
        "lease": c.lease.to_go_string(),
        "lease_max": c.lease_max.to_go_string(),
    })
}

pub fn setup_plan(p: &SetupPlan) -> Value {
    json!({
        "principal_arn": p.principal_arn,
        "external_id": p.external_id,
        "path_prefix": p.path_prefix,
        "policy": p.policy,
        "trust_policy": p.trust_policy,
        "commands": p.commands,
        "notes": p.notes,
    })
}

pub fn caller_identity(c: &CallerIdentity) -> Value {
    json!({ "arn": c.arn, "account": c.account })
}

/// An access key's history (`{mount}/access-keys/{id}`): times in RFC 3339 as lease lookups
/// show them, `revoke_time` null while the lease lives.
pub fn key_history(h: &KeyHistory) -> Value {
    let k = &h.key;
    json!({
        "access_key_id": k.access_key_id,
        "lease_id": k.lease_id,
        "mount": k.mount.as_str(),
        "role": k.role.as_str(),
        "credential_type": k.credential_type.as_str(),
        "username": k.username,
        "requester": k.requester,
        "token_accessor": k.token_accessor,
        "meta": k.meta,
        "issue_time": rfc3339(k.issue_time),
        "expire_time": rfc3339(h.expire_time()),
        "revoke_time": k.revoke_time.map(rfc3339),
        "state": h.state().as_str(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fields::Fields;
    use crate::engine::template::DEFAULT_USERNAME_TEMPLATE;

    const ARN: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

    #[test]
    fn read_data_fills_defaults() {
        let input = json!({"credential_type": "iam_user", "policy_arns": ARN});
        let r = crate::api::forms::role(None, Fields::new(input.as_object().unwrap().clone()))
            .unwrap()
            .0;
        let m = MountPath::parse("aws").unwrap();
        let n = RoleName::parse("dev").unwrap();
        let d = role(&r, &m, &n);
        assert_eq!(d["user_path"], "/iamlease/aws/dev/");
        assert_eq!(d["username_template"], DEFAULT_USERNAME_TEMPLATE);
        assert_eq!(d["default_ttl"], 0);
    }
}
