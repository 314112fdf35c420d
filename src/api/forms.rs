//! Vault's request fields turned into the engine's typed requests: the one place that knows
//! a field's name, its accepted shapes (string or list, number or duration string) and that a
//! field left out keeps its value. Whatever a form does not take is reported as a warning.

use serde_json::Value;

use super::error::ApiError;
use super::fields::{FieldError, Fields};
use crate::engine::role::Role;
use crate::engine::{
    IssuePath, IssueRequest, LeaseConfigUpdate, MountRequest, MountTune, RootConfigUpdate,
    SetupRequest,
};
use crate::model::{CredentialType, MountPath};
use crate::seal::Secret;

/// `sys/mounts/{path}`: `type`, `description`, `config.default_lease_ttl`,
/// `config.max_lease_ttl`.
pub fn mount(path: MountPath, mut input: Fields) -> Result<(MountRequest, Vec<String>), ApiError> {
    let kind = input.string("type")?.unwrap_or_else(|| "aws".into());
    let description = input.string("description")?.unwrap_or_default();
    let mut config = match input.into_map().remove("config") {
        Some(Value::Object(m)) => Fields::new(m),
        None | Some(Value::Null) => Fields::default(),
        Some(_) => return Err(ApiError::bad_request("config must be an object")),
    };
    let request = MountRequest {
        path,
        kind,
        description,
        default_lease_ttl: config.ttl("default_lease_ttl")?,
        max_lease_ttl: config.ttl("max_lease_ttl")?,
    };
    Ok((request, config.unknown_field_warnings()))
}

/// `sys/mounts/{path}/tune`: `description`, `default_lease_ttl`, `max_lease_ttl`.
pub fn mount_tune(mut input: Fields) -> Result<(MountTune, Vec<String>), ApiError> {
    let tune = MountTune {
        description: input.string("description")?,
        default_lease_ttl: input.ttl("default_lease_ttl")?,
        max_lease_ttl: input.ttl("max_lease_ttl")?,
    };
    Ok((tune, input.unknown_field_warnings()))
}

/// `{mount}/config/root`.
pub fn root_config(mut input: Fields) -> Result<(RootConfigUpdate, Vec<String>), ApiError> {
    let update = RootConfigUpdate {
        access_key: input.string("access_key")?,
        secret_key: input.non_empty_string("secret_key")?.map(Secret::new),
        region: input.non_empty_string("region")?,
        iam_endpoint: input.string("iam_endpoint")?,
        sts_endpoint: input.string("sts_endpoint")?,
        max_retries: input.int("max_retries")?,
        retry_mode: input.non_empty_string("retry_mode")?,
        role_arn: input.string("role_arn")?,
        external_id: input.string("external_id")?,
    };
    Ok((update, input.unknown_field_warnings()))
}

/// `{mount}/config/lease`: `lease`, `lease_max`.
pub fn lease_config(mut input: Fields) -> Result<(LeaseConfigUpdate, Vec<String>), ApiError> {
    let update = LeaseConfigUpdate {
        lease: input.ttl("lease")?,
        lease_max: input.ttl("lease_max")?,
    };
    Ok((update, input.unknown_field_warnings()))
}

/// `{mount}/creds/{role}` and `{mount}/sts/{role}`.
pub fn issue(via: IssuePath, mut input: Fields) -> Result<(IssueRequest, Vec<String>), ApiError> {
    let request = IssueRequest {
        ttl: input.ttl("ttl")?.filter(|t| !t.is_zero()),
        role_arn: input
            .non_empty_string("role_arn")?
            .map(|s| s.trim().to_owned()),
        role_session_name: input
            .non_empty_string("role_session_name")?
            .map(|s| s.trim().to_owned()),
        mfa_code: input
            .non_empty_string("mfa_code")?
            .map(|s| Secret::new(s.trim())),
        wait_ready: input.bool("wait_ready")?.unwrap_or(false),
        via,
    };
    Ok((request, input.unknown_field_warnings()))
}

/// `GET {mount}/setup`: `path_prefix`, `boundary_arn`, `external_id`, `sts_role_arns`,
/// `role_name`, `policy_name`.
pub fn setup(mut input: Fields) -> Result<SetupRequest, ApiError> {
    Ok(SetupRequest {
        path_prefix: input.non_empty_string("path_prefix")?,
        boundary_arn: input.non_empty_string("boundary_arn")?,
        sts_role_arns: input.list("sts_role_arns")?.unwrap_or_default(),
        external_id: input.non_empty_string("external_id")?,
        role_name: input.non_empty_string("role_name")?,
        policy_name: input.non_empty_string("policy_name")?,
    })
}

