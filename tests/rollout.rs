//! Production tests after deploys, automatic rollback, canaries and manual rollback: the engine
//! against the emulator, with a local server playing the deployed service.

mod common;

use std::collections::BTreeMap;

use clodo_operator::crd::conditions as c;
use clodo_operator::crd::*;
use clodo_operator::engine::Outcome;
use clodo_operator::engine::plan::{Step, UploadMode};
use common::service_double::{Mode, ServiceDouble};
use common::*;

fn with_tests(w: &mut World, double: &ServiceDouble) {
    w.manifests.services[0].spec.body.production_tests = Some(ProductionTestsSpec {
        base_url: Some(double.url()),
        propagation_delay_seconds: 0,
        timeout_seconds: 2,
        health: Some(HealthTest { path: "/health".into(), expect_status: 200, body_contains: Some("ok".into()) }),
        ..Default::default()
    });
}

fn new_code(w: &mut World, tag: &str) {
    w.set_config_map(
        "data-code",
        &[("index.js", &format!("export default {{ fetch() {{ return new Response('{tag}') }} }};"))],
    );
}

fn active(w: &World) -> Vec<(String, f64)> {
    let s = w.emu.script(&w.account, "acme-data-production").expect("script exists");
    let d = s.active_deployment().cloned().expect("a deployment");
    d.versions.iter().map(|v| (v.version_id.clone(), v.percentage)).collect()
}

fn kinds(steps: &[Step]) -> Vec<&'static str> {
    steps.iter().map(|s| s.kind()).collect()
}

fn version(svc: &CloudflareService) -> String {
    svc.status.as_ref().unwrap().worker.as_ref().unwrap().version_id.clone().unwrap()
}

#[tokio::test]
async fn failed_tests_roll_back_once_and_do_not_loop() {
    let double = ServiceDouble::start().await;
    let mut w = World::new(41).await;
    with_tests(&mut w, &double);
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    assert_eq!(cond(&svc, c::READY).status, "True", "{:#?}", svc.status);
    let v1 = version(&svc);

    // v2 breaks the service.
    new_code(&mut w, "v2");
    double.set(Mode::Errors);
    let (r, events) = w.pass(&mut svc).await;
    assert_eq!(r.outcome, Outcome::Done { requeue_after: None });
    let st = svc.status.clone().unwrap();
    assert_eq!(st.phase, Some(Phase::RolledBack));
    let ready = cond(&svc, c::READY);
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "ProductionTestsFailed"));
    assert_eq!(version(&svc), v1, "status reports the restored version");
    assert_eq!(active(&w), vec![(v1.clone(), 100.0)], "the emulator serves v1 again");
    assert_eq!(st.history[0].outcome, "RolledBack");
    assert_eq!(st.history[1].outcome, "Deployed");
    assert!(st.failed_content_hash.is_some());
    assert!(events.iter().any(|e| e.warning && e.reason == "RolledBack"), "{events:?}");
    assert!(w.metrics.render().contains("clodo_rollbacks_total{reason=\"ProductionTestsFailed\"} 1"));

    // Next passes: the failing version is not redeployed.
    for _ in 0..2 {
        w.emu.clear_journal();
        let (r, _) = w.pass(&mut svc).await;
        assert!(kinds(&r.planned).contains(&"HoldBack"), "{:?}", r.planned);
        assert!(w.mutations().is_empty(), "no redeploy loop: {:?}", w.mutations());
        assert_eq!(svc.status.as_ref().unwrap().phase, Some(Phase::RolledBack));
    }

    // A code fix deploys again and clears the failure.
    new_code(&mut w, "v3");
    double.set(Mode::Healthy);
    w.pass(&mut svc).await;
    assert_eq!(cond(&svc, c::READY).status, "True", "{:#?}", svc.status);
    assert!(svc.status.as_ref().unwrap().failed_content_hash.is_none());
    assert_ne!(version(&svc), v1);
}

