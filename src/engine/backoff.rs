//! Retry backoff: one capped exponential policy, and the named policies the controllers and the
//! CLI use. (The Cloudflare client's own request retries honour `Retry-After` and live in
//! `cloudflare-client`.)

use std::time::Duration;

use rand::Rng;

/// Capped exponential backoff: failure `n` (1-based) may wait up to `base * 2^(n-1)`, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

/// Controllers: a failing object is retried after 2 s, 4 s, 8 s, … up to 5 minutes (with jitter,
/// see [`Backoff::delay`]), counted per object and reset by its next successful pass.
pub const CONTROLLER: Backoff = Backoff { base: Duration::from_secs(2), max: Duration::from_secs(300) };

/// `deploy -f`: a retryable failure of a service is retried after 2 s, 4 s, 8 s and 16 s.
pub const CLI: Backoff = Backoff { base: Duration::from_secs(2), max: Duration::from_secs(16) };

/// How many retryable failures `deploy -f` retries per service before it reports the last one.
pub const CLI_RETRIES: u32 = 4;

impl Backoff {
    /// The longest wait after `failures` consecutive failures (0 counts as 1).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }

    /// The wait after `failures` consecutive failures, with jitter in the upper half of the
    /// [`ceiling`](Self::ceiling) (between half of it and all of it), so that objects failing
    /// together do not retry in lockstep.
    pub fn delay(&self, failures: u32) -> Duration {
        let ms = self.ceiling(failures).as_millis() as u64;
        let low = ms / 2;
        Duration::from_millis(rand::rng().random_range(low..=ms.max(low)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_and_is_capped() {
        let b = Backoff { base: Duration::from_secs(2), max: Duration::from_secs(60) };
        for n in 1..30 {
            let d = b.delay(n);
            let ceiling = Duration::from_secs(2).saturating_mul(1u32 << (n - 1).min(20)).min(b.max);
            assert_eq!(b.ceiling(n), ceiling);
            assert!(d <= ceiling && d >= ceiling / 2, "n={n} d={d:?}");
        }
        assert!(b.delay(1) <= Duration::from_secs(2));
        assert!(b.delay(50) >= Duration::from_secs(30));
        assert_eq!(b.ceiling(0), b.ceiling(1));
    }

    #[test]
    fn named_policies() {
        let cli: Vec<u64> = (1..=CLI_RETRIES).map(|n| CLI.ceiling(n).as_secs()).collect();
        assert_eq!(cli, [2, 4, 8, 16]);
        assert_eq!(CONTROLLER.ceiling(1), Duration::from_secs(2));
        assert_eq!(CONTROLLER.ceiling(9), Duration::from_secs(300));
    }
}
