//! `JwtError`: every refusal of the JWT verification core, sorted by whose fault it is so the
//! caller can pick the HTTP status. Messages are one sentence for the API user and never hold
//! the token.

/// What went wrong. The message is the whole reason; the variant says who can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// The token itself is refused: not a JWT, a refused algorithm, an unknown key, a bad
    /// signature (a login's 400).
    #[error("{0}")]
    Token(String),
    /// The signature holds but the claims do not satisfy the role or config (a login's 400/403).
    #[error("{0}")]
    Claims(String),
    /// A setting is unusable: a PEM key, an algorithm name, claim mappings (a config write's 400).
    #[error("{0}")]
    Config(String),
    /// The key set or discovery document could not be fetched or read (at config write a 400,
    /// at login a 500: the operator, not the caller, has to act).
    #[error("{0}")]
    Fetch(String),
}

impl From<crate::idp::IdpError> for JwtError {
    fn from(e: crate::idp::IdpError) -> Self {
        match e {
            crate::idp::IdpError::Config(m) => JwtError::Config(m),
            crate::idp::IdpError::Unreachable(m) => JwtError::Fetch(m),
        }
    }
}

impl JwtError {
    pub(crate) fn token(message: impl Into<String>) -> Self {
        JwtError::Token(message.into())
    }

    pub(crate) fn claims(message: impl Into<String>) -> Self {
        JwtError::Claims(message.into())
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        JwtError::Config(message.into())
    }

    pub(crate) fn fetch(message: impl Into<String>) -> Self {
        JwtError::Fetch(message.into())
    }
}

/// `text` quoted for a message, cut to `max` characters: header fields such as `kid` come from
/// the caller and may be arbitrarily long or hold control characters.
pub(crate) fn quoted(text: &str, max: usize) -> String {
    let mut cut: String = text.chars().take(max).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_escapes_and_truncates() {
        assert_eq!(quoted("abc", 8), "\"abc\"");
        assert_eq!(quoted("a\nb", 8), "\"a\\nb\"");
        assert_eq!(quoted(&"x".repeat(100), 4), "\"xxxx…\"");
    }
}
