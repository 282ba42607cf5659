//! Identifier and timestamp helpers.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;

/// 32 lowercase hex characters (zone, route, DNS record, custom domain, script tag ids).
pub fn hex32() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

/// Hyphenated UUID v4 (D1 databases, versions, deployments).
pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// RFC3339 with fixed microsecond precision, so string order equals time order.
pub fn ts(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The current time truncated to microseconds, strictly after `after` when given.
pub fn now_after(after: Option<&DateTime<Utc>>) -> DateTime<Utc> {
    let now = now();
    match after {
        Some(prev) if now <= *prev => *prev + chrono::Duration::microseconds(1),
        _ => now,
    }
}

/// The current time truncated to microseconds.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    let micros = now.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_real_formats() {
        let h = hex32();
        assert_eq!(h.len(), 32);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
        assert_ne!(hex32(), hex32());
    }

    #[test]
    fn timestamps_sort_as_strings() {
        let a = now();
        let b = now_after(Some(&a));
        assert!(b > a);
        assert!(ts(&b) > ts(&a));
        assert_eq!(ts(&a).len(), "2024-01-01T00:00:00.000000Z".len());
    }
}
