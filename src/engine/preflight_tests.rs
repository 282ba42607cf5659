//! The pass-level steps and the upload decision, decided without IO.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::crd::conditions::reason;
use crate::crd::{CanarySpec, RolloutProgress, RolloutStrategy, WorkerStatus};
use crate::engine::desired::build;
use crate::engine::fixtures::inputs;
use crate::engine::plan::{ObservedScript, Step};
use crate::engine::status::{self, Report};

fn desired() -> Desired {
    build(&inputs()).unwrap()
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

/// Status of a pass that converged on `d`, serving `v1`.
fn converged(d: &Desired) -> CloudflareServiceStatus {
    let mut st = CloudflareServiceStatus {
        input_hash: Some(d.input_digest.clone()),
        observed_generation: d.generation,
        worker: Some(WorkerStatus { version_id: Some("v1".into()), ..Default::default() }),
        ..Default::default()
    };
    let mut r = Report::new();
    r.ok(c::READY, reason::RECONCILED, "ready");
    status::apply(&mut st, &r, crate::crd::Phase::Ready, d.generation, &Time(at(0)));
    st
}

fn canary(d: &mut Desired) {
    d.rollout.strategy = RolloutStrategy::Canary;
    d.rollout.canary = Some(CanarySpec { steps: vec![10, 50], step_interval_seconds: 60 });
}

fn in_flight(d: &Desired, step: i32, percentage: u32) -> RolloutProgress {
    RolloutProgress {
        version_id: "v2".into(),
        previous_version_id: "v1".into(),
        content_hash: d.content_hash(&BTreeMap::new()),
        step,
        percentage,
        step_started_at: Time(at(0)),
    }
}

#[test]
fn converged_pass_is_a_drift_check_and_an_untrusted_token_is_verified_first() {
    let d = desired();
    let st = converged(&d);
    assert_eq!(preflight(&d, &st, true, at(5)), vec![Step::DriftCheck { version: "v1".into() }]);
    assert_eq!(preflight(&d, &st, false, at(5)), vec![Step::VerifyToken, Step::DriftCheck { version: "v1".into() }]);
    // New inputs, or a dry run: no drift check, the resources are planned.
    assert!(preflight(&d, &CloudflareServiceStatus::default(), true, at(5)).is_empty());
    let mut dry = d.clone();
    dry.dry_run = true;
    assert!(preflight(&dry, &st, true, at(5)).is_empty());
}

#[test]
fn a_canary_in_flight_waits_advances_or_promotes_and_nothing_else_is_planned() {
    let mut d = desired();
    canary(&mut d);
    let mut st = converged(&d);
    st.rollout = Some(in_flight(&d, 0, 10));
    let wait = preflight(&d, &st, true, at(20));
    assert_eq!(wait, vec![Step::WaitCanary { version: "v2".into(), percent: 10, left: Duration::from_secs(40) }]);
    assert_eq!(preflight(&d, &st, true, at(60)), vec![Step::AdvanceCanary { version: "v2".into(), percent: 50 }]);
    st.rollout = Some(in_flight(&d, 1, 50));
    assert_eq!(preflight(&d, &st, true, at(61)), vec![Step::PromoteCanary { version: "v2".into() }]);
}

#[test]
fn a_spec_change_stops_the_canary_and_the_pass_goes_on() {
    let mut d = desired();
    canary(&mut d);
    let mut st = converged(&d);
    st.rollout = Some(in_flight(&d, 0, 10));
    d.rollback_to = Some("v0".into());
    d.input_digest = "sha256:new-inputs".into();
    assert_eq!(
        preflight(&d, &st, true, at(5)),
        vec![Step::StopCanary { version: "v2".into() }, Step::ManualRollback { to: "v0".into() }]
    );
}

fn observed(serving: &str) -> Observed {
    let d = desired();
    Observed {
        script: Some(ObservedScript {
            tags: vec![d.owner_tag.clone()],
            deployed_version: Some(serving.into()),
            deployed_hash: Some("sha256:old".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn upload_step(p: &Plan) -> &Step {
    p.steps.iter().find(|s| s.kind() != "EnableWorkersDev" && s.kind() != "CreateDatabase").unwrap()
}

#[test]
fn the_upload_is_pinned_held_back_a_canary_or_full() {
    let mut i = inputs();
    i.migrations.clear();
    let mut d = build(&i).unwrap();
    d.databases.clear();
    d.routes.clear();
    d.custom_domains.clear();
    let o = observed("v1");
    let st = CloudflareServiceStatus::default();
    let full = resources(&d, &o, &st).unwrap();
    assert!(matches!(upload_step(&full), Step::UploadWorker { mode: UploadMode::Full, .. }), "{full:?}");

    let held = CloudflareServiceStatus { failed_content_hash: full.content_hash.clone(), ..Default::default() };
    let p = resources(&d, &o, &held).unwrap();
    assert_eq!(upload_step(&p), &Step::HoldBack { content_hash: full.content_hash.clone().unwrap() });

    let mut c = d.clone();
    canary(&mut c);
    let p = resources(&c, &o, &st).unwrap();
    assert!(matches!(upload_step(&p), Step::UploadWorker { mode: UploadMode::Canary { percent: 10 }, .. }));
    // A first version has nothing to split with.
    let p = resources(&c, &Observed::default(), &st).unwrap();
    assert!(matches!(upload_step(&p), Step::UploadWorker { mode: UploadMode::Full, .. }));

    let mut pinned = d.clone();
    pinned.rollback_to = Some("v0".into());
    let p = resources(&pinned, &o, &held).unwrap();
    assert_eq!(upload_step(&p), &Step::KeepPinned { version: "v0".into() });
}
