//! A JWT/OIDC mount's config and roles as stored, and the login that trades a signed token for
//! an iamlease token: signature by the mount's keys, claims by the role's rules, then a token
//! tied to the mount whose `meta` holds the mapped claims.

use std::net::IpAddr;
use std::sync::Arc;

use super::cache::{KeyCache, Provider};
use super::claims::{
    DEFAULT_CLOCK_SKEW_LEEWAY, DEFAULT_EXPIRATION_LEEWAY, DEFAULT_NOT_BEFORE_LEEWAY,
};
use super::claims::{Expectations, Verified, check_claims, vault_leeway};
use super::error::JwtError;
use super::settings::{JwtConfig, JwtRole, RoleType};
use crate::auth::login::{LoginIdentity, allowed_from, login_token};
use crate::auth::{AuthError, mounts};
use crate::model::{AuthKind, AuthMountRecord, AuthRoleRecord, MountPath, RoleName};
use crate::seal::{Sealer, Secret};
use crate::store::{Store, TokenRecord};

impl From<JwtError> for AuthError {
    fn from(e: JwtError) -> Self {
        match e {
            JwtError::Token(m) | JwtError::Claims(m) | JwtError::Config(m) => AuthError::Invalid(m),
            JwtError::Fetch(m) => AuthError::Unavailable(m),
        }
    }
}

const KINDS: [AuthKind; 2] = [AuthKind::Jwt, AuthKind::Oidc];

/// The seal context of a mount's `oidc_client_secret`: bound to the mount's accessor, so a
/// sealed secret copied to another mount's row does not open.
fn secret_context(mount: &AuthMountRecord) -> String {
    crate::model::SealedValue::AuthClientSecret {
        accessor: mount.accessor.clone(),
    }
    .context()
}

/// A JWT/OIDC mount and its config.
pub struct JwtMount {
    pub record: AuthMountRecord,
    pub config: JwtConfig,
}

impl JwtMount {
    pub fn client_secret(&self, sealer: &Sealer) -> Result<Option<Secret>, AuthError> {
        let Some(sealed) = &self.record.secret_sealed else {
            return Ok(None);
        };
        let plain = sealer
            .open(&secret_context(&self.record), sealed)
            .map_err(|_| {
                AuthError::Invalid(
                    "the stored oidc_client_secret cannot be opened with this master key".into(),
                )
            })?;
        Ok(Some(Secret::new(
            String::from_utf8_lossy(&plain).into_owned(),
        )))
    }
}

pub async fn mount(store: &Arc<dyn Store>, path: &MountPath) -> Result<JwtMount, AuthError> {
    let record = mounts::find(store, path, &KINDS).await?;
    let config = serde_json::from_str(&record.config).unwrap_or_default();
    Ok(JwtMount { record, config })
}

/// What a config write changes about the client secret.
pub enum SecretChange {
    Keep,
    Set(Secret),
    Clear,
}

/// Writes a mount's config after checking it, keys fetched included (a typo in a URL is
/// the operator's 400 now, not every login's failure later).
pub async fn write_config(
    store: &Arc<dyn Store>,
    cache: &KeyCache,
    sealer: &Sealer,
    path: &MountPath,
    config: JwtConfig,
    secret: SecretChange,
) -> Result<(), AuthError> {
    let mut mount = mount(store, path).await?;
    let sealed = match secret {
        SecretChange::Keep => mount.record.secret_sealed.clone(),
        SecretChange::Clear => None,
        SecretChange::Set(s) => Some(
            sealer
                .seal(&secret_context(&mount.record), s.expose().as_bytes())
                .map_err(|e| AuthError::Invalid(format!("cannot seal oidc_client_secret: {e}")))?,
        ),
    };
    config.validate(sealed.is_some())?;
    KeyCache::check(&config)
        .await
        .map_err(|e| AuthError::Invalid(e.to_string()))?;
    mount.record.config = serde_json::to_string(&config).expect("a config serialises");
    mount.record.secret_sealed = sealed;
    if !store.update_auth_mount(&mount.record).await? {
        return Err(AuthError::NotFound(format!(
            "no auth method is enabled at auth/{path}/"
        )));
    }
    cache.forget(path.as_str());
    Ok(())
}

