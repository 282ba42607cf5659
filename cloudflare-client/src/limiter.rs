//! [`RateLimiter`]: the per-token budget, enforced on the client, with two priorities.
//!
//! The rule, exactly (`N` = [`RateLimit::capacity`], `R` = [`RateLimit::resync_capacity`] of the
//! share, `W` = window plus [`RateLimit::margin`]):
//!
//! 1. **Budget.** A request is sent at `t` only while fewer than `N` requests were sent in
//!    `(t - W, t]`. A sliding log of send times (not a token bucket, which allows up to twice the
//!    budget in one window after a full refill) guarantees that a fleet sharing one client never
//!    exceeds Cloudflare's per-token budget.
//! 2. **Resync share.** A [`Priority::Resync`] request is sent only while fewer than `R` resync
//!    requests were sent in `(t - W, t]`, whether or not change traffic exists: capacity beyond
//!    the share stays free for change traffic, so a change request arriving during a full resync
//!    finds at least `N - R` sends per window that resync traffic cannot take.
//! 3. **Priority.** A [`Priority::Change`] request never waits for a resync one: a resync request
//!    is sent only while no change request waits, so when a send becomes possible a waiting
//!    change request always gets it. Within a class requests are served in arrival order.
//! 4. **Server pause.** A 429 with `Retry-After` pauses both classes until it has passed (callers
//!    fail fast with the remaining time when that is longer than `max_block_wait`).
//!
//! Waiters queue per class; only the head of a queue (and of the resync queue only while the
//! change queue is empty) sleeps until its send time, the others sleep until woken. A waiter that
//! is dropped (its request cancelled) leaves the queue. Time is `tokio::time::Instant`, so tests
//! drive it with `tokio::time::pause()`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ratelimit::{Priority, RateLimit, ResyncShare};

struct Waiter {
    id: u64,
    wake: Arc<Notify>,
}

#[derive(Default)]
struct State {
    /// Send times of the last `N` requests (all classes), non-decreasing.
    sent: VecDeque<Instant>,
    /// Send times of the last `R` resync requests.
    resync_sent: VecDeque<Instant>,
    /// Server-imposed pause (from a 429).
    blocked_until: Option<Instant>,
    /// Waiting requests by [`Priority::index`].
    queued: [VecDeque<Waiter>; 2],
    next_id: u64,
}

impl State {
    /// Whether the request `id` (or a new one, `None`) of class `p` is the next to send.
    fn first_in_line(&self, p: Priority, id: Option<u64>) -> bool {
        let own = &self.queued[p.index()];
        let ahead_in_class = match id {
            None => !own.is_empty(),
            Some(id) => own.front().is_none_or(|w| w.id != id),
        };
        !ahead_in_class && (p == Priority::Change || self.queued[Priority::Change.index()].is_empty())
    }

    fn wake_heads(&self) {
        for q in &self.queued {
            if let Some(w) = q.front() {
                w.wake.notify_one();
            }
        }
    }
}

/// What the budget holds at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BudgetSnapshot {
    /// Requests sent within the window ending now (all classes).
    pub in_window: usize,
    /// Resync requests sent within that window.
    pub resync_in_window: usize,
    /// Change requests waiting for a send time.
    pub waiting_change: usize,
    /// Resync requests waiting for a send time.
    pub waiting_resync: usize,
}

/// The budget of one token, shared by all clones of one client.
pub struct RateLimiter {
    limit: RateLimit,
    share: ResyncShare,
    max_block_wait: Duration,
    state: Mutex<State>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("limit", &self.limit).field("share", &self.share).finish()
    }
}

/// A queued request; leaves the queue when dropped (a cancelled request must not block others).
struct Ticket<'a> {
    limiter: &'a RateLimiter,
    priority: Priority,
    id: u64,
    wake: Arc<Notify>,
    queued: bool,
}

impl Ticket<'_> {
    fn join<'a>(limiter: &'a RateLimiter, st: &mut State, priority: Priority) -> Ticket<'a> {
        st.next_id += 1;
        let wake = Arc::new(Notify::new());
        st.queued[priority.index()].push_back(Waiter { id: st.next_id, wake: wake.clone() });
        Ticket { limiter, priority, id: st.next_id, wake, queued: true }
    }

    /// Leave the queue under the caller's lock and let the next heads re-check.
    fn leave(mut self, st: &mut State) {
        st.queued[self.priority.index()].retain(|w| w.id != self.id);
        st.wake_heads();
        self.queued = false;
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.queued {
            let mut st = self.limiter.lock();
            st.queued[self.priority.index()].retain(|w| w.id != self.id);
            st.wake_heads();
        }
    }
}

