//! Phase-style name templates (`iamlease-{{role}}-{{random}}`): parsed and bounded when a role is
//! written, rendered when a credential is issued.

use std::collections::BTreeMap;
use std::fmt;

use crate::seal::{LOWER_ALNUM, random_string};

/// Placeholders that take a caller- or operator-chosen value render at most this many characters.
pub const MAX_FIELD_LEN: usize = 32;
const DEFAULT_RANDOM_LEN: usize = 16;
const UNIX_TIME_LEN: usize = 10;

pub const DEFAULT_USERNAME_TEMPLATE: &str = "iamlease-{{role}}-{{random}}";
/// 32 characters at most, the requester's name cut to fit (a federated user's name is all
/// CloudTrail shows of who asked).
pub const DEFAULT_FEDERATION_TEMPLATE: &str = "iamlease-{{display_name 14}}-{{random 8}}";
pub const DEFAULT_SESSION_TEMPLATE: &str = "iamlease-{{display_name}}-{{random}}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Random(usize),
    Role,
    Mount,
    /// `{{display_name}}`, or `{{display_name N}}` cut to N characters.
    DisplayName(usize),
    /// `{{meta.KEY}}`: the requesting token's metadata (a JWT login's mapped claims).
    Meta(String),
    UnixTime,
}

/// A template that is known to render a valid name of at most `limit` characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTemplate {
    source: String,
    segments: Vec<Segment>,
}

/// What a template is for: decides the length limit and the wording of errors.
#[derive(Debug, Clone, Copy)]
pub enum NameKind {
    IamUser,
    FederationToken,
    RoleSession,
}

impl NameKind {
    pub fn max_len(self) -> usize {
        match self {
            NameKind::IamUser | NameKind::RoleSession => 64,
            NameKind::FederationToken => 32,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            NameKind::IamUser => "IAM allows 64",
            NameKind::FederationToken => "federation token names allow 32",
            NameKind::RoleSession => "role session names allow 64",
        }
    }
}

/// Values a template is rendered with.
pub struct RenderContext<'a> {
    pub role: &'a str,
    pub mount: &'a str,
    pub display_name: &'a str,
    /// The requesting token's `meta`; a key it lacks renders as nothing.
    pub meta: &'a BTreeMap<String, String>,
    pub unix_time: i64,
}

/// IAM's user-name character set; also the set we allow in literal template text.
pub fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

impl NameTemplate {
    pub fn parse(source: &str, kind: NameKind) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            match rest.find("{{") {
                Some(0) => {
                    let end = rest.find("}}").ok_or_else(|| {
                        format!("username_template has an unclosed placeholder: {rest:?}")
                    })?;
                    segments.push(parse_placeholder(rest[2..end].trim())?);
                    rest = &rest[end + 2..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let literal = &rest[..end];
                    if let Some(bad) = literal.chars().find(|&c| !is_iam_name_char(c)) {
                        return Err(format!(
                            "username_template contains {bad:?}; literal text may only use A-Z a-z 0-9 and + = , . @ _ -"
                        ));
                    }
                    segments.push(Segment::Literal(literal.to_owned()));
                    rest = &rest[end..];
                }
            }
        }
        if !segments.iter().any(|s| matches!(s, Segment::Random(_))) {
            return Err(
                "username_template must contain {{random}} so that every name is unique".into(),
            );
        }
        let template = NameTemplate {
            source: source.to_owned(),
            segments,
        };
        let worst = template.max_len();
        if worst > kind.max_len() {
            return Err(format!(
                "username_template renders up to {worst} characters; {}",
                kind.describe()
            ));
        }
        Ok(template)
    }

    /// The longest name this template can render, from each placeholder's maximum.
    pub fn max_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.len(),
                Segment::Random(n) => *n,
                Segment::Role | Segment::Mount | Segment::Meta(_) => MAX_FIELD_LEN,
                Segment::DisplayName(n) => *n,
                Segment::UnixTime => UNIX_TIME_LEN,
            })
            .sum()
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn render(&self, ctx: &RenderContext<'_>) -> String {
        let mut out = String::with_capacity(self.max_len());
        for s in &self.segments {
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Random(n) => out.push_str(&random_string(*n, LOWER_ALNUM)),
                Segment::Role => out.push_str(&sanitize(ctx.role)),
                Segment::Mount => out.push_str(&sanitize(ctx.mount)),
                Segment::DisplayName(n) => out.extend(sanitize(ctx.display_name).chars().take(*n)),
                Segment::Meta(key) => {
                    out.push_str(&sanitize(ctx.meta.get(key).map_or("", String::as_str)))
                }
                Segment::UnixTime => out.push_str(&format!("{:010}", ctx.unix_time.max(0))),
            }
        }
        out
    }
}

