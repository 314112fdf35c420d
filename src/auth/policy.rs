//! ACL policies in Vault's own syntax (HCL, or its JSON form), and the decision for one request:
//! which capabilities a set of policies grants on a path.
//!
//! Matching follows Vault: an exact path beats any pattern; among patterns (`*` suffix globs and
//! `+` single-segment wildcards) the most specific wins, by Vault's priority rules; the rules
//! of all a token's policies for the same path are merged, and `deny` overrides everything.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// What an operation needs. `Sudo` is needed on top of the operation's own capability for
/// root-protected paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    Create,
    Read,
    Update,
    Delete,
    List,
    Sudo,
    Deny,
}

impl Capability {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "create" => Capability::Create,
            "read" => Capability::Read,
            "update" => Capability::Update,
            "delete" => Capability::Delete,
            "list" => Capability::List,
            "sudo" => Capability::Sudo,
            "deny" => Capability::Deny,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Create => "create",
            Capability::Read => "read",
            Capability::Update => "update",
            Capability::Delete => "delete",
            Capability::List => "list",
            Capability::Sudo => "sudo",
            Capability::Deny => "deny",
        }
    }
}

/// A parsed policy: path pattern → capabilities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub rules: BTreeMap<String, BTreeSet<Capability>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    path: BTreeMap<String, RawRule>,
}

#[derive(Debug, Deserialize)]
struct RawRule {
    #[serde(default)]
    capabilities: Vec<String>,
    /// Vault's deprecated form (`policy = "read"`).
    policy: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

/// The largest policy accepted, in bytes and in path rules: a token's policies are parsed and
/// matched for its requests, so a policy must stay small enough that this costs little.
pub const MAX_POLICY_BYTES: usize = 128 * 1024;
pub const MAX_POLICY_PATHS: usize = 1000;

pub const ROOT_POLICY: &str = "root";
pub const DEFAULT_POLICY: &str = "default";

/// The built-in `default` policy: a token may look itself up, renew and revoke itself, and look
/// up, renew and revoke leases (its own: ownership is checked where leases are handled).
pub const DEFAULT_POLICY_HCL: &str = r#"# Built in: attached to every token but root.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/revoke-self" {
  capabilities = ["update"]
}
path "sys/leases/lookup" {
  capabilities = ["update"]
}
path "sys/leases/renew" {
  capabilities = ["update"]
}
path "sys/leases/revoke" {
  capabilities = ["update"]
}
path "sys/capabilities-self" {
  capabilities = ["update"]
}
"#;

impl Policy {
    /// Parses HCL (`path "aws/creds/dev" { capabilities = ["read"] }`) or the JSON form.
    pub fn parse(text: &str) -> Result<Policy, String> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(format!(
                "policy is {} bytes; at most {MAX_POLICY_BYTES} are accepted: split it into several policies",
                text.len()
            ));
        }
        let raw: RawPolicy = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| format!("policy is not valid JSON: {e}"))?
        } else {
            hcl::from_str(text).map_err(|e| format!("policy is not valid HCL: {e}"))?
        };
        let mut rules = BTreeMap::new();
        for (path, rule) in raw.path {
            if let Some(key) = rule.other.keys().next() {
                // Ignoring a restriction would grant more than the author meant: refuse instead.
                return Err(format!(
                    "path {path:?}: {key} is not supported; use capabilities only"
                ));
            }
            let mut caps = BTreeSet::new();
            let mut names = rule.capabilities;
            if let Some(p) = rule.policy {
                names.extend(match p.as_str() {
                    "read" => vec!["read".to_owned(), "list".to_owned()],
                    "write" => ["create", "read", "update", "delete", "list"]
                        .map(str::to_owned)
                        .to_vec(),
                    "sudo" => ["create", "read", "update", "delete", "list", "sudo"]
                        .map(str::to_owned)
                        .to_vec(),
                    "deny" => vec!["deny".to_owned()],
                    other => {
                        return Err(format!(
                            "path {path:?}: policy {other:?} is not read, write, sudo or deny"
                        ));
                    }
                });
            }
            for name in names {
                let cap = Capability::parse(&name).ok_or_else(|| {
                    format!(
                        "path {path:?}: capability {name:?} is not one of create, read, update, delete, list, sudo, deny"
                    )
                })?;
                caps.insert(cap);
            }
            if let Some(i) = path.find('*')
                && i != path.len() - 1
            {
                return Err(format!(
                    "path {path:?}: '*' is only allowed at the end of a path"
                ));
            }
            let entry: &mut BTreeSet<Capability> = rules
                .entry(path.trim_start_matches('/').to_owned())
                .or_default();
            entry.extend(caps);
        }
        if rules.len() > MAX_POLICY_PATHS {
            return Err(format!(
                "policy has {} path rules; at most {MAX_POLICY_PATHS} are accepted: use globs (`aws/creds/team-*`) or split it",
                rules.len()
            ));
        }
        if rules.is_empty() {
            return Err("policy has no path rules: write at least one path \"…\" { capabilities = [...] } block".into());
        }
        Ok(Policy { rules })
    }
}

