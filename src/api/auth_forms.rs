//! Vault's request fields of auth methods turned into typed requests: `sys/auth/{path}`, the
//! `token_*` settings every auth role shares, AppRole roles and secret IDs.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::ApiError;
use super::fields::{FieldError, Fields};
use crate::auth::approle::{AppRole, SecretIdRequest};
use crate::auth::mounts::AuthMountRequest;
use crate::auth::{Cidr, TokenSettings, parse_cidrs};
use crate::duration::Ttl;
use crate::model::{AuthKind, MountPath};

fn secs(t: Option<Ttl>) -> Option<i64> {
    t.map(|t| t.as_secs() as i64)
}

fn cidrs(input: &mut Fields, key: &str) -> Result<Option<Vec<Cidr>>, ApiError> {
    match input.list(key)? {
        None => Ok(None),
        Some(raw) => parse_cidrs(&raw)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("{key}: {e}"))),
    }
}

/// `sys/auth/{path}`: `type`, `description`, `config.default_lease_ttl`, `config.max_lease_ttl`.
pub fn auth_mount(
    path: MountPath,
    mut input: Fields,
) -> Result<(AuthMountRequest, Vec<String>), ApiError> {
    let kind = input.non_empty_string("type")?.ok_or_else(|| {
        ApiError::bad_request("type is required: \"approle\", \"jwt\" or \"oidc\"")
    })?;
    let kind = AuthKind::parse(&kind).map_err(ApiError::bad_request)?;
    let description = input.string("description")?;
    let mut config = match input.into_map().remove("config") {
        Some(Value::Object(m)) => Fields::new(m),
        None | Some(Value::Null) => Fields::default(),
        Some(_) => return Err(ApiError::bad_request("config must be an object")),
    };
    let request = AuthMountRequest {
        path,
        kind,
        description,
        default_lease_ttl: secs(config.ttl("default_lease_ttl")?),
        max_lease_ttl: secs(config.ttl("max_lease_ttl")?),
    };
    Ok((request, config.unknown_field_warnings()))
}

/// Vault's `token_*` fields (and their older names `policies`, `period`), over `current`.
pub fn token_settings(
    current: &TokenSettings,
    input: &mut Fields,
) -> Result<TokenSettings, ApiError> {
    let mut t = current.clone();
    if let Some(p) = input.list("token_policies")?.or(input.list("policies")?) {
        t.token_policies = p.into_iter().map(|p| p.trim().to_lowercase()).collect();
    }
    let ttl =
        |input: &mut Fields, key: &str, old: &str, into: &mut i64| -> Result<(), FieldError> {
            if let Some(v) = input.ttl(key)?.or(input.ttl(old)?) {
                *into = v.as_secs() as i64;
            }
            Ok(())
        };
    ttl(input, "token_ttl", "ttl", &mut t.token_ttl)?;
    ttl(input, "token_max_ttl", "max_ttl", &mut t.token_max_ttl)?;
    ttl(
        input,
        "token_explicit_max_ttl",
        "explicit_max_ttl",
        &mut t.token_explicit_max_ttl,
    )?;
    ttl(input, "token_period", "period", &mut t.token_period)?;
    if let Some(n) = input.int("token_num_uses")? {
        t.token_num_uses = n;
    }
    if let Some(b) = input.bool("token_no_default_policy")? {
        t.token_no_default_policy = b;
    }
    if let Some(c) = cidrs(input, "token_bound_cidrs")? {
        t.token_bound_cidrs = c;
    }
    match input
        .non_empty_string("token_type")?
        .as_deref()
        .map(str::trim)
    {
        None | Some("default" | "service" | "default-service") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "token_type {other:?} is not supported; iamlease issues service tokens"
            )));
        }
    }
    Ok(t)
}

/// `auth/{mount}/role/{name}` of AppRole: the fields given replace those of `current`.
pub fn approle_role(
    current: Option<&AppRole>,
    mut input: Fields,
) -> Result<(AppRole, Option<String>, Vec<String>), ApiError> {
    let mut role = current.cloned().unwrap_or_default();
    if let Some(b) = input.bool("bind_secret_id")? {
        role.bind_secret_id = b;
    }
    if let Some(c) = cidrs(&mut input, "secret_id_bound_cidrs")? {
        role.secret_id_bound_cidrs = c;
    } else if let Some(c) = cidrs(&mut input, "bound_cidr_list")? {
        role.secret_id_bound_cidrs = c;
    }
    if let Some(n) = input.int("secret_id_num_uses")? {
        role.secret_id_num_uses = n;
    }
    if let Some(t) = input.ttl("secret_id_ttl")? {
        role.secret_id_ttl = t.as_secs() as i64;
    }
    if let Some(b) = input.bool("local_secret_ids")? {
        role.local_secret_ids = b;
    }
    role.token = token_settings(&role.token, &mut input)?;
    let role_id = input.non_empty_string("role_id")?;
    Ok((role, role_id, input.unknown_field_warnings()))
}

/// `metadata`: Vault takes a JSON object encoded as a string; an object is taken as well.
fn metadata(input: &mut Fields) -> Result<BTreeMap<String, String>, ApiError> {
    let Some(doc) = input.json_document("metadata")? else {
        return Ok(BTreeMap::new());
    };
    let map: serde_json::Map<String, Value> = serde_json::from_str(&doc)
        .map_err(|_| ApiError::bad_request("metadata must be a JSON object of strings"))?;
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(ApiError::bad_request(format!(
                "metadata: the value of {k:?} must be a string"
            ))),
        })
        .collect()
}

/// `secret-id` and `custom-secret-id`.
pub fn secret_id(
    mut input: Fields,
    custom: bool,
) -> Result<(SecretIdRequest, Vec<String>), ApiError> {
    let custom = if custom {
        Some(
            input
                .non_empty_string("secret_id")?
                .ok_or_else(|| ApiError::bad_request("secret_id is required"))?,
        )
    } else {
        None
    };
    let request = SecretIdRequest {
        custom,
        metadata: metadata(&mut input)?,
        cidr_list: cidrs(&mut input, "cidr_list")?.unwrap_or_default(),
        token_bound_cidrs: cidrs(&mut input, "token_bound_cidrs")?.unwrap_or_default(),
        num_uses: input.int("num_uses")?,
        ttl: secs(input.ttl("ttl")?),
    };
    Ok((request, input.unknown_field_warnings()))
}
