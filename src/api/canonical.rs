//! One spelling per path: before routing, a request's path is percent-decoded once and
//! re-encoded in its one canonical form, so the router, the ACL and the handlers all see the
//! same path. Spellings that could mean two things (an encoded `/`, dot segments, empty
//! segments, bytes that are not UTF-8) are refused. The query string is parsed here too, once;
//! a parameter given twice is refused, so `?list=true&list=false` cannot mean one thing to the
//! ACL and another to a handler.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// What may stay unencoded in a path segment (RFC 3986 `pchar` without `%`), everything else
/// is encoded when the canonical path is rebuilt.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'/');

/// A path, decoded once: `decoded` is what the ACL and handlers see, `encoded` what the router
/// matches (the same path in its only spelling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath {
    pub decoded: String,
    pub encoded: String,
}

/// Why a path or query was refused. The message says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// Decodes `raw` (a request's path, as sent) into its canonical form. `keep_slash` says whether
/// a trailing `/` is meaningful for this path (lease prefixes); elsewhere it is dropped, as
/// Vault does.
pub fn path(raw: &str, keep_slash: impl Fn(&str) -> bool) -> Result<CanonicalPath, Refused> {
    if !raw.starts_with('/') {
        return Err(Refused(format!("the path {raw:?} must start with '/'")));
    }
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return Err(Refused(
            "the path has an encoded '/' or '\\' (%2F, %5C); path segments cannot contain them"
                .into(),
        ));
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Refused("the path is not valid UTF-8 once percent-decoded".into()))?;
    if decoded.contains('\\') || decoded.chars().any(char::is_control) {
        return Err(Refused(
            "the path has a '\\' or a control character; send the path plainly".into(),
        ));
    }
    let trailing = decoded.len() > 1 && decoded.ends_with('/');
    let body = decoded.trim_start_matches('/');
    let body = if trailing {
        body.strip_suffix('/').unwrap_or(body)
    } else {
        body
    };
    let segments: Vec<&str> = body.split('/').collect();
    for seg in &segments {
        if *seg == "." || *seg == ".." {
            return Err(Refused(format!(
                "the path {decoded:?} has a '{seg}' segment; send the path it stands for"
            )));
        }
    }
    if decoded.starts_with("//") || (!body.is_empty() && segments.iter().any(|s| s.is_empty())) {
        return Err(Refused(format!(
            "the path {decoded:?} has an empty segment ('//'); send it with single slashes"
        )));
    }
    let mut canonical_decoded = format!("/{body}");
    let mut canonical_encoded = String::with_capacity(raw.len());
    for seg in &segments {
        canonical_encoded.push('/');
        canonical_encoded.extend(utf8_percent_encode(seg, SEGMENT));
    }
    if trailing && keep_slash(&format!("{canonical_decoded}/")) {
        canonical_decoded.push('/');
        canonical_encoded.push('/');
    }
    if canonical_encoded.is_empty() {
        canonical_encoded.push('/');
    }
    Ok(CanonicalPath {
        decoded: canonical_decoded,
        encoded: canonical_encoded,
    })
}

/// The query string, parsed once: `list` apart (Vault's `?list=true`), the rest as fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestQuery {
    pub list: bool,
    pub params: Vec<(String, String)>,
}

pub fn query(raw: Option<&str>) -> Result<RequestQuery, Refused> {
    let mut out = RequestQuery::default();
    let Some(raw) = raw.filter(|q| !q.is_empty()) else {
        return Ok(out);
    };
    let mut seen_list = false;
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        if key == "list" {
            if seen_list {
                return Err(Refused(
                    "the query gives list more than once; give it once".into(),
                ));
            }
            seen_list = true;
            out.list = parse_bool(&value).ok_or_else(|| {
                Refused(format!("list={value:?} is not a boolean; use list=true"))
            })?;
        } else if out.params.iter().any(|(k, _)| *k == key) {
            return Err(Refused(format!(
                "the query gives {key} more than once; give each parameter once"
            )));
        } else {
            out.params.push((key.into_owned(), value.into_owned()));
        }
    }
    Ok(out)
}

/// Vault's (Go's `strconv.ParseBool`) spellings.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(raw: &str) -> Result<String, Refused> {
        path(raw, |p| p.starts_with("/v1/sys/leases/revoke-prefix/")).map(|p| p.decoded)
    }

    #[test]
    fn one_spelling_per_path() {
        assert_eq!(canon("/v1/aws/creds/pro%64").unwrap(), "/v1/aws/creds/prod");
        assert_eq!(canon("/v1/a%77s/creds/dev").unwrap(), "/v1/aws/creds/dev");
        assert_eq!(canon("/v1/aws/roles/").unwrap(), "/v1/aws/roles");
        assert_eq!(
            canon("/v1/sys/leases/revoke-prefix/aws/creds/").unwrap(),
            "/v1/sys/leases/revoke-prefix/aws/creds/"
        );
        let p = path("/v1/aws/roles/a%20b", |_| false).unwrap();
        assert_eq!(p.decoded, "/v1/aws/roles/a b");
        assert_eq!(p.encoded, "/v1/aws/roles/a%20b");
        assert_eq!(canon("/").unwrap(), "/");
    }

    #[test]
    fn ambiguous_spellings_are_refused() {
        for raw in [
            "/v1/aws/creds%2Fprod",
            "/v1/aws%2fcreds/prod",
            "/v1/aws/creds/%2e%2e/roles/x",
            "/v1/aws/creds/../roles/x",
            "/v1/aws/./creds/prod",
            "/v1//aws/creds/prod",
            "//v1/aws/creds/prod",
            "/v1/aws/creds/prod%ff",
            "/v1/aws/creds/pr%00od",
            "/v1/aws\\creds/prod",
        ] {
            assert!(canon(raw).is_err(), "{raw} was accepted");
        }
    }

    #[test]
    fn the_query_is_parsed_once_and_duplicates_refused() {
        assert_eq!(
            query(Some("list=true")).unwrap(),
            RequestQuery {
                list: true,
                params: vec![]
            }
        );
        assert!(!query(Some("list=false&x=1")).unwrap().list);
        assert!(query(Some("list=true&list=false")).is_err());
        assert!(query(Some("list=yes")).is_err());
        assert!(query(Some("ttl=1h&ttl=2h")).is_err());
        assert_eq!(
            query(Some("ttl=1h")).unwrap().params,
            vec![("ttl".into(), "1h".into())]
        );
    }
}
