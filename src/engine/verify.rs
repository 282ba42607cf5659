//! After the Worker is in place: production tests, automatic rollback, and the pass's verdict.

use std::time::Duration;

use super::desired::Desired;
use super::execute::{record_deploy, short, stop_on_cf_error};
use super::{Engine, Outcome, Pass, PassEvent, ops};
use crate::cloudflare::CloudflareClient;
use crate::crd::Phase;
use crate::crd::conditions::{self as c, reason};

/// Production tests, automatic rollback, and the final verdict after the Worker is in place.
pub(crate) async fn after_deploy(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    pass: &mut Pass<'_>,
    deployed: bool,
) -> (Phase, Outcome) {
    pass.status.input_hash = Some(d.input_digest.clone());
    let Some(spec) = &d.tests else {
        pass.report.ok(c::PRODUCTION_TESTS_PASSED, reason::NO_TESTS, "no production tests declared");
        return verdict(pass, None);
    };
    if engine.config.no_local_runtime {
        pass.report.unknown(
            c::PRODUCTION_TESTS_PASSED,
            reason::NO_LOCAL_RUNTIME,
            "the sandbox has no local Workers runtime (workerd), so the deployed code cannot be tested; install workerd to run production tests",
        );
        return verdict(pass, None);
    }
    // Give a new version time to propagate; the pass requeues instead of sleeping.
    let delay = Duration::from_secs(u64::from(spec.propagation_delay_seconds));
    if let Some(at) = pass.status.worker.as_ref().and_then(|w| w.deployed_at.clone()) {
        let elapsed = pass.now.0.duration_since(at.0);
        let elapsed = Duration::from_millis(elapsed.as_millis().max(0) as u64);
        if elapsed < delay {
            let left = delay - elapsed;
            pass.report.unknown(
                c::PRODUCTION_TESTS_PASSED,
                "WaitingForPropagation",
                format!("waiting {}s for the new version to propagate before testing", left.as_secs().max(1)),
            );
            return (Phase::Testing, Outcome::Done { requeue_after: Some(left) });
        }
    }
    let Some(target) = engine.test_target(d, &pass.status) else {
        pass.report.fail(
            c::PRODUCTION_TESTS_PASSED,
            "NoTestTarget",
            "no productionTests.baseUrl and the service has no URL",
        );
        return verdict(pass, None);
    };
    let (mut run, mut failures) = engine.run_production_tests(spec, &target, &pass.now).await;
    let version = pass.status.worker.as_ref().and_then(|w| w.version_id.clone());
    crate::prodtest::regression::apply(spec, version.as_deref(), &mut pass.status, &mut run, &mut failures);
    // Keep the previous run when nothing but timings changed: no status churn on quiet resyncs.
    let same_outcome = pass.status.last_test_run.as_ref().is_some_and(|prev| {
        prev.results.len() == run.results.len()
            && prev
                .results
                .iter()
                .zip(&run.results)
                .all(|(a, b)| a.suite == b.suite && a.name == b.name && a.passed == b.passed)
    });
    if deployed || !same_outcome {
        pass.status.last_test_run = Some(run.clone());
    }
    if failures.is_empty() {
        if deployed {
            pass.status.failed_content_hash = None;
        }
        pass.report.ok(c::PRODUCTION_TESTS_PASSED, reason::TESTS_PASSED, format!("{} check(s) passed", run.passed));
        return verdict(pass, None);
    }
    let msg = format!("{} of {} check(s) failed: {}", run.failed, run.results.len(), failures.join("; "));
    pass.report.fail(c::PRODUCTION_TESTS_PASSED, reason::PRODUCTION_TESTS_FAILED, msg.clone());
    if deployed && d.rollback_on_failure {
        return rollback_after_failed_tests(engine, client, d, pass).await;
    }
    verdict(pass, None)
}

/// Redeploy the previous version at 100% and remember the failing content hash.
async fn rollback_after_failed_tests(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    pass: &mut Pass<'_>,
) -> (Phase, Outcome) {
    let Some(worker) = pass.status.worker.clone() else { return verdict(pass, None) };
    let failed_hash = worker.content_hash.clone().unwrap_or_default();
    let Some(previous) = worker.previous_version_id.clone() else {
        pass.emit(PassEvent::warning(
            reason::PRODUCTION_TESTS_FAILED,
            "Rollback",
            format!(
                "production tests failed on the first version of {}; there is no previous version to roll back to",
                d.script_name
            ),
        ));
        pass.status.failed_content_hash = Some(failed_hash);
        return verdict(pass, None);
    };
    let note = format!(
        "rollback: version {} failed its production tests",
        short(worker.version_id.as_deref().unwrap_or_default())
    );
    match ops::deploy_versions(client, &d.account_id, &d.script_name, &[(previous.clone(), 100)], &note).await {
        Ok(()) => {
            let prev_hash = pass
                .status
                .history
                .iter()
                .find(|h| h.version_id == previous)
                .map(|h| h.content_hash.clone())
                .unwrap_or_default();
            record_deploy(pass, d, &previous, None, &prev_hash, "RolledBack");
            pass.status.failed_content_hash = Some(failed_hash);
            engine.metrics.rollbacks_total.with_label_values(&["ProductionTestsFailed"]).inc();
            pass.emit(PassEvent::warning(
                reason::ROLLED_BACK,
                "Rollback",
                format!("production tests failed; rolled back {} to version {}", d.script_name, short(&previous)),
            ));
            pass.report.fail(
                c::READY,
                reason::PRODUCTION_TESTS_FAILED,
                format!("rolled back to version {} after production tests failed", short(&previous)),
            );
            (Phase::RolledBack, Outcome::Done { requeue_after: None })
        }
        Err(e) => stop_on_cf_error(pass, c::WORKER_DEPLOYED, "rolling back to the previous version", e),
    }
}

/// Phase from the report.
fn verdict(pass: &mut Pass<'_>, requeue_after: Option<Duration>) -> (Phase, Outcome) {
    let phase = match pass.report.first_not_ok() {
        None => Phase::Ready,
        Some(x) if x.type_ == c::PRODUCTION_TESTS_PASSED && x.status.is_none() => Phase::Testing,
        Some(_) => Phase::Failed,
    };
    (phase, Outcome::Done { requeue_after })
}
