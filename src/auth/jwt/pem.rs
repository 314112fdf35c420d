//! PEM public keys (`jwt_validation_pubkeys`): the armor, read leniently (keys pasted into
//! JSON lose their line breaks' shape), and the key in a SubjectPublicKeyInfo, a PKCS#1 RSA key
//! or an X.509 certificate, decoded with RustCrypto's DER crates.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use pkcs1::der::Decode as _;
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};

use super::error::JwtError;
use super::keys::{Curve, KeyMaterial};

/// One PEM block: its label (`PUBLIC KEY`) and its decoded bytes.
#[derive(Debug)]
pub(crate) struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

/// Every PEM block in `text`. Text outside blocks is ignored (openssl prints explanations
/// before certificates); a block that does not close or decode is an error.
pub(crate) fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, JwtError> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines().map(str::trim) {
        match open.take() {
            None => {
                if let Some(label) = armor_label(line, "-----BEGIN ") {
                    open = Some((label.to_owned(), String::new()));
                }
            }
            Some((label, mut body)) => {
                if let Some(end) = armor_label(line, "-----END ") {
                    if end != label {
                        return Err(JwtError::config(format!(
                            "PEM block BEGIN {label} ends with END {end}"
                        )));
                    }
                    let der = STANDARD.decode(body.as_bytes()).map_err(|_| {
                        JwtError::config(format!("PEM block {label} is not valid base64"))
                    })?;
                    blocks.push(PemBlock { label, der });
                } else {
                    body.push_str(line);
                    open = Some((label, body));
                }
            }
        }
    }
    if let Some((label, _)) = open {
        return Err(JwtError::config(format!(
            "PEM block {label} has no END line"
        )));
    }
    Ok(blocks)
}

fn armor_label<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.strip_prefix(prefix)?.strip_suffix("-----")
}

/// The public key in one PEM text: `PUBLIC KEY` (SubjectPublicKeyInfo), `RSA PUBLIC KEY`
/// (PKCS#1) or `CERTIFICATE` (its subject key, as Vault accepts).
pub(crate) fn key_from_pem(text: &str) -> Result<KeyMaterial, JwtError> {
    let blocks = pem_blocks(text)?;
    let block = match blocks.as_slice() {
        [] => {
            return Err(JwtError::config(
                "no PEM block found: expected -----BEGIN PUBLIC KEY-----",
            ));
        }
        [one] => one,
        many => {
            return Err(JwtError::config(format!(
                "found {} PEM blocks where one public key was expected; give each key as its own entry",
                many.len()
            )));
        }
    };
    let der = block.der.as_slice();
    match block.label.as_str() {
        "PUBLIC KEY" => spki_key(der),
        "RSA PUBLIC KEY" => rsa_public_key(der),
        "CERTIFICATE" => certificate_key(der),
        label if label.contains("PRIVATE KEY") => Err(JwtError::config(
            "the PEM block is a private key; give the public key (openssl pkey -pubout)",
        )),
        label => Err(JwtError::config(format!(
            "PEM block {label} is not a public key; expected PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE"
        ))),
    }
}

fn malformed(what: &str) -> JwtError {
    JwtError::config(format!("{what} is not valid DER"))
}

// The DER inside is read with RustCrypto's `spki`, `pkcs1` and `x509-cert`.
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

fn unsigned(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// A PKCS#1 `RSAPublicKey`.
fn rsa_public_key(der: &[u8]) -> Result<KeyMaterial, JwtError> {
    let key = pkcs1::RsaPublicKey::from_der(der).map_err(|_| malformed("RSA public key"))?;
    Ok(KeyMaterial::Rsa {
        n: unsigned(key.modulus.as_bytes()),
        e: unsigned(key.public_exponent.as_bytes()),
    })
}

/// A SubjectPublicKeyInfo of an RSA, EC (P-256, P-384) or Ed25519 key.
fn spki_key(der: &[u8]) -> Result<KeyMaterial, JwtError> {
    let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|_| malformed("public key"))?;
    spki_material(
        spki.algorithm.oid,
        spki.algorithm.parameters_oid().ok(),
        spki.subject_public_key.raw_bytes(),
    )
}

