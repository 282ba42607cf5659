//! Client-side rate limit per token: at most `requests` requests in any sliding `window`.
//!
//! A sliding log of reservation times (not a token bucket, which allows up to twice the budget in
//! one window after a full refill) guarantees that a fleet sharing one client never exceeds
//! Cloudflare's per-token budget. Callers reserve a slot under a short lock and then sleep until
//! it, so waiters are served in order. A 429 from Cloudflare blocks the limiter until its
//! `Retry-After` has passed, so the other requests on the same token back off too.
//!
//! Time is `tokio::time::Instant`, so tests drive it with `tokio::time::pause()`.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

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
}

/// Outcome of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Send at this instant (now or later).
    At(Instant),
    /// Cloudflare told us to stay away for longer than we are willing to wait; nothing reserved.
    Blocked { remaining: Duration },
}

#[derive(Debug, Default)]
struct State {
    /// The most recent reservations (at most `requests`), non-decreasing.
    slots: VecDeque<Instant>,
    /// Server-imposed pause (from a 429).
    blocked_until: Option<Instant>,
}

/// Sliding-window limiter shared by all clones of one client.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    max_block_wait: Duration,
    state: Mutex<State>,
}

impl RateLimiter {
    /// `max_block_wait`: longest server-imposed pause a caller waits out instead of failing.
    pub fn new(limit: RateLimit, max_block_wait: Duration) -> Self {
        Self { limit, max_block_wait, state: Mutex::new(State::default()) }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserve the earliest slot at or after `now` that keeps every window within budget.
    pub fn reserve(&self, now: Instant) -> Reservation {
        let mut st = self.lock();
        let mut at = now;
        if let Some(until) = st.blocked_until {
            if until > now {
                let remaining = until - now;
                if remaining > self.max_block_wait {
                    return Reservation::Blocked { remaining };
                }
                at = until;
            } else {
                st.blocked_until = None;
            }
        }
        let n = self.limit.requests.max(1) as usize;
        if let Some(&last) = st.slots.back() {
            at = at.max(last);
        }
        if st.slots.len() >= n {
            let nth = st.slots[st.slots.len() - n];
            at = at.max(nth + self.limit.window + self.limit.margin());
        }
        st.slots.push_back(at);
        while st.slots.len() > n {
            st.slots.pop_front();
        }
        Reservation::At(at)
    }

    /// Wait for a slot. Returns the time waited, or `Err(remaining)` when blocked by the server
    /// for longer than `max_block_wait`.
    pub async fn acquire(&self) -> Result<Duration, Duration> {
        let now = Instant::now();
        match self.reserve(now) {
            Reservation::At(at) => {
                if at > now {
                    tokio::time::sleep_until(at).await;
                }
                Ok(at.saturating_duration_since(now))
            }
            Reservation::Blocked { remaining } => Err(remaining),
        }
    }

    /// Pause all requests until `until` (a 429's `Retry-After`). Never shortens an existing pause.
    pub fn block_until(&self, until: Instant) {
        let mut st = self.lock();
        st.blocked_until = Some(st.blocked_until.map_or(until, |u| u.max(until)));
    }

    /// Reservations inside the window ending at `now` (including future reservations).
    pub fn in_window(&self, now: Instant) -> usize {
        let st = self.lock();
        st.slots.iter().filter(|t| **t + self.limit.window > now).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(r: Reservation) -> Instant {
        match r {
            Reservation::At(t) => t,
            Reservation::Blocked { .. } => panic!("unexpected block"),
        }
    }

    /// Count reservations in every window `(t - w, t]` ending at a reservation: never above the budget.
    fn max_in_any_window(slots: &[Instant], w: Duration) -> usize {
        slots.iter().map(|end| slots.iter().filter(|s| **s <= *end && **s + w > *end).count()).max().unwrap_or(0)
    }

    #[test]
    fn burst_up_to_budget_then_waits_for_oldest_to_expire() {
        let l = RateLimiter::new(RateLimit::new(3, Duration::from_secs(10)), Duration::from_secs(60));
        let m = Duration::from_millis(500);
        let t0 = Instant::now();
        assert_eq!(at(l.reserve(t0)), t0);
        assert_eq!(at(l.reserve(t0 + Duration::from_secs(1))), t0 + Duration::from_secs(1));
        assert_eq!(at(l.reserve(t0 + Duration::from_secs(2))), t0 + Duration::from_secs(2));
        // fourth request at t=3 waits until the first left the window (t=10), plus the margin
        assert_eq!(at(l.reserve(t0 + Duration::from_secs(3))), t0 + Duration::from_secs(10) + m);
        // fifth at t=3 too: until the second expires (t=11)
        assert_eq!(at(l.reserve(t0 + Duration::from_secs(3))), t0 + Duration::from_secs(11) + m);
        // much later: no wait
        let late = t0 + Duration::from_secs(100);
        assert_eq!(at(l.reserve(late)), late);
        assert_eq!(l.in_window(late), 1);
    }

    #[test]
    fn never_exceeds_budget_under_heavy_concurrency() {
        let w = Duration::from_secs(300);
        let l = RateLimiter::new(RateLimit::new(50, w), Duration::from_secs(60));
        let t0 = Instant::now();
        let mut slots = Vec::new();
        // 400 callers arriving over 90 seconds in bursts
        for i in 0..400u64 {
            let now = t0 + Duration::from_millis((i / 40) * 9_000);
            slots.push(at(l.reserve(now)));
        }
        assert!(slots.windows(2).all(|p| p[0] <= p[1]), "FIFO order");
        assert_eq!(max_in_any_window(&slots, w), 50);
        // 400 requests at 50 per 300s: the 400th follows the 50th (arrived at 9s) by 7 windows
        // (each stretched by the margin)
        let margin = RateLimit::new(50, w).margin();
        assert_eq!(*slots.last().unwrap() - t0, Duration::from_secs(9 + 7 * 300) + margin * 7);
    }

    #[test]
    fn margin_absorbs_arrival_jitter_at_the_server() {
        // The server counts arrivals (departure + a delay that varies by up to the margin) in its
        // own sliding window. Here every other batch of requests takes 450 ms longer to arrive, so
        // newer requests catch up with older ones: at full budget the client must still never
        // make the server see more than the budget in a window.
        let limit = RateLimit::new(20, Duration::from_secs(10));
        assert_eq!(limit.margin(), Duration::from_millis(500));
        let delay = |i: u64| Duration::from_millis(if (i / 20).is_multiple_of(2) { 450 } else { 0 });
        let l = RateLimiter::new(limit, Duration::from_secs(60));
        let t0 = Instant::now();
        let mut arrivals: Vec<Instant> = (0..200u64).map(|i| at(l.reserve(t0)) + delay(i)).collect();
        arrivals.sort();
        assert_eq!(max_in_any_window(&arrivals, limit.window), 20);
        // Spaced by exactly the window, the same jitter overruns the server's count.
        let mut eager: Vec<Instant> = (0..200u64).map(|i| t0 + Duration::from_secs(i / 20 * 10) + delay(i)).collect();
        eager.sort();
        assert!(max_in_any_window(&eager, limit.window) > 20);
    }

    #[test]
    fn zero_budget_is_treated_as_one() {
        let l = RateLimiter::new(RateLimit::new(0, Duration::from_secs(1)), Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(at(l.reserve(t0)), t0);
        assert_eq!(at(l.reserve(t0)), t0 + Duration::from_millis(1050));
    }

    #[test]
    fn server_block_delays_or_fails_fast() {
        let l = RateLimiter::new(RateLimit::new(100, Duration::from_secs(1)), Duration::from_secs(30));
        let t0 = Instant::now();
        l.block_until(t0 + Duration::from_secs(20));
        assert_eq!(at(l.reserve(t0)), t0 + Duration::from_secs(20));
        // shorter block does not shorten the pause
        l.block_until(t0 + Duration::from_secs(5));
        assert_eq!(at(l.reserve(t0 + Duration::from_secs(1))), t0 + Duration::from_secs(20));
        // a long block makes callers fail fast with the remaining time
        l.block_until(t0 + Duration::from_secs(300));
        assert_eq!(
            l.reserve(t0 + Duration::from_secs(100)),
            Reservation::Blocked { remaining: Duration::from_secs(200) }
        );
        // after the block has passed, it is cleared
        let later = t0 + Duration::from_secs(301);
        assert_eq!(at(l.reserve(later)), later);
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_sleeps_on_tokio_clock() {
        let l = RateLimiter::new(RateLimit::new(2, Duration::from_secs(60)), Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(l.acquire().await, Ok(Duration::ZERO));
        assert_eq!(l.acquire().await, Ok(Duration::ZERO));
        let waited = l.acquire().await.unwrap();
        assert_eq!(waited, Duration::from_millis(60_500));
        assert_eq!(Instant::now() - start, Duration::from_millis(60_500));
        l.block_until(Instant::now() + Duration::from_secs(600));
        assert_eq!(l.acquire().await, Err(Duration::from_secs(600)));
    }
}
