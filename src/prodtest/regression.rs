//! Regression against the previous release: a new version whose p95 latency or error rate is
//! more than `maxDegradationPercent` worse than the release before it fails its production
//! tests. The measurements of the serving release are kept in `status.releaseBaseline`.

use std::time::Duration;

use crate::crd::{CloudflareServiceStatus, ProductionTestsSpec, RegressionTest, ReleaseBaseline, TestRun};

const SUITE: &str = "regression";

/// Compare `run` with the baseline when `version` is a new release; record the new baseline when
/// the release passes. Adds a `regression` result (and a failure line) only for a new release.
pub fn apply(
    spec: &ProductionTestsSpec,
    version: Option<&str>,
    status: &mut CloudflareServiceStatus,
    run: &mut TestRun,
    failures: &mut Vec<String>,
) {
    let (Some(reg), Some(version)) = (&spec.regression, version) else { return };
    let previous = status.release_baseline.clone();
    if previous.as_ref().is_some_and(|b| b.version_id == version) {
        return;
    }
    let (Some(p95), Some(err)) = (run.p95_ms, run.error_rate) else {
        push(run, failures, false, "needs a performance or throughput check to measure p95 and error rate".into());
        return;
    };
    let current = ReleaseBaseline { version_id: version.to_string(), p95_ms: p95, error_rate: err };
    let (passed, message) = match &previous {
        None => (true, format!("first measured release: p95 {p95} ms, error rate {err:.3} recorded as the baseline")),
        Some(b) => compare(reg, b, &current),
    };
    push(run, failures, passed, message);
    if passed && run.failed == 0 {
        status.release_baseline = Some(current);
    }
}

/// Whether `new` is within the allowed degradation of `old`, and why.
pub fn compare(reg: &RegressionTest, old: &ReleaseBaseline, new: &ReleaseBaseline) -> (bool, String) {
    let factor = 1.0 + f64::from(reg.max_degradation_percent) / 100.0;
    let p95_limit = ((old.p95_ms as f64 * factor).ceil() as u64).max(old.p95_ms + reg.p95_slack_ms);
    let err_limit = (old.error_rate * factor).max(old.error_rate + reg.error_rate_slack);
    let mut problems = Vec::new();
    if new.p95_ms > p95_limit {
        problems.push(format!(
            "p95 {} ms is more than {}% over the previous release's {} ms",
            new.p95_ms, reg.max_degradation_percent, old.p95_ms
        ));
    }
    if new.error_rate > err_limit {
        problems.push(format!(
            "error rate {:.3} is more than {}% over the previous release's {:.3}",
            new.error_rate, reg.max_degradation_percent, old.error_rate
        ));
    }
    let summary = format!(
        "p95 {} ms (previous {} ms), error rate {:.3} (previous {:.3})",
        new.p95_ms, old.p95_ms, new.error_rate, old.error_rate
    );
    if problems.is_empty() { (true, summary) } else { (false, format!("{}; {summary}", problems.join("; "))) }
}

fn push(run: &mut TestRun, failures: &mut Vec<String>, passed: bool, message: String) {
    if passed {
        run.passed += 1;
    } else {
        run.failed += 1;
        failures.push(format!("{SUITE}/previous-release: {message}"));
    }
    run.results.push(super::result(SUITE, "previous-release", passed, message, Duration::ZERO));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> RegressionTest {
        RegressionTest { max_degradation_percent: 20, p95_slack_ms: 50, error_rate_slack: 0.01 }
    }

    fn base(v: &str, p95: u64, err: f64) -> ReleaseBaseline {
        ReleaseBaseline { version_id: v.into(), p95_ms: p95, error_rate: err }
    }

    #[test]
    fn limits_use_percent_and_slack() {
        assert!(compare(&reg(), &base("a", 1000, 0.0), &base("b", 1200, 0.0)).0);
        let (ok, msg) = compare(&reg(), &base("a", 1000, 0.0), &base("b", 1201, 0.0));
        assert!(!ok && msg.contains("p95 1201 ms"), "{msg}");
        assert!(compare(&reg(), &base("a", 10, 0.0), &base("b", 60, 0.0)).0, "slack absorbs noise");
        assert!(!compare(&reg(), &base("a", 10, 0.0), &base("b", 10, 0.05)).0);
        assert!(compare(&reg(), &base("a", 10, 0.10), &base("b", 10, 0.115)).0);
    }

    #[test]
    fn baseline_moves_only_with_passing_new_releases() {
        let spec = ProductionTestsSpec { regression: Some(reg()), ..Default::default() };
        let mut st = CloudflareServiceStatus::default();
        let measured = |p95, err| TestRun { p95_ms: Some(p95), error_rate: Some(err), ..Default::default() };
        let mut f = Vec::new();
        let mut run = measured(100, 0.0);
        apply(&spec, Some("v1"), &mut st, &mut run, &mut f);
        assert_eq!(st.release_baseline, Some(base("v1", 100, 0.0)));
        let mut same = measured(900, 0.0);
        apply(&spec, Some("v1"), &mut st, &mut same, &mut f);
        assert!(same.results.is_empty() && f.is_empty(), "same release: nothing compared");
        let mut worse = measured(400, 0.0);
        apply(&spec, Some("v2"), &mut st, &mut worse, &mut f);
        assert_eq!((worse.failed, f.len()), (1, 1));
        assert_eq!(st.release_baseline.as_ref().unwrap().version_id, "v1", "a failing release is no baseline");
        let mut fine = measured(110, 0.0);
        apply(&spec, Some("v3"), &mut st, &mut fine, &mut Vec::new());
        assert_eq!(st.release_baseline.as_ref().unwrap().version_id, "v3");
    }
}