/// The merged rules of all of a token's policies.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    exact: BTreeMap<String, BTreeSet<Capability>>,
    patterns: Vec<(String, BTreeSet<Capability>)>,
}

impl Acl {
    pub fn root() -> Acl {
        Acl {
            root: true,
            ..Acl::default()
        }
    }

    pub fn new<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Acl {
        let mut exact: BTreeMap<String, BTreeSet<Capability>> = BTreeMap::new();
        let mut patterns: BTreeMap<String, BTreeSet<Capability>> = BTreeMap::new();
        for p in policies {
            for (path, caps) in &p.rules {
                let target = if path.ends_with('*') || path.contains('+') {
                    &mut patterns
                } else {
                    &mut exact
                };
                target.entry(path.clone()).or_default().extend(caps);
            }
        }
        let mut patterns: Vec<_> = patterns.into_iter().collect();
        // Most specific first, so the first match is the one that counts.
        patterns.sort_by(|(a, _), (b, _)| more_specific(a, b));
        Acl {
            root: false,
            exact,
            patterns,
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The capabilities granted on `path` (`deny` wins over everything).
    pub fn capabilities(&self, path: &str) -> BTreeSet<Capability> {
        if self.root {
            return [
                Capability::Create,
                Capability::Read,
                Capability::Update,
                Capability::Delete,
                Capability::List,
                Capability::Sudo,
            ]
            .into();
        }
        let found = self.exact.get(path).or_else(|| {
            self.patterns
                .iter()
                .find(|(pattern, _)| matches(pattern, path))
                .map(|(_, caps)| caps)
        });
        match found {
            Some(caps) if caps.contains(&Capability::Deny) => [Capability::Deny].into(),
            Some(caps) => caps.clone(),
            None => BTreeSet::new(),
        }
    }

    /// Whether `path` allows any of `wanted` (and `sudo`, if `needs_sudo`).
    pub fn allows(&self, path: &str, wanted: &[Capability], needs_sudo: bool) -> bool {
        let caps = self.capabilities(path);
        !caps.contains(&Capability::Deny)
            && wanted.iter().any(|c| caps.contains(c))
            && (!needs_sudo || caps.contains(&Capability::Sudo))
    }
}

/// Does `pattern` (with `+` segments and an optional trailing `*`) match `path`?
/// A trailing `*` matches any rest, slashes included; `+` matches exactly one non-empty segment.
fn matches(pattern: &str, path: &str) -> bool {
    let (body, glob) = match pattern.strip_suffix('*') {
        Some(b) => (b, true),
        None => (pattern, false),
    };
    let pat: Vec<&str> = body.split('/').collect();
    let segs: Vec<&str> = path.split('/').collect();
    if segs.len() < pat.len() || (!glob && segs.len() != pat.len()) {
        return false;
    }
    let last = pat.len() - 1;
    pat.iter().zip(&segs).enumerate().all(|(i, (p, s))| {
        if *p == "+" {
            !s.is_empty()
        } else if glob && i == last {
            s.starts_with(p)
        } else {
            p == s
        }
    })
}

/// Vault's priority rules, as an ordering where the more specific pattern sorts first.
fn more_specific(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    let first_wild = |p: &str| p.find(['+', '*']).unwrap_or(p.len());
    // 1. A wildcard that comes later is more specific.
    match first_wild(b).cmp(&first_wild(a)) {
        Equal => {}
        other => return other,
    }
    // 2. Not ending in `*` is more specific than ending in it.
    match (a.ends_with('*'), b.ends_with('*')) {
        (false, true) => return Less,
        (true, false) => return Greater,
        _ => {}
    }
    // 3. Fewer `+` segments is more specific.
    let plus = |p: &str| p.split('/').filter(|s| *s == "+").count();
    match plus(a).cmp(&plus(b)) {
        Equal => {}
        other => return other,
    }
    // 4. Longer is more specific; 5. then lexicographically greater.
    b.len().cmp(&a.len()).then_with(|| b.cmp(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Capability::*;

    fn acl(texts: &[&str]) -> Acl {
        let policies: Vec<Policy> = texts.iter().map(|t| Policy::parse(t).unwrap()).collect();
        Acl::new(&policies)
    }

    #[test]
    fn parses_hcl_and_json() {
        let p =
            Policy::parse(r#"path "aws/creds/dev" { capabilities = ["read", "update"] }"#).unwrap();
        assert_eq!(p.rules["aws/creds/dev"], [Read, Update].into());
        let p =
            Policy::parse(r#"{"path": {"aws/creds/dev": {"capabilities": ["read"]}}}"#).unwrap();
        assert_eq!(p.rules["aws/creds/dev"], [Read].into());
        let p = Policy::parse(
            "path \"a/*\" {\n  policy = \"write\"\n}\npath \"b\" { capabilities = [\"deny\"] }",
        )
        .unwrap();
        assert!(p.rules["a/*"].contains(&Delete));
        assert_eq!(p.rules["b"], [Deny].into());
    }

    #[test]
    fn rejects_what_it_cannot_honour() {
        assert!(
            Policy::parse("path \"a\" { capabilities = [\"fly\"] }")
                .unwrap_err()
                .contains("\"fly\"")
        );
        let e = Policy::parse(
            "path \"a\" {\n  capabilities = [\"read\"]\n  denied_parameters = { x = [] }\n}",
        )
        .unwrap_err();
        assert!(e.contains("denied_parameters is not supported"), "{e}");
        assert!(
            Policy::parse("path \"a/*/b\" { capabilities = [\"read\"] }")
                .unwrap_err()
                .contains("only allowed at the end")
        );
        assert!(Policy::parse("not hcl {{{").is_err());
        assert!(Policy::parse("").unwrap_err().contains("no path rules"));
    }

    #[test]
    fn policies_over_the_caps_are_refused_with_the_reason() {
        let many: String = (0..=MAX_POLICY_PATHS)
            .map(|i| format!("path \"p/{i}\" {{ capabilities = [\"read\"] }}\n"))
            .collect();
        assert!(many.len() < MAX_POLICY_BYTES);
        let e = Policy::parse(&many).unwrap_err();
        assert!(e.contains("at most 1000"), "{e}");
        let big = format!(
            "# {}\npath \"a\" {{ capabilities = [\"read\"] }}",
            "x".repeat(MAX_POLICY_BYTES)
        );
        assert!(Policy::parse(&big).unwrap_err().contains("bytes"));
    }

    #[test]
    fn exact_globs_and_segment_wildcards() {
        let a = acl(&[r#"
            path "aws/creds/dev" { capabilities = ["read"] }
            path "aws/creds/dev-*" { capabilities = ["read", "update"] }
            path "aws/+/ops" { capabilities = ["list"] }
        "#]);
        assert_eq!(a.capabilities("aws/creds/dev"), [Read].into());
        assert_eq!(a.capabilities("aws/creds/dev-team"), [Read, Update].into());
        assert!(a.capabilities("aws/creds/prod").is_empty());
        assert_eq!(a.capabilities("aws/roles/ops"), [List].into());
        assert!(a.capabilities("aws/roles/x/ops").is_empty());
        assert!(a.capabilities("aws/config/root").is_empty());
        assert!(
            matches("aws/creds/*", "aws/creds/dev/x"),
            "a glob spans segments"
        );
        assert!(!matches("aws/+/ops", "aws//ops"), "+ needs a segment");
    }

    #[test]
    fn the_most_specific_pattern_wins_and_deny_overrides() {
        let a = acl(&[
            r#"path "aws/*" { capabilities = ["read"] }"#,
            r#"path "aws/creds/*" { capabilities = ["update"] }
               path "aws/creds/prod" { capabilities = ["deny"] }"#,
        ]);
        assert_eq!(
            a.capabilities("aws/creds/dev"),
            [Update].into(),
            "longer glob wins"
        );
        assert_eq!(a.capabilities("aws/roles/x"), [Read].into());
        assert!(!a.allows("aws/creds/prod", &[Update, Read], false));
        // Same path in two policies: merged.
        let b = acl(&[
            r#"path "x" { capabilities = ["read"] }"#,
            r#"path "x" { capabilities = ["list"] }"#,
        ]);
        assert_eq!(b.capabilities("x"), [Read, List].into());
        // Deny in one policy beats a grant in another.
        let c = acl(&[
            r#"path "x" { capabilities = ["read"] }"#,
            r#"path "x" { capabilities = ["deny"] }"#,
        ]);
        assert!(!c.allows("x", &[Read], false));
    }

    #[test]
    fn sudo_is_needed_where_asked() {
        let a = acl(&[r#"path "sys/mounts/*" { capabilities = ["update"] }"#]);
        assert!(a.allows("sys/mounts/aws", &[Update], false));
        assert!(!a.allows("sys/mounts/aws", &[Update], true));
        let b = acl(&[r#"path "sys/mounts/*" { capabilities = ["update", "sudo"] }"#]);
        assert!(b.allows("sys/mounts/aws", &[Update], true));
        assert!(Acl::root().allows("anything/at/all", &[Delete], true));
    }

    #[test]
    fn priority_order_matches_vaults_rules() {
        use std::cmp::Ordering::*;
        assert_eq!(more_specific("a/b/*", "a/*"), Less);
        assert_eq!(
            more_specific("a/+/c", "a/*"),
            Less,
            "equal first wildcard; not ending in * wins"
        );
        assert_eq!(
            more_specific("a/+/+", "a/+/c"),
            Greater,
            "more + segments loses"
        );
        // Same first-wildcard position, both globs: the one with a `+` segment loses.
        assert_eq!(more_specific("secret/+/b*", "secret/*"), Greater);
        assert_eq!(
            more_specific("aws/creds/dev-*", "aws/creds/*"),
            Less,
            "longer wins"
        );
    }
}
