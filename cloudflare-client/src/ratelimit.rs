//! The request budget of one token: its size ([`RateLimit`]), the two traffic classes that share
//! it ([`Priority`]), the part resync traffic may use ([`ResyncShare`]) and what a resync
//! scheduler derives from it ([`RateLimit::resync_rate`], [`effective_resync_period`]). The
//! limiter that enforces it is [`RateLimiter`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use crate::limiter::{BudgetSnapshot, RateLimiter};

/// `requests` per `window`. Cloudflare's documented budget is 1200 per 5 minutes per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { requests: 1200, window: Duration::from_secs(300) }
    }
}

impl RateLimit {
    pub fn new(requests: u32, window: Duration) -> Self {
        Self { requests, window }
    }

    /// Extra spacing between a request and the one `requests` later: Cloudflare counts arrivals,
    /// we count departures, and the time in between varies (scheduling, network). Without it a
    /// client running exactly at the budget sees occasional 429s whenever an older request took
    /// longer to arrive than a newer one. 1/20 of the window, at most 500 ms.
    pub fn margin(&self) -> Duration {
        (self.window / 20).min(Duration::from_millis(500))
    }

    /// Requests the limiter sends in any window (a budget of 0 is treated as 1).
    pub fn capacity(&self) -> u32 {
        self.requests.max(1)
    }

    /// Resync requests the limiter sends in any window: the share of [`Self::capacity`], rounded
    /// down, at least 1.
    pub fn resync_capacity(&self, share: ResyncShare) -> u32 {
        let n = (f64::from(self.capacity()) * share.fraction()).floor() as u32;
        n.clamp(1, self.capacity())
    }

    /// Resync requests per second this budget sustains: [`Self::resync_capacity`] per window and
    /// margin (the limiter's spacing between a request and the one a full window later).
    pub fn resync_rate(&self, share: ResyncShare) -> f64 {
        let per = (self.window + self.margin()).as_secs_f64();
        if per <= 0.0 { f64::INFINITY } else { f64::from(self.resync_capacity(share)) / per }
    }
}

/// Traffic class of a request, carried by the client handle ([`crate::CloudflareClient::with_priority`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// A new or changed service, a repair after drift, a CLI deploy: everything but the periodic
    /// re-read of an unchanged service. Never waits behind resync traffic.
    #[default]
    Change,
    /// Periodic re-read of an unchanged service. Sent only while no change request waits, and
    /// never more than the [`ResyncShare`] of the budget in any window.
    Resync,
}

impl Priority {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Change => "change",
            Priority::Resync => "resync",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Priority::Change => 0,
            Priority::Resync => 1,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The part of a token's budget resync traffic may use, in `(0, 1]`. Default 50%.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResyncShare {
    /// Parts per million (1..=1_000_000), so the type stays `Eq`.
    ppm: u32,
}

impl Default for ResyncShare {
    fn default() -> Self {
        Self { ppm: 500_000 }
    }
}

/// A share outside `(0, 1]`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("must be a number greater than 0 and at most 1 (a fraction of the budget, e.g. 0.5), got {0}")]
pub struct InvalidShare(pub String);

impl ResyncShare {
    /// `fraction` must be finite, above 0 and at most 1.
    pub fn new(fraction: f64) -> Result<Self, InvalidShare> {
        if !fraction.is_finite() || fraction <= 0.0 || fraction > 1.0 {
            return Err(InvalidShare(fraction.to_string()));
        }
        Ok(Self { ppm: ((fraction * 1e6).round() as u32).clamp(1, 1_000_000) })
    }

    pub fn fraction(self) -> f64 {
        f64::from(self.ppm) / 1e6
    }
}

impl FromStr for ResyncShare {
    type Err = InvalidShare;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let x: f64 = s.trim().parse().map_err(|_| InvalidShare(format!("{s:?}")))?;
        Self::new(x)
    }
}

impl fmt::Display for ResyncShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.fraction())
    }
}