fn spki_material(
    oid: ObjectIdentifier,
    curve: Option<ObjectIdentifier>,
    key: &[u8],
) -> Result<KeyMaterial, JwtError> {
    match oid {
        OID_RSA => rsa_public_key(key),
        OID_EC => {
            let curve = match curve {
                Some(OID_P256) => Curve::P256,
                Some(OID_P384) => Curve::P384,
                _ => {
                    return Err(JwtError::config(
                        "the EC key is on a curve that is not supported; use P-256 or P-384",
                    ));
                }
            };
            Ok(KeyMaterial::Ec {
                curve,
                point: key.to_vec(),
            })
        }
        OID_ED25519 => Ok(KeyMaterial::Ed25519(key.to_vec())),
        other => Err(JwtError::config(format!(
            "public keys of algorithm {other} are not supported; use RSA, EC (P-256, P-384) or Ed25519"
        ))),
    }
}

/// The subject key of an X.509 certificate.
fn certificate_key(der: &[u8]) -> Result<KeyMaterial, JwtError> {
    let cert = x509_cert::Certificate::from_der(der).map_err(|_| malformed("certificate"))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    spki_material(
        spki.algorithm.oid,
        curve,
        spki.subject_public_key.raw_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_PUBLIC: &str = include_str!("testdata/rsa_public.pem");
    const RSA_PUBLIC_PKCS1: &str = include_str!("testdata/rsa_public_pkcs1.pem");

    fn modulus_bits(key: &KeyMaterial) -> usize {
        match key {
            KeyMaterial::Rsa { n, .. } => n.len() * 8,
            other => panic!("not RSA: {other:?}"),
        }
    }

    #[test]
    fn spki_and_pkcs1_rsa_keys_agree() {
        let spki = key_from_pem(RSA_PUBLIC).unwrap();
        let pkcs1 = key_from_pem(RSA_PUBLIC_PKCS1).unwrap();
        assert_eq!(spki, pkcs1);
        assert_eq!(modulus_bits(&spki), 2048);
        match spki {
            KeyMaterial::Rsa { e, .. } => assert_eq!(e, vec![1, 0, 1]),
            _ => unreachable!(),
        }
    }

    #[test]
    fn ec_and_ed25519_keys_are_recognised() {
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        match key_from_pem(&p256.public_key_pem()).unwrap() {
            KeyMaterial::Ec { curve, point } => {
                assert_eq!(curve, Curve::P256);
                assert_eq!(point, p256.public_key_raw());
            }
            other => panic!("{other:?}"),
        }
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert!(matches!(
            key_from_pem(&p384.public_key_pem()).unwrap(),
            KeyMaterial::Ec {
                curve: Curve::P384,
                ..
            }
        ));
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert_eq!(
            key_from_pem(&ed.public_key_pem()).unwrap(),
            KeyMaterial::Ed25519(ed.public_key_raw().to_vec())
        );
    }

    #[test]
    fn a_certificate_gives_its_subject_key() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["idp.example".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let text = format!("subject=CN = idp.example\n{}", cert.pem());
        assert_eq!(
            key_from_pem(&text).unwrap(),
            KeyMaterial::Ec {
                curve: Curve::P256,
                point: key.public_key_raw().to_vec()
            }
        );
    }

    #[test]
    fn bad_pem_is_refused_with_a_reason() {
        let err = |text: &str| key_from_pem(text).unwrap_err().to_string();
        assert!(err("").contains("no PEM block"));
        assert!(err("not a key at all").contains("no PEM block"));
        assert!(err("-----BEGIN PUBLIC KEY-----\nAAAA\n").contains("no END line"));
        assert!(
            err("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----").contains("base64")
        );
        assert!(
            err("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----").contains("ends")
        );
        assert_eq!(
            err("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----"),
            "public key is not valid DER"
        );
        let private = include_str!("testdata/rsa_private.pem");
        assert!(err(private).contains("private key"));
        assert!(!err(private).contains("MII"), "the key must not be echoed");
        assert!(err(&format!("{RSA_PUBLIC}{RSA_PUBLIC}")).contains("2 PEM blocks"));
    }

    #[test]
    fn truncated_der_never_panics() {
        let block = &pem_blocks(RSA_PUBLIC).unwrap()[0];
        for len in 0..block.der.len() {
            let text = format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
                STANDARD.encode(&block.der[..len])
            );
            assert!(key_from_pem(&text).is_err(), "length {len}");
        }
        for der in [
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0x30, 0x80, 0x00, 0x00],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30],
        ] {
            assert!(spki_key(der).is_err());
            assert!(certificate_key(der).is_err());
        }
    }
}
