//! The ACL cannot be fooled by spelling (security issue #15). For every route of the route table
//! and every method it serves, and for tokens holding each capability alone (and one holding
//! everything but a `deny` on the very path), every variant spelling of the request — percent
//! encodings, case, dot segments, doubled slashes, a trailing slash, `list` in the query, the
//! `LIST` and `HEAD` methods, method-override headers — is decided no more permissively than
//! the canonical request. The decision is read from the audit log (`policy_results.allowed`), and
//! moto is asked afterwards: every IAM user in the mount's path belongs to a credential that was
//! handed out by an allowed request, so no refused request created one.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::acl::{token_with, write_policy};
use crate::support::{DOC, Options, ROOT_TOKEN, TestApp};

/// A raw HTTP/1.1 request, so the path goes out exactly as spelled (HTTP clients normalise it).
#[derive(Debug, Clone)]
struct Raw {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    body: Vec<u8>,
}

async fn send(address: &str, token: &str, id: &str, r: &Raw) -> Answer {
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let body = r.body.clone().unwrap_or_default();
    let mut text = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nX-Vault-Token: {token}\r\nX-Request-Id: {id}\r\nContent-Length: {}\r\n",
        r.method,
        r.target,
        body.len()
    );
    for (k, v) in &r.headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(&body);
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out))
        .await
        .expect("the server answers")
        .unwrap();
    let head_end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let body = out.get(head_end + 4..).unwrap_or_default().to_vec();
    // Chunked answers are not used by the server for JSON; a body is either whole or empty.
    Answer { status, body }
}

/// A concrete, harmless value for each path parameter of a route: the test's own mount and
/// role for issuing, scratch names for everything that creates, changes or deletes.
fn concrete(pattern: &str, mount: &str, lease_id: &str) -> String {
    let mut out = String::new();
    let creates_or_deletes = pattern.contains("rotate-root")
        || pattern.contains("sweep")
        || pattern.ends_with("config/root")
        || pattern.ends_with("config/lease");
    for seg in pattern.trim_start_matches('/').split('/') {
        out.push('/');
        out.push_str(match seg {
            "{mount}" if creates_or_deletes => "spelling-scratch",
            "{mount}" => mount,
            "{name}" if pattern.contains("/roles/") => "scratch",
            "{name}" if pattern.contains("/policies/") || pattern.contains("/policy/") => {
                "spelling-scratch"
            }
            "{name}" => "prod",
            "{path}" => "spelling-scratch",
            "{device}" => "file",
            "{access_key_id}" => "AKIASPELLING00000000",
            "{*prefix}" => "nothing-here/",
            "{*lease_id}" => lease_id,
            s if s.starts_with('{') => panic!("no sample value for {s} in {pattern}: add one"),
            s => s,
        });
    }
    out
}

/// The request body a route gets: harmless (a bogus accessor or lease id, an empty role).
fn body_for(pattern: &str, lease_id: &str) -> Option<String> {
    let body = match pattern {
        p if p.ends_with("revoke-accessor") || p.ends_with("lookup-accessor") => {
            json!({"accessor": "no-such-accessor"})
        }
        p if p.ends_with("auth/token/lookup") => json!({"token": "no-such-token"}),
        p if p.ends_with("leases/lookup")
            || p.ends_with("leases/renew")
            || p.ends_with("leases/revoke") =>
        {
            json!({"lease_id": lease_id})
        }
        p if p.ends_with("auth/token/create") => json!({"ttl": "1m"}),
        p if p.contains("/policies/") || p.contains("/policy/") => {
            json!({"policy": "path \"nothing\" { capabilities = [\"read\"] }"})
        }
        p if p.ends_with("audit-hash") || p.ends_with("{device}") => json!({"input": "x"}),
        _ => json!({}),
    };
    Some(body.to_string())
}

fn percent_encode_all(seg: &str) -> String {
    seg.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Variants that must mean the same request, or be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Must decide exactly as the canonical request (same path, same operation).
    Same,
    /// May be refused or decided on another path, but never allowed where the canonical is not.
    NoMorePermissive,
    /// A spelling that could mean two things: refused with 400 before any handler.
    Refused,
}

