//! Verification keys: a PEM key or a JWK turned into a checked `PublicKey` (its type, its
//! `kid`, the one algorithm a JWK may pin), and a JWKS document into the keys we can use.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
};
use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::error::JwtError;
use super::pem::key_from_pem;

/// JWK members are base64url without padding, but some providers pad them anyway.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What aws-lc verifies: RSA moduli in this range (smaller ones would fail every signature).
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

/// Raw key material, as read from PEM or a JWK, before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// Big-endian modulus and exponent without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed SEC 1 point.
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyType {
    fn name(self) -> &'static str {
        match self {
            KeyType::Rsa => "an RSA key",
            KeyType::EcP256 => "a P-256 key",
            KeyType::EcP384 => "a P-384 key",
            KeyType::Ed25519 => "an Ed25519 key",
        }
    }
}

/// A key that can verify signatures. The key type decides which algorithms it fits, more
/// strictly than jsonwebtoken's family check (which would try a P-384 key on an ES256 token).
#[derive(Debug, Clone)]
pub struct PublicKey {
    kid: Option<String>,
    key_type: KeyType,
    /// A JWK's `alg`: when present, the only algorithm this key verifies (RFC 7517 §4.4).
    alg: Option<Algorithm>,
    decoding: DecodingKey,
}