/// How often each of `services` can be resynced when a resync costs `reads_per_resync` requests
/// and the budget sustains `resync_rate` resync requests per second:
/// `max(configured, services * reads_per_resync / resync_rate)`. Degenerate inputs (no services,
/// no reads, a rate that is not a positive number) leave `configured` as it is.
pub fn effective_resync_period(
    configured: Duration,
    services: usize,
    reads_per_resync: f64,
    resync_rate: f64,
) -> Duration {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if services == 0 || !positive(reads_per_resync) || !positive(resync_rate) {
        return configured;
    }
    let needed = services as f64 * reads_per_resync / resync_rate;
    configured.max(Duration::try_from_secs_f64(needed).unwrap_or(Duration::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_parses_and_validates() {
        assert_eq!(ResyncShare::default().fraction(), 0.5);
        assert_eq!("0.25".parse::<ResyncShare>().unwrap().fraction(), 0.25);
        assert_eq!(" 1 ".parse::<ResyncShare>().unwrap().fraction(), 1.0);
        assert_eq!(ResyncShare::new(1e-9).unwrap().fraction(), 1e-6, "rounded up to the smallest share");
        for bad in ["0", "-0.1", "1.01", "NaN", "inf", "half", ""] {
            let e = bad.parse::<ResyncShare>().unwrap_err().to_string();
            assert!(e.starts_with("must be a number greater than 0 and at most 1"), "{bad}: {e}");
        }
        assert_eq!(ResyncShare::new(0.5).unwrap().to_string(), "0.5");
    }

    #[test]
    fn resync_capacity_and_rate() {
        let cf = RateLimit::default();
        let half = ResyncShare::default();
        assert_eq!(cf.resync_capacity(half), 600);
        // 600 requests per 300.5 s (window plus margin)
        assert!((cf.resync_rate(half) - 600.0 / 300.5).abs() < 1e-9);
        assert_eq!(cf.resync_capacity(ResyncShare::new(1.0).unwrap()), 1200);
        // rounded down, at least one request
        assert_eq!(RateLimit::new(3, Duration::from_secs(10)).resync_capacity(half), 1);
        assert_eq!(RateLimit::new(1, Duration::from_secs(10)).resync_capacity(ResyncShare::new(0.01).unwrap()), 1);
        assert_eq!(RateLimit::new(0, Duration::from_secs(10)).resync_capacity(half), 1);
        assert_eq!(RateLimit::new(5, Duration::ZERO).resync_rate(half), f64::INFINITY);
    }

    #[test]
    fn effective_period_stretches_to_the_resync_rate() {
        let ten_min = Duration::from_secs(600);
        let rate = RateLimit::default().resync_rate(ResyncShare::default());
        // 1000 services, one read each: 1000 / (600/300.5) = 500.8 s < 10 min
        assert_eq!(effective_resync_period(ten_min, 1000, 1.0, rate), ten_min);
        // 10,000 services: 5008.3 s
        let p = effective_resync_period(ten_min, 10_000, 1.0, rate);
        assert_eq!(p.as_secs(), 5008);
        // two reads per resync double it
        assert_eq!(effective_resync_period(ten_min, 10_000, 2.0, rate).as_secs(), 10_016);
        // exactly at the rate: 4 services, 1 read, 1 per second
        assert_eq!(effective_resync_period(Duration::from_secs(1), 4, 1.0, 1.0), Duration::from_secs(4));
        // degenerate inputs keep the configured period
        assert_eq!(effective_resync_period(ten_min, 0, 1.0, rate), ten_min);
        assert_eq!(effective_resync_period(ten_min, 10, 0.0, rate), ten_min);
        assert_eq!(effective_resync_period(ten_min, 10, f64::NAN, rate), ten_min);
        assert_eq!(effective_resync_period(ten_min, 10, 1.0, 0.0), ten_min);
        assert_eq!(effective_resync_period(ten_min, 10, 1.0, f64::INFINITY), ten_min);
        assert_eq!(effective_resync_period(ten_min, usize::MAX, 1e300, 1e-300), Duration::MAX);
    }
}
