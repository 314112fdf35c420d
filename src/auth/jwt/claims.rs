//! A verified token's claims against a role and config (Vault's JWT/OIDC rules): times with
//! leeways, issuer, audience, subject, nonce, bound claims, and what a login takes from the
//! token: the user name, groups and metadata (`claim_mappings`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::bound::{BoundClaimsType, BoundValues, check_bound_claims, claim, scalar_text};
use super::error::JwtError;

/// Vault's defaults for a role's leeways, in seconds.
pub const DEFAULT_CLOCK_SKEW_LEEWAY: i64 = 60;
pub const DEFAULT_EXPIRATION_LEEWAY: i64 = 150;
pub const DEFAULT_NOT_BEFORE_LEEWAY: i64 = 150;

/// A leeway as Vault reads a role's setting: 0 means the default, -1 (any negative) none.
pub fn vault_leeway(configured: i64, default: i64) -> i64 {
    match configured {
        0 => default,
        n if n < 0 => 0,
        n => n,
    }
}

/// What the role and config expect of a token, already validated by the caller. Leeways are
/// the effective seconds (see [`vault_leeway`]); negative ones count as 0.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    pub bound_issuer: Option<&'a str>,
    /// The issuer OIDC discovery reported (`KeyCache::discover`, cached once a token was
    /// verified), expected when `bound_issuer` is unset.
    pub discovered_issuer: Option<&'a str>,
    pub bound_audiences: &'a [String],
    /// For `oidc` roles: the token's audiences must include the client id, and an `aud` with
    /// no bound audiences is fine (Vault's refusal of that is for `jwt` roles).
    pub client_id: Option<&'a str>,
    pub bound_subject: Option<&'a str>,
    pub bound_claims: &'a BTreeMap<String, BoundValues>,
    pub bound_claims_type: BoundClaimsType,
    pub user_claim: &'a str,
    pub user_claim_json_pointer: bool,
    pub groups_claim: Option<&'a str>,
    /// Claim (or JSON pointer) → metadata key; see [`validate_claim_mappings`].
    pub claim_mappings: &'a BTreeMap<String, String>,
    pub clock_skew_leeway: i64,
    pub expiration_leeway: i64,
    pub not_before_leeway: i64,
    /// OIDC callback: the `nonce` claim must equal this.
    pub expected_nonce: Option<&'a str>,
    /// Unix seconds.
    pub now: i64,
}

/// What a login takes from a token that passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub user: String,
    pub groups: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub claims: Map<String, Value>,
}

/// Checks the claims of a token whose signature verified, in Vault's order: times, issuer,
/// audience, subject, nonce, bound claims; then reads the user, groups and metadata.
pub fn check_claims(
    claims: &Map<String, Value>,
    e: &Expectations<'_>,
) -> Result<Verified, JwtError> {
    check_times(claims, e)?;
    check_issuer(claims, e)?;
    check_audience(claims, e)?;
    if let Some(subject) = e.bound_subject
        && claims.get("sub").and_then(Value::as_str) != Some(subject)
    {
        return Err(JwtError::claims(
            "sub claim does not match the bound subject",
        ));
    }
    if let Some(nonce) = e.expected_nonce
        && claims.get("nonce").and_then(Value::as_str) != Some(nonce)
    {
        return Err(JwtError::claims("nonce does not match"));
    }
    check_bound_claims(claims, e.bound_claims, e.bound_claims_type)?;
    Ok(Verified {
        user: user(claims, e)?,
        groups: groups(claims, e.groups_claim)?,
        metadata: metadata(claims, e.claim_mappings),
        claims: claims.clone(),
    })
}

/// A NumericDate claim (RFC 7519 §2: seconds, possibly fractional), if present.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, JwtError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(t) if t.is_finite() => Ok(Some(t)),
            _ => Err(JwtError::claims(format!(
                "{name} claim is not a valid time"
            ))),
        },
        Some(_) => Err(JwtError::claims(format!(
            "{name} claim is not a number of seconds"
        ))),
    }
}

