//! How often a CloudflareService resyncs: the configured period (`--resync-seconds`), stretched
//! so that the quiet resyncs of all services on one budget fit in its resync share
//! (`--resync-budget-share`): `max(configured, services * READS_PER_RESYNC / resync_rate)`.
//!
//! Services are counted per Customer (one token each, so one budget); the count is of services
//! this process has reconciled and not yet seen deleted. The longest stretched period is exported
//! as `clodo_resync_effective_period_seconds`.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use kube::ResourceExt;
use prometheus::Gauge;
use rand::Rng;

use crate::cloudflare::effective_resync_period;
use crate::crd::CloudflareService;

/// Requests a quiet resync of one service costs: the drift check (`GET …/deployments`).
pub const READS_PER_RESYNC: f64 = 1.0;

/// `base` plus up to 10% jitter, so that a fleet does not resync in lockstep.
pub fn with_jitter(base: Duration) -> Duration {
    let ms = base.as_millis().min(u128::from(u64::MAX / 2)) as u64;
    Duration::from_millis(ms + rand::rng().random_range(0..=ms / 10))
}

/// Services per budget, by hashed keys (a few bytes per service at fleet scale).
#[derive(Default)]
struct Members {
    group_of: HashMap<u64, u64>,
    sizes: HashMap<u64, usize>,
}

impl Members {
    /// Count `member` in `group` (moving it from another group); returns the group's size.
    fn join(&mut self, member: u64, group: u64) -> usize {
        if let Some(old) = self.group_of.insert(member, group) {
            if old == group {
                return self.sizes.get(&group).copied().unwrap_or(1);
            }
            self.shrink(old);
        }
        let n = self.sizes.entry(group).or_insert(0);
        *n += 1;
        *n
    }

    fn leave(&mut self, member: u64) {
        if let Some(group) = self.group_of.remove(&member) {
            self.shrink(group);
        }
    }

    fn shrink(&mut self, group: u64) {
        if let Some(n) = self.sizes.get_mut(&group) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.sizes.remove(&group);
            }
        }
    }

    fn largest(&self) -> usize {
        self.sizes.values().copied().max().unwrap_or(0)
    }
}

fn key(parts: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// The resync period of each service, from the budget's sustainable resync rate.
pub struct ResyncSchedule {
    configured: Duration,
    /// Resync requests per second one token's budget sustains.
    resync_rate: f64,
    gauge: Gauge,
    members: Mutex<Members>,
}

impl ResyncSchedule {
    pub fn new(configured: Duration, resync_rate: f64, gauge: Gauge) -> Self {
        gauge.set(configured.as_secs_f64());
        Self { configured, resync_rate, gauge, members: Mutex::new(Members::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stretched period for `services` sharing one budget (no jitter).
    pub fn period(&self, services: usize) -> Duration {
        effective_resync_period(self.configured, services, READS_PER_RESYNC, self.resync_rate)
    }

    /// Time until the next resync of `svc` (with jitter). Counts `svc` for its Customer.
    pub fn next_for(&self, svc: &CloudflareService) -> Duration {
        let ns = svc.namespace().unwrap_or_default();
        let member = svc.uid().map_or_else(|| key(&[&ns, &svc.name_any()]), |u| key(&[&u]));
        let group = key(&[&ns, &svc.spec.customer_ref.name]);
        let mut m = self.lock();
        let size = m.join(member, group);
        self.gauge.set(self.period(m.largest()).as_secs_f64());
        drop(m);
        with_jitter(self.period(size))
    }

    /// Stop counting a service that is gone.
    pub fn forget(&self, uid: &str) {
        let mut m = self.lock();
        m.leave(key(&[uid]));
        self.gauge.set(self.period(m.largest()).as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudflare::{RateLimit, ResyncShare};

    fn svc(ns: &str, name: &str, customer: &str) -> CloudflareService {
        let mut s = crate::engine::fixtures::service();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some(ns.into());
        s.metadata.uid = Some(format!("uid-{ns}-{name}"));
        s.spec.customer_ref.name = customer.into();
        s
    }

    #[test]
    fn jitter_adds_at_most_ten_percent() {
        let base = Duration::from_secs(600);
        for _ in 0..200 {
            let d = with_jitter(base);
            assert!(d >= base && d <= Duration::from_secs(660), "{d:?}");
        }
        assert_eq!(with_jitter(Duration::ZERO), Duration::ZERO);
        assert!(with_jitter(Duration::MAX) >= Duration::from_millis(u64::MAX / 2));
    }

    #[test]
    fn periods_stretch_per_customer_and_the_gauge_shows_the_longest() {
        // 4 requests per 10 s (+0.5 s margin), half for resync: 2 resync reads per 10.5 s, so
        // 5.25 s per service on one budget; configured 12 s.
        let rate = RateLimit::new(4, Duration::from_secs(10)).resync_rate(ResyncShare::default());
        assert!((rate - 2.0 / 10.5).abs() < 1e-9, "{rate}");
        let gauge = Gauge::new("g", "g").unwrap();
        let s = ResyncSchedule::new(Duration::from_secs(12), rate, gauge.clone());
        assert_eq!(gauge.get(), 12.0);
        let a: Vec<_> = (0..4).map(|i| svc("ns", &format!("a{i}"), "acme")).collect();
        let b = svc("ns", "b0", "beta");
        let near = |d: Duration, secs: f64| d.as_secs_f64() >= secs - 1e-3 && d.as_secs_f64() <= secs * 1.1 + 1e-3;
        assert!(near(s.next_for(&a[0]), 12.0), "one service: the configured period");
        assert!(near(s.next_for(&a[1]), 12.0));
        assert!(near(s.next_for(&a[2]), 15.75), "three on one budget: 3 * 5.25 s");
        assert!(near(s.next_for(&a[3]), 21.0));
        assert!(near(s.next_for(&a[3]), 21.0), "counted once");
        assert!((gauge.get() - 21.0).abs() < 1e-6);
        assert!(near(s.next_for(&b), 12.0), "another Customer has its own budget");
        assert!((gauge.get() - 21.0).abs() < 1e-6);
        // a service moving to another Customer is counted there only
        assert!(near(s.next_for(&svc("ns", "a3", "beta")), 12.0));
        assert!((gauge.get() - 15.75).abs() < 1e-6);
        s.forget("uid-ns-a0");
        s.forget("uid-ns-a0");
        assert_eq!(gauge.get(), 12.0);
        assert_eq!(s.period(10_000).as_secs(), 52_500);
    }
}
