//! Signature verification against a set of keys already in hand: which keys a token's `kid`
//! and `alg` select, and jsonwebtoken's check of the signature. No I/O and no claim rules
//! (those are `claims.rs`); the key cache decides what a miss means.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::algs::algorithm_name;
use super::error::JwtError;
use super::header::{TokenHeader, kid_for_message};
use super::keys::PublicKey;

/// The claims of a token whose signature verified.
pub type Claims = Map<String, Value>;

/// What a key set made of a token.
#[derive(Debug)]
pub(crate) enum Outcome {
    Verified(Claims),
    /// No key in this set verifies it, but a fresher set might (an unknown `kid`, or no
    /// `kid` and no key that verifies).
    Miss(JwtError),
    /// Refused whatever the key set: malformed, or a known key that does not verify it.
    Refused(JwtError),
}

/// Verifies `token` with `keys`: with `match_kid` (key sets from a URL, whose keys carry
/// kids) a header `kid` selects the key; otherwise, or without a `kid`, every key that fits
/// the algorithm is tried. PEM keys have no kid, so for them the header's is ignored, as Vault does.
pub(crate) fn verify_with(
    keys: &[PublicKey],
    token: &str,
    header: &TokenHeader,
    match_kid: bool,
) -> Outcome {
    let alg = header.alg;
    let alg_name = algorithm_name(alg);
    if let (true, Some(kid)) = (match_kid, header.kid.as_deref()) {
        let named: Vec<&PublicKey> = keys.iter().filter(|k| k.kid() == Some(kid)).collect();
        if named.is_empty() {
            return Outcome::Miss(JwtError::token(format!(
                "no key with kid {} in the key set",
                kid_for_message(kid)
            )));
        }
        let fitting: Vec<&PublicKey> = named.iter().copied().filter(|k| k.fits(alg)).collect();
        if fitting.is_empty() {
            return Outcome::Refused(JwtError::token(format!(
                "the key with kid {} {} and cannot verify an {alg_name} token",
                kid_for_message(kid),
                named[0].misfit(alg),
            )));
        }
        return match try_keys(&fitting, token, alg) {
            Tried::Verified(claims) => Outcome::Verified(claims),
            Tried::Refused(e) => Outcome::Refused(e),
            Tried::NoneVerified => Outcome::Refused(JwtError::token("token signature is invalid")),
        };
    }
    let fitting: Vec<&PublicKey> = keys.iter().filter(|k| k.fits(alg)).collect();
    if fitting.is_empty() {
        return Outcome::Miss(JwtError::token(format!(
            "no key in the key set can verify an {alg_name} token"
        )));
    }
    match try_keys(&fitting, token, alg) {
        Tried::Verified(claims) => Outcome::Verified(claims),
        Tried::Refused(e) => Outcome::Refused(e),
        Tried::NoneVerified => Outcome::Miss(JwtError::token(
            "token signature does not verify with any key in the key set",
        )),
    }
}

/// Reads the header and verifies with `keys`, a miss being final: for keys that cannot be
/// refreshed (PEM keys), and for tests.
#[cfg(test)]
pub fn verify_with_keys(
    keys: &[PublicKey],
    token: &str,
    algs: &[Algorithm],
) -> Result<Claims, JwtError> {
    let header = super::header::read_header(token, algs)?;
    match verify_with(keys, token, &header, false) {
        Outcome::Verified(claims) => Ok(claims),
        Outcome::Miss(e) | Outcome::Refused(e) => Err(e),
    }
}

enum Tried {
    Verified(Claims),
    NoneVerified,
    Refused(JwtError),
}

