//! The key cache: each mount's verification keys (and, with discovery, its provider's issuer
//! and endpoints), fetched once and kept, so a login costs no network call. An unknown `kid`
//! (the provider rotated its keys) fetches again, at most once per `REFETCH_EVERY`, so a stream
//! of made-up kids cannot turn us into a load generator against the provider.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::algs::parse_algorithms;
use super::error::JwtError;
use super::header::read_header;
use super::keys::{PublicKey, parse_jwks, parse_public_key};
use super::settings::{JwtConfig, KeySource, check_http_url};
use super::verify::{Claims, Outcome, verify_with};
use crate::idp::IdpClient;

/// The least time between two fetches a miss may cause.
const REFETCH_EVERY: Duration = Duration::from_secs(10);
/// Keys are fetched again on the first login after this long, even without a miss, so a key
/// the provider withdrew stops verifying.
const MAX_AGE: Duration = Duration::from_secs(3600);

/// What OIDC discovery says about the provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provider {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
}

/// One mount's keys as last fetched.
#[derive(Debug)]
pub struct KeySet {
    /// The key source these keys came from: a config change makes the set stale.
    source: String,
    pub keys: Vec<PublicKey>,
    /// Keys fetched from a URL carry kids, which select the key; PEM keys do not.
    match_kid: bool,
    pub provider: Option<Provider>,
    fetched_at: Instant,
    /// Fetched because no key fitted a token: the next such fetch waits `REFETCH_EVERY`.
    after_miss: bool,
}

#[derive(Default)]
pub struct KeyCache {
    sets: Mutex<HashMap<String, Arc<KeySet>>>,
    /// One fetch at a time: a burst of logins after a rotation fetches once.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    authorization_endpoint: String,
    #[serde(default)]
    token_endpoint: String,
}

