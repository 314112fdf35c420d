//! Test helpers for the JWT module: signing keys of every accepted type, tokens (forged ones
//! too) and JWKS documents. Fetching is tested against a real provider (tests/compat).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::keys::KeyMaterial;
use super::pem::{key_from_pem, pem_blocks};

const RSA_PRIVATE: &str = include_str!("testdata/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("testdata/rsa_public.pem");
const RSA2_PRIVATE: &str = include_str!("testdata/rsa2_private.pem");
const RSA2_PUBLIC: &str = include_str!("testdata/rsa2_public.pem");

/// A signing key with its public half as PEM and as a JWK.
pub(crate) struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub public_pem: String,
}

fn der_of(pem: &str) -> Vec<u8> {
    pem_blocks(pem).unwrap().remove(0).der
}

impl TestKey {
    /// The fixed RSA test key (testdata/rsa_private.pem), signing with RS256.
    pub fn rs256(kid: &str) -> Self {
        TestKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(&der_of(RSA_PRIVATE)),
            public_pem: RSA_PUBLIC.into(),
        }
    }

    /// A second, unrelated RSA key.
    pub fn rs256_other(kid: &str) -> Self {
        TestKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(&der_of(RSA2_PRIVATE)),
            public_pem: RSA2_PUBLIC.into(),
        }
    }

    pub fn es256(kid: &str) -> Self {
        Self::generated(kid, Algorithm::ES256, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    pub fn es384(kid: &str) -> Self {
        Self::generated(kid, Algorithm::ES384, &rcgen::PKCS_ECDSA_P384_SHA384)
    }

    pub fn ed25519(kid: &str) -> Self {
        Self::generated(kid, Algorithm::EdDSA, &rcgen::PKCS_ED25519)
    }

    fn generated(kid: &str, alg: Algorithm, rc: &'static rcgen::SignatureAlgorithm) -> Self {
        let pair = rcgen::KeyPair::generate_for(rc).unwrap();
        let der = pair.serialize_der();
        let encoding = match alg {
            Algorithm::EdDSA => EncodingKey::from_ed_der(&der),
            _ => EncodingKey::from_ec_der(&der),
        };
        TestKey {
            kid: kid.into(),
            alg,
            encoding,
            public_pem: pair.public_key_pem(),
        }
    }

    /// The same key signing with another algorithm of its family (RS256 → PS512).
    pub fn with_alg(mut self, alg: Algorithm) -> Self {
        self.alg = alg;
        self
    }

    pub fn jwk(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let mut jwk = match key_from_pem(&self.public_pem).unwrap() {
            KeyMaterial::Rsa { n, e } => json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)}),
            KeyMaterial::Ec { curve, point } => {
                let len = (point.len() - 1) / 2;
                let crv = match curve {
                    super::keys::Curve::P256 => "P-256",
                    super::keys::Curve::P384 => "P-384",
                };
                json!({"kty": "EC", "crv": crv, "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])})
            }
            KeyMaterial::Ed25519(x) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&x)}),
        };
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk
    }

    /// A token signed by this key, its `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    pub fn sign_without_kid(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(self.alg), claims, &self.encoding).unwrap()
    }
}

pub(crate) fn jwks(keys: &[TestKey]) -> Value {
    json!({"keys": keys.iter().map(TestKey::jwk).collect::<Vec<_>>()})
}

/// A token with any header and a made-up signature, as an attacker would craft it.
pub(crate) fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// An HS256 token keyed with `secret` (a classic attack keys it with the public key's bytes).
pub(crate) fn hs256(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// Claims that pass with the default expectations at `now`.
pub(crate) fn claims_at(now: i64) -> Value {
    json!({"sub": "user-1", "iat": now, "exp": now + 300})
}