fn try_keys(keys: &[&PublicKey], token: &str, alg: Algorithm) -> Tried {
    // The claims are checked by `check_claims`, with Vault's leeways and messages; here only
    // the signature and the algorithm.
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    for key in keys {
        match jsonwebtoken::decode::<Claims>(token, key.decoding_key(), &validation) {
            Ok(data) => return Tried::Verified(data.claims),
            Err(e) => match e.kind() {
                // Another key may be the one (rotation overlaps, no kid).
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidKeyFormat
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidEddsaKey => continue,
                ErrorKind::Json(_) => {
                    return Tried::Refused(JwtError::token(
                        "token claims are not a JSON object, or a header field has the wrong type",
                    ));
                }
                _ => {
                    return Tried::Refused(JwtError::token(
                        "token is not a well-formed JWT: its parts are not valid base64url",
                    ));
                }
            },
        }
    }
    Tried::NoneVerified
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::algs::DEFAULT_ALGORITHMS;
    use crate::auth::jwt::keys::{parse_jwks, parse_public_key};
    use crate::auth::jwt::test_support::{TestKey, claims_at, forged, hs256, jwks};
    use serde_json::json;

    fn pem_keys(keys: &[&TestKey]) -> Vec<PublicKey> {
        keys.iter()
            .map(|k| parse_public_key(&k.public_pem).unwrap())
            .collect()
    }

    fn jwks_keys(keys: &[TestKey]) -> Vec<PublicKey> {
        parse_jwks(jwks(keys).to_string().as_bytes()).unwrap()
    }

    fn by_kid(keys: &[PublicKey], token: &str) -> Outcome {
        let header = super::super::header::read_header(token, &DEFAULT_ALGORITHMS).unwrap();
        verify_with(keys, token, &header, true)
    }

    #[test]
    fn every_accepted_algorithm_verifies() {
        let claims = json!({"sub": "s", "exp": 10, "n": 1});
        let mut signers = Vec::new();
        for alg in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ] {
            signers.push(TestKey::rs256("r").with_alg(alg));
        }
        signers.push(TestKey::es256("e256"));
        signers.push(TestKey::es384("e384"));
        signers.push(TestKey::ed25519("ed"));
        for signer in &signers {
            // From PEM (no kid) and from a JWKS (by kid): the same claims come back.
            let keys = pem_keys(&[signer]);
            let got = verify_with_keys(&keys, &signer.sign(&claims), &DEFAULT_ALGORITHMS)
                .unwrap_or_else(|e| panic!("{:?}: {e}", signer.alg));
            assert_eq!(Value::Object(got), claims, "{:?}", signer.alg);
            let set = parse_jwks(json!({"keys": [signer.jwk()]}).to_string().as_bytes()).unwrap();
            match by_kid(&set, &signer.sign(&claims)) {
                Outcome::Verified(got) => assert_eq!(Value::Object(got), claims),
                other => panic!("{:?}: {other:?}", signer.alg),
            }
        }
    }

    #[test]
    fn the_wrong_key_gives_a_bad_signature() {
        let signer = TestKey::rs256("k");
        let other = TestKey::rs256_other("k");
        let token = signer.sign(&claims_at(0));
        let err = verify_with_keys(&pem_keys(&[&other]), &token, &DEFAULT_ALGORITHMS).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token signature does not verify with any key in the key set"
        );
        // By kid: the named key is known, so the verdict is final (no refetch).
        match by_kid(&jwks_keys(&[other]), &token) {
            Outcome::Refused(e) => assert_eq!(e.to_string(), "token signature is invalid"),
            other => panic!("{other:?}"),
        }
        // A tampered payload fails with the right key too.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            json!({"sub": "admin", "exp": 1}).to_string(),
        );
        let tampered = parts.join(".");
        assert!(verify_with_keys(&pem_keys(&[&signer]), &tampered, &DEFAULT_ALGORITHMS).is_err());
    }

    #[test]
    fn a_second_key_verifies_when_the_first_does_not() {
        let old = TestKey::es256("old");
        let new = TestKey::es256("new");
        let keys = pem_keys(&[&old, &new]);
        let got = verify_with_keys(
            &keys,
            &new.sign_without_kid(&claims_at(5)),
            &DEFAULT_ALGORITHMS,
        )
        .unwrap();
        assert_eq!(got["exp"], json!(305));
    }

    #[test]
    fn none_and_hmac_tokens_are_refused_whatever_the_keys() {
        let rsa = TestKey::rs256("k");
        let keys = jwks_keys(&[TestKey::rs256("k")]);
        let claims = claims_at(0);
        let none = forged(&json!({"alg": "none", "kid": "k"}), &claims, b"");
        // HS256 keyed with the public key's bytes: the classic confusion attack.
        let confused = hs256(rsa.public_pem.as_bytes(), Some("k"), &claims);
        for (token, alg) in [(none, "none"), (confused, "HS256")] {
            let err = verify_with_keys(&keys, &token, &DEFAULT_ALGORITHMS).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("signing algorithm {alg} is not allowed")
            );
        }
    }

    #[test]
    fn a_key_never_verifies_another_type_s_algorithm() {
        let rsa = TestKey::rs256("k");
        let ec = TestKey::es256("k");
        // An RS256 signature relabelled ES256, and a P-256 key offered an ES384 token.
        let token = rsa.sign(&claims_at(0));
        let mut parts: Vec<&str> = token.split('.').collect();
        let header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            r#"{"alg":"ES256","kid":"k"}"#,
        );
        parts[0] = &header;
        let relabelled = parts.join(".");
        let err =
            verify_with_keys(&pem_keys(&[&rsa]), &relabelled, &DEFAULT_ALGORITHMS).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no key in the key set can verify an ES256 token"
        );
        match by_kid(&jwks_keys(&[TestKey::rs256("k")]), &relabelled) {
            Outcome::Refused(e) => assert_eq!(
                e.to_string(),
                "the key with kid \"k\" is an RSA key and cannot verify an ES256 token"
            ),
            other => panic!("{other:?}"),
        }
        let es384 = TestKey::es384("k");
        let err = verify_with_keys(
            &pem_keys(&[&ec]),
            &es384.sign(&claims_at(0)),
            &DEFAULT_ALGORITHMS,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no key in the key set can verify an ES384 token"
        );
    }

    #[test]
    fn an_unknown_kid_is_a_miss() {
        let keys = jwks_keys(&[TestKey::es256("known")]);
        match by_kid(&keys, &TestKey::es256("rotated").sign(&claims_at(0))) {
            Outcome::Miss(e) => {
                assert_eq!(e.to_string(), "no key with kid \"rotated\" in the key set")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_tokens_are_errors_not_panics() {
        let signer = TestKey::ed25519("k");
        let keys = pem_keys(&[&signer]);
        let good = signer.sign(&claims_at(0));
        let (head, _) = good.split_once('.').unwrap();
        let huge_header = format!("{}.e30.AA", "A".repeat(100_000));
        let cases = [
            String::new(),
            ".".into(),
            "..".into(),
            "a.b".into(),
            format!("{head}.!!!.AA"),
            format!("{head}.e30.!!!"),
            format!("{head}.e30."),
            format!("{head}.W10.AA"),
            format!("{head}..AA"),
            huge_header,
            "\u{feff}.\u{0}.\u{7f}".into(),
            good.replace('.', ".."),
            good.chars().rev().collect(),
        ];
        for token in &cases {
            assert!(
                verify_with_keys(&keys, token, &DEFAULT_ALGORITHMS).is_err(),
                "{token:.40}"
            );
        }
        // Every prefix of a good token is refused.
        for cut in 0..good.len() {
            assert!(verify_with_keys(&keys, &good[..cut], &DEFAULT_ALGORITHMS).is_err());
        }
        assert!(verify_with_keys(&keys, &good, &DEFAULT_ALGORITHMS).is_ok());
    }

    #[test]
    fn claims_that_are_not_an_object_are_refused() {
        let signer = TestKey::es256("k");
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::ES256),
            &json!([1, 2, 3]),
            &signer.encoding,
        )
        .unwrap();
        let err = verify_with_keys(&pem_keys(&[&signer]), &token, &DEFAULT_ALGORITHMS).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("token claims are not a JSON object")
        );
    }
}
