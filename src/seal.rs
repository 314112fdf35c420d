//! Sealing of stored secrets (root secret keys) with AES-256-GCM under the master key, plus the
//! small cryptographic helpers the server needs: random strings, token hashing.
//!
//! Everything here uses aws-lc-rs, which the AWS SDK already links for TLS, so the server
//! carries one vetted cryptographic library, not two.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// Format byte in front of every sealed value, so the format can change without guessing.
const SEAL_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("master key must be 32 bytes (base64-encoded in IAMLEASE_MASTER_KEY); got {0} bytes")]
    KeyLength(usize),
    #[error("master key is not valid base64: {0}")]
    KeyEncoding(String),
    #[error("sealed value could not be opened: wrong master key or corrupted data")]
    Open,
    #[error("system random number generator failed")]
    Random,
}

/// The 32-byte master key. Never printed: `Debug` is redacted.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn generate() -> Result<Self, SealError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| SealError::Random)?;
        Ok(MasterKey(key))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SealError::KeyLength(bytes.len()))?;
        Ok(MasterKey(key))
    }

    /// Accepts base64 text (what we write and what `IAMLEASE_MASTER_KEY` holds).
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| SealError::KeyEncoding(e.to_string()))?;
        Self::from_bytes(&bytes)
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }
}

/// Seals and opens values bound to a context string (e.g. `root_config:aws`), so a sealed
/// value copied to another row fails to open instead of being silently accepted.
#[derive(Clone)]
pub struct Sealer {
    key: std::sync::Arc<LessSafeKey>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    pub fn new(master: &MasterKey) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, &master.0).expect("32-byte AES-256 key");
        Sealer {
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
        }
    }

    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Open)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != SEAL_VERSION {
            return Err(SealError::Open);
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN].try_into().expect("length checked");
        let mut buf = sealed[1 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

/// A secret value held in memory (an issued or root secret key). `Debug` never shows it, so it
/// cannot reach a log by accident; `expose` is the one place it is read.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A string of `len` characters drawn uniformly from `alphabet` with the system CSPRNG.
pub fn random_string(len: usize, alphabet: &[u8]) -> String {
    debug_assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    // Rejection sampling keeps the distribution uniform for alphabets that do not divide 256.
    let limit = 256 - (256 % alphabet.len());
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rng.fill(&mut buf).expect("system random number generator");
        for &b in &buf {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

pub const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A uniformly random number in `0..bound` (for backoff jitter).
pub fn random_below(bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    let mut b = [0u8; 8];
    SystemRandom::new()
        .fill(&mut b)
        .expect("system random number generator");
    u64::from_le_bytes(b) % bound
}

/// SHA-256 of a token: what the store keeps instead of the token.
pub fn token_hash(token: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_context_binding() {
        let sealer = Sealer::new(&MasterKey::generate().unwrap());
        let sealed = sealer
            .seal("root_config:aws", b"wJalrXUtnFEMI/K7MDENG")
            .unwrap();
        assert!(
            !sealed.windows(5).any(|w| w == b"wJalr"),
            "ciphertext holds plaintext"
        );
        assert_eq!(
            sealer.open("root_config:aws", &sealed).unwrap(),
            b"wJalrXUtnFEMI/K7MDENG"
        );
        assert!(matches!(
            sealer.open("root_config:other", &sealed),
            Err(SealError::Open)
        ));
        // Two seals of the same value differ (fresh nonce each time).
        assert_ne!(
            sealed,
            sealer
                .seal("root_config:aws", b"wJalrXUtnFEMI/K7MDENG")
                .unwrap()
        );
    }

    #[test]
    fn wrong_key_or_tampering_fails_to_open() {
        let a = Sealer::new(&MasterKey::generate().unwrap());
        let b = Sealer::new(&MasterKey::generate().unwrap());
        let mut sealed = a.seal("c", b"secret").unwrap();
        assert!(b.open("c", &sealed).is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(a.open("c", &sealed).is_err());
        assert!(a.open("c", &[1, 2, 3]).is_err());
    }

    #[test]
    fn master_key_encoding() {
        let k = MasterKey::generate().unwrap();
        let again = MasterKey::from_base64(&k.to_base64()).unwrap();
        assert_eq!(k.0, again.0);
        assert!(matches!(
            MasterKey::from_base64("c2hvcnQ="),
            Err(SealError::KeyLength(5))
        ));
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn random_strings_use_only_the_alphabet() {
        let s = random_string(500, LOWER_ALNUM);
        assert_eq!(s.len(), 500);
        assert!(s.bytes().all(|b| LOWER_ALNUM.contains(&b)));
        // 500 draws from 36 symbols: every symbol should appear (fails with p < 1e-5).
        assert!(LOWER_ALNUM.iter().all(|c| s.as_bytes().contains(c)));
    }
}
