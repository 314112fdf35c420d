//! Claim lookup (top-level names and RFC 6901 JSON pointers) and a role's `bound_claims`:
//! exact or glob matching of claim values, lists included, with Vault's rules and messages.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::error::JwtError;

/// `bound_claims_type`: Vault's `"string"` (exact) or `"glob"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoundClaimsType {
    #[default]
    #[serde(rename = "string")]
    Exact,
    Glob,
}

impl BoundClaimsType {
    /// Vault's names; empty means the default, exact matching.
    pub fn parse(name: &str) -> Result<Self, JwtError> {
        match name {
            "" | "string" => Ok(BoundClaimsType::Exact),
            "glob" => Ok(BoundClaimsType::Glob),
            other => Err(JwtError::config(format!(
                "bound_claims_type {other:?} is not valid: use \"string\" or \"glob\""
            ))),
        }
    }
}

/// The values one bound claim accepts (any one may match). Written in Vault as a string, a
/// list, or a comma-free scalar (number, bool), kept as their string forms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BoundValues(Vec<String>);

impl BoundValues {
    pub fn one(value: impl Into<String>) -> Self {
        BoundValues(vec![value.into()])
    }

    pub fn any_of<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Self {
        BoundValues(values.into_iter().map(Into::into).collect())
    }

    pub fn values(&self) -> &[String] {
        &self.0
    }

    /// From the JSON a role is written with: a string, number or bool, or a list of them.
    pub fn from_json(value: &Value) -> Result<Self, JwtError> {
        let refuse = || {
            JwtError::config(
                "a bound_claims value must be a string, number, boolean or a list of them",
            )
        };
        match value {
            Value::Array(items) => items
                .iter()
                .map(|item| scalar_text(item).ok_or_else(refuse))
                .collect::<Result<Vec<_>, _>>()
                .map(BoundValues),
            other => scalar_text(other).map(BoundValues::one).ok_or_else(refuse),
        }
    }
}

impl<'de> Deserialize<'de> for BoundValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        BoundValues::from_json(&value).map_err(serde::de::Error::custom)
    }
}

/// A string, number or bool as text; anything else (null, objects, lists) has none.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The claim `name` in `claims`: with `pointer` and a leading `/`, an RFC 6901 JSON pointer
/// into nested claims (`/kubernetes.io/namespace`); otherwise a top-level name, dots and
/// all. A `null` claim counts as absent, as in Vault.
pub(crate) fn claim<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
    pointer: bool,
) -> Option<&'a Value> {
    let found = match name.strip_prefix('/') {
        Some(path) if pointer => {
            let (first, rest) = match path.find('/') {
                Some(i) => (&path[..i], &path[i..]),
                None => (path, ""),
            };
            // RFC 6901 §4: `~1` before `~0`, so `~01` is `~1`, not `/`.
            let first = first.replace("~1", "/").replace("~0", "~");
            claims.get(&first)?.pointer(rest)?
        }
        _ => claims.get(name)?,
    };
    (!found.is_null()).then_some(found)
}

/// Checks every bound claim: present, and one of its values matching one of the expected.
pub(crate) fn check_bound_claims(
    claims: &Map<String, Value>,
    bound: &BTreeMap<String, BoundValues>,
    kind: BoundClaimsType,
) -> Result<(), JwtError> {
    for (name, expected) in bound {
        let Some(value) = claim(claims, name, true) else {
            return Err(JwtError::claims(format!("claim {name:?} is missing")));
        };
        let actual: Vec<String> = match value {
            // Elements that are objects or lists never match; they are not refused, since a
            // list may mix shapes and another element may match.
            Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
            Value::Object(_) => {
                return Err(JwtError::claims(format!(
                    "claim {name:?} is an object; a bound claim must be a string, number, boolean or list"
                )));
            }
            scalar => scalar_text(scalar).into_iter().collect(),
        };
        let matches = |want: &String| {
            actual.iter().any(|have| match kind {
                BoundClaimsType::Exact => want == have,
                BoundClaimsType::Glob => glob_match(want, have),
            })
        };
        if !expected.values().iter().any(matches) {
            return Err(JwtError::claims(format!(
                "claim {name:?} does not match any associated bound claim values"
            )));
        }
    }
    Ok(())
}

