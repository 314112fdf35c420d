//! The JWT/OIDC method's routes (`auth/{mount}/config`, its roles, `login`, `oidc/auth_url`,
//! `oidc/callback`): Vault's fields in, Vault's shapes out; the rules live in `auth::jwt`.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::auth_methods::{Peer, mount_path, role_name};
use super::error::ApiError;
use super::vault::{self, Input};
use super::{AppState, jwt_forms, token};
use crate::auth::Caller;
use crate::auth::jwt::{self, JwtConfig, JwtRole, oidc};
use crate::clock::now;
use crate::model::MountPath;

type ApiResult = Result<Response, ApiError>;

fn config_view(c: &JwtConfig) -> Value {
    json!({
        "bound_issuer": c.bound_issuer,
        "default_role": c.default_role,
        "jwks_ca_pem": c.jwks_ca_pem,
        "jwks_url": c.jwks_url,
        "jwks_pairs": [],
        "jwt_supported_algs": c.jwt_supported_algs,
        "jwt_validation_pubkeys": c.jwt_validation_pubkeys,
        "namespace_in_state": c.namespace_in_state,
        "oidc_client_id": c.oidc_client_id,
        "oidc_discovery_ca_pem": c.oidc_discovery_ca_pem,
        "oidc_discovery_url": c.oidc_discovery_url,
        "oidc_response_mode": c.oidc_response_mode,
        "oidc_response_types": c.oidc_response_types,
        "provider_config": {},
        "unsupported_critical_cert_extensions": [],
    })
}

fn role_view(r: &JwtRole) -> Value {
    let t = &r.token;
    let cidrs: Vec<String> = t
        .token_bound_cidrs
        .iter()
        .cloned()
        .map(String::from)
        .collect();
    json!({
        "role_type": r.role_type.as_str(),
        "bound_audiences": r.bound_audiences,
        "user_claim": r.user_claim,
        "user_claim_json_pointer": r.user_claim_json_pointer,
        "bound_subject": r.bound_subject,
        "bound_claims": r.bound_claims,
        "bound_claims_type": r.bound_claims_type,
        "groups_claim": r.groups_claim,
        "claim_mappings": r.claim_mappings,
        "oidc_scopes": r.oidc_scopes,
        "allowed_redirect_uris": r.allowed_redirect_uris,
        "verbose_oidc_logging": r.verbose_oidc_logging,
        "max_age": r.max_age,
        "clock_skew_leeway": r.clock_skew_leeway,
        "expiration_leeway": r.expiration_leeway,
        "not_before_leeway": r.not_before_leeway,
        "token_bound_cidrs": cidrs,
        "token_explicit_max_ttl": t.token_explicit_max_ttl,
        "token_max_ttl": t.token_max_ttl,
        "token_no_default_policy": t.token_no_default_policy,
        "token_num_uses": t.token_num_uses,
        "token_period": t.token_period,
        "token_policies": t.token_policies,
        "token_ttl": t.token_ttl,
        "token_type": "default",
        "policies": t.token_policies,
        "ttl": t.token_ttl,
        "max_ttl": t.token_max_ttl,
        "period": t.token_period,
        "num_uses": t.token_num_uses,
        "bound_cidrs": cidrs,
    })
}

pub async fn read_config(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
) -> ApiResult {
    let mount = jwt::mount(state.engine.store(), &mount_path(&path)?).await?;
    if mount.config.key_source().is_err() {
        return Err(ApiError::not_found(format!(
            "auth/{path}/ has no config yet: write one to auth/{path}/config"
        )));
    }
    Ok(vault::read(config_view(&mount.config)))
}

pub async fn write_config(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
    input: Input,
) -> ApiResult {
    let path = mount_path(&path)?;
    let (config, secret, warnings) = jwt_forms::config(input.fields)?;
    jwt::write_config(
        state.engine.store(),
        &state.jwt_keys,
        state.engine.sealer(),
        &path,
        config,
        secret,
    )
    .await?;
    Ok(vault::written(warnings))
}

pub(super) async fn login(
    state: &AppState,
    path: &MountPath,
    peer: Peer,
    mut input: Input,
) -> ApiResult {
    let f = &mut input.fields;
    let role = f.string("role")?;
    let token = f
        .string("jwt")?
        .ok_or_else(|| ApiError::bad_request("jwt is required: the signed token to log in with"))?;
    let (client_token, record) = jwt::login(
        state.engine.store(),
        &state.jwt_keys,
        path,
        role.as_deref(),
        &token,
        peer.0,
        now(),
    )
    .await?;
    Ok(vault::auth_response(token::auth_data(
        &client_token,
        &record,
    )))
}

pub(super) async fn read_role(state: &AppState, path: &MountPath, name: &str) -> ApiResult {
    let name = role_name(name)?;
    match jwt::read_role(state.engine.store(), path, &name).await? {
        Some(role) => Ok(vault::read(role_view(&role))),
        None => Err(ApiError::not_found(format!(
            "role {:?} does not exist",
            name.as_str()
        ))),
    }
}

pub(super) async fn write_role(
    state: &AppState,
    path: &MountPath,
    name: &str,
    input: Input,
) -> ApiResult {
    let name = role_name(name)?;
    let store = state.engine.store();
    let current = jwt::read_role(store, path, &name).await?;
    let (role, warnings) = jwt_forms::role(current.as_ref(), input.fields)?;
    jwt::write_role(store, path, &name, &role).await?;
    Ok(vault::written(warnings))
}

/// `POST auth/{mount}/oidc/auth_url`: `role`, `redirect_uri`, `client_nonce`.
pub async fn auth_url(
    State(state): State<AppState>,
    Path(path): Path<String>,
    mut input: Input,
) -> ApiResult {
    let path = mount_path(&path)?;
    let f = &mut input.fields;
    let role = f.string("role")?;
    let redirect_uri = f.string("redirect_uri")?.unwrap_or_default();
    let client_nonce = f.string("client_nonce")?;
    let url = oidc::auth_url(
        state.engine.store(),
        &state.jwt_keys,
        state.engine.sealer(),
        &path,
        role.as_deref(),
        redirect_uri.trim(),
        client_nonce,
        now(),
    )
    .await?;
    Ok(vault::read(json!({ "auth_url": url })))
}

/// `GET|POST auth/{mount}/oidc/callback`: `state`, `code`, `client_nonce` from the query (or
/// a JSON body).
pub async fn callback(
    State(state): State<AppState>,
    Path(path): Path<String>,
    peer: Peer,
    mut input: Input,
) -> ApiResult {
    let path = mount_path(&path)?;
    let f = &mut input.fields;
    if let Some(error) = f.non_empty_string("error")? {
        let detail = f.string("error_description")?.unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "the provider refused the sign-in: {error} {detail}"
        )));
    }
    let oauth_state = f.string("state")?.unwrap_or_default();
    let code = f.string("code")?.unwrap_or_default();
    let client_nonce = f.string("client_nonce")?;
    let (client_token, record) = oidc::callback(
        state.engine.store(),
        &state.jwt_keys,
        state.engine.sealer(),
        &path,
        oidc::Callback {
            state: &oauth_state,
            code: &code,
            client_nonce: client_nonce.as_deref(),
            peer: peer.0,
        },
        now(),
    )
    .await?;
    Ok(vault::auth_response(token::auth_data(
        &client_token,
        &record,
    )))
}
