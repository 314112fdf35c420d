//! Username templates: any text either parses or is refused (never a panic), and what parses
//! renders, for any role, mount, display name and token metadata, to at most the worst case it promised, within
//! the kind's limit, in IAM's character set.
#![no_main]

use std::collections::BTreeMap;

use iamlease::engine::template::{NameKind, NameTemplate, RenderContext, is_iam_name_char};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\0');
    let source = parts.next().unwrap_or_default();
    let (role, mount, display_name) = (
        parts.next().unwrap_or("dev"),
        parts.next().unwrap_or("aws"),
        parts.next().unwrap_or("root"),
    );
    // One metadata entry, named by the input, so `{{meta.KEY}}` can find a value or not.
    let meta = BTreeMap::from([(
        parts.next().unwrap_or("repository").to_owned(),
        parts.next().unwrap_or("octo-org/app").to_owned(),
    )]);
    let kind = match selector % 3 {
        0 => NameKind::IamUser,
        1 => NameKind::FederationToken,
        _ => NameKind::RoleSession,
    };
    let Ok(template) = NameTemplate::parse(source, kind) else {
        return;
    };
    assert!(template.max_len() <= kind.max_len());
    let name = template.render(&RenderContext {
        role,
        mount,
        display_name,
        meta: &meta,
        unix_time: 1_700_000_000 + i64::from(selector),
    });
    assert!(name.len() <= template.max_len(), "{name:?} longer than {}", template.max_len());
    assert!(name.chars().all(is_iam_name_char), "{name:?}");
});