/// Vault's glob (`ryanuber/go-glob`): only `*` is special and matches any run of characters,
/// the empty one included; there is no escape, so a literal `*` cannot be matched alone.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == value;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = match parts.split_first() {
        Some(split) => split,
        None => return true,
    };
    let Some((last, middle)) = rest.split_last() else {
        return pattern == value;
    };
    let Some(mut remaining) = value.strip_prefix(first) else {
        return false;
    };
    // Leftmost match of each middle part is always safe: taking the earliest occurrence
    // leaves the most room for what follows.
    for part in middle {
        match remaining.find(part) {
            Some(i) => remaining = &remaining[i + part.len()..],
            None => return false,
        }
    }
    remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn bound(pairs: &[(&str, &[&str])]) -> BTreeMap<String, BoundValues> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), BoundValues::any_of(v.iter().copied())))
            .collect()
    }

    fn github() -> Map<String, Value> {
        map(json!({
            "sub": "repo:acme/app:ref:refs/heads/main",
            "repository": "acme/app",
            "repository_owner": "acme",
            "ref": "refs/heads/main",
            "run_number": 42,
            "event_name": "push",
            "runner_environment": "github-hosted",
        }))
    }

    fn kubernetes() -> Map<String, Value> {
        map(json!({
            "sub": "system:serviceaccount:ci:deployer",
            "kubernetes.io": {
                "namespace": "ci",
                "serviceaccount": {"name": "deployer", "uid": "1234"},
                "pod": null,
            },
            "a/b": {"c~d": "escaped"},
        }))
    }

    #[test]
    fn glob_follows_go_glob() {
        let cases = [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything", true),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ba", false),
            ("*c", "abc", true),
            ("*c", "abcd", false),
            ("a*c", "ac", true),
            ("a*c", "abbbc", true),
            ("a*c", "abca", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("*b*", "abc", true),
            ("**", "x", true),
            ("a*a", "a", false),
            ("aa*aa", "aaa", false),
            ("aa*aa", "aaaa", true),
            (
                "repo:acme/*:ref:refs/heads/main",
                "repo:acme/app:ref:refs/heads/main",
                true,
            ),
            (
                "repo:acme/*:ref:refs/heads/main",
                "repo:evil/x:ref:refs/heads/main",
                false,
            ),
            ("repo:acme/*", "repo:acme/app:environment:prod", true),
            ("?", "a", false),
            ("[a]", "a", false),
            ("é*ü", "éxyü", true),
        ];
        for (pattern, value, want) in cases {
            assert_eq!(glob_match(pattern, value), want, "{pattern:?} ~ {value:?}");
        }
        // No blow-up on adversarial input.
        let value = "a".repeat(10_000);
        assert!(!glob_match(&format!("{}b", "a*".repeat(100)), &value));
    }

    #[test]
    fn claims_are_found_by_name_or_pointer() {
        let k = kubernetes();
        assert_eq!(
            claim(&k, "/kubernetes.io/namespace", true),
            Some(&json!("ci"))
        );
        assert_eq!(
            claim(&k, "/kubernetes.io/serviceaccount/name", true),
            Some(&json!("deployer"))
        );
        assert_eq!(claim(&k, "/a~1b/c~0d", true), Some(&json!("escaped")));
        assert_eq!(
            claim(&k, "kubernetes.io", true).map(Value::is_object),
            Some(true)
        );
        // A null claim is absent; a pointer is only a pointer when asked for.
        assert_eq!(claim(&k, "/kubernetes.io/pod", true), None);
        assert_eq!(claim(&k, "/kubernetes.io/namespace", false), None);
        assert_eq!(claim(&k, "/missing/x", true), None);
        assert_eq!(claim(&k, "/", true), None);
    }

    #[test]
    fn github_actions_claims_match_exactly_and_by_glob() {
        let g = github();
        let exact = bound(&[
            ("repository", &["acme/app"]),
            ("ref", &["refs/heads/main", "refs/heads/release"]),
            ("repository_owner", &["acme"]),
            ("run_number", &["42"]),
        ]);
        assert_eq!(
            check_bound_claims(&g, &exact, BoundClaimsType::Exact),
            Ok(())
        );

        let wrong = bound(&[("repository", &["acme/other", "acme/else"])]);
        assert_eq!(
            check_bound_claims(&g, &wrong, BoundClaimsType::Exact),
            Err(JwtError::Claims(
                "claim \"repository\" does not match any associated bound claim values".into()
            ))
        );
        // A glob is only a glob when the role says so.
        let globs = bound(&[
            ("sub", &["repo:acme/*:ref:refs/heads/main"]),
            ("ref", &["refs/heads/*"]),
        ]);
        assert!(check_bound_claims(&g, &globs, BoundClaimsType::Exact).is_err());
        assert_eq!(
            check_bound_claims(&g, &globs, BoundClaimsType::Glob),
            Ok(())
        );
        let other_owner = bound(&[("sub", &["repo:evil/*"])]);
        assert!(check_bound_claims(&g, &other_owner, BoundClaimsType::Glob).is_err());
    }

    #[test]
    fn kubernetes_claims_match_by_pointer() {
        let k = kubernetes();
        let ok = bound(&[
            ("/kubernetes.io/namespace", &["ci"]),
            (
                "/kubernetes.io/serviceaccount/name",
                &["deployer", "builder"],
            ),
        ]);
        assert_eq!(check_bound_claims(&k, &ok, BoundClaimsType::Exact), Ok(()));
        let wrong_ns = bound(&[("/kubernetes.io/namespace", &["prod"])]);
        assert!(check_bound_claims(&k, &wrong_ns, BoundClaimsType::Exact).is_err());
        let missing = bound(&[("/kubernetes.io/pod/name", &["x"])]);
        assert_eq!(
            check_bound_claims(&k, &missing, BoundClaimsType::Exact),
            Err(JwtError::Claims(
                "claim \"/kubernetes.io/pod/name\" is missing".into()
            ))
        );
        let object = bound(&[("kubernetes.io", &["x"])]);
        assert!(
            check_bound_claims(&k, &object, BoundClaimsType::Exact)
                .unwrap_err()
                .to_string()
                .contains("is an object")
        );
    }

    #[test]
    fn list_claims_match_when_any_element_does() {
        let c = map(json!({"groups": ["dev", "ops", 7, {"x": 1}, true], "empty": []}));
        assert_eq!(
            check_bound_claims(
                &c,
                &bound(&[("groups", &["admin", "ops"])]),
                BoundClaimsType::Exact
            ),
            Ok(())
        );
        assert_eq!(
            check_bound_claims(&c, &bound(&[("groups", &["7"])]), BoundClaimsType::Exact),
            Ok(())
        );
        assert_eq!(
            check_bound_claims(&c, &bound(&[("groups", &["true"])]), BoundClaimsType::Exact),
            Ok(())
        );
        assert_eq!(
            check_bound_claims(&c, &bound(&[("groups", &["o*"])]), BoundClaimsType::Glob),
            Ok(())
        );
        assert!(
            check_bound_claims(
                &c,
                &bound(&[("groups", &["admin"])]),
                BoundClaimsType::Exact
            )
            .is_err()
        );
        assert!(
            check_bound_claims(&c, &bound(&[("empty", &["*"])]), BoundClaimsType::Glob).is_err()
        );
    }

    #[test]
    fn every_bound_claim_must_hold() {
        let g = github();
        let both = bound(&[("repository", &["acme/app"]), ("environment", &["prod"])]);
        assert_eq!(
            check_bound_claims(&g, &both, BoundClaimsType::Exact),
            Err(JwtError::Claims("claim \"environment\" is missing".into()))
        );
    }

    #[test]
    fn bound_values_read_vault_shapes() {
        assert_eq!(
            BoundValues::from_json(&json!("a")).unwrap(),
            BoundValues::one("a")
        );
        assert_eq!(
            BoundValues::from_json(&json!(["a", 1, false])).unwrap(),
            BoundValues::any_of(["a", "1", "false"])
        );
        assert!(BoundValues::from_json(&json!({"a": 1})).is_err());
        assert!(BoundValues::from_json(&json!([["a"]])).is_err());
        let parsed: BTreeMap<String, BoundValues> =
            serde_json::from_value(json!({"ref": "refs/heads/main", "env": ["a", "b"]})).unwrap();
        assert_eq!(parsed["env"].values(), ["a", "b"]);
        assert_eq!(
            BoundClaimsType::parse("glob").unwrap(),
            BoundClaimsType::Glob
        );
        assert_eq!(BoundClaimsType::parse("").unwrap(), BoundClaimsType::Exact);
        assert!(BoundClaimsType::parse("regex").is_err());
    }
}
