//! Build the status a pass reports: conditions in DESIGN order, Ready derived last, phase.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::conditions::{self as c, CondSpec, reason};
use crate::crd::{CloudflareServiceStatus, Phase};

/// Condition outcomes collected during a pass, in DESIGN order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    conds: Vec<CondSpec>,
}

impl Report {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record a condition (replacing an earlier one of the same type).
    pub fn set(&mut self, cond: CondSpec) {
        self.conds.retain(|x| x.type_ != cond.type_);
        self.conds.push(cond);
    }

    pub fn ok(&mut self, type_: &'static str, reason: &str, message: impl Into<String>) {
        self.set(CondSpec::ok(type_, reason, message));
    }

    pub fn fail(&mut self, type_: &'static str, reason: &str, message: impl Into<String>) {
        self.set(CondSpec::fail(type_, reason, message));
    }

    pub fn unknown(&mut self, type_: &'static str, reason: &str, message: impl Into<String>) {
        self.set(CondSpec::unknown(type_, reason, message));
    }

    pub fn get(&self, type_: &str) -> Option<&CondSpec> {
        self.conds.iter().find(|x| x.type_ == type_)
    }

    /// The condition that keeps the service from Ready: the first False one in DESIGN order,
    /// else the first that is not True.
    pub fn first_not_ok(&self) -> Option<CondSpec> {
        let all: Vec<CondSpec> =
            c::SERVICE_CONDITIONS.iter().filter(|t| **t != c::READY).map(|t| self.resolved(t)).collect();
        all.iter().find(|x| x.status == Some(false)).or_else(|| all.iter().find(|x| x.status != Some(true))).cloned()
    }

    fn resolved(&self, type_: &'static str) -> CondSpec {
        if let Some(x) = self.get(type_) {
            return x.clone();
        }
        // Not reached this pass: blocked by a failure (the first in DESIGN order).
        let blocker =
            c::SERVICE_CONDITIONS.iter().filter_map(|t| self.get(t)).find(|x| x.status == Some(false)).or_else(|| {
                c::SERVICE_CONDITIONS
                    .iter()
                    .take_while(|t| **t != type_)
                    .filter_map(|t| self.get(t))
                    .find(|x| x.status.is_none())
            });
        match blocker {
            Some(b) => CondSpec::unknown(
                type_,
                reason::BLOCKED,
                format!("not evaluated: {} is {}", b.type_, c::status_str(b.status)),
            ),
            None => CondSpec::unknown(type_, reason::PENDING, "not evaluated yet"),
        }
    }

    /// Every service condition with Ready derived from the others.
    pub fn finish(&self) -> Vec<CondSpec> {
        let mut out: Vec<CondSpec> =
            c::SERVICE_CONDITIONS.iter().filter(|t| **t != c::READY).map(|t| self.resolved(t)).collect();
        let ready = match self.get(c::READY) {
            Some(explicit) => explicit.clone(),
            None => match self.first_not_ok() {
                None => CondSpec::ok(c::READY, reason::READY, "service is deployed and its checks pass"),
                Some(x) => CondSpec::new(c::READY, Some(false), &x.reason, format!("{}: {}", x.type_, x.message)),
            },
        };
        out.push(ready);
        out
    }
}

/// Apply a report to a status: conditions merged with transition bookkeeping, observedGeneration,
/// phase.
pub fn apply(status: &mut CloudflareServiceStatus, report: &Report, phase: Phase, generation: Option<i64>, now: &Time) {
    let conds = report.finish();
    status.conditions = c::merge(&status.conditions, &conds, generation, now);
    status.observed_generation = generation;
    status.phase = Some(phase);
}

/// The phase a failed condition maps to.
pub fn phase_for_failure(type_: &str, terminal: bool) -> Phase {
    if terminal {
        return Phase::Failed;
    }
    match type_ {
        c::CREDENTIALS_VALID | c::CONFIG_VALID | c::SECURITY_VALIDATED => Phase::Validating,
        c::DATABASES_READY | c::MIGRATIONS_APPLIED => Phase::Migrating,
        c::WORKER_DEPLOYED | c::ROUTES_CONFIGURED => Phase::Deploying,
        c::PRODUCTION_TESTS_PASSED => Phase::Testing,
        _ => Phase::Pending,
    }
}

/// A report that keeps previous conditions as they were (Ready is derived again).
pub fn report_from_conditions(conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> Report {
    let mut r = Report::new();
    for t in c::SERVICE_CONDITIONS.iter().filter(|t| **t != c::READY) {
        if let Some(x) = c::find(conds, t) {
            let status = match x.status.as_str() {
                "True" => Some(true),
                "False" => Some(false),
                _ => None,
            };
            r.set(CondSpec::new(t, status, &x.reason, x.message.clone()));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn ready_is_true_only_when_everything_is() {
        let mut r = Report::new();
        for t in c::SERVICE_CONDITIONS.iter().filter(|t| **t != c::READY) {
            r.ok(t, "Ok", "fine");
        }
        let out = r.finish();
        assert_eq!(out.len(), 9);
        assert_eq!(out.last().unwrap().status, Some(true));
        r.fail(c::MIGRATIONS_APPLIED, reason::CHECKSUM_MISMATCH, "0001 changed");
        let ready = r.finish().pop().unwrap();
        assert_eq!(ready.status, Some(false));
        assert_eq!(ready.reason, reason::CHECKSUM_MISMATCH);
        assert!(ready.message.starts_with("MigrationsApplied: "));
    }

    #[test]
    fn unreached_conditions_are_blocked_by_the_first_failure() {
        let mut r = Report::new();
        r.ok(c::CREDENTIALS_VALID, "TokenValid", "ok");
        r.fail(c::CONFIG_VALID, reason::MISSING_REFERENCE, "spec.customerRef.name: not found");
        let out = r.finish();
        let worker = out.iter().find(|x| x.type_ == c::WORKER_DEPLOYED).unwrap();
        assert_eq!(worker.status, None);
        assert_eq!(worker.reason, reason::BLOCKED);
        assert!(worker.message.contains("ConfigValid is False"));
    }

    #[test]
    fn apply_sets_generation_and_phase() {
        let mut s = CloudflareServiceStatus::default();
        let now = Time(Timestamp::from_second(10).unwrap());
        apply(&mut s, &Report::new(), Phase::Pending, Some(3), &now);
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.conditions.len(), 9);
        assert!(s.conditions.iter().all(|x| x.observed_generation == Some(3)));
    }

    #[test]
    fn failure_phases() {
        assert_eq!(phase_for_failure(c::MIGRATIONS_APPLIED, true), Phase::Failed);
        assert_eq!(phase_for_failure(c::MIGRATIONS_APPLIED, false), Phase::Migrating);
        assert_eq!(phase_for_failure(c::ROUTES_CONFIGURED, false), Phase::Deploying);
    }
}