impl fmt::Display for NameTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn parse_placeholder(inner: &str) -> Result<Segment, String> {
    let mut words = inner.split_whitespace();
    let name = words.next().unwrap_or("");
    let arg = words.next();
    if words.next().is_some() {
        return Err(format!(
            "username_template placeholder {{{{{inner}}}}} has too many words"
        ));
    }
    let no_arg = |seg: Segment| match arg {
        None => Ok(seg),
        Some(a) => Err(format!(
            "username_template placeholder {{{{{name}}}}} takes no argument, got {a:?}"
        )),
    };
    match name {
        "random" => match arg {
            None => Ok(Segment::Random(DEFAULT_RANDOM_LEN)),
            Some(n) => match n.parse::<usize>() {
                Ok(n) if (8..=32).contains(&n) => Ok(Segment::Random(n)),
                _ => Err(format!(
                    "username_template {{{{random {n}}}}}: the length must be a number from 8 to 32"
                )),
            },
        },
        "role" => no_arg(Segment::Role),
        "mount" => no_arg(Segment::Mount),
        "display_name" => match arg {
            None => Ok(Segment::DisplayName(MAX_FIELD_LEN)),
            Some(n) => match n.parse::<usize>() {
                Ok(n) if (1..=MAX_FIELD_LEN).contains(&n) => Ok(Segment::DisplayName(n)),
                _ => Err(format!(
                    "username_template {{{{display_name {n}}}}}: the length must be a number from 1 to 32"
                )),
            },
        },
        "unix_time" => no_arg(Segment::UnixTime),
        meta if meta.starts_with("meta.") => {
            let key = &meta["meta.".len()..];
            if key.is_empty()
                || key.len() > 128
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            {
                return Err(format!(
                    "username_template {{{{{meta}}}}}: the metadata key must be 1 to 128 characters of A-Z a-z 0-9 _ - ."
                ));
            }
            no_arg(Segment::Meta(key.to_owned()))
        }
        other => Err(format!(
            "username_template has unknown placeholder {{{{{other}}}}}; use random, random N, role, mount, display_name, display_name N, meta.KEY or unix_time"
        )),
    }
}

