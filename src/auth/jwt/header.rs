//! A token's compact form and JOSE header, read before any key is looked at: the size cap, the
//! three parts, the `alg` admission (so `none` and HMAC never reach a verifier) and `kid`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::algs::{algorithm_name, algorithm_named};
use super::error::{JwtError, quoted};

/// Larger than any real ID token (an Entra ID token with many groups is some 8 KiB), small
/// enough that a garbage token costs nothing to refuse.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// What the header says about how to verify the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// Reads the header of `token` and admits its algorithm: refused outright (`none`, HS*) or
/// unknown algorithms, and ones not in `allowed`, are errors before any key is consulted.
pub(crate) fn read_header(token: &str, allowed: &[Algorithm]) -> Result<TokenHeader, JwtError> {
    if token.is_empty() {
        return Err(JwtError::token("token is empty"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::token(format!(
            "token is larger than {} KiB",
            MAX_TOKEN_BYTES / 1024
        )));
    }
    let parts = token.split('.').count();
    if parts == 5 {
        return Err(JwtError::token(
            "token is encrypted (JWE); only signed tokens (JWS) are supported",
        ));
    }
    if parts != 3 {
        return Err(JwtError::token(
            "token is not a JWT: it must be three base64url parts separated by dots",
        ));
    }
    let encoded = token.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| JwtError::token("token header is not valid base64url"))?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| JwtError::token("token header is not a JSON object"))?;

    // RFC 7515 §4.1.11: an extension we do not understand must not be ignored.
    if header.contains_key("crit") {
        return Err(JwtError::token(
            "token header lists critical extensions (crit), which this server does not support",
        ));
    }
    let alg = match header.get("alg") {
        Some(Value::String(name)) => algorithm_named(name)?,
        Some(_) => return Err(JwtError::token("token header alg is not a string")),
        None => return Err(JwtError::token("token header has no alg")),
    };
    if !allowed.contains(&alg) {
        return Err(JwtError::token(format!(
            "signing algorithm {} is not in the mount's jwt_supported_algs",
            algorithm_name(alg)
        )));
    }
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(JwtError::token("token header kid is not a string")),
    };
    Ok(TokenHeader { alg, kid })
}

/// `kid` for a message: quoted and cut short, since it comes from the caller.
pub(crate) fn kid_for_message(kid: &str) -> String {
    quoted(kid, 64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::algs::DEFAULT_ALGORITHMS;

    fn token_with_header(header: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header))
    }

    fn refusal(token: &str) -> String {
        read_header(token, &DEFAULT_ALGORITHMS)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn reads_alg_and_kid() {
        let header = read_header(
            &token_with_header(r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#),
            &DEFAULT_ALGORITHMS,
        )
        .unwrap();
        assert_eq!(
            header,
            TokenHeader {
                alg: Algorithm::ES256,
                kid: Some("k1".into())
            }
        );
        let header = read_header(
            &token_with_header(r#"{"alg":"EdDSA"}"#),
            &DEFAULT_ALGORITHMS,
        )
        .unwrap();
        assert_eq!(header.kid, None);
    }

    #[test]
    fn none_and_hmac_are_refused_before_any_key() {
        assert_eq!(
            refusal(&token_with_header(r#"{"alg":"none"}"#)),
            "signing algorithm none is not allowed"
        );
        // Even if the mount's list were to include it, HS256 never passes.
        let all = [Algorithm::HS256, Algorithm::RS256];
        assert_eq!(
            read_header(&token_with_header(r#"{"alg":"HS256"}"#), &all)
                .unwrap_err()
                .to_string(),
            "signing algorithm HS256 is not allowed"
        );
    }

    #[test]
    fn algorithms_outside_the_mount_list_are_refused() {
        let err = read_header(
            &token_with_header(r#"{"alg":"RS256"}"#),
            &[Algorithm::ES256],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "signing algorithm RS256 is not in the mount's jwt_supported_algs"
        );
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert_eq!(refusal(""), "token is empty");
        assert!(refusal("abc").contains("three base64url parts"));
        assert!(refusal("a.b").contains("three base64url parts"));
        assert!(refusal("a.b.c.d").contains("three base64url parts"));
        assert!(refusal("a.b.c.d.e").contains("JWE"));
        assert_eq!(
            refusal("!!!.e30.c2ln"),
            "token header is not valid base64url"
        );
        assert_eq!(
            refusal(&token_with_header("[1,2]")),
            "token header is not a JSON object"
        );
        assert_eq!(refusal(&token_with_header("{}")), "token header has no alg");
        assert_eq!(
            refusal(&token_with_header(r#"{"alg":7}"#)),
            "token header alg is not a string"
        );
        assert_eq!(
            refusal(&token_with_header(r#"{"alg":"RS256","kid":{}}"#)),
            "token header kid is not a string"
        );
        assert!(refusal(&token_with_header(r#"{"alg":"RS256","crit":["b64"]}"#)).contains("crit"));
        let huge = token_with_header(&format!(
            r#"{{"alg":"RS256","x":"{}"}}"#,
            "a".repeat(70_000)
        ));
        assert_eq!(refusal(&huge), "token is larger than 64 KiB");
        // Multi-byte UTF-8 and control characters do not trip anything.
        assert!(refusal("é.\u{0}.ü").contains("base64url"));
    }

    #[test]
    fn an_unknown_alg_is_quoted_and_cut() {
        let long = "X".repeat(200);
        let message = refusal(&token_with_header(&format!(r#"{{"alg":"{long}"}}"#)));
        assert!(message.starts_with("signing algorithm \"XXXX"));
        assert!(message.len() < 100, "{message}");
    }
}
