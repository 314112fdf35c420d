//! What a JWT/OIDC mount is configured with (`auth/{mount}/config`) and what a role asks of a
//! token (`auth/{mount}/role/{name}`), with the rules across fields checked when written, so a
//! login never meets a setting it cannot use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use url::Url;

use super::algs::parse_algorithms;
use super::bound::{BoundClaimsType, BoundValues};
use super::claims::{
    DEFAULT_CLOCK_SKEW_LEEWAY, DEFAULT_EXPIRATION_LEEWAY, DEFAULT_NOT_BEFORE_LEEWAY,
    validate_claim_mappings,
};
use super::error::JwtError;
use super::keys::parse_public_key;
use crate::auth::login::TokenSettings;

/// A mount's configuration, stored as JSON beside the mount; `oidc_client_secret` is sealed
/// apart from it and never part of this.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JwtConfig {
    pub oidc_discovery_url: String,
    pub oidc_discovery_ca_pem: String,
    pub oidc_client_id: String,
    /// `query` (the default and the only one taken).
    pub oidc_response_mode: String,
    pub oidc_response_types: Vec<String>,
    pub jwks_url: String,
    pub jwks_ca_pem: String,
    pub jwt_validation_pubkeys: Vec<String>,
    pub jwt_supported_algs: Vec<String>,
    pub bound_issuer: String,
    pub default_role: String,
    pub namespace_in_state: bool,
}

/// Where a mount's verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource<'a> {
    /// The provider's discovery document names its issuer and key set.
    Discovery {
        url: &'a str,
        ca_pem: &'a str,
    },
    Jwks {
        url: &'a str,
        ca_pem: &'a str,
    },
    Pems(&'a [String]),
}

impl JwtConfig {
    /// Vault's rule: exactly one source of keys.
    pub fn key_source(&self) -> Result<KeySource<'_>, JwtError> {
        let set = [
            !self.oidc_discovery_url.is_empty(),
            !self.jwks_url.is_empty(),
            !self.jwt_validation_pubkeys.is_empty(),
        ];
        match set {
            [true, false, false] => Ok(KeySource::Discovery {
                url: &self.oidc_discovery_url,
                ca_pem: &self.oidc_discovery_ca_pem,
            }),
            [false, true, false] => Ok(KeySource::Jwks {
                url: &self.jwks_url,
                ca_pem: &self.jwks_ca_pem,
            }),
            [false, false, true] => Ok(KeySource::Pems(&self.jwt_validation_pubkeys)),
            [false, false, false] => Err(JwtError::config(
                "the mount is not configured: set exactly one of oidc_discovery_url, jwks_url or jwt_validation_pubkeys",
            )),
            _ => Err(JwtError::config(
                "exactly one of oidc_discovery_url, jwks_url or jwt_validation_pubkeys must be set",
            )),
        }
    }

    /// Everything that can be checked without the network; the caller fetches the keys too.
    pub fn validate(&self, has_client_secret: bool) -> Result<(), JwtError> {
        self.key_source()?;
        for (name, url) in [
            ("oidc_discovery_url", &self.oidc_discovery_url),
            ("jwks_url", &self.jwks_url),
        ] {
            if !url.is_empty() {
                check_http_url(name, url)?;
            }
        }
        for pem in &self.jwt_validation_pubkeys {
            parse_public_key(pem)
                .map_err(|e| JwtError::config(format!("jwt_validation_pubkeys: {e}")))?;
        }
        parse_algorithms(&self.jwt_supported_algs)?;
        let oidc_only = !self.oidc_client_id.is_empty() || has_client_secret;
        if oidc_only && self.oidc_discovery_url.is_empty() {
            return Err(JwtError::config(
                "oidc_client_id and oidc_client_secret need oidc_discovery_url (the provider's authorization and token endpoints come from it)",
            ));
        }
        if has_client_secret && self.oidc_client_id.is_empty() {
            return Err(JwtError::config(
                "oidc_client_secret was given without oidc_client_id",
            ));
        }
        match self.oidc_response_mode.as_str() {
            "" | "query" => {}
            // The provider would POST the code cross-site, where neither the CLI's listener nor
            // the console's SameSite cookie can take it.
            "form_post" => {
                return Err(JwtError::config(
                    "oidc_response_mode \"form_post\" is not supported: leave it empty or \"query\" (the code flow with PKCE)",
                ));
            }
            other => {
                return Err(JwtError::config(format!(
                    "oidc_response_mode {other:?} is not valid: use \"query\""
                )));
            }
        }
        if let Some(t) = self
            .oidc_response_types
            .iter()
            .find(|t| t.as_str() != "code")
        {
            return Err(JwtError::config(format!(
                "oidc_response_types {t:?} is not supported: only \"code\" (the authorization code flow with PKCE)"
            )));
        }
        Ok(())
    }
}