/// A role write. `existing` is the stored role when this write updates it: fields
/// the request leaves out keep their value, as in Vault. Checked with `Role::validate`.
pub fn role(existing: Option<&Role>, mut input: Fields) -> Result<(Role, Vec<String>), ApiError> {
    if let Some(old) = existing {
        let mut merged = Fields::new(stored_fields(old));
        merged.overlay(input);
        input = merged;
    }
    let credential_type = match input.list("credential_type")? {
        Some(v) if v.len() == 1 => CredentialType::parse(&v[0]).map_err(FieldError)?,
        Some(v) if v.len() > 1 => {
            return Err(ApiError::bad_request(
                "credential_type takes one value; write one role per credential type",
            ));
        }
        _ => {
            return Err(ApiError::bad_request(
                "credential_type is required: iam_user, assumed_role, federation_token or session_token",
            ));
        }
    };
    let role = Role {
        credential_type,
        policy_arns: input.list("policy_arns")?.unwrap_or_default(),
        policy_document: input.json_document("policy_document")?,
        iam_groups: input.list("iam_groups")?.unwrap_or_default(),
        iam_tags: input.tags("iam_tags")?.unwrap_or_default(),
        user_path: input.non_empty_string("user_path")?,
        permissions_boundary_arn: input.non_empty_string("permissions_boundary_arn")?,
        username_template: input.non_empty_string("username_template")?,
        default_ttl: input.ttl("default_ttl")?.filter(|t| !t.is_zero()),
        max_ttl: input.ttl("max_ttl")?.filter(|t| !t.is_zero()),
        role_arns: input.list("role_arns")?.unwrap_or_default(),
        default_sts_ttl: input.ttl("default_sts_ttl")?.filter(|t| !t.is_zero()),
        max_sts_ttl: input.ttl("max_sts_ttl")?.filter(|t| !t.is_zero()),
        session_tags: input.tags("session_tags")?.unwrap_or_default(),
        external_id: input.non_empty_string("external_id")?,
        mfa_serial_number: input.non_empty_string("mfa_serial_number")?,
        key_map: input.tags("key_map")?.unwrap_or_default(),
        max_leases: match input.int("max_leases")? {
            None | Some(0) => None,
            Some(n) => Some(u32::try_from(n).map_err(|_| {
                FieldError(format!(
                    "max_leases must be between 0 (no cap) and {}, got {n}",
                    u32::MAX
                ))
            })?),
        },
    };
    role.validate()?;
    // A merged update carries every stored field, so only a fresh write can hold unknowns
    // worth reporting; either way they are whatever the parse above did not take.
    Ok((role, input.unknown_field_warnings()))
}

/// A stored role in request form, for merging an update onto.
fn stored_fields(role: &Role) -> serde_json::Map<String, Value> {
    match serde_json::to_value(role).expect("role serialises") {
        Value::Object(map) => map,
        _ => unreachable!("a struct serialises to an object"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<Role, String> {
        role(None, Fields::new(v.as_object().unwrap().clone()))
            .map(|(r, _)| r)
            .map_err(|e| e.errors.join("; "))
    }

    const ARN: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

    #[test]
    fn iam_user_role_round_trips_through_update() {
        let r =
            parse(json!({"credential_type": "iam_user", "policy_arns": ARN, "default_ttl": "1h"}))
                .unwrap();
        assert_eq!(r.policy_arns, [ARN]);
        // An update that sets only max_ttl keeps the rest.
        let (r2, warnings) = role(
            Some(&r),
            Fields::new(json!({"max_ttl": "2h"}).as_object().unwrap().clone()),
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(r2.policy_arns, [ARN]);
        assert_eq!(r2.default_ttl.unwrap().as_secs(), 3600);
        assert_eq!(r2.max_ttl.unwrap().as_secs(), 7200);
    }

    #[test]
    fn field_rules_by_type() {
        let e = parse(json!({"credential_type": "iam_user", "policy_arns": ARN, "role_arns": "arn:aws:iam::123456789012:role/x"})).unwrap_err();
        assert!(
            e.contains("role_arns is only valid for assumed_role"),
            "{e}"
        );
        let e = parse(json!({"credential_type": "session_token", "policy_arns": ARN})).unwrap_err();
        assert!(e.contains("session_token roles take no"), "{e}");
        let e = parse(json!({"credential_type": "federation_token", "policy_arns": ARN, "default_sts_ttl": 899})).unwrap_err();
        assert!(
            e.contains("default_sts_ttl is 899s") && e.contains("900"),
            "{e}"
        );
        let e = parse(json!({"credential_type": "assumed_role", "role_arns": "arn:aws:iam::123456789012:role/x", "max_sts_ttl": "13h"})).unwrap_err();
        assert!(e.contains("43200"), "{e}");
        let e = parse(json!({"credential_type": "iam_user"})).unwrap_err();
        assert!(e.contains("at least one of policy_arns"), "{e}");
        let e = parse(json!({"policy_arns": ARN})).unwrap_err();
        assert!(e.contains("credential_type is required"), "{e}");
        let e = parse(json!({"credential_type": "iam_user", "policy_arns": ARN, "default_ttl": "2h", "max_ttl": "1h"})).unwrap_err();
        assert!(
            e.contains("default_ttl (2h0m0s) must not exceed max_ttl (1h0m0s)"),
            "{e}"
        );
    }

    #[test]
    fn arns_paths_groups_and_tags_are_checked() {
        let base = |extra: Value| {
            let mut v = json!({"credential_type": "iam_user", "policy_arns": ARN});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse(v)
        };
        assert!(
            base(json!({"policy_arns": "ReadOnlyAccess"}))
                .unwrap_err()
                .contains("not an IAM policy ARN")
        );
        assert!(
            base(json!({"user_path": "iamlease"}))
                .unwrap_err()
                .contains("must start and end with '/'")
        );
        assert!(
            base(json!({"user_path": "/a b/"}))
                .unwrap_err()
                .contains("' '")
        );
        assert!(
            base(json!({"iam_groups": "bad group"}))
                .unwrap_err()
                .contains("iam_groups")
        );
        assert!(
            base(json!({"iam_tags": {"aws:x": "y"}}))
                .unwrap_err()
                .contains("reserved prefix")
        );
        assert!(
            base(json!({"iam_tags": {"iamlease:role": "y"}}))
                .unwrap_err()
                .contains("reserved prefix")
        );
        assert!(
            base(json!({"username_template": "{{role}}"}))
                .unwrap_err()
                .contains("{{random}}")
        );
        assert!(
            base(json!({"permissions_boundary_arn": "arn:aws:iam::123456789012:policy/b"})).is_ok()
        );
        assert!(base(json!({"user_path": "/team/dev/", "iam_tags": ["team=x"]})).is_ok());
    }
}