pub async fn read_role(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
) -> Result<Option<JwtRole>, AuthError> {
    mount(store, path).await?;
    stored_role(store, path, name).await
}

/// The role as stored, the mount already known to be JWT/OIDC.
async fn stored_role(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
) -> Result<Option<JwtRole>, AuthError> {
    let Some(record) = store.get_auth_role(path, name).await? else {
        return Ok(None);
    };
    let role = serde_json::from_str(&record.body)
        .map_err(|e| AuthError::Invalid(format!("stored role {name} cannot be read: {e}")))?;
    Ok(Some(role))
}

pub async fn write_role(
    store: &Arc<dyn Store>,
    path: &MountPath,
    name: &RoleName,
    role: &JwtRole,
) -> Result<(), AuthError> {
    role.validate()?;
    mount(store, path).await?;
    let record = AuthRoleRecord {
        name: name.clone(),
        body: serde_json::to_string(role).expect("a role serialises"),
        role_id: None,
    };
    store.put_auth_role(path, &record).await?;
    Ok(())
}

/// The role a login names, or the mount's `default_role`.
pub(super) async fn login_role(
    store: &Arc<dyn Store>,
    mount: &JwtMount,
    role: Option<&str>,
) -> Result<(RoleName, JwtRole), AuthError> {
    let raw = match role.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => r,
        None if !mount.config.default_role.is_empty() => mount.config.default_role.as_str(),
        None => {
            return Err(AuthError::Invalid(
                "missing role: name one, or set default_role in the mount's config".into(),
            ));
        }
    };
    let name = RoleName::parse(raw).map_err(AuthError::Invalid)?;
    // The mount is in hand: one read of the role, not another of the mount.
    let role = stored_role(store, &mount.record.path, &name)
        .await?
        .ok_or_else(|| AuthError::Invalid(format!("role {raw:?} could not be found")))?;
    Ok((name, role))
}

/// `auth/{mount}/login`: a workload's token for a `jwt` role.
pub async fn login(
    store: &Arc<dyn Store>,
    cache: &KeyCache,
    path: &MountPath,
    role: Option<&str>,
    jwt: &str,
    peer: Option<IpAddr>,
    now: i64,
) -> Result<(String, TokenRecord), AuthError> {
    let mount = mount(store, path).await?;
    let (name, role) = login_role(store, &mount, role).await?;
    if role.role_type != RoleType::Jwt {
        return Err(AuthError::Invalid(format!(
            "role {:?} is an oidc role, for browser sign-in (oidc/auth_url); a token can log in only with a role of role_type \"jwt\"",
            name.as_str()
        )));
    }
    check_source(&role, peer)?;
    let jwt = jwt.trim();
    if jwt.is_empty() {
        return Err(AuthError::Invalid(
            "jwt is required: the signed token to log in with".into(),
        ));
    }
    let (claims, provider) = cache.verify(path.as_str(), &mount.config, jwt).await?;
    let verified = claims_for(&mount, &role, &claims, provider.as_ref(), None, now)?;
    finish(store, &mount, &name, &role, verified, now).await
}

/// Vault checks a role's `token_bound_cidrs` at login too, not only when the token is used.
pub(super) fn check_source(role: &JwtRole, peer: Option<IpAddr>) -> Result<(), AuthError> {
    if allowed_from(&role.token.token_bound_cidrs, peer) {
        return Ok(());
    }
    let source = peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    Err(AuthError::Forbidden(format!(
        "source address {source} is not allowed by the role's token_bound_cidrs"
    )))
}