pub(crate) fn check_http_url(name: &str, raw: &str) -> Result<Url, JwtError> {
    let url = Url::parse(raw)
        .map_err(|e| JwtError::config(format!("{name} {raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(JwtError::config(format!(
            "{name} must be an http(s) URL with a host, got {raw:?}"
        )));
    }
    Ok(url)
}

/// `role_type`: who logs in with the role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleType {
    /// A workload presenting a token it already holds (`auth/{mount}/login`).
    Jwt,
    /// A person signing in through the browser (`oidc/auth_url`, `oidc/callback`); Vault's
    /// default.
    #[default]
    Oidc,
}

impl RoleType {
    pub fn parse(raw: &str) -> Result<Self, JwtError> {
        match raw.trim() {
            "jwt" => Ok(RoleType::Jwt),
            "oidc" => Ok(RoleType::Oidc),
            other => Err(JwtError::config(format!(
                "role_type {other:?} is not valid: use \"jwt\" or \"oidc\""
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RoleType::Jwt => "jwt",
            RoleType::Oidc => "oidc",
        }
    }
}

/// A role of a JWT/OIDC mount. Leeways are Vault's: 0 is the default, negative none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JwtRole {
    pub role_type: RoleType,
    pub bound_audiences: Vec<String>,
    pub user_claim: String,
    pub user_claim_json_pointer: bool,
    pub bound_subject: String,
    pub bound_claims: BTreeMap<String, BoundValues>,
    pub bound_claims_type: BoundClaimsType,
    pub groups_claim: String,
    pub claim_mappings: BTreeMap<String, String>,
    pub oidc_scopes: Vec<String>,
    pub allowed_redirect_uris: Vec<String>,
    pub verbose_oidc_logging: bool,
    pub max_age: i64,
    pub clock_skew_leeway: i64,
    pub expiration_leeway: i64,
    pub not_before_leeway: i64,
    #[serde(flatten)]
    pub token: TokenSettings,
}

impl Default for JwtRole {
    fn default() -> Self {
        JwtRole {
            role_type: RoleType::default(),
            bound_audiences: Vec::new(),
            user_claim: String::new(),
            user_claim_json_pointer: false,
            bound_subject: String::new(),
            bound_claims: BTreeMap::new(),
            bound_claims_type: BoundClaimsType::default(),
            groups_claim: String::new(),
            claim_mappings: BTreeMap::new(),
            oidc_scopes: Vec::new(),
            allowed_redirect_uris: Vec::new(),
            verbose_oidc_logging: false,
            max_age: 0,
            clock_skew_leeway: DEFAULT_CLOCK_SKEW_LEEWAY,
            expiration_leeway: DEFAULT_EXPIRATION_LEEWAY,
            not_before_leeway: DEFAULT_NOT_BEFORE_LEEWAY,
            token: TokenSettings::default(),
        }
    }
}

impl JwtRole {
    pub fn validate(&self) -> Result<(), JwtError> {
        self.token
            .validate()
            .map_err(|e| JwtError::config(e.to_string()))?;
        if self.user_claim.trim().is_empty() {
            return Err(JwtError::config(
                "user_claim is required (for example \"sub\", or \"email\" for people)",
            ));
        }
        if self.user_claim_json_pointer && !self.user_claim.starts_with('/') {
            return Err(JwtError::config(
                "user_claim_json_pointer is set, so user_claim must be a JSON pointer such as \"/sub\"",
            ));
        }
        validate_claim_mappings(&self.claim_mappings)?;
        if self.max_age < 0 {
            return Err(JwtError::config("max_age must not be negative"));
        }
        match self.role_type {
            // Vault's rule: a workload role must bind the token to something, or any token the
            // issuer ever signed for anyone would log in.
            RoleType::Jwt => {
                if self.bound_audiences.is_empty()
                    && self.bound_subject.is_empty()
                    && self.bound_claims.is_empty()
                    && self.token.token_bound_cidrs.is_empty()
                {
                    return Err(JwtError::config(
                        "a role of role_type \"jwt\" must have at least one bound constraint: bound_audiences, bound_subject, bound_claims or token_bound_cidrs",
                    ));
                }
            }
            RoleType::Oidc => {
                if self.allowed_redirect_uris.is_empty() {
                    return Err(JwtError::config(
                        "allowed_redirect_uris is required for a role of role_type \"oidc\" (for example http://localhost:8250/oidc/callback for the CLI)",
                    ));
                }
                for uri in &self.allowed_redirect_uris {
                    check_http_url("allowed_redirect_uris", uri)?;
                }
            }
        }
        Ok(())
    }
}