impl PublicKey {
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Whether this key may verify a token signed with `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        let by_type = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => self.key_type == KeyType::Rsa,
            Algorithm::ES256 => self.key_type == KeyType::EcP256,
            Algorithm::ES384 => self.key_type == KeyType::EcP384,
            Algorithm::EdDSA => self.key_type == KeyType::Ed25519,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => false,
        };
        by_type && self.alg.is_none_or(|pinned| pinned == alg)
    }

    /// Why this key does not fit `alg`, for a message.
    pub(crate) fn misfit(&self, alg: Algorithm) -> String {
        match self.alg {
            Some(pinned) if pinned != alg => {
                format!("is for {} only", super::algs::algorithm_name(pinned))
            }
            _ => format!("is {}", self.key_type.name()),
        }
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Checks `material` (size, curve point) and makes it a key.
    pub(crate) fn from_material(
        material: KeyMaterial,
        kid: Option<String>,
        alg: Option<Algorithm>,
    ) -> Result<Self, JwtError> {
        let (key_type, decoding) = match material {
            KeyMaterial::Rsa { n, e } => {
                let bits = significant_bits(&n);
                if !RSA_BITS.contains(&bits) {
                    return Err(JwtError::config(format!(
                        "the RSA key has {bits} bits; 2048 to 8192 are supported"
                    )));
                }
                // aws-lc refuses even or tiny exponents at every verification; say so now.
                if e.last().is_none_or(|b| b & 1 == 0) || significant_bits(&e) < 2 {
                    return Err(JwtError::config(
                        "the RSA key's public exponent is not valid",
                    ));
                }
                (KeyType::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
            }
            KeyMaterial::Ec { curve, point } => {
                let (key_type, check, name) = match curve {
                    Curve::P256 => (KeyType::EcP256, &ECDSA_P256_SHA256_FIXED, "P-256"),
                    Curve::P384 => (KeyType::EcP384, &ECDSA_P384_SHA384_FIXED, "P-384"),
                };
                // Uncompressed points only: what JWKs carry and what every IdP's PEM holds.
                if point.first() != Some(&0x04) || ParsedPublicKey::new(check, &point).is_err() {
                    return Err(JwtError::config(format!(
                        "the EC key is not a valid uncompressed {name} point"
                    )));
                }
                (key_type, DecodingKey::from_ec_der(&point))
            }
            KeyMaterial::Ed25519(raw) => {
                if raw.len() != 32 || ParsedPublicKey::new(&ED25519, &raw).is_err() {
                    return Err(JwtError::config("the Ed25519 key is not valid"));
                }
                (KeyType::Ed25519, DecodingKey::from_ed_der(&raw))
            }
        };
        Ok(PublicKey {
            kid,
            key_type,
            alg,
            decoding,
        })
    }
}

fn significant_bits(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i) * 8 - be[i].leading_zeros() as usize,
        None => 0,
    }
}

/// A PEM public key (`PUBLIC KEY`, `RSA PUBLIC KEY` or `CERTIFICATE`) of type RSA (2048 to
/// 8192 bits), EC P-256 or P-384, or Ed25519.
pub fn parse_public_key(pem: &str) -> Result<PublicKey, JwtError> {
    PublicKey::from_material(key_from_pem(pem)?, None, None)
}

/// The keys of a JWKS document we can verify with. A key meant for encryption, of a type or
/// curve we cannot use, or malformed is skipped (one odd key must not break logins); a
/// document with no usable key at all is an error.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<PublicKey>, JwtError> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|_| JwtError::fetch("the key set is not JSON"))?;
    let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
        return Err(JwtError::fetch(
            "the key set is not a JSON Web Key Set: it has no \"keys\" list",
        ));
    };
    let mut keys = Vec::new();
    let mut skipped = 0usize;
    for entry in entries {
        match jwk_key(entry) {
            Some(key) => keys.push(key),
            None => skipped += 1,
        }
    }
    if keys.is_empty() {
        return Err(JwtError::fetch(format!(
            "the key set has no usable signing key ({skipped} skipped): expected RSA (2048 to 8192 bits), EC P-256 or P-384, or Ed25519 keys for signatures"
        )));
    }
    if skipped > 0 {
        tracing::debug!(usable = keys.len(), skipped, "JWKS keys skipped");
    }
    Ok(keys)
}

/// One JWK as a key, or `None` when we cannot or must not verify with it.
fn jwk_key(entry: &Value) -> Option<PublicKey> {
    let jwk: Jwk = serde_json::from_value(entry.clone()).ok()?;
    let common = &jwk.common;
    if common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    if common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return None;
    }
    let alg = match common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::RS384) => Some(Algorithm::RS384),
        Some(KeyAlgorithm::RS512) => Some(Algorithm::RS512),
        Some(KeyAlgorithm::PS256) => Some(Algorithm::PS256),
        Some(KeyAlgorithm::PS384) => Some(Algorithm::PS384),
        Some(KeyAlgorithm::PS512) => Some(Algorithm::PS512),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(KeyAlgorithm::ES384) => Some(Algorithm::ES384),
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        // HMAC, encryption algorithms, ones we do not know.
        Some(_) => return None,
    };
    let material = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => KeyMaterial::Rsa {
            n: strip_zeros(B64URL.decode(&p.n).ok()?),
            e: strip_zeros(B64URL.decode(&p.e).ok()?),
        },
        AlgorithmParameters::EllipticCurve(p) => {
            let (curve, len) = match p.curve {
                EllipticCurve::P256 => (Curve::P256, 32),
                EllipticCurve::P384 => (Curve::P384, 48),
                _ => return None,
            };
            let x = B64URL.decode(&p.x).ok()?;
            let y = B64URL.decode(&p.y).ok()?;
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            KeyMaterial::Ec { curve, point }
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            KeyMaterial::Ed25519(B64URL.decode(&p.x).ok()?)
        }
        // Symmetric keys and other curves.
        _ => return None,
    };
    PublicKey::from_material(material, common.key_id.clone(), alg).ok()
}

fn strip_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.drain(..start);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::test_support::{TestKey, jwks};
    use serde_json::json;

    #[test]
    fn pem_keys_of_each_type_parse() {
        assert_eq!(
            parse_public_key(include_str!("testdata/rsa_public.pem"))
                .unwrap()
                .key_type(),
            KeyType::Rsa
        );
        for (key, key_type) in [
            (TestKey::es256("a"), KeyType::EcP256),
            (TestKey::es384("a"), KeyType::EcP384),
            (TestKey::ed25519("a"), KeyType::Ed25519),
        ] {
            assert_eq!(
                parse_public_key(&key.public_pem).unwrap().key_type(),
                key_type
            );
        }
    }

    #[test]
    fn small_rsa_keys_are_refused() {
        let err = parse_public_key(include_str!("testdata/rsa1024_public.pem")).unwrap_err();
        assert_eq!(
            err,
            JwtError::Config("the RSA key has 1024 bits; 2048 to 8192 are supported".into())
        );
    }

    #[test]
    fn an_ec_point_off_the_curve_is_refused() {
        let mut point = vec![0x04];
        point.extend_from_slice(&[7u8; 64]);
        let err = PublicKey::from_material(
            KeyMaterial::Ec {
                curve: Curve::P256,
                point,
            },
            None,
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("not a valid uncompressed P-256 point")
        );
    }

    #[test]
    fn key_types_fit_only_their_algorithms() {
        let rsa = parse_public_key(include_str!("testdata/rsa_public.pem")).unwrap();
        assert!(rsa.fits(Algorithm::RS256) && rsa.fits(Algorithm::PS512));
        assert!(!rsa.fits(Algorithm::ES256) && !rsa.fits(Algorithm::HS256));
        let p256 = parse_public_key(&TestKey::es256("a").public_pem).unwrap();
        assert!(p256.fits(Algorithm::ES256));
        assert!(!p256.fits(Algorithm::ES384) && !p256.fits(Algorithm::RS256));
        let ed = parse_public_key(&TestKey::ed25519("a").public_pem).unwrap();
        assert!(ed.fits(Algorithm::EdDSA) && !ed.fits(Algorithm::ES256));
    }

    #[test]
    fn jwks_keeps_usable_keys_and_skips_the_rest() {
        let good = [
            TestKey::rs256("r1"),
            TestKey::es256("e1"),
            TestKey::ed25519("d1"),
        ];
        let mut doc = jwks(&good);
        let keys_list = doc["keys"].as_array_mut().unwrap();
        keys_list.push(json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}));
        keys_list.push(json!({"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"}));
        keys_list.push(json!({"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"}));
        keys_list.push(json!({"kty": "PQ", "kid": "future"}));
        keys_list.push(json!({"kty": "RSA", "kid": "short", "n": "AQAB", "e": "AQAB"}));
        keys_list.push(json!("not an object"));
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid().unwrap_or("-")).collect();
        assert_eq!(kids, ["r1", "e1", "d1"]);
    }

    #[test]
    fn a_jwk_alg_pins_the_key_to_that_algorithm() {
        let mut doc = jwks(&[TestKey::rs256("r1")]);
        doc["keys"][0]["alg"] = json!("RS256");
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert!(keys[0].fits(Algorithm::RS256));
        assert!(!keys[0].fits(Algorithm::PS256));
        assert_eq!(keys[0].misfit(Algorithm::PS256), "is for RS256 only");
        // A key pinned to an algorithm we refuse is no key at all.
        doc["keys"][0]["alg"] = json!("HS256");
        assert!(parse_jwks(doc.to_string().as_bytes()).is_err());
    }

    #[test]
    fn a_jwks_without_usable_keys_is_an_error() {
        for body in [
            "",
            "[]",
            "{}",
            r#"{"keys": 5}"#,
            r#"{"keys": []}"#,
            r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
        ] {
            assert!(
                matches!(parse_jwks(body.as_bytes()), Err(JwtError::Fetch(_))),
                "{body}"
            );
        }
    }
}