impl RateLimiter {
    /// `max_block_wait`: longest server-imposed pause a caller waits out instead of failing.
    pub fn new(limit: RateLimit, share: ResyncShare, max_block_wait: Duration) -> Self {
        Self { limit, share, max_block_wait, state: Mutex::new(State::default()) }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    pub fn resync_share(&self) -> ResyncShare {
        self.share
    }

    /// Resync requests per second this budget sustains (see [`RateLimit::resync_rate`]).
    pub fn resync_rate(&self) -> f64 {
        self.limit.resync_rate(self.share)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Earliest send time at or after `now` for class `p`, or `Err(remaining)` while the server
    /// pause lasts longer than `max_block_wait`.
    fn next_send(&self, st: &mut State, p: Priority, now: Instant) -> Result<Instant, Duration> {
        let mut at = now;
        if let Some(until) = st.blocked_until {
            if until > now {
                let remaining = until - now;
                if remaining > self.max_block_wait {
                    return Err(remaining);
                }
                at = until;
            } else {
                st.blocked_until = None;
            }
        }
        let span = self.limit.window + self.limit.margin();
        if st.sent.len() >= self.limit.capacity() as usize
            && let Some(&oldest) = st.sent.front()
        {
            at = at.max(oldest + span);
        }
        if p == Priority::Resync
            && st.resync_sent.len() >= self.limit.resync_capacity(self.share) as usize
            && let Some(&oldest) = st.resync_sent.front()
        {
            at = at.max(oldest + span);
        }
        Ok(at)
    }

    fn record(&self, st: &mut State, p: Priority, now: Instant) {
        st.sent.push_back(now);
        while st.sent.len() > self.limit.capacity() as usize {
            st.sent.pop_front();
        }
        if p == Priority::Resync {
            st.resync_sent.push_back(now);
            while st.resync_sent.len() > self.limit.resync_capacity(self.share) as usize {
                st.resync_sent.pop_front();
            }
        }
    }

    /// Wait until a request of class `priority` may be sent (see the module docs for the rule).
    /// Returns the time waited, or `Err(remaining)` when blocked by the server for longer than
    /// `max_block_wait`.
    pub async fn acquire(&self, priority: Priority) -> Result<Duration, Duration> {
        let start = Instant::now();
        let mut ticket: Option<Ticket<'_>> = None;
        // A request sent without sleeping reports no wait at all.
        let mut now = start;
        loop {
            let (deadline, wake) = {
                let mut st = self.lock();
                let deadline = if st.first_in_line(priority, ticket.as_ref().map(|t| t.id)) {
                    let next = self.next_send(&mut st, priority, now);
                    if matches!(next, Ok(at) if at <= now) {
                        self.record(&mut st, priority, now);
                    }
                    match next {
                        Ok(at) if at > now => Some(at),
                        done => {
                            if let Some(t) = ticket.take() {
                                t.leave(&mut st);
                            }
                            return done.map(|_| now - start);
                        }
                    }
                } else {
                    None
                };
                let t = ticket.get_or_insert_with(|| Ticket::join(self, &mut st, priority));
                (deadline, t.wake.clone())
            };
            match deadline {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = wake.notified() => {}
                    }
                }
                None => wake.notified().await,
            }
            now = Instant::now();
        }
    }

    /// Pause all requests until `until` (a 429's `Retry-After`). Never shortens an existing pause.
    pub fn block_until(&self, until: Instant) {
        let mut st = self.lock();
        st.blocked_until = Some(st.blocked_until.map_or(until, |u| u.max(until)));
    }

    /// Requests sent within the window ending at `now`.
    pub fn in_window(&self, now: Instant) -> usize {
        self.snapshot(now).in_window
    }

    /// Sends within the window ending at `now` and the queues.
    pub fn snapshot(&self, now: Instant) -> BudgetSnapshot {
        let st = self.lock();
        let recent = |q: &VecDeque<Instant>| q.iter().filter(|t| **t + self.limit.window > now).count();
        BudgetSnapshot {
            in_window: recent(&st.sent),
            resync_in_window: recent(&st.resync_sent),
            waiting_change: st.queued[Priority::Change.index()].len(),
            waiting_resync: st.queued[Priority::Resync.index()].len(),
        }
    }
}

#[cfg(test)]
#[path = "limiter_tests.rs"]
mod tests;