/// At most 32 characters, anything outside IAM's set replaced by `_`.
fn sanitize(value: &str) -> String {
    value
        .chars()
        .take(MAX_FIELD_LEN)
        .map(|c| if is_iam_name_char(c) { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_META: BTreeMap<String, String> = BTreeMap::new();

    fn ctx<'a>(role: &'a str, display_name: &'a str) -> RenderContext<'a> {
        RenderContext {
            role,
            mount: "aws",
            display_name,
            meta: &NO_META,
            unix_time: 1_764_000_000,
        }
    }

    #[test]
    fn display_name_can_be_cut_so_federation_names_fit_32() {
        let t =
            NameTemplate::parse(DEFAULT_FEDERATION_TEMPLATE, NameKind::FederationToken).unwrap();
        assert_eq!(t.max_len(), 32);
        let name = t.render(&ctx("fed", "jwt-repo:octo-org/app:ref:refs/heads/main"));
        assert!(name.starts_with("iamlease-jwt-repo_octo--"), "{name}");
        assert_eq!(name.len(), 32);
        assert!(t.render(&ctx("fed", "root")).starts_with("iamlease-root-"));
        assert!(NameTemplate::parse("{{display_name 33}}{{random}}", NameKind::IamUser).is_err());
        assert!(NameTemplate::parse("{{display_name 0}}{{random}}", NameKind::IamUser).is_err());
    }

    #[test]
    fn meta_placeholders_render_the_tokens_metadata_sanitised_and_bounded() {
        let t =
            NameTemplate::parse("ci-{{meta.repository}}-{{random 8}}", NameKind::IamUser).unwrap();
        assert_eq!(t.max_len(), 3 + 32 + 1 + 8);
        let meta = BTreeMap::from([("repository".to_owned(), "octo-org/app".to_owned())]);
        let name = t.render(&RenderContext {
            meta: &meta,
            ..ctx("dev", "jwt-x")
        });
        assert!(name.starts_with("ci-octo-org_app-"), "{name}");
        // A key the token lacks renders as nothing; the name is still unique by its random part.
        assert!(t.render(&ctx("dev", "root")).starts_with("ci--"));
        for bad in [
            "{{meta.}}-{{random}}",
            "{{meta.a/b}}-{{random}}",
            "{{meta.x y}}-{{random}}",
        ] {
            assert!(
                NameTemplate::parse(bad, NameKind::IamUser).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn default_template_is_58_characters_at_most() {
        let t = NameTemplate::parse(DEFAULT_USERNAME_TEMPLATE, NameKind::IamUser).unwrap();
        assert_eq!(t.max_len(), 58);
        let name = t.render(&ctx("dev", "root"));
        assert!(name.starts_with("iamlease-dev-"), "{name}");
        let random = &name["iamlease-dev-".len()..];
        assert_eq!(random.len(), 16);
        assert!(random.bytes().all(|b| LOWER_ALNUM.contains(&b)));
    }

    #[test]
    fn placeholders_render_and_are_sanitised() {
        let t = NameTemplate::parse(
            "{{mount}}.{{role}}.{{display_name}}.{{unix_time}}.{{ random 8 }}",
            NameKind::IamUser,
        );
        // 32 * 3 + 10 + 8 + 4 dots = 118 > 64.
        assert_eq!(
            t.unwrap_err(),
            "username_template renders up to 118 characters; IAM allows 64"
        );
        let t = NameTemplate::parse(
            "{{display_name}}-{{unix_time}}-{{random 8}}",
            NameKind::IamUser,
        )
        .unwrap();
        let long = "a very/long:display name that goes on and on and on";
        let name = t.render(&ctx("r", long));
        let (shown, rest) = name.split_at(MAX_FIELD_LEN);
        assert_eq!(shown, "a_very_long_display_name_that_go");
        assert!(rest.starts_with("-1764000000-"));
        assert!(name.len() <= t.max_len());
    }

    #[test]
    fn spec_example_message_for_71_characters() {
        // 32 (role) + 16 (random) + 23 literal = 71.
        let err = NameTemplate::parse(
            "iamlease-long-prefix-x-{{role}}{{random}}",
            NameKind::IamUser,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "username_template renders up to 71 characters; IAM allows 64"
        );
    }

    #[test]
    fn rejects_missing_random_bad_literals_and_unknown_placeholders() {
        assert!(
            NameTemplate::parse("{{role}}", NameKind::IamUser)
                .unwrap_err()
                .contains("{{random}}")
        );
        assert!(
            NameTemplate::parse("a b{{random}}", NameKind::IamUser)
                .unwrap_err()
                .contains("' '")
        );
        assert!(
            NameTemplate::parse("x/{{random}}", NameKind::IamUser)
                .unwrap_err()
                .contains("'/'")
        );
        assert!(
            NameTemplate::parse("{{nope}}{{random}}", NameKind::IamUser)
                .unwrap_err()
                .contains("unknown placeholder {{nope}}")
        );
        assert!(
            NameTemplate::parse("{{random 7}}", NameKind::IamUser)
                .unwrap_err()
                .contains("8 to 32")
        );
        assert!(
            NameTemplate::parse("{{random 33}}", NameKind::IamUser)
                .unwrap_err()
                .contains("8 to 32")
        );
        assert!(
            NameTemplate::parse("{{random", NameKind::IamUser)
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            NameTemplate::parse("{{role x}}{{random}}", NameKind::IamUser)
                .unwrap_err()
                .contains("takes no argument")
        );
    }

    #[test]
    fn federation_names_are_limited_to_32() {
        assert!(
            NameTemplate::parse(DEFAULT_FEDERATION_TEMPLATE, NameKind::FederationToken).is_ok()
        );
        let err = NameTemplate::parse("iamlease-{{role}}-{{random}}", NameKind::FederationToken)
            .unwrap_err();
        assert!(
            err.contains("up to 58 characters; federation token names allow 32"),
            "{err}"
        );
        assert!(NameTemplate::parse(DEFAULT_SESSION_TEMPLATE, NameKind::RoleSession).is_ok());
    }

    #[test]
    fn random_lengths_are_honoured() {
        for n in [8, 20, 32] {
            let t = NameTemplate::parse(&format!("{{{{random {n}}}}}"), NameKind::IamUser).unwrap();
            assert_eq!(t.render(&ctx("r", "d")).len(), n);
        }
    }
}
