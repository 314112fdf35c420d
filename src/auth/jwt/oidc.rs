//! OIDC sign-in for people (Vault's `oidc/auth_url` and `oidc/callback`): the authorization
//! code flow with PKCE, a one-time `state` and a `nonce`. What the callback needs to finish is
//! sealed in the store under the state's hash, so any replica can take the callback and a copy
//! of the database holds no verifier.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use url::Url;

use super::cache::KeyCache;
use super::error::JwtError;
use super::login::{JwtMount, check_source, claims_for, finish, login_role, mount};
use super::settings::{JwtRole, RoleType};
use crate::auth::AuthError;
use crate::idp::IdpClient;
use crate::model::MountPath;
use crate::seal::{ALNUM, Sealer, random_string, token_hash};
use crate::store::{Store, TokenRecord};

/// How long a sign-in may take between the auth URL and the callback (Vault's 10 minutes).
const REQUEST_TTL: i64 = 600;

/// What the callback needs from the auth URL request.
#[derive(Serialize, Deserialize)]
struct Pending {
    role: String,
    redirect_uri: String,
    nonce: String,
    code_verifier: String,
    client_nonce: Option<String>,
}

fn context(path: &MountPath) -> String {
    crate::model::SealedValue::OidcRequest {
        mount: path.to_string(),
    }
    .context()
}

fn state_hash(state: &str) -> Vec<u8> {
    token_hash(&format!("oidc-state\0{state}"))
}

/// The provider's endpoints, or why the mount cannot sign people in.
async fn provider(cache: &KeyCache, mount: &JwtMount) -> Result<super::cache::Provider, AuthError> {
    if mount.config.oidc_discovery_url.is_empty() || mount.config.oidc_client_id.is_empty() {
        return Err(AuthError::Invalid(format!(
            "auth/{}/ is not configured for OIDC sign-in: set oidc_discovery_url and oidc_client_id in its config",
            mount.record.path
        )));
    }
    let set = cache
        .keys(mount.record.path.as_str(), &mount.config)
        .await?;
    let provider = set.provider.clone().unwrap_or_default();
    if provider.authorization_endpoint.is_empty() || provider.token_endpoint.is_empty() {
        return Err(AuthError::Unavailable(
            "the provider's discovery document names no authorization_endpoint or token_endpoint"
                .into(),
        ));
    }
    Ok(provider)
}

/// Whether `uri` is one the role allows. A loopback URI matches whatever its port (RFC 8252
/// §7.3: a CLI picks a free port each time), as Vault does.
fn redirect_allowed(role: &JwtRole, uri: &str) -> bool {
    let Ok(given) = Url::parse(uri) else {
        return false;
    };
    role.allowed_redirect_uris.iter().any(|allowed| {
        if allowed == uri {
            return true;
        }
        let Ok(mut allowed) = Url::parse(allowed) else {
            return false;
        };
        let loopback = |u: &Url| matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if !loopback(&allowed) || !loopback(&given) {
            return false;
        }
        let _ = allowed.set_port(given.port());
        allowed == given
    })
}

/// `oidc/auth_url`: where to send the person's browser.
#[allow(clippy::too_many_arguments)]
pub async fn auth_url(
    store: &Arc<dyn Store>,
    cache: &KeyCache,
    sealer: &Sealer,
    path: &MountPath,
    role: Option<&str>,
    redirect_uri: &str,
    client_nonce: Option<String>,
    now: i64,
) -> Result<String, AuthError> {
    let mount = mount(store, path).await?;
    let (name, role) = login_role(store, &mount, role).await?;
    if role.role_type != RoleType::Oidc {
        return Err(AuthError::Invalid(format!(
            "role {:?} is a jwt role; browser sign-in needs a role of role_type \"oidc\"",
            name.as_str()
        )));
    }
    if redirect_uri.trim().is_empty() {
        return Err(AuthError::Invalid("redirect_uri is required".into()));
    }
    if !redirect_allowed(&role, redirect_uri) {
        return Err(AuthError::Invalid(format!(
            "unauthorized redirect_uri: {redirect_uri} is not in the role's allowed_redirect_uris"
        )));
    }
    let provider = provider(cache, &mount).await?;
    let state = random_string(32, ALNUM);
    let pending = Pending {
        role: name.to_string(),
        redirect_uri: redirect_uri.to_owned(),
        nonce: random_string(32, ALNUM),
        code_verifier: random_string(64, ALNUM),
        client_nonce: client_nonce.filter(|n| !n.is_empty()),
    };
    let challenge = URL_SAFE_NO_PAD.encode(token_hash(&pending.code_verifier));
    let mut url = Url::parse(&provider.authorization_endpoint).map_err(|_| {
        AuthError::Unavailable("the provider's authorization_endpoint is not a URL".into())
    })?;
    let mut scopes = vec!["openid".to_owned()];
    scopes.extend(
        role.oidc_scopes
            .iter()
            .filter(|s| s.as_str() != "openid")
            .cloned(),
    );
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", &mount.config.oidc_client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if role.max_age > 0 {
            q.append_pair("max_age", &role.max_age.to_string());
        }
    }
    let sealed = sealer
        .seal(
            &context(path),
            &serde_json::to_vec(&pending).expect("serialises"),
        )
        .map_err(|e| AuthError::Invalid(format!("cannot seal the sign-in request: {e}")))?;
    store
        .put_oidc_request(&state_hash(&state), path, &sealed, now + REQUEST_TTL)
        .await?;
    Ok(url.into())
}

