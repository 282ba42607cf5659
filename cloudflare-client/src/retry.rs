//! Retry policy: which outcomes are retried, capped exponential backoff with full jitter, and the
//! server's `Retry-After` / `retry-after-ms` hints.

use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How retries behave. Part of [`crate::ClientConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: u32,
    /// Backoff cap of the first retry; doubles per retry.
    pub base_delay: Duration,
    /// Largest backoff cap.
    pub max_delay: Duration,
    /// A server `Retry-After` longer than this is not waited out in-process: the call fails with
    /// [`crate::CloudflareError::RateLimited`] carrying the hint, so the caller can requeue.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Upper bound of the delay before retry number `retry` (1-based): `base * 2^(retry-1)`,
    /// capped at `max_delay`.
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(31);
        let factor = 1u32 << exp;
        self.base_delay.checked_mul(factor).map_or(self.max_delay, |d| d.min(self.max_delay))
    }

    /// Full jitter: uniform in `[0, backoff_cap(retry)]`.
    pub fn backoff<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        let cap = self.backoff_cap(retry);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

/// Which failures a request may be retried after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryMode {
    /// 408, 429, 5xx, timeouts and transport errors.
    Full,
    /// Only when the request certainly did not run: connection failures and 429. Used for calls
    /// whose repetition could apply something twice (D1 queries).
    Safe,
}

/// Statuses worth retrying.
pub(crate) fn status_is_retryable(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// `x-should-retry: true|false` from the server overrides the status rule.
pub(crate) fn should_retry_header(headers: &HeaderMap) -> Option<bool> {
    let v = headers.get("x-should-retry")?.to_str().ok()?.trim().to_ascii_lowercase();
    match v.as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The server's requested wait: `retry-after-ms` (milliseconds, may be fractional) first, then
/// `Retry-After` as whole seconds or an HTTP date (relative to `now`; past dates give zero).
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    parse_retry_after_value(raw, now)
}

/// Parse one `Retry-After` value (delta-seconds or HTTP-date).
pub fn parse_retry_after_value(raw: &str, now: SystemTime) -> Option<Duration> {
    let raw = raw.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = raw.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(raw).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_caps_double_and_saturate() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_cap(1), Duration::from_millis(500));
        assert_eq!(p.backoff_cap(2), Duration::from_secs(1));
        assert_eq!(p.backoff_cap(3), Duration::from_secs(2));
        assert_eq!(p.backoff_cap(7), Duration::from_secs(30));
        assert_eq!(p.backoff_cap(40), Duration::from_secs(30));
        assert_eq!(p.backoff_cap(u32::MAX), Duration::from_secs(30));
        assert_eq!(p.backoff_cap(0), Duration::from_millis(500));
    }

    #[test]
    fn full_jitter_stays_within_bounds_and_spreads() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 1..10 {
            let cap = p.backoff_cap(retry);
            let samples: Vec<Duration> = (0..500).map(|_| p.backoff(retry, &mut rng)).collect();
            assert!(samples.iter().all(|d| *d <= cap));
            // full jitter: both halves of the range are used
            assert!(samples.iter().any(|d| *d < cap / 2) && samples.iter().any(|d| *d > cap / 2));
        }
        let zero = RetryPolicy { base_delay: Duration::ZERO, ..RetryPolicy::default() };
        assert_eq!(zero.backoff(3, &mut rng), Duration::ZERO);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after(&headers(&[("retry-after", "120")]), now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(&headers(&[("retry-after", " 0 ")]), now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(&headers(&[("retry-after", "1.5")]), now), Some(Duration::from_millis(1500)));
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")]), now),
            Some(Duration::from_secs(30))
        );
        // obsolete RFC 850 format
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "Wednesday, 21-Oct-15 07:29:00 GMT")]), now),
            Some(Duration::from_secs(60))
        );
        // a date in the past means "now"
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "Wed, 21 Oct 2015 07:00:00 GMT")]), now),
            Some(Duration::ZERO)
        );
        // retry-after-ms wins
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "120"), ("retry-after-ms", "250.5")]), now),
            Some(Duration::from_micros(250_500))
        );
        // garbage
        assert_eq!(parse_retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(parse_retry_after(&headers(&[("retry-after", "-5")]), now), None);
        assert_eq!(parse_retry_after(&headers(&[("retry-after-ms", "NaN")]), now), None);
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn retryable_statuses_and_override_header() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(status_is_retryable(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 409, 422, 600] {
            assert!(!status_is_retryable(s), "{s}");
        }
        assert_eq!(should_retry_header(&headers(&[("x-should-retry", "False")])), Some(false));
        assert_eq!(should_retry_header(&headers(&[("x-should-retry", "true")])), Some(true));
        assert_eq!(should_retry_header(&headers(&[("x-should-retry", "maybe")])), None);
        assert_eq!(should_retry_header(&HeaderMap::new()), None);
    }
}