impl KeyCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops a mount's keys (the mount was disabled or reconfigured).
    pub fn forget(&self, mount: &str) {
        self.lock().remove(mount);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<KeySet>>> {
        // A panic while holding the map leaves it usable: entries are replaced whole.
        self.sets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached(&self, mount: &str, source: &str) -> Option<Arc<KeySet>> {
        self.lock()
            .get(mount)
            .filter(|s| s.source == source && s.fetched_at.elapsed() < MAX_AGE)
            .cloned()
    }

    /// The mount's keys: cached, or fetched (and cached) now.
    pub async fn keys(&self, mount: &str, config: &JwtConfig) -> Result<Arc<KeySet>, JwtError> {
        let source = source_key(&config.key_source()?);
        if let Some(set) = self.cached(mount, &source) {
            return Ok(set);
        }
        self.refresh(mount, config, &source, None).await
    }

    /// Fetches again unless another task did since `seen` (or, with `seen`, unless the last
    /// fetch is younger than `REFETCH_EVERY`).
    async fn refresh(
        &self,
        mount: &str,
        config: &JwtConfig,
        source: &str,
        seen: Option<Instant>,
    ) -> Result<Arc<KeySet>, JwtError> {
        let _one = self.fetching.lock().await;
        let current = self
            .lock()
            .get(mount)
            .filter(|s| s.source == source)
            .cloned();
        if let Some(current) = &current {
            let fresh = match seen {
                None => current.fetched_at.elapsed() < MAX_AGE,
                Some(seen) => {
                    current.fetched_at > seen
                        || (current.after_miss && current.fetched_at.elapsed() < REFETCH_EVERY)
                }
            };
            if fresh {
                return Ok(current.clone());
            }
        }
        match load(config, source.to_owned(), seen.is_some()).await {
            Ok(set) => {
                let set = Arc::new(set);
                self.lock().insert(mount.to_owned(), set.clone());
                Ok(set)
            }
            Err(e) => match (seen, current) {
                // An outage of the provider must not stop logins with keys we already hold.
                (None, Some(current)) => {
                    tracing::warn!(mount, error = %e, "refreshing JWT keys failed; using the cached ones");
                    Ok(current)
                }
                _ => Err(e),
            },
        }
    }

    /// Verifies `token`'s signature with the mount's keys, fetching them again once when no
    /// cached key fits (the provider may have rotated). Claims are not checked here.
    pub async fn verify(
        &self,
        mount: &str,
        config: &JwtConfig,
        token: &str,
    ) -> Result<(Claims, Option<Provider>), JwtError> {
        let algs = parse_algorithms(&config.jwt_supported_algs)?;
        let header = read_header(token, &algs)?;
        let set = self.keys(mount, config).await?;
        let miss = match verify_with(&set.keys, token, &header, set.match_kid) {
            Outcome::Verified(claims) => return Ok((claims, set.provider.clone())),
            Outcome::Refused(e) => return Err(e),
            Outcome::Miss(e) => e,
        };
        if !set.match_kid {
            return Err(miss);
        }
        let source = source_key(&config.key_source()?);
        let fresh = self
            .refresh(mount, config, &source, Some(set.fetched_at))
            .await?;
        if Arc::ptr_eq(&fresh, &set) {
            return Err(miss);
        }
        match verify_with(&fresh.keys, token, &header, fresh.match_kid) {
            Outcome::Verified(claims) => Ok((claims, fresh.provider.clone())),
            Outcome::Refused(e) | Outcome::Miss(e) => Err(e),
        }
    }

    /// Fetches the keys of `config` without caching them: how a config write checks them.
    pub async fn check(config: &JwtConfig) -> Result<(), JwtError> {
        let source = source_key(&config.key_source()?);
        load(config, source, false).await.map(|_| ())
    }
}

fn source_key(source: &KeySource<'_>) -> String {
    format!("{source:?}")
}

async fn load(config: &JwtConfig, source: String, after_miss: bool) -> Result<KeySet, JwtError> {
    let (keys, match_kid, provider) = match config.key_source()? {
        KeySource::Pems(pems) => {
            let keys = pems
                .iter()
                .map(|p| parse_public_key(p))
                .collect::<Result<Vec<_>, _>>()?;
            (keys, false, None)
        }
        KeySource::Jwks { url, ca_pem } => {
            let client = IdpClient::new(ca_pem)?;
            (parse_jwks(&client.get(url, "key set").await?)?, true, None)
        }
        KeySource::Discovery { url, ca_pem } => {
            let client = IdpClient::new(ca_pem)?;
            let base = url.trim_end_matches('/');
            let well_known = format!("{base}/.well-known/openid-configuration");
            let body = client.get(&well_known, "discovery document").await?;
            let doc: Discovery = serde_json::from_slice(&body).map_err(|_| {
                JwtError::fetch(format!(
                    "{well_known} is not an OpenID discovery document (it needs issuer and jwks_uri)"
                ))
            })?;
            // OpenID Connect Discovery §4.3: the issuer must be the URL it was discovered at,
            // or a provider could claim another's tokens.
            if doc.issuer.trim_end_matches('/') != base {
                return Err(JwtError::fetch(format!(
                    "the discovery document's issuer {:?} is not oidc_discovery_url {url:?}",
                    doc.issuer
                )));
            }
            check_http_url("jwks_uri", &doc.jwks_uri)
                .map_err(|e| JwtError::fetch(e.to_string()))?;
            let keys = parse_jwks(&client.get(&doc.jwks_uri, "key set").await?)?;
            let provider = Provider {
                issuer: doc.issuer,
                authorization_endpoint: doc.authorization_endpoint,
                token_endpoint: doc.token_endpoint,
            };
            (keys, true, Some(provider))
        }
    };
    tracing::debug!(keys = keys.len(), "fetched JWT verification keys");
    Ok(KeySet {
        source,
        keys,
        match_kid,
        provider,
        fetched_at: Instant::now(),
        after_miss,
    })
}