#[tokio::test]
async fn resync_tests_turn_a_broken_service_not_ready_without_redeploying() {
    let double = ServiceDouble::start().await;
    let mut w = World::new(42).await;
    with_tests(&mut w, &double);
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    assert_eq!(cond(&svc, c::READY).status, "True");
    double.set(Mode::WrongBody);
    w.emu.clear_journal();
    w.pass(&mut svc).await;
    let t = cond(&svc, c::PRODUCTION_TESTS_PASSED);
    assert_eq!((t.status.as_str(), t.reason.as_str()), ("False", "ProductionTestsFailed"));
    assert_eq!(cond(&svc, c::READY).status, "False");
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    double.set(Mode::Healthy);
    w.pass(&mut svc).await;
    assert_eq!(cond(&svc, c::READY).status, "True");
}

fn canary(w: &mut World, steps: Vec<u32>) {
    w.manifests.services[0].spec.body.rollout =
        RolloutSpec { strategy: RolloutStrategy::Canary, canary: Some(CanarySpec { steps, step_interval_seconds: 0 }) };
}

#[tokio::test]
async fn canary_goes_through_every_step_then_promotes() {
    let double = ServiceDouble::start().await;
    let mut w = World::new(43).await;
    with_tests(&mut w, &double);
    canary(&mut w, vec![10, 50]);
    let mut svc = w.svc();
    w.pass(&mut svc).await; // first version: nothing to split with, deployed at 100%
    let v1 = version(&svc);
    new_code(&mut w, "v2");
    w.emu.clear_journal();

    let (r, _) = w.pass(&mut svc).await;
    assert!(matches!(r.outcome, Outcome::Done { requeue_after: Some(_) }), "{:?}", r.outcome);
    assert!(
        r.planned.iter().any(|s| matches!(s, Step::UploadWorker { mode: UploadMode::Canary { percent: 10 }, .. })),
        "{:?}",
        r.planned
    );
    let progress = svc.status.as_ref().unwrap().rollout.clone().expect("canary in progress");
    let v2 = progress.version_id.clone();
    assert_eq!(active(&w), vec![(v2.clone(), 10.0), (v1.clone(), 90.0)]);
    assert_eq!(svc.status.as_ref().unwrap().phase, Some(Phase::Deploying));
    assert_eq!(cond(&svc, c::READY).reason, "CanaryInProgress");
    assert_eq!(
        double.overrides(),
        vec![format!("acme-data-production=\"{v2}\"")],
        "smoke test pinned to the new version"
    );

    let (r, _) = w.pass(&mut svc).await;
    assert_eq!(r.planned, vec![Step::AdvanceCanary { version: v2.clone(), percent: 50 }]);
    assert_eq!(active(&w), vec![(v2.clone(), 50.0), (v1.clone(), 50.0)]);
    let (r, _) = w.pass(&mut svc).await;
    assert_eq!(r.planned, vec![Step::PromoteCanary { version: v2.clone() }]);
    assert_eq!(active(&w), vec![(v2.clone(), 100.0)]);
    assert!(svc.status.as_ref().unwrap().rollout.is_none());
    assert_eq!(cond(&svc, c::READY).status, "True", "{:#?}", svc.status);
    assert_eq!(version(&svc), v2);

    // The journal shows one version upload and the deployments at 0%, 10%, 50% and 100%, in order.
    let posts: Vec<String> = w
        .emu
        .journal()
        .into_iter()
        .filter(|e| e.method == "POST")
        .map(|e| e.path.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(posts, vec!["versions", "deployments", "deployments", "deployments", "deployments"], "{posts:?}");
}

#[tokio::test]
async fn canary_failure_at_the_second_step_restores_the_previous_version() {
    let double = ServiceDouble::start().await;
    let mut w = World::new(44).await;
    with_tests(&mut w, &double);
    canary(&mut w, vec![10, 50]);
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    let v1 = version(&svc);
    new_code(&mut w, "v2");
    w.pass(&mut svc).await;
    assert!(svc.status.as_ref().unwrap().rollout.is_some());
    double.set(Mode::Errors);
    let (_, events) = w.pass(&mut svc).await;
    assert_eq!(active(&w), vec![(v1.clone(), 100.0)]);
    let st = svc.status.clone().unwrap();
    assert_eq!(st.phase, Some(Phase::RolledBack));
    assert!(st.rollout.is_none());
    assert_eq!(st.history[0].outcome, "CanaryAborted");
    assert!(events.iter().any(|e| e.warning && e.note.contains("aborted at 50%")), "{events:?}");
    // Not retried while nothing changes.
    double.set(Mode::Healthy);
    w.emu.clear_journal();
    w.pass(&mut svc).await;
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
}

#[tokio::test]
async fn manual_rollback_pins_a_version_until_the_annotation_goes() {
    let mut w = World::new(45).await;
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    let v1 = version(&svc);
    new_code(&mut w, "v2");
    w.pass(&mut svc).await;
    let v2 = version(&svc);
    assert_ne!(v1, v2);

    let annotations = BTreeMap::from([("clodo.dev/rollback-to".to_string(), v1.clone())]);
    w.manifests.services[0].metadata.annotations = Some(annotations.clone());
    svc.metadata.annotations = Some(annotations);
    let (r, events) = w.pass(&mut svc).await;
    assert_eq!(kinds(&r.planned)[..2], ["ManualRollback", "KeepPinned"], "{:?}", r.planned);
    assert_eq!(active(&w), vec![(v1.clone(), 100.0)]);
    assert_eq!(version(&svc), v1);
    assert_eq!(svc.status.as_ref().unwrap().history[0].outcome, "ManualRollback");
    assert!(events.iter().any(|e| e.reason == "RolledBack"), "{events:?}");
    assert_eq!(cond(&svc, c::WORKER_DEPLOYED).reason, "PinnedByAnnotation");
    w.emu.clear_journal();
    let (r, _) = w.pass(&mut svc).await;
    assert_eq!(kinds(&r.planned), ["ManualRollback", "DriftCheck"], "pinned and converged: {:?}", r.planned);
    assert!(w.mutations().is_empty(), "pinned: {:?}", w.mutations());

    // Removing the annotation deploys the spec again.
    w.manifests.services[0].metadata.annotations = None;
    svc.metadata.annotations = None;
    w.pass(&mut svc).await;
    let serving = active(&w);
    assert_eq!(serving.len(), 1);
    assert_ne!(serving[0].0, v1);

    // An unknown version is a clear error.
    let bad =
        BTreeMap::from([("clodo.dev/rollback-to".to_string(), "00000000-0000-0000-0000-000000000000".to_string())]);
    w.manifests.services[0].metadata.annotations = Some(bad.clone());
    svc.metadata.annotations = Some(bad);
    let (r, _) = w.pass(&mut svc).await;
    assert_eq!(r.outcome, Outcome::Terminal);
    assert!(cond(&svc, c::WORKER_DEPLOYED).message.contains("does not have"));
}

/// With a propagation delay the deploy pass only waits; the pass that runs the new version's
/// first tests must still roll a failing release back.
#[tokio::test]
async fn a_release_tested_after_its_propagation_delay_is_still_rolled_back() {
    let double = ServiceDouble::start().await;
    let mut w = World::new(47).await;
    with_tests(&mut w, &double);
    if let Some(t) = w.manifests.services[0].spec.body.production_tests.as_mut() {
        t.propagation_delay_seconds = 1;
    }
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    assert_eq!(svc.status.as_ref().unwrap().phase, Some(Phase::Testing), "waits for propagation");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.pass(&mut svc).await;
    assert_eq!(cond(&svc, c::READY).status, "True", "{:#?}", svc.status);
    let v1 = version(&svc);

    new_code(&mut w, "v2");
    double.set(Mode::Errors);
    w.pass(&mut svc).await;
    assert_eq!(svc.status.as_ref().unwrap().phase, Some(Phase::Testing), "v2 waits for propagation");
    assert_ne!(version(&svc), v1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, events) = w.pass(&mut svc).await;
    let st = svc.status.clone().unwrap();
    assert_eq!(st.phase, Some(Phase::RolledBack), "{st:#?}");
    assert_eq!(version(&svc), v1, "status reports the restored version");
    assert_eq!(active(&w), vec![(v1.clone(), 100.0)], "the emulator serves v1 again");
    assert!(st.failed_content_hash.is_some());
    assert!(events.iter().any(|e| e.warning && e.reason == "RolledBack"), "{events:?}");

    // The held-back release is not retried, and v1 is not rolled back in turn.
    w.emu.clear_journal();
    let (r, _) = w.pass(&mut svc).await;
    assert!(kinds(&r.planned).contains(&"HoldBack"), "{:?}", r.planned);
    assert!(w.mutations().is_empty(), "no redeploy loop: {:?}", w.mutations());
}