/// The role's and config's rules applied to verified claims. `nonce` is the OIDC sign-in's.
pub(super) fn claims_for(
    mount: &JwtMount,
    role: &JwtRole,
    claims: &super::verify::Claims,
    provider: Option<&Provider>,
    nonce: Option<&str>,
    now: i64,
) -> Result<Verified, AuthError> {
    let config = &mount.config;
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let bound_issuer = nonempty(&config.bound_issuer);
    let client_id = match role.role_type {
        RoleType::Oidc => nonempty(&config.oidc_client_id),
        RoleType::Jwt => None,
    };
    let expect = Expectations {
        bound_issuer: bound_issuer.as_deref(),
        discovered_issuer: provider.map(|p| p.issuer.as_str()),
        bound_audiences: &role.bound_audiences,
        client_id: client_id.as_deref(),
        bound_subject: (!role.bound_subject.is_empty()).then_some(role.bound_subject.as_str()),
        bound_claims: &role.bound_claims,
        bound_claims_type: role.bound_claims_type,
        user_claim: &role.user_claim,
        user_claim_json_pointer: role.user_claim_json_pointer,
        groups_claim: (!role.groups_claim.is_empty()).then_some(role.groups_claim.as_str()),
        claim_mappings: &role.claim_mappings,
        clock_skew_leeway: vault_leeway(role.clock_skew_leeway, DEFAULT_CLOCK_SKEW_LEEWAY),
        expiration_leeway: vault_leeway(role.expiration_leeway, DEFAULT_EXPIRATION_LEEWAY),
        not_before_leeway: vault_leeway(role.not_before_leeway, DEFAULT_NOT_BEFORE_LEEWAY),
        expected_nonce: nonce,
        now,
    };
    let verified = check_claims(claims, &expect)?;
    // `max_age`: the person must have authenticated at the provider recently (Vault's rule).
    if role.max_age > 0 {
        let auth_time = claims
            .get("auth_time")
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| {
                AuthError::Invalid(
                    "the role sets max_age, but the token has no auth_time claim".into(),
                )
            })?;
        let oldest = (now - role.max_age - expect.clock_skew_leeway) as f64;
        if auth_time < oldest {
            return Err(AuthError::Invalid(
                "auth_time claim is older than the role's max_age: sign in at the provider again"
                    .into(),
            ));
        }
    }
    Ok(verified)
}

/// The token of a login that passed: display name `{mount}-{user}`, meta the mapped claims
/// and the role's name.
pub(super) async fn finish(
    store: &Arc<dyn Store>,
    mount: &JwtMount,
    name: &RoleName,
    role: &JwtRole,
    verified: Verified,
    now: i64,
) -> Result<(String, TokenRecord), AuthError> {
    let mut metadata = verified.metadata;
    metadata.insert("role".into(), name.to_string());
    let who = LoginIdentity {
        name: verified.user,
        metadata,
        extra_policies: Vec::new(),
        extra_bound_cidrs: Vec::new(),
    };
    login_token(store, &mount.record, &role.token, who, now).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mount() -> JwtMount {
        JwtMount {
            record: AuthMountRecord {
                path: MountPath::parse("oidc").unwrap(),
                kind: AuthKind::Oidc,
                accessor: "auth_oidc_test".into(),
                description: String::new(),
                config: "{}".into(),
                secret_sealed: None,
                default_lease_ttl: None,
                max_lease_ttl: None,
                created_at: 0,
            },
            config: JwtConfig {
                oidc_client_id: "iamlease".into(),
                ..JwtConfig::default()
            },
        }
    }

    #[test]
    fn max_age_needs_a_recent_auth_time() {
        const NOW: i64 = 1_800_000_000;
        let role = JwtRole {
            user_claim: "sub".into(),
            max_age: 300,
            ..JwtRole::default()
        };
        let claims = |auth_time: Option<i64>| {
            let mut c = json!({"sub": "alice", "aud": "iamlease", "exp": NOW + 60});
            if let Some(t) = auth_time {
                c["auth_time"] = json!(t);
            }
            c.as_object().unwrap().clone()
        };
        let check = |c| claims_for(&mount(), &role, &c, None, None, NOW).map(|v| v.user);
        assert_eq!(check(claims(Some(NOW - 100))).unwrap(), "alice");
        let old = check(claims(Some(NOW - 300 - 61))).unwrap_err().to_string();
        assert!(old.contains("max_age"), "{old}");
        let missing = check(claims(None)).unwrap_err().to_string();
        assert!(missing.contains("auth_time"), "{missing}");
        // Without max_age, auth_time does not matter.
        let lax = JwtRole {
            max_age: 0,
            ..role.clone()
        };
        assert!(claims_for(&mount(), &lax, &claims(None), None, None, NOW).is_ok());
    }
}
