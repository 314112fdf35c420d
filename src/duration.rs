//! Durations as Vault accepts them: integer seconds or Go-style strings (`"1h"`, `"90m"`, `"1h30m"`).
//!
//! Go's grammar is small and exact (`1.5h`, `300ms`, `1h0m0s`), and Vault clients send it
//! verbatim, so we parse it ourselves rather than use a crate with a different grammar
//! (humantime rejects `1h0m0s`-style output from Go and accepts units Go does not).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration with whole-second precision, the unit every TTL in the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ttl(u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

/// The longest TTL we accept anywhere: 10 years. Keeps arithmetic on timestamps far from overflow.
const MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

impl Ttl {
    pub const ZERO: Ttl = Ttl(0);

    pub fn from_secs(secs: u64) -> Self {
        Ttl(secs.min(MAX_SECONDS))
    }

    pub fn as_secs(self) -> u64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Parses `"3600"`, `"1h"`, `"1h30m"`, `"1.5h"`, `"90s"`, `"300ms"` (rounded down to seconds).
    pub fn parse(input: &str) -> Result<Ttl, DurationError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(DurationError("empty duration".into()));
        }
        if let Ok(secs) = s.parse::<u64>() {
            return Self::checked(secs as f64, input);
        }
        let bad = || {
            DurationError(format!(
                "invalid duration {input:?}: use seconds (3600) or a Go-style duration like \"1h\", \"90m\" or \"1h30m\""
            ))
        };
        let mut total = 0f64;
        let mut rest = s;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            if num_len == 0 {
                return Err(bad());
            }
            let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let factor = match &rest[..unit_len] {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86400.0,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total += value * factor;
        }
        Self::checked(total, input)
    }

    fn checked(secs: f64, input: &str) -> Result<Ttl, DurationError> {
        if !secs.is_finite() || secs > MAX_SECONDS as f64 {
            return Err(DurationError(format!(
                "duration {input:?} is too long; the maximum is 87600h (10 years)"
            )));
        }
        Ok(Ttl(secs.floor() as u64))
    }

    /// Go's `time.Duration.String()` form, e.g. `1h0m0s`, `90s` → `1m30s`, `0s`.
    pub fn to_go_string(self) -> String {
        let (h, m, s) = (self.0 / 3600, (self.0 % 3600) / 60, self.0 % 60);
        if h > 0 {
            format!("{h}h{m}m{s}s")
        } else if m > 0 {
            format!("{m}m{s}s")
        } else {
            format!("{s}s")
        }
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_go_string())
    }
}

impl std::str::FromStr for Ttl {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ttl::parse(s)
    }
}

/// Reads back as integer seconds, as Vault does for every duration but `config/lease`.
impl Serialize for Ttl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// Accepts a JSON number of seconds or a string in either accepted form.
impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Neg(i64),
            Float(f64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ttl::checked(n as f64, &n.to_string()).map_err(serde::de::Error::custom),
            Raw::Neg(n) => Err(serde::de::Error::custom(format!(
                "duration {n} is negative; durations are zero or more seconds"
            ))),
            Raw::Float(f) if f >= 0.0 => {
                Ttl::checked(f, &f.to_string()).map_err(serde::de::Error::custom)
            }
            Raw::Float(f) => Err(serde::de::Error::custom(format!(
                "duration {f} is negative; durations are zero or more seconds"
            ))),
            Raw::Str(s) => Ttl::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_go_strings() {
        assert_eq!(Ttl::parse("3600").unwrap().as_secs(), 3600);
        assert_eq!(Ttl::parse("1h").unwrap().as_secs(), 3600);
        assert_eq!(Ttl::parse("768h").unwrap().as_secs(), 768 * 3600);
        assert_eq!(Ttl::parse("90m").unwrap().as_secs(), 5400);
        assert_eq!(Ttl::parse("1h30m15s").unwrap().as_secs(), 5415);
        assert_eq!(Ttl::parse("1.5h").unwrap().as_secs(), 5400);
        assert_eq!(Ttl::parse("1500ms").unwrap().as_secs(), 1);
        assert_eq!(Ttl::parse("0").unwrap(), Ttl::ZERO);
        assert_eq!(Ttl::parse(" 15m ").unwrap().as_secs(), 900);
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        for bad in ["", "h", "1x", "-5", "1h-5m", "abc", "1..5h", "5 m"] {
            let err = Ttl::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("duration"),
                "{bad:?} should be rejected, got {err}"
            );
        }
        assert!(
            Ttl::parse("100000000h")
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(Ttl::from_secs(3600).to_go_string(), "1h0m0s");
        assert_eq!(Ttl::from_secs(90).to_go_string(), "1m30s");
        assert_eq!(Ttl::from_secs(0).to_go_string(), "0s");
        assert_eq!(Ttl::from_secs(45).to_go_string(), "45s");
        // Round trip: Go's output parses back to the same value.
        let t = Ttl::from_secs(98_765);
        assert_eq!(Ttl::parse(&t.to_go_string()).unwrap(), t);
    }

    #[test]
    fn deserializes_numbers_and_strings() {
        let t: Ttl = serde_json::from_str("120").unwrap();
        assert_eq!(t.as_secs(), 120);
        let t: Ttl = serde_json::from_str("\"2m\"").unwrap();
        assert_eq!(t.as_secs(), 120);
        assert!(serde_json::from_str::<Ttl>("-1").is_err());
        assert!(serde_json::from_str::<Ttl>("\"soon\"").is_err());
        assert!(serde_json::from_str::<Ttl>("true").is_err());
    }
}
