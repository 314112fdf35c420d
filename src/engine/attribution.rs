//! Who asked for a credential, written onto what AWS holds: an IAM user's `iamlease:requester`
//! tag (the token's display name) and an `iamlease:meta:{key}` tag per entry of the token's
//! metadata (a JWT login's mapped claims), within IAM's tag rules, so CloudTrail and the IAM
//! console answer "who held this key" without iamlease.

use std::collections::BTreeMap;

pub const REQUESTER_TAG: &str = "iamlease:requester";
const META_TAG_PREFIX: &str = "iamlease:meta:";
/// IAM's limit on a user's tags.
pub const MAX_TAGS: usize = 50;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

/// IAM's tag character set: letters, digits, spaces and `_ . : / = + - @`; anything else
/// becomes `_`, and the text is cut to `max` characters.
fn tag_text(raw: &str, max: usize) -> String {
    raw.chars()
        .take(max)
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The attribution tags for a user that already carries `taken` tags: the requester first,
/// then metadata by key, as many as IAM's 50 allow. Keys that would collide after
/// sanitising keep the first.
pub fn user_tags(
    requester: &str,
    meta: &BTreeMap<String, String>,
    taken: usize,
) -> Vec<(String, String)> {
    let room = MAX_TAGS.saturating_sub(taken);
    let mut tags: Vec<(String, String)> = Vec::new();
    let requester = tag_text(requester, MAX_VALUE_CHARS);
    tags.push((REQUESTER_TAG.to_owned(), requester));
    for (key, value) in meta {
        let key = tag_text(&format!("{META_TAG_PREFIX}{key}"), MAX_KEY_CHARS);
        if tags.iter().any(|(k, _)| *k == key) {
            continue;
        }
        tags.push((key, tag_text(value, MAX_VALUE_CHARS)));
    }
    if tags.len() > room {
        tracing::debug!(
            dropped = tags.len() - room,
            "token metadata left off the IAM user: IAM allows 50 tags"
        );
        tags.truncate(room);
    }
    tags
}

/// STS's `SourceIdentity`: 2 to 64 characters of `A-Z a-z 0-9 + = , . @ _ -`, the requester's
/// name with anything else as `_`. It stays on every session chained from this one, so
/// CloudTrail shows who acted even after role chaining.
pub fn source_identity(requester: &str) -> String {
    let mut id: String = requester
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.len() < 2 {
        id = format!("iamlease-{id}");
    }
    id
}

/// The session tags of an AssumeRole: the role's, then `iamlease:requester` unless the role
/// sets that key itself (STS allows 50; a role may set 49).
pub fn session_tags(
    role_tags: &BTreeMap<String, String>,
    requester: &str,
) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = role_tags
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !role_tags.contains_key(REQUESTER_TAG) && tags.len() < MAX_TAGS {
        tags.push((
            REQUESTER_TAG.to_owned(),
            tag_text(requester, MAX_VALUE_CHARS),
        ));
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requester_and_meta_become_tags_within_iams_rules() {
        let meta = BTreeMap::from([
            ("repository".to_owned(), "octo-org/app".to_owned()),
            ("ref".to_owned(), "refs/heads/main".to_owned()),
            ("odd key!".to_owned(), "x".repeat(300)),
        ]);
        let tags = user_tags("jwt-repo:octo-org/app:ref:refs/heads/main", &meta, 4);
        assert_eq!(
            tags[0],
            (
                REQUESTER_TAG.to_owned(),
                "jwt-repo:octo-org/app:ref:refs/heads/main".to_owned()
            )
        );
        assert!(tags.contains(&("iamlease:meta:repository".into(), "octo-org/app".into())));
        assert!(tags.contains(&("iamlease:meta:ref".into(), "refs/heads/main".into())));
        let odd = tags
            .iter()
            .find(|(k, _)| k == "iamlease:meta:odd key_")
            .unwrap();
        assert_eq!(odd.1.chars().count(), 256);
    }

    #[test]
    fn source_identity_keeps_to_stss_character_set_and_length() {
        assert_eq!(
            source_identity("jwt-repo:octo-org/app:ref:refs/heads/main"),
            "jwt-repo_octo-org_app_ref_refs_heads_main"
        );
        assert_eq!(source_identity("x"), "iamlease-x");
        assert_eq!(source_identity(&"é".repeat(100)).len(), 64);
        let role = BTreeMap::from([("team".to_owned(), "platform".to_owned())]);
        assert_eq!(
            session_tags(&role, "oidc-alice@example.com"),
            vec![
                ("team".to_owned(), "platform".to_owned()),
                (
                    REQUESTER_TAG.to_owned(),
                    "oidc-alice@example.com".to_owned()
                )
            ]
        );
    }

    #[test]
    fn never_more_than_fifty_tags_and_the_requester_goes_first() {
        let meta: BTreeMap<String, String> = (0..80)
            .map(|i| (format!("k{i:02}"), "v".to_owned()))
            .collect();
        assert_eq!(user_tags("root", &meta, 4).len(), 46);
        let last = user_tags("root", &meta, 49);
        assert_eq!(last, vec![(REQUESTER_TAG.to_owned(), "root".to_owned())]);
        assert!(user_tags("root", &meta, 50).is_empty());
        let long = "k".repeat(200);
        let keys = user_tags("r", &BTreeMap::from([(long, "v".to_owned())]), 0);
        assert_eq!(keys[1].0.chars().count(), 128);
    }
}