fn check_times(claims: &Map<String, Value>, e: &Expectations<'_>) -> Result<(), JwtError> {
    // In f64: claims may be fractional or absurdly large, and nothing here may overflow.
    let now = e.now as f64;
    let skew = e.clock_skew_leeway.max(0) as f64;
    let Some(exp) = numeric_date(claims, "exp")? else {
        return Err(JwtError::claims("token has no exp claim"));
    };
    if now > exp + e.expiration_leeway.max(0) as f64 + skew {
        return Err(JwtError::claims("token is expired"));
    }
    let early = now + e.not_before_leeway.max(0) as f64 + skew;
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > early) {
        return Err(JwtError::claims(
            "token is not valid yet (nbf is in the future)",
        ));
    }
    if numeric_date(claims, "iat")?.is_some_and(|iat| iat > early) {
        return Err(JwtError::claims("token was issued in the future (iat)"));
    }
    Ok(())
}

fn check_issuer(claims: &Map<String, Value>, e: &Expectations<'_>) -> Result<(), JwtError> {
    let Some(expected) = e.bound_issuer.or(e.discovered_issuer) else {
        return Ok(());
    };
    if claims.get("iss").and_then(Value::as_str) != Some(expected) {
        return Err(JwtError::claims(if e.bound_issuer.is_some() {
            "iss claim does not match the bound issuer"
        } else {
            "iss claim does not match the issuer of the OIDC discovery URL"
        }));
    }
    Ok(())
}

fn check_audience(claims: &Map<String, Value>, e: &Expectations<'_>) -> Result<(), JwtError> {
    let audiences: Vec<&str> = match claims.get("aud") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| JwtError::claims("aud claim is not a string or a list of strings"))?,
        Some(_) => {
            return Err(JwtError::claims(
                "aud claim is not a string or a list of strings",
            ));
        }
    };
    if let Some(client_id) = e.client_id
        && !audiences.contains(&client_id)
    {
        return Err(JwtError::claims("aud claim does not include the client_id"));
    }
    if !e.bound_audiences.is_empty() {
        if !audiences
            .iter()
            .any(|a| e.bound_audiences.iter().any(|b| b == a))
        {
            return Err(JwtError::claims(
                "aud claim does not match any bound audience",
            ));
        }
    } else if !audiences.is_empty() && e.client_id.is_none() {
        // A token meant for someone else must not log in to a role that named no audience.
        return Err(JwtError::claims(
            "audience claim found in JWT but no audiences are bound to the role",
        ));
    }
    Ok(())
}

fn user(claims: &Map<String, Value>, e: &Expectations<'_>) -> Result<String, JwtError> {
    let name = e.user_claim;
    match claim(claims, name, e.user_claim_json_pointer) {
        None => Err(JwtError::claims(format!(
            "claim {name:?} not found in token"
        ))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(JwtError::claims(format!(
            "claim {name:?} could not be converted to string"
        ))),
    }
}

fn groups(
    claims: &Map<String, Value>,
    groups_claim: Option<&str>,
) -> Result<Vec<String>, JwtError> {
    let Some(name) = groups_claim.filter(|n| !n.is_empty()) else {
        return Ok(Vec::new());
    };
    match claim(claims, name, true) {
        None => Err(JwtError::claims(format!(
            "{name:?} claim not found in token"
        ))),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|g| g.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                JwtError::claims(format!("{name:?} claim has a value that is not a string"))
            }),
        Some(_) => Err(JwtError::claims(format!(
            "{name:?} claim could not be converted to string list"
        ))),
    }
}

fn metadata(
    claims: &Map<String, Value>,
    mappings: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    for (source, target) in mappings {
        let Some(value) = claim(claims, source, true) else {
            continue;
        };
        // Vault refuses a non-string claim here; we keep its JSON text instead (`42`, `true`,
        // `["a","b"]`), so a mapping to a number or list does not break the whole login.
        let text = match value {
            Value::String(s) => s.clone(),
            other => scalar_text(other).unwrap_or_else(|| other.to_string()),
        };
        metadata.insert(target.clone(), text);
    }
    metadata
}

