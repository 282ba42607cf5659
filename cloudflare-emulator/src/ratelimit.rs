//! Per-token sliding-window rate limit (default 1200 requests per 300 s).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct RateLimiter {
    state: Mutex<Limits>,
}

struct Limits {
    limit: u32,
    window: Duration,
    hits: HashMap<String, VecDeque<Instant>>,
}

impl RateLimiter {
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        Self { state: Mutex::new(Limits { limit, window, hits: HashMap::new() }) }
    }

    /// Change the limit from now on (counts start again).
    pub(crate) fn set(&self, limit: u32, window: Duration) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Limits { limit, window, hits: HashMap::new() };
    }

    /// Count one request for `key`. `Err(retry_after_secs)` (whole seconds, rounded up)
    /// when the key already made `limit` requests within the window.
    pub(crate) fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (limit, window) = (state.limit, state.window);
        if limit == 0 {
            return Err(window.as_secs().max(1));
        }
        let q = state.hits.entry(key.to_string()).or_default();
        while let Some(first) = q.front() {
            if now.duration_since(*first) >= window {
                q.pop_front();
            } else {
                break;
            }
        }
        if q.len() >= limit as usize {
            let oldest = q.front().copied().unwrap_or(now);
            let wait = window.saturating_sub(now.duration_since(oldest));
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(secs.max(1));
        }
        q.push_back(now);
        Ok(())
    }

    pub(crate) fn reset(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).hits.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_recovers_after_window() {
        let rl = RateLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(rl.check("a", t0).is_ok());
        assert!(rl.check("a", t0 + Duration::from_millis(1500)).is_ok());
        assert_eq!(rl.check("a", t0 + Duration::from_secs(2)), Err(8));
        assert!(rl.check("b", t0 + Duration::from_secs(2)).is_ok());
        // the first hit leaves the window after 10 s
        assert!(rl.check("a", t0 + Duration::from_secs(10)).is_ok());
        assert_eq!(
            rl.check("a", t0 + Duration::from_millis(10_200)),
            Err(2),
            "second hit (1.5 s) expires at 11.5 s: 1.3 s left rounds up to 2"
        );
        rl.reset();
        assert!(rl.check("a", t0 + Duration::from_millis(10_200)).is_ok());
    }

    #[test]
    fn a_new_limit_applies_from_now_on() {
        let rl = RateLimiter::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(rl.check("a", t0).is_ok());
        assert_eq!(rl.check("a", t0), Err(10));
        rl.set(3, Duration::from_secs(300));
        for _ in 0..3 {
            assert!(rl.check("a", t0).is_ok());
        }
        assert_eq!(rl.check("a", t0), Err(300));
    }
}