/// What the provider sent back to the redirect URI.
pub struct Callback<'a> {
    pub state: &'a str,
    pub code: &'a str,
    pub client_nonce: Option<&'a str>,
    pub peer: Option<IpAddr>,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

/// `oidc/callback`: the code exchanged (with the PKCE verifier) for an ID token, which must
/// carry the nonce sent, then a login as for a workload.
pub async fn callback(
    store: &Arc<dyn Store>,
    cache: &KeyCache,
    sealer: &Sealer,
    path: &MountPath,
    cb: Callback<'_>,
    now: i64,
) -> Result<(String, TokenRecord), AuthError> {
    let mount = mount(store, path).await?;
    let expired =
        || AuthError::Invalid("expired or missing OAuth state: start the sign-in again".into());
    if cb.state.is_empty() {
        return Err(expired());
    }
    // Taken (deleted) before anything else: a state is good for one callback only.
    let sealed = store
        .take_oidc_request(&state_hash(cb.state), path, now)
        .await?
        .ok_or_else(expired)?;
    let pending: Pending = sealer
        .open(&context(path), &sealed)
        .ok()
        .and_then(|plain| serde_json::from_slice(&plain).ok())
        .ok_or_else(expired)?;
    if pending.client_nonce.as_deref() != cb.client_nonce.filter(|n| !n.is_empty()) {
        return Err(AuthError::Invalid("invalid client_nonce".into()));
    }
    if cb.code.is_empty() {
        return Err(AuthError::Invalid(
            "the provider sent no authorization code".into(),
        ));
    }
    let (name, role) = login_role(store, &mount, Some(&pending.role)).await?;
    check_source(&role, cb.peer)?;
    let provider = provider(cache, &mount).await?;
    let id_token = exchange(&mount, sealer, &provider.token_endpoint, cb.code, &pending).await?;
    let (claims, provider) = cache
        .verify(path.as_str(), &mount.config, &id_token)
        .await?;
    let verified = claims_for(
        &mount,
        &role,
        &claims,
        provider.as_ref(),
        Some(&pending.nonce),
        now,
    )?;
    finish(store, &mount, &name, &role, verified, now).await
}

async fn exchange(
    mount: &JwtMount,
    sealer: &Sealer,
    token_endpoint: &str,
    code: &str,
    pending: &Pending,
) -> Result<String, AuthError> {
    let client = IdpClient::new(&mount.config.oidc_discovery_ca_pem).map_err(JwtError::from)?;
    let client_id = mount.config.oidc_client_id.as_str();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", pending.redirect_uri.as_str()),
        ("code_verifier", pending.code_verifier.as_str()),
        ("client_id", client_id),
    ];
    let secret = mount.client_secret(sealer)?;
    let basic = secret.as_ref().map(|s| (client_id, s.expose()));
    let (status, body) = client
        .post_form(token_endpoint, &form, basic)
        .await
        .map_err(JwtError::from)?;
    let failed = |why: String| {
        AuthError::Invalid(format!(
            "the provider refused the authorization code: {why}"
        ))
    };
    if !(200..300).contains(&status) {
        // The OAuth error code, never the body whole (it may echo the code).
        let error = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP {status}"));
        return Err(failed(error));
    }
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|_| failed("the token response is not JSON".into()))?;
    parsed
        .id_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| failed("the token response has no id_token".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(uris: &[&str]) -> JwtRole {
        JwtRole {
            allowed_redirect_uris: uris.iter().map(|u| u.to_string()).collect(),
            ..JwtRole::default()
        }
    }

    #[test]
    fn loopback_redirects_match_on_any_port_others_exactly() {
        let r = role(&[
            "http://localhost:8250/oidc/callback",
            "https://app.example/cb",
        ]);
        assert!(redirect_allowed(&r, "http://localhost:8250/oidc/callback"));
        assert!(redirect_allowed(&r, "http://localhost:41873/oidc/callback"));
        assert!(!redirect_allowed(&r, "http://localhost:41873/other"));
        assert!(!redirect_allowed(
            &r,
            "http://evil.example:8250/oidc/callback"
        ));
        assert!(redirect_allowed(&r, "https://app.example/cb"));
        assert!(!redirect_allowed(&r, "https://app.example:8443/cb"));
        assert!(!redirect_allowed(&r, "https://app.example/cb/x"));
        assert!(!redirect_allowed(&r, "not a url"));
    }
}