/// Checks a role's `claim_mappings` when it is written: no metadata key twice, none empty,
/// and not `role`, which the login sets itself (Vault's rules).
pub fn validate_claim_mappings(mappings: &BTreeMap<String, String>) -> Result<(), JwtError> {
    let mut targets = BTreeSet::new();
    for (source, target) in mappings {
        if source.is_empty() || target.is_empty() {
            return Err(JwtError::config(
                "claim_mappings may not have an empty claim or metadata key",
            ));
        }
        if target == "role" {
            return Err(JwtError::config(
                "metadata key \"role\" is reserved and may not be a mapping destination",
            ));
        }
        if !targets.insert(target.as_str()) {
            return Err(JwtError::config(format!(
                "multiple keys are mapped to metadata key {target:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    struct Role {
        bound_audiences: Vec<String>,
        bound_claims: BTreeMap<String, BoundValues>,
        claim_mappings: BTreeMap<String, String>,
    }

    impl Role {
        fn new() -> Self {
            Role {
                bound_audiences: vec!["vault".into()],
                bound_claims: BTreeMap::new(),
                claim_mappings: BTreeMap::new(),
            }
        }

        fn expect(&self) -> Expectations<'_> {
            Expectations {
                bound_issuer: None,
                discovered_issuer: None,
                bound_audiences: &self.bound_audiences,
                client_id: None,
                bound_subject: None,
                bound_claims: &self.bound_claims,
                bound_claims_type: BoundClaimsType::Exact,
                user_claim: "sub",
                user_claim_json_pointer: false,
                groups_claim: None,
                claim_mappings: &self.claim_mappings,
                clock_skew_leeway: DEFAULT_CLOCK_SKEW_LEEWAY,
                expiration_leeway: DEFAULT_EXPIRATION_LEEWAY,
                not_before_leeway: DEFAULT_NOT_BEFORE_LEEWAY,
                expected_nonce: None,
                now: NOW,
            }
        }
    }

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn token(extra: Value) -> Map<String, Value> {
        let mut claims = map(json!({
            "iss": "https://idp.example",
            "sub": "user-1",
            "aud": "vault",
            "iat": NOW - 10,
            "exp": NOW + 300,
        }));
        claims.extend(map(extra));
        claims.retain(|_, v| !v.is_null());
        claims
    }

    fn refusal(claims: &Map<String, Value>, e: &Expectations<'_>) -> String {
        check_claims(claims, e).unwrap_err().to_string()
    }

    #[test]
    fn a_good_token_gives_its_user() {
        let role = Role::new();
        let verified = check_claims(&token(json!({})), &role.expect()).unwrap();
        assert_eq!(verified.user, "user-1");
        assert!(verified.groups.is_empty() && verified.metadata.is_empty());
        assert_eq!(verified.claims["iss"], json!("https://idp.example"));
    }

    #[test]
    fn exp_is_required_and_checked_with_both_leeways() {
        let role = Role::new();
        let e = role.expect();
        assert_eq!(
            refusal(&token(json!({"exp": null})), &e),
            "token has no exp claim"
        );
        assert_eq!(
            refusal(&token(json!({"exp": "tomorrow"})), &e),
            "exp claim is not a number of seconds"
        );
        // Valid until exp + 150 + 60.
        assert!(check_claims(&token(json!({"exp": NOW - 210})), &e).is_ok());
        assert_eq!(
            refusal(&token(json!({"exp": NOW - 211})), &e),
            "token is expired"
        );
        let mut strict = role.expect();
        strict.expiration_leeway = vault_leeway(-1, DEFAULT_EXPIRATION_LEEWAY);
        strict.clock_skew_leeway = vault_leeway(-1, DEFAULT_CLOCK_SKEW_LEEWAY);
        assert_eq!(
            refusal(&token(json!({"exp": NOW - 1})), &strict),
            "token is expired"
        );
        assert!(check_claims(&token(json!({"exp": NOW})), &strict).is_ok());
        assert!(check_claims(&token(json!({"exp": NOW as f64 + 0.5})), &strict).is_ok());
        assert_eq!(
            refusal(&token(json!({"exp": -1e308})), &strict),
            "token is expired"
        );
        assert!(check_claims(&token(json!({"exp": 1e308})), &strict).is_ok());
    }

    #[test]
    fn nbf_and_iat_may_not_be_in_the_future_beyond_the_leeways() {
        let role = Role::new();
        let e = role.expect();
        assert!(check_claims(&token(json!({"nbf": NOW + 210, "iat": NOW + 210})), &e).is_ok());
        assert_eq!(
            refusal(&token(json!({"nbf": NOW + 211})), &e),
            "token is not valid yet (nbf is in the future)"
        );
        assert_eq!(
            refusal(&token(json!({"iat": NOW + 211})), &e),
            "token was issued in the future (iat)"
        );
        let mut strict = role.expect();
        strict.not_before_leeway = 0;
        strict.clock_skew_leeway = 0;
        assert!(check_claims(&token(json!({"nbf": NOW})), &strict).is_ok());
        assert!(check_claims(&token(json!({"nbf": NOW + 1})), &strict).is_err());
        assert!(check_claims(&token(json!({"iat": null, "nbf": null})), &strict).is_ok());
    }

    #[test]
    fn issuer_is_the_bound_one_or_the_discovered_one() {
        let role = Role::new();
        let mut e = role.expect();
        e.bound_issuer = Some("https://idp.example");
        assert!(check_claims(&token(json!({})), &e).is_ok());
        e.bound_issuer = Some("https://other.example");
        assert_eq!(
            refusal(&token(json!({})), &e),
            "iss claim does not match the bound issuer"
        );
        let mut d = role.expect();
        d.discovered_issuer = Some("https://other.example");
        assert_eq!(
            refusal(&token(json!({})), &d),
            "iss claim does not match the issuer of the OIDC discovery URL"
        );
        // bound_issuer wins over the discovered one.
        d.bound_issuer = Some("https://idp.example");
        assert!(check_claims(&token(json!({})), &d).is_ok());
        assert!(check_claims(&token(json!({"iss": null})), &d).is_err());
    }

    #[test]
    fn audience_rules() {
        let mut role = Role::new();
        role.bound_audiences = vec!["vault".into(), "other".into()];
        let e = role.expect();
        assert!(check_claims(&token(json!({"aud": ["x", "other"]})), &e).is_ok());
        for aud in [json!("x"), json!(["x", "y"]), json!([]), Value::Null] {
            assert_eq!(
                refusal(&token(json!({ "aud": aud })), &e),
                "aud claim does not match any bound audience"
            );
        }
        assert_eq!(
            refusal(&token(json!({"aud": 5})), &e),
            "aud claim is not a string or a list of strings"
        );
        assert!(refusal(&token(json!({"aud": ["vault", 5]})), &e).contains("list of strings"));

        let mut open = Role::new();
        open.bound_audiences.clear();
        let e = open.expect();
        assert_eq!(
            refusal(&token(json!({})), &e),
            "audience claim found in JWT but no audiences are bound to the role"
        );
        assert!(check_claims(&token(json!({"aud": null})), &e).is_ok());
        assert!(check_claims(&token(json!({"aud": []})), &e).is_ok());

        // An oidc role: the client id must be an audience.
        let mut oidc = open.expect();
        oidc.client_id = Some("vault");
        assert!(check_claims(&token(json!({})), &oidc).is_ok());
        assert_eq!(
            refusal(&token(json!({"aud": "someone-else"})), &oidc),
            "aud claim does not include the client_id"
        );
    }

    #[test]
    fn subject_and_nonce() {
        let role = Role::new();
        let mut e = role.expect();
        e.bound_subject = Some("user-1");
        assert!(check_claims(&token(json!({})), &e).is_ok());
        e.bound_subject = Some("user-2");
        assert_eq!(
            refusal(&token(json!({})), &e),
            "sub claim does not match the bound subject"
        );
        let mut n = role.expect();
        n.expected_nonce = Some("n-123");
        assert!(check_claims(&token(json!({"nonce": "n-123"})), &n).is_ok());
        assert_eq!(
            refusal(&token(json!({"nonce": "n-124"})), &n),
            "nonce does not match"
        );
        assert_eq!(refusal(&token(json!({})), &n), "nonce does not match");
    }

    #[test]
    fn github_actions_role() {
        let mut role = Role::new();
        role.bound_audiences = vec!["https://github.com/acme".into()];
        role.bound_claims = [
            ("repository".to_string(), BoundValues::one("acme/app")),
            (
                "ref".to_string(),
                BoundValues::any_of(["refs/heads/main", "refs/tags/v*"]),
            ),
        ]
        .into();
        role.claim_mappings = [
            ("repository".to_string(), "repo".to_string()),
            ("run_number".to_string(), "run".to_string()),
            ("environment".to_string(), "env".to_string()),
        ]
        .into();
        let claims = token(json!({
            "iss": "https://token.actions.githubusercontent.com",
            "aud": "https://github.com/acme",
            "sub": "repo:acme/app:ref:refs/heads/main",
            "repository": "acme/app",
            "repository_owner": "acme",
            "ref": "refs/heads/main",
            "run_number": 42,
        }));
        let mut e = role.expect();
        e.bound_issuer = Some("https://token.actions.githubusercontent.com");
        let verified = check_claims(&claims, &e).unwrap();
        assert_eq!(verified.user, "repo:acme/app:ref:refs/heads/main");
        assert_eq!(
            verified.metadata,
            BTreeMap::from([
                ("repo".to_string(), "acme/app".to_string()),
                ("run".to_string(), "42".to_string()),
            ])
        );
        let mut fork = claims.clone();
        fork.insert("repository".into(), json!("evil/app"));
        assert_eq!(
            refusal(&fork, &e),
            "claim \"repository\" does not match any associated bound claim values"
        );
        // refs/tags/v* is a literal under exact matching, a pattern under glob.
        let mut tag = claims.clone();
        tag.insert("ref".into(), json!("refs/tags/v1.2"));
        assert!(check_claims(&tag, &e).is_err());
        e.bound_claims_type = BoundClaimsType::Glob;
        assert!(check_claims(&tag, &e).is_ok());
    }

    #[test]
    fn kubernetes_role_with_pointers() {
        let mut role = Role::new();
        role.bound_audiences = vec!["https://kubernetes.default.svc".into()];
        role.bound_claims = [
            (
                "/kubernetes.io/namespace".to_string(),
                BoundValues::one("ci"),
            ),
            (
                "/kubernetes.io/serviceaccount/name".to_string(),
                BoundValues::one("deployer"),
            ),
        ]
        .into();
        role.claim_mappings = [
            (
                "/kubernetes.io/namespace".to_string(),
                "namespace".to_string(),
            ),
            (
                "/kubernetes.io/serviceaccount".to_string(),
                "sa".to_string(),
            ),
        ]
        .into();
        let claims = token(json!({
            "aud": ["https://kubernetes.default.svc"],
            "sub": "system:serviceaccount:ci:deployer",
            "kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "deployer"}},
        }));
        let mut e = role.expect();
        e.user_claim = "/kubernetes.io/serviceaccount/name";
        e.user_claim_json_pointer = true;
        let verified = check_claims(&claims, &e).unwrap();
        assert_eq!(verified.user, "deployer");
        assert_eq!(verified.metadata["namespace"], "ci");
        // Not a string: its JSON text.
        assert_eq!(verified.metadata["sa"], r#"{"name":"deployer"}"#);
        // Without json pointers, the user claim is a top-level name.
        e.user_claim_json_pointer = false;
        assert_eq!(
            refusal(&claims, &e),
            "claim \"/kubernetes.io/serviceaccount/name\" not found in token"
        );
        let mut other_ns = claims.clone();
        other_ns.insert(
            "kubernetes.io".into(),
            json!({"namespace": "prod", "serviceaccount": {"name": "deployer"}}),
        );
        e.user_claim_json_pointer = true;
        assert!(refusal(&other_ns, &e).contains("/kubernetes.io/namespace"));
    }

    #[test]
    fn user_claim_rules() {
        let role = Role::new();
        let mut e = role.expect();
        assert_eq!(
            refusal(&token(json!({"sub": null})), &e),
            "claim \"sub\" not found in token"
        );
        assert_eq!(
            check_claims(&token(json!({"sub": 1234})), &e).unwrap().user,
            "1234"
        );
        assert_eq!(
            refusal(&token(json!({"sub": ["a"]})), &e),
            "claim \"sub\" could not be converted to string"
        );
        e.user_claim = "email";
        assert_eq!(
            check_claims(&token(json!({"email": "a@example.com"})), &e)
                .unwrap()
                .user,
            "a@example.com"
        );
    }

    #[test]
    fn groups_claim_rules() {
        let role = Role::new();
        let mut e = role.expect();
        e.groups_claim = Some("groups");
        assert_eq!(
            check_claims(&token(json!({"groups": ["dev", "ops"]})), &e)
                .unwrap()
                .groups,
            ["dev", "ops"]
        );
        assert_eq!(
            check_claims(&token(json!({"groups": "dev"})), &e)
                .unwrap()
                .groups,
            ["dev"]
        );
        assert_eq!(
            refusal(&token(json!({})), &e),
            "\"groups\" claim not found in token"
        );
        assert!(refusal(&token(json!({"groups": ["dev", 1]})), &e).contains("not a string"));
        assert!(refusal(&token(json!({"groups": {"a": 1}})), &e).contains("string list"));
        e.groups_claim = Some("/realm_access/roles");
        assert_eq!(
            check_claims(&token(json!({"realm_access": {"roles": ["admin"]}})), &e)
                .unwrap()
                .groups,
            ["admin"]
        );
    }

    #[test]
    fn claim_mappings_skip_absent_claims() {
        let mut role = Role::new();
        role.claim_mappings = [
            ("email".to_string(), "email".to_string()),
            ("admin".to_string(), "is_admin".to_string()),
            ("tags".to_string(), "tags".to_string()),
            ("absent".to_string(), "never".to_string()),
        ]
        .into();
        let verified = check_claims(
            &token(json!({"email": "a@example.com", "admin": true, "tags": ["a", "b"]})),
            &role.expect(),
        )
        .unwrap();
        assert_eq!(
            verified.metadata,
            BTreeMap::from([
                ("email".to_string(), "a@example.com".to_string()),
                ("is_admin".to_string(), "true".to_string()),
                ("tags".to_string(), r#"["a","b"]"#.to_string()),
            ])
        );
    }

    #[test]
    fn claim_mappings_are_validated() {
        let ok = BTreeMap::from([
            ("a".to_string(), "x".to_string()),
            ("b".to_string(), "y".to_string()),
        ]);
        assert_eq!(validate_claim_mappings(&ok), Ok(()));
        let twice = BTreeMap::from([
            ("a".to_string(), "x".to_string()),
            ("b".to_string(), "x".to_string()),
        ]);
        assert_eq!(
            validate_claim_mappings(&twice),
            Err(JwtError::Config(
                "multiple keys are mapped to metadata key \"x\"".into()
            ))
        );
        let role = BTreeMap::from([("a".to_string(), "role".to_string())]);
        assert!(
            validate_claim_mappings(&role)
                .unwrap_err()
                .to_string()
                .contains("reserved")
        );
        let empty = BTreeMap::from([("a".to_string(), String::new())]);
        assert!(validate_claim_mappings(&empty).is_err());
    }

    #[test]
    fn leeways_read_like_vault() {
        assert_eq!(vault_leeway(0, 150), 150);
        assert_eq!(vault_leeway(-1, 150), 0);
        assert_eq!(vault_leeway(30, 150), 30);
    }
}