fn variants(pattern: &str, canonical: &Raw) -> Vec<(String, Raw, Rule)> {
    let case_segments: Vec<usize> = pattern
        .trim_start_matches('/')
        .split('/')
        .enumerate()
        .filter(|(_, s)| !s.starts_with('{') || *s == "{mount}")
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::new();
    let path = canonical.target.clone();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let with_path = |target: String| Raw {
        target,
        ..canonical.clone()
    };
    let rejoin = |segs: &[String]| format!("/{}", segs.join("/"));
    let owned: Vec<String> = segs.iter().map(|s| (*s).to_owned()).collect();
    let last = owned.len() - 1;

    // Percent-encodings of unreserved characters: the same path.
    for i in 1..owned.len() {
        if owned[i].is_empty() {
            continue;
        }
        let mut s = owned.clone();
        s[i] = percent_encode_all(&owned[i]);
        out.push((
            format!("encoded segment {i}"),
            with_path(rejoin(&s)),
            Rule::Same,
        ));
        let mut s = owned.clone();
        let first = s[i].remove(0);
        s[i] = format!("%{:02x}{}", first as u8, s[i]);
        out.push((
            format!("lower-hex first char of {i}"),
            with_path(rejoin(&s)),
            Rule::Same,
        ));
    }
    // Case, in the static segments and the mount: another (missing) path, never a way past a
    // deny. (A role or policy name in other case is another resource, rightly decided on its own.)
    for i in case_segments {
        let mut s = owned.clone();
        s[i] = s[i].to_uppercase();
        out.push((
            format!("upper-case segment {i}"),
            with_path(rejoin(&s)),
            Rule::NoMorePermissive,
        ));
    }
    // Dot segments, empty segments, encoded separators, bad bytes.
    let mut refused = vec![
        (
            "dot segment",
            format!("/{}/./{}", owned[0], owned[1..].join("/")),
        ),
        (
            "dot-dot segment",
            format!("/{}/x/../{}", owned[0], owned[1..].join("/")),
        ),
        (
            "encoded dot-dot",
            format!("/{}/x/%2e%2e/{}", owned[0], owned[1..].join("/")),
        ),
        (
            "double slash",
            format!("/{}//{}", owned[0], owned[1..].join("/")),
        ),
        ("leading double slash", format!("/{path}")),
        ("invalid UTF-8", format!("{path}%ff")),
        ("NUL byte", format!("{path}%00")),
        (
            "backslash",
            format!("/{}\\{}", owned[0], owned[1..].join("/")),
        ),
    ];
    if owned.len() > 2 {
        let mut s = owned[..owned.len() - 2].to_vec();
        s.push(format!("{}%2F{}", owned[last - 1], owned[last]));
        refused.push(("encoded slash", rejoin(&s)));
        let mut s = owned[..owned.len() - 2].to_vec();
        s.push(format!("{}%2f{}", owned[last - 1], owned[last]));
        refused.push(("lower-case encoded slash", rejoin(&s)));
    }
    for (name, target) in refused {
        out.push((name.to_owned(), with_path(target), Rule::Refused));
    }
    // A trailing slash.
    out.push((
        "trailing slash".into(),
        with_path(format!("{path}/")),
        Rule::NoMorePermissive,
    ));
    // The query and the method.
    for q in [
        "list=true",
        "list=1",
        "list=true&list=false",
        "list=false&list=true",
    ] {
        out.push((
            format!("?{q}"),
            with_path(format!("{path}?{q}")),
            Rule::NoMorePermissive,
        ));
    }
    for method in ["LIST", "HEAD", "get", "PATCH"] {
        out.push((
            format!("method {method}"),
            Raw {
                method: method.into(),
                ..canonical.clone()
            },
            Rule::NoMorePermissive,
        ));
    }
    for (header, m) in [
        ("X-HTTP-Method-Override", "LIST"),
        ("X-HTTP-Method-Override", "GET"),
        ("X-Method-Override", "PUT"),
        ("X-HTTP-Method", "DELETE"),
    ] {
        let mut raw = canonical.clone();
        raw.headers.push((header.into(), m.into()));
        out.push((format!("{header}: {m}"), raw, Rule::NoMorePermissive));
    }
    out
}

