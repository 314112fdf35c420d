//! Signing algorithms: which names exist, which are refused outright (`none`, HMAC), and the
//! mount's `jwt_supported_algs` list.

use jsonwebtoken::Algorithm;

use super::error::{JwtError, quoted};

/// Vault's default when `jwt_supported_algs` is empty: every asymmetric algorithm we verify.
pub const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The algorithm an accepted `alg` name stands for, or why it is refused. Names are
/// case-sensitive, as in RFC 7518 and Vault.
pub(crate) fn algorithm_named(name: &str) -> Result<Algorithm, JwtError> {
    let alg = match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        // An unsigned token, or one signed with a shared secret that every holder of the
        // "public" key set would know: never accepted, whatever the key set holds.
        "none" | "HS256" | "HS384" | "HS512" => {
            return Err(JwtError::token(format!(
                "signing algorithm {name} is not allowed"
            )));
        }
        "ES512" => {
            return Err(JwtError::token(
                "signing algorithm ES512 is not supported by this server",
            ));
        }
        other => {
            return Err(JwtError::token(format!(
                "signing algorithm {} is not supported",
                quoted(other, 32)
            )));
        }
    };
    Ok(alg)
}

/// The name RFC 7518 gives `alg`, for messages.
pub(crate) fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
    }
}

/// A mount's `jwt_supported_algs`: each name must be an accepted algorithm; empty means
/// [`DEFAULT_ALGORITHMS`]. Duplicates are dropped, the order kept.
pub fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, JwtError> {
    if names.is_empty() {
        return Ok(DEFAULT_ALGORITHMS.to_vec());
    }
    let mut algs = Vec::with_capacity(names.len());
    for name in names {
        // The same check as a token's header, but a config error here: the operator wrote it.
        let alg = algorithm_named(name)
            .map_err(|e| JwtError::config(format!("jwt_supported_algs: {e}")))?;
        if !algs.contains(&alg) {
            algs.push(alg);
        }
    }
    Ok(algs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_means_every_asymmetric_algorithm() {
        assert_eq!(parse_algorithms(&[]).unwrap(), DEFAULT_ALGORITHMS.to_vec());
    }

    #[test]
    fn names_are_parsed_in_order_without_duplicates() {
        assert_eq!(
            parse_algorithms(&names(&["ES256", "RS256", "ES256", "EdDSA"])).unwrap(),
            vec![Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA]
        );
    }

    #[test]
    fn none_and_hmac_are_refused() {
        for name in ["none", "HS256", "HS384", "HS512"] {
            let err = parse_algorithms(&names(&["RS256", name])).unwrap_err();
            assert_eq!(
                err,
                JwtError::Config(format!(
                    "jwt_supported_algs: signing algorithm {name} is not allowed"
                ))
            );
        }
    }

    #[test]
    fn unknown_and_lowercase_names_are_refused() {
        let err = parse_algorithms(&names(&["rs256"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "jwt_supported_algs: signing algorithm \"rs256\" is not supported"
        );
        let err = parse_algorithms(&names(&["ES512"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("ES512 is not supported by this server")
        );
    }

    #[test]
    fn names_round_trip() {
        for alg in DEFAULT_ALGORITHMS {
            assert_eq!(algorithm_named(algorithm_name(alg)).unwrap(), alg);
        }
    }
}
