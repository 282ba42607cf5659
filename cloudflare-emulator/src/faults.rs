//! Injected faults: error rates, timeouts, latency, per-path failures, "fail next N".

use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Fault configuration; the same JSON is accepted by `POST /__emulator/faults`.
/// Missing fields take their defaults, so `{}` clears all faults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Probability (0..=1) that a call fails with `error_status`.
    pub error_rate: f64,
    /// HTTP status of injected failures (default 500).
    pub error_status: u16,
    /// Probability (0..=1) that a call is held for `timeout_ms` and then answered 504.
    pub timeout_rate: f64,
    /// How long a "timed out" call is held (default 30 000 ms).
    pub timeout_ms: u64,
    /// Latency added to every call, on top of the configured base latency.
    pub added_latency_ms: u64,
    /// `(path prefix, status)`: calls whose path starts with the prefix fail with that status.
    /// The prefix may include `/client/v4` or start right after it. JSON accepts
    /// `[["/zones", 503]]` or `[{"prefix": "/zones", "status": 503}]`.
    #[serde(deserialize_with = "prefix_rules")]
    pub path_prefix_failures: Vec<(String, u16)>,
    /// The next N calls fail with `error_status`.
    pub fail_next: u32,
    /// `Retry-After` seconds sent with injected 429s (default 1).
    pub retry_after_secs: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            error_status: 500,
            timeout_rate: 0.0,
            timeout_ms: 30_000,
            added_latency_ms: 0,
            path_prefix_failures: Vec::new(),
            fail_next: 0,
            retry_after_secs: 1,
        }
    }
}

fn prefix_rules<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, u16)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Rule {
        Pair(String, u16),
        Object { prefix: String, status: u16 },
    }
    Ok(Vec::<Rule>::deserialize(d)?
        .into_iter()
        .map(|r| match r {
            Rule::Pair(p, s) | Rule::Object { prefix: p, status: s } => (p, s),
        })
        .collect())
}

/// What to do with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FaultDecision {
    pub latency: Duration,
    pub outcome: FaultOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FaultOutcome {
    Pass,
    Fail { status: u16, retry_after_secs: u64 },
    Timeout { hold: Duration },
}

#[derive(Default)]
pub(crate) struct FaultState {
    faults: Mutex<Faults>,
}

impl FaultState {
    pub(crate) fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    pub(crate) fn get(&self) -> Faults {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Decide the fate of one call to `path` (consumes one `fail_next` if set).
    pub(crate) fn decide(&self, path: &str) -> FaultDecision {
        let mut f = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let latency = Duration::from_millis(f.added_latency_ms);
        let fail = |status: u16, f: &Faults| FaultOutcome::Fail { status, retry_after_secs: f.retry_after_secs };
        let outcome = if f.fail_next > 0 {
            f.fail_next -= 1;
            fail(f.error_status, &f)
        } else if let Some(status) = prefix_status(&f.path_prefix_failures, path) {
            fail(status, &f)
        } else if f.timeout_rate > 0.0 && rand::rng().random_bool(f.timeout_rate.clamp(0.0, 1.0)) {
            FaultOutcome::Timeout { hold: Duration::from_millis(f.timeout_ms) }
        } else if f.error_rate > 0.0 && rand::rng().random_bool(f.error_rate.clamp(0.0, 1.0)) {
            fail(f.error_status, &f)
        } else {
            FaultOutcome::Pass
        };
        FaultDecision { latency, outcome }
    }
}

fn prefix_status(rules: &[(String, u16)], path: &str) -> Option<u16> {
    let short = path.strip_prefix(crate::API_PREFIX).unwrap_or(path);
    rules
        .iter()
        .find(|(prefix, _)| !prefix.is_empty() && (path.starts_with(prefix) || short.starts_with(prefix)))
        .map(|(_, status)| *status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_counts_down() {
        let s = FaultState::default();
        s.set(Faults { fail_next: 2, error_status: 503, ..Faults::default() });
        let failed = FaultOutcome::Fail { status: 503, retry_after_secs: 1 };
        assert_eq!(s.decide("/client/v4/zones").outcome, failed);
        assert_eq!(s.decide("/client/v4/zones").outcome, failed);
        assert_eq!(s.decide("/client/v4/zones").outcome, FaultOutcome::Pass);
    }

    #[test]
    fn prefix_matches_with_or_without_api_prefix() {
        let rules = vec![("/zones".to_string(), 502), ("/client/v4/accounts/a/d1".to_string(), 503)];
        assert_eq!(prefix_status(&rules, "/client/v4/zones/x"), Some(502));
        assert_eq!(prefix_status(&rules, "/client/v4/accounts/a/d1/database"), Some(503));
        assert_eq!(prefix_status(&rules, "/client/v4/accounts/a/workers"), None);
    }

    #[test]
    fn rates_of_one_and_zero_are_deterministic() {
        let s = FaultState::default();
        s.set(Faults { error_rate: 1.0, error_status: 502, ..Faults::default() });
        assert!(matches!(s.decide("/x").outcome, FaultOutcome::Fail { status: 502, .. }));
        s.set(Faults { timeout_rate: 1.0, timeout_ms: 5, added_latency_ms: 7, ..Faults::default() });
        let d = s.decide("/x");
        assert_eq!(d.latency, Duration::from_millis(7));
        assert_eq!(d.outcome, FaultOutcome::Timeout { hold: Duration::from_millis(5) });
        s.set(Faults::default());
        assert_eq!(s.decide("/x").outcome, FaultOutcome::Pass);
    }

    #[test]
    fn json_defaults_fill_missing_fields() {
        let f: Faults = serde_json::from_str(r#"{"fail_next":1,"path_prefix_failures":[["/zones",503]]}"#).unwrap();
        assert_eq!(f.error_status, 500);
        assert_eq!(f.fail_next, 1);
        assert_eq!(f.path_prefix_failures, vec![("/zones".to_string(), 503)]);
        let f: Faults = serde_json::from_str(r#"{"path_prefix_failures":[{"prefix":"/a","status":502}]}"#).unwrap();
        assert_eq!(f.path_prefix_failures, vec![("/a".to_string(), 502)]);
        assert_eq!(f.timeout_ms, 30_000);
        let back: Faults = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }
}
