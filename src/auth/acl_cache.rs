//! Parsed ACLs, kept so a token's policies are parsed once, not on every request. Entries are
//! keyed by the policies' *text* (a SHA-256 of each), so a policy changed on any replica is a
//! different key at once: nothing here can go stale, and nothing needs invalidating. Bounded:
//! past `MAX_ENTRIES`, the cache starts over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::policy::{Acl, Policy};
use crate::seal::token_hash;

const MAX_ENTRIES: usize = 512;

/// A named policy's text, as read from the store for one request.
pub struct PolicyText<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

#[derive(Default)]
struct Cache {
    acls: HashMap<Vec<Vec<u8>>, Arc<Acl>>,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The merged ACL of these policy texts, parsed only the first time this exact set is seen.
/// A text that does not parse grants nothing (stored policies were parsed when written).
pub fn acl_of(policies: &[PolicyText<'_>]) -> Arc<Acl> {
    let mut key: Vec<Vec<u8>> = policies
        .iter()
        .map(|p| {
            let mut k = token_hash(p.text);
            k.extend_from_slice(p.name.as_bytes());
            k
        })
        .collect();
    key.sort();
    if let Some(acl) = cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .acls
        .get(&key)
    {
        return acl.clone();
    }
    let parsed: Vec<Policy> = policies
        .iter()
        .filter_map(|p| match Policy::parse(p.text) {
            Ok(policy) => Some(policy),
            Err(e) => {
                tracing::warn!(policy = %p.name, error = %e, "stored policy does not parse; it grants nothing");
                None
            }
        })
        .collect();
    let acl = Arc::new(Acl::new(&parsed));
    let mut c = cache().lock().unwrap_or_else(|p| p.into_inner());
    if c.acls.len() >= MAX_ENTRIES {
        c.acls.clear();
    }
    c.acls.insert(key, acl.clone());
    acl
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::policy::Capability;

    #[test]
    fn the_same_texts_share_one_parse_and_a_changed_text_is_parsed_anew() {
        let a = r#"path "x/*" { capabilities = ["read"] }"#;
        let b = r#"path "x/*" { capabilities = ["deny"] }"#;
        let first = acl_of(&[PolicyText { name: "p", text: a }]);
        let again = acl_of(&[PolicyText { name: "p", text: a }]);
        assert!(Arc::ptr_eq(&first, &again), "parsed once");
        assert!(first.allows("x/y", &[Capability::Read], false));
        let changed = acl_of(&[PolicyText { name: "p", text: b }]);
        assert!(
            !changed.allows("x/y", &[Capability::Read], false),
            "a new text is a new ACL"
        );
    }
}