fn audit_decisions(path: &Path) -> HashMap<String, (bool, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "request")
        .map(|l| {
            (
                l["request_id"].as_str().unwrap_or_default().to_owned(),
                (
                    l["auth"]["policy_results"]["allowed"] == true,
                    l["request"]["path"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

struct Case {
    id: String,
    route: &'static str,
    token_name: String,
    token: String,
    variant: String,
    rule: Rule,
    canonical_id: String,
    raw: Raw,
}

#[tokio::test]
async fn no_spelling_of_a_request_is_decided_more_permissively_than_the_canonical_one() {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let audit_setting = audit_path.display().to_string();
    let app = TestApp::spawn_with(Options {
        tweak: Box::new(move |s| s.audit_log = Some(audit_setting.clone())),
        ..Options::default()
    })
    .await;
    app.configure().await;
    let m = app.mount.clone();
    app.write_role(
        "prod",
        json!({"credential_type": "iam_user", "policy_document": DOC}),
    )
    .await;
    let lease_id = format!("{m}/creds/prod/no-such-lease");

    // A token per capability alone, on everything; the routes' own deny tokens come below.
    let mut tokens: Vec<(String, String)> = Vec::new();
    for cap in ["create", "read", "update", "delete", "list", "sudo", "deny"] {
        write_policy(
            &app,
            &format!("only-{cap}"),
            &format!("path \"*\" {{ capabilities = [\"{cap}\"] }}"),
        )
        .await;
        let (t, _) = token_with(&app, &[&format!("only-{cap}")], json!({})).await;
        tokens.push((format!("only {cap}"), t));
    }
    // And one that may do everything, so every route is reached by some token.
    write_policy(
        &app,
        "everything",
        "path \"*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"] }",
    )
    .await;
    tokens.push((
        "everything".into(),
        token_with(&app, &["everything"], json!({})).await.0,
    ));

    let mut cases = Vec::new();
    for (pattern, methods) in iamlease::api::route_methods() {
        let path = concrete(pattern, &m, &lease_id);
        let acl_path = path.trim_start_matches("/v1/").to_owned();
        // Everything on every path, but `deny` on this one.
        let deny_name = format!("deny-{}", cases.len());
        write_policy(
            &app,
            &deny_name,
            &format!(
                "path \"*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"] }}\n\
                 path \"{}\" {{ capabilities = [\"deny\"] }}\n\
                 path \"{}/\" {{ capabilities = [\"deny\"] }}",
                acl_path.trim_end_matches('/'),
                acl_path.trim_end_matches('/')
            ),
        )
        .await;
        let (deny_token, _) = token_with(&app, &[&deny_name], json!({})).await;
        let mut route_tokens = tokens.clone();
        route_tokens.push(("all but deny on the path".into(), deny_token));
        for method in methods.iter().filter(|m| **m != "LIST" && **m != "HEAD") {
            let canonical = Raw {
                method: (*method).to_owned(),
                target: path.clone(),
                headers: Vec::new(),
                body: body_for(pattern, &lease_id).filter(|_| *method != "GET"),
            };
            for (token_name, token) in &route_tokens {
                // Revoking itself would change the token's later decisions: a fresh one each time.
                let fresh = pattern.ends_with("revoke-self");
                let canonical_id = uuid::Uuid::new_v4().to_string();
                cases.push(Case {
                    id: canonical_id.clone(),
                    route: pattern,
                    token_name: token_name.clone(),
                    token: if fresh { String::new() } else { token.clone() },
                    variant: "canonical".into(),
                    rule: Rule::Same,
                    canonical_id: canonical_id.clone(),
                    raw: canonical.clone(),
                });
                // The deny token (the bypass) and the list-only token (its other one) get
                // every variant; the other tokens share them out, so each variant still meets
                // several capabilities on every route and the run stays short.
                let every = token_name.starts_with("all but") || token_name == "only list";
                for (i, (variant, raw, rule)) in
                    variants(pattern, &canonical).into_iter().enumerate()
                {
                    // On a route that serves LIST, LIST is its own operation (checked by the
                    // route's GET canonical), not another spelling of a POST or DELETE.
                    if variant == "method LIST" && methods.contains(&"LIST") && *method != "GET" {
                        continue;
                    }
                    let share = (i + cases.len()) % 4 == 0;
                    if !(every || (share && rule != Rule::Refused)) {
                        continue;
                    }
                    cases.push(Case {
                        id: uuid::Uuid::new_v4().to_string(),
                        route: pattern,
                        token_name: token_name.clone(),
                        token: if fresh { String::new() } else { token.clone() },
                        variant,
                        rule,
                        canonical_id: canonical_id.clone(),
                        raw,
                    });
                }
            }
        }
    }

    // Fresh tokens for the self-revoking route, with the policy the case names.
    for case in cases.iter_mut().filter(|c| c.token.is_empty()) {
        let policy = match case.token_name.strip_prefix("only ") {
            Some(cap) => format!("only-{cap}"),
            None => "only-update".to_owned(),
        };
        case.token = token_with(&app, &[&policy], json!({})).await.0;
    }

    let answers: HashMap<String, Answer> = futures::stream::iter(cases.iter())
        .map(|c| {
            let address = app.address.clone();
            async move { (c.id.clone(), send(&address, &c.token, &c.id, &c.raw).await) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let decisions = audit_decisions(&audit_path);

    // The gate's decision, as the audit log recorded it; health and metrics are not audited
    // (and a spelling refused before routing has no line): there the status tells.
    let allowed = |c: &Case| -> bool {
        let a = &answers[&c.id];
        match decisions.get(&c.id) {
            Some((allowed, _)) => *allowed && a.status != 403,
            None => !matches!(a.status, 400 | 403 | 405 | 408 | 413),
        }
    };
    let mut problems = Vec::new();
    let mut issued = HashSet::new();
    for c in &cases {
        let a = &answers[&c.id];
        if a.status >= 500 {
            problems.push(format!(
                "{} {} [{}] {}: {} (5xx)",
                c.raw.method, c.raw.target, c.token_name, c.variant, a.status
            ));
        }
        if a.status >= 400 && c.raw.method != "HEAD" {
            let json: Option<Value> = serde_json::from_slice(&a.body).ok();
            if !json.is_some_and(|j| j["errors"].is_array()) {
                problems.push(format!(
                    "{} {} {}: {} without a JSON error body: {:?}",
                    c.raw.method,
                    c.raw.target,
                    c.variant,
                    a.status,
                    String::from_utf8_lossy(&a.body)
                ));
            }
        }
        if let Ok(body) = serde_json::from_slice::<Value>(&a.body)
            && let Some(user) = body["data"]["username"].as_str()
        {
            issued.insert(user.to_owned());
        }
        let base = cases.iter().find(|x| x.id == c.canonical_id).unwrap();
        match c.rule {
            Rule::Same => {
                if allowed(c) != allowed(base) {
                    problems.push(format!(
                        "{} {} [{}] {}: decided {} where the canonical request was {}",
                        c.raw.method,
                        c.raw.target,
                        c.token_name,
                        c.variant,
                        allowed(c),
                        allowed(base)
                    ));
                }
                if let (Some(v), Some(b)) = (decisions.get(&c.id), decisions.get(&base.id))
                    && v.1 != b.1
                {
                    problems.push(format!(
                        "{} {}: the ACL saw {:?}, the canonical request {:?}",
                        c.raw.target, c.variant, v.1, b.1
                    ));
                }
            }
            Rule::NoMorePermissive => {
                // Case variants name another (missing) resource: they may pass the ACL there,
                // but nothing may succeed that the canonical request could not.
                let succeeded = (200..300).contains(&a.status);
                let more = if c.variant.starts_with("upper-case") {
                    succeeded && !allowed(base)
                } else {
                    allowed(c) && !allowed(base)
                };
                if more {
                    problems.push(format!(
                        "{} {} [{}] {}: allowed ({}) where the canonical request was refused",
                        c.raw.method, c.raw.target, c.token_name, c.variant, a.status
                    ));
                }
            }
            Rule::Refused => {
                if a.status != 400 {
                    problems.push(format!(
                        "{} {} {}: {} where a 400 was due",
                        c.raw.method, c.raw.target, c.variant, a.status
                    ));
                }
            }
        }
    }
    // Every canonical route was reached by at least one token, or the check proves little.
    let reached: HashSet<&str> = cases
        .iter()
        .filter(|c| c.variant == "canonical" && allowed(c))
        .map(|c| c.route)
        .collect();
    for (pattern, _) in iamlease::api::route_methods() {
        if !reached.contains(pattern) {
            problems.push(format!(
                "no token reached {pattern}: the check proves nothing there"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} requests decided wrongly:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );

    // What moto holds: only users whose credentials an allowed request handed out.
    let in_moto: HashSet<String> = app.users_in_moto().await.into_iter().collect();
    let unexplained: Vec<&String> = in_moto.difference(&issued).collect();
    assert!(
        unexplained.is_empty(),
        "IAM users no allowed request handed out (a refused request created them): {unexplained:?}"
    );
    assert!(!issued.is_empty(), "some token was allowed to issue");
    let r = app
        .call_with_token(
            Some(ROOT_TOKEN),
            "PUT",
            &format!("sys/leases/revoke-prefix/{m}/"),
            None,
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::NO_CONTENT, "{:?}", r.body);
    app.assert_nothing_left().await;
}
