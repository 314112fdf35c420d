//! Vault's request fields of the JWT/OIDC method turned into typed settings: the mount's
//! `config` (written whole, as Vault does) and a role (fields given replace those stored).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::auth_forms::token_settings;
use super::error::ApiError;
use super::fields::Fields;
use crate::auth::jwt::{BoundClaimsType, BoundValues, JwtConfig, JwtRole, RoleType, SecretChange};
use crate::seal::Secret;

/// `auth/{mount}/config`.
pub fn config(mut input: Fields) -> Result<(JwtConfig, SecretChange, Vec<String>), ApiError> {
    let mut s = |key: &str| -> Result<String, ApiError> {
        Ok(input
            .string(key)?
            .map(|v| v.trim().to_owned())
            .unwrap_or_default())
    };
    let mut config = JwtConfig {
        oidc_discovery_url: s("oidc_discovery_url")?,
        oidc_discovery_ca_pem: s("oidc_discovery_ca_pem")?,
        oidc_client_id: s("oidc_client_id")?,
        oidc_response_mode: s("oidc_response_mode")?,
        jwks_url: s("jwks_url")?,
        jwks_ca_pem: s("jwks_ca_pem")?,
        bound_issuer: s("bound_issuer")?,
        default_role: s("default_role")?,
        ..JwtConfig::default()
    };
    let secret = match s("oidc_client_secret")? {
        secret if secret.is_empty() => SecretChange::Clear,
        secret => SecretChange::Set(Secret::new(secret)),
    };
    config.oidc_response_types = input.list("oidc_response_types")?.unwrap_or_default();
    config.jwt_supported_algs = input.list("jwt_supported_algs")?.unwrap_or_default();
    // PEM keys hold no commas, but a list given as one string is split on them; take a string
    // as one key.
    config.jwt_validation_pubkeys = match input.peek("jwt_validation_pubkeys") {
        Some(Value::String(_)) => input
            .string("jwt_validation_pubkeys")?
            .into_iter()
            .collect(),
        _ => input.list("jwt_validation_pubkeys")?.unwrap_or_default(),
    };
    config.namespace_in_state = input.bool("namespace_in_state")?.unwrap_or(false);
    // Accepted for Vault's clients, and empty here: no provider-specific group fetching.
    for ignored in [
        "provider_config",
        "jwks_pairs",
        "unsupported_critical_cert_extensions",
    ] {
        // Taking the field is what marks it understood; its shape does not matter.
        let _ = input.json_document(ignored);
    }
    Ok((config, secret, input.unknown_field_warnings()))
}

/// A leeway: seconds or a duration string; negative (Vault's -1) turns it off.
fn leeway(input: &mut Fields, key: &str) -> Result<Option<i64>, ApiError> {
    if let Some(n) = input.peek(key).and_then(Value::as_i64) {
        input.int(key)?;
        return Ok(Some(n));
    }
    if let Some(Value::String(s)) = input.peek(key)
        && let Ok(n) = s.trim().parse::<i64>()
    {
        input.string(key)?;
        return Ok(Some(n));
    }
    Ok(input.ttl(key)?.map(|t| t.as_secs() as i64))
}

/// An object given as JSON or as a string holding JSON.
fn object(input: &mut Fields, key: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    Ok(match input.json_document(key)? {
        None => None,
        Some(doc) => match serde_json::from_str(&doc) {
            Ok(Value::Object(map)) => Some(map),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{key} must be a JSON object"
                )));
            }
        },
    })
}

fn bound_claims(map: Map<String, Value>) -> Result<BTreeMap<String, BoundValues>, ApiError> {
    map.into_iter()
        .map(|(k, v)| {
            BoundValues::from_json(&v)
                .map(|b| (k.clone(), b))
                .map_err(|e| ApiError::bad_request(format!("bound_claims {k:?}: {e}")))
        })
        .collect()
}

/// `auth/{mount}/role/{name}`, over `current` when the role exists.
pub fn role(
    current: Option<&JwtRole>,
    mut input: Fields,
) -> Result<(JwtRole, Vec<String>), ApiError> {
    let mut role = current.cloned().unwrap_or_default();
    // hvac repeats the role's name in the body.
    let _ = input.string("name");
    let bad = |e: crate::auth::jwt::JwtError| ApiError::bad_request(e.to_string());
    if let Some(t) = input.non_empty_string("role_type")? {
        role.role_type = RoleType::parse(&t).map_err(bad)?;
    }
    if let Some(v) = input.list("bound_audiences")? {
        role.bound_audiences = v;
    }
    for (key, into) in [
        ("user_claim", &mut role.user_claim),
        ("bound_subject", &mut role.bound_subject),
        ("groups_claim", &mut role.groups_claim),
    ] {
        if let Some(v) = input.string(key)? {
            *into = v.trim().to_owned();
        }
    }
    if let Some(b) = input.bool("user_claim_json_pointer")? {
        role.user_claim_json_pointer = b;
    }
    if let Some(map) = object(&mut input, "bound_claims")? {
        role.bound_claims = bound_claims(map)?;
    }
    if let Some(t) = input.string("bound_claims_type")? {
        role.bound_claims_type = BoundClaimsType::parse(t.trim()).map_err(bad)?;
    }
    if let Some(m) = input.tags("claim_mappings")? {
        role.claim_mappings = m;
    }
    if let Some(v) = input.list("oidc_scopes")? {
        role.oidc_scopes = v;
    }
    if let Some(v) = input.list("allowed_redirect_uris")? {
        role.allowed_redirect_uris = v;
    }
    if let Some(b) = input.bool("verbose_oidc_logging")? {
        role.verbose_oidc_logging = b;
    }
    if let Some(t) = input.ttl("max_age")? {
        role.max_age = t.as_secs() as i64;
    }
    for (key, into) in [
        ("clock_skew_leeway", &mut role.clock_skew_leeway),
        ("expiration_leeway", &mut role.expiration_leeway),
        ("not_before_leeway", &mut role.not_before_leeway),
    ] {
        if let Some(v) = leeway(&mut input, key)? {
            *into = v;
        }
    }
    role.token = token_settings(&role.token, &mut input)?;
    if input.list("bound_cidrs")?.is_some() {
        return Err(ApiError::bad_request(
            "bound_cidrs is the old name of token_bound_cidrs; use token_bound_cidrs",
        ));
    }
    Ok((role, input.unknown_field_warnings()))
}
