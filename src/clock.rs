//! Wall-clock time as the whole server counts it: Unix seconds, shown as RFC 3339 in UTC.
//! One place, so the store, the engine, the API and the audit log never disagree on a format.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, in Unix seconds.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Now, in Unix milliseconds (heartbeats, where a second would be a large share of the
/// failover timeout).
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `unix` as RFC 3339 in UTC (`2026-12-02T16:21:53Z`); empty for a time `time` cannot show.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Unix milliseconds as RFC 3339 in UTC with the fraction (`2026-12-02T16:21:53.25Z`), as Vault
/// shows a node's `last_echo`.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_228_513), "2026-12-02T16:21:53Z");
        assert!(now() > 1_700_000_000);
        assert_eq!(rfc3339_ms(1_796_228_513_250), "2026-12-02T16:21:53.25Z");
        assert!((now_ms() / 1000 - now()).abs() <= 1);
    }
}
