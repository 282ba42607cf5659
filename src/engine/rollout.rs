//! Canary rollouts and manual rollback (DESIGN §6). A canary never blocks a pass: its progress
//! lives in `status.rollout` and each pass does at most one step, then requeues.

use std::collections::BTreeMap;
use std::time::Duration;

use super::desired::Desired;
use super::execute::{record_deploy, short, stop_on_cf_error};
use super::{Engine, Outcome, Pass, PassEvent, ops};
use crate::cloudflare::CloudflareClient;
use crate::crd::conditions::{self as c, reason};
use crate::crd::{Phase, RolloutProgress, RolloutStrategy};
use k8s_openapi::jiff::Timestamp;

use super::steps::Step;

/// Request header that pins a request to a Worker version (the smoke test at 0%).
pub const VERSION_OVERRIDE_HEADER: &str = "Cloudflare-Workers-Version-Overrides";

/// Result of running the production tests at one canary step.
enum StepTests {
    Passed,
    Failed(String),
    /// No tests declared, or no runtime to run them on: the canary advances on time alone.
    NotRun,
}

/// Run the declared production tests, optionally pinned to a version.
async fn run_tests(engine: &Engine, d: &Desired, pass: &mut Pass<'_>, pin: Option<&str>) -> StepTests {
    let Some(spec) = &d.tests else { return StepTests::NotRun };
    if engine.config.no_local_runtime {
        return StepTests::NotRun;
    }
    let Some(mut target) = engine.test_target(d, &pass.status) else {
        return StepTests::Failed("no productionTests.baseUrl and the service has no URL".into());
    };
    if let Some(v) = pin {
        target.headers.push((VERSION_OVERRIDE_HEADER.to_string(), format!("{}=\"{v}\"", d.script_name)));
    }
    let (mut run, mut failures) = engine.run_production_tests(spec, &target, &pass.now).await;
    let version = pin.map(str::to_string).or_else(|| pass.status.worker.as_ref().and_then(|w| w.version_id.clone()));
    crate::prodtest::regression::apply(spec, version.as_deref(), &mut pass.status, &mut run, &mut failures);
    pass.status.last_test_run = Some(run);
    if failures.is_empty() { StepTests::Passed } else { StepTests::Failed(failures.join("; ")) }
}

fn canary_steps(d: &Desired) -> (Vec<u32>, Duration) {
    match &d.rollout.canary {
        Some(c) => (c.steps.clone(), Duration::from_secs(u64::from(c.step_interval_seconds))),
        None => (vec![10, 50], Duration::from_secs(60)),
    }
}

/// The share of traffic a new canary gets after its smoke test at 0%.
pub(crate) fn first_step(d: &Desired) -> u32 {
    canary_steps(d).0.first().copied().unwrap_or(10)
}

/// Whether a new version should go out as a canary (there is a previous version to split with).
pub fn wants_canary(d: &Desired, previous: Option<&str>) -> bool {
    d.rollout.strategy == RolloutStrategy::Canary && previous.is_some()
}

/// Conditions while a canary is in flight.
pub(crate) fn report_canary(pass: &mut Pass<'_>, r: &RolloutProgress) {
    let msg = format!(
        "canary: version {} serves {}% next to {}",
        short(&r.version_id),
        r.percentage,
        short(&r.previous_version_id)
    );
    pass.report.ok(c::WORKER_DEPLOYED, reason::CANARY_IN_PROGRESS, msg.clone());
    pass.report.fail(c::READY, reason::CANARY_IN_PROGRESS, msg);
}

/// Abort: previous version back at 100%, failing content remembered.
async fn abort(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    pass: &mut Pass<'_>,
    r: &RolloutProgress,
    why: &str,
) -> (Phase, Outcome) {
    if let Err(e) = ops::deploy_versions(
        client,
        &d.account_id,
        &d.script_name,
        &[(r.previous_version_id.clone(), 100)],
        &format!("canary aborted: {why}"),
    )
    .await
    {
        return stop_on_cf_error(pass, c::WORKER_DEPLOYED, "rolling the canary back", e);
    }
    pass.status.rollout = None;
    pass.status.failed_content_hash = Some(r.content_hash.clone());
    pass.status.history.insert(
        0,
        crate::crd::HistoryEntry {
            version_id: r.version_id.clone(),
            content_hash: r.content_hash.clone(),
            at: pass.now.clone(),
            outcome: "CanaryAborted".into(),
        },
    );
    pass.status.history.truncate(super::execute::HISTORY_LIMIT);
    engine.metrics.rollbacks_total.with_label_values(&["CanaryFailed"]).inc();
    pass.emit(PassEvent::warning(
        reason::ROLLED_BACK,
        "Canary",
        format!(
            "canary of version {} aborted at {}%: {why}; version {} serves 100%",
            short(&r.version_id),
            r.percentage,
            short(&r.previous_version_id)
        ),
    ));
    pass.report.fail(c::PRODUCTION_TESTS_PASSED, reason::PRODUCTION_TESTS_FAILED, why.to_string());
    pass.report.fail(
        c::WORKER_DEPLOYED,
        reason::ROLLED_BACK,
        format!("canary of version {} aborted; previous version restored", short(&r.version_id)),
    );
    (Phase::RolledBack, Outcome::Done { requeue_after: None })
}

/// Start a canary for a freshly uploaded content: upload a version (not deployed), smoke-test it
/// at 0% through the version-override header, then deploy the first step.
pub(crate) async fn start(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    db_ids: &BTreeMap<String, String>,
    hash: &str,
    previous: &str,
    pass: &mut Pass<'_>,
) -> Result<Duration, (Phase, Outcome)> {
    let upload = ops::worker_upload(d, db_ids, hash, &pass.generated);
    let version = match client.upload_version(&d.account_id, &d.script_name, &upload).await {
        Ok(v) => v.id,
        Err(e) => return Err(stop_on_cf_error(pass, c::WORKER_DEPLOYED, "uploading the canary version", e)),
    };
    let (_, interval) = canary_steps(d);
    let mut progress = RolloutProgress {
        version_id: version.clone(),
        previous_version_id: previous.to_string(),
        content_hash: hash.to_string(),
        step: -1,
        percentage: 0,
        step_started_at: pass.now.clone(),
    };
    // At 0% the version is part of the deployment, so the override header can reach it while no
    // user request does.
    if let Err(e) = ops::deploy_versions(
        client,
        &d.account_id,
        &d.script_name,
        &[(version.clone(), 0), (previous.to_string(), 100)],
        "canary 0% (smoke test)",
    )
    .await
    {
        return Err(stop_on_cf_error(pass, c::WORKER_DEPLOYED, "deploying the canary at 0%", e));
    }
    pass.emit(PassEvent::normal(
        "CanaryStarted",
        "Canary",
        format!("uploaded version {} for a canary; smoke-testing at 0%", short(&version)),
    ));
    if let StepTests::Failed(why) = run_tests(engine, d, pass, Some(&version)).await {
        return Err(abort(engine, client, d, pass, &progress, &format!("smoke test at 0% failed: {why}")).await);
    }
    let first = first_step(d);
    if let Err(e) = ops::deploy_versions(
        client,
        &d.account_id,
        &d.script_name,
        &[(version.clone(), first), (previous.to_string(), 100 - first)],
        &format!("canary {first}%"),
    )
    .await
    {
        return Err(stop_on_cf_error(pass, c::WORKER_DEPLOYED, "deploying the first canary step", e));
    }
    progress.step = 0;
    progress.percentage = first;
    progress.step_started_at = pass.now.clone();
    engine.metrics.deployments_total.with_label_values(&["Canary"]).inc();
    pass.emit(PassEvent::normal("CanaryStep", "Canary", format!("version {} now serves {first}%", short(&version))));
    if let StepTests::Failed(why) = run_tests(engine, d, pass, None).await {
        return Err(abort(engine, client, d, pass, &progress, &format!("tests at {first}% failed: {why}")).await);
    }
    pass.status.rollout = Some(progress);
    Ok(interval)
}

/// The canary step of this pass, decided from the spec and status alone (no IO): `StopCanary`
/// when the spec changed under it (the pass then goes on), else wait, advance or promote (the
/// pass ends there). `None` without a canary in flight.
pub(crate) fn plan_canary(d: &Desired, st: &crate::crd::CloudflareServiceStatus, now: Timestamp) -> Option<Step> {
    let r = st.rollout.as_ref()?;
    let ids: BTreeMap<String, String> = st.databases.iter().map(|x| (x.binding.clone(), x.id.clone())).collect();
    let version = r.version_id.clone();
    if d.content_hash(&ids) != r.content_hash
        || d.rollout.strategy != RolloutStrategy::Canary
        || d.rollback_to.is_some()
    {
        return Some(Step::StopCanary { version });
    }
    let (steps, interval) = canary_steps(d);
    let elapsed = now.duration_since(r.step_started_at.0);
    let elapsed = Duration::from_millis(elapsed.as_millis().max(0) as u64);
    if elapsed < interval {
        return Some(Step::WaitCanary { version, percent: r.percentage, left: interval - elapsed });
    }
    let next = usize::try_from(r.step + 1).unwrap_or(0);
    Some(match steps.get(next) {
        Some(&percent) => Step::AdvanceCanary { version, percent },
        None => Step::PromoteCanary { version },
    })
}

/// `StopCanary`: the spec or code changed mid-canary: restore the previous version, then the
/// pass starts over.
pub(crate) async fn stop(
    client: &CloudflareClient,
    d: &Desired,
    r: &RolloutProgress,
    pass: &mut Pass<'_>,
) -> Result<(), (Phase, Outcome)> {
    if let Err(e) = ops::deploy_versions(
        client,
        &d.account_id,
        &d.script_name,
        &[(r.previous_version_id.clone(), 100)],
        "canary superseded by a new spec",
    )
    .await
    {
        return Err(stop_on_cf_error(pass, c::WORKER_DEPLOYED, "stopping the superseded canary", e));
    }
    pass.status.rollout = None;
    pass.emit(PassEvent::normal(
        "CanarySuperseded",
        "Canary",
        format!("canary of version {} superseded by a spec change", short(&r.version_id)),
    ));
    Ok(())
}

/// A pass that continues a canary keeps the conditions of the pass that started it.
fn continue_report(pass: &mut Pass<'_>) {
    pass.report = super::status::report_from_conditions(&pass.status.conditions);
    pass.report.ok(c::CREDENTIALS_VALID, reason::TOKEN_VALID, "API token is active");
}

/// `WaitCanary`: the current step is not over; requeue for the time left.
pub(crate) fn wait(pass: &mut Pass<'_>, r: &RolloutProgress, left: Duration) -> (Phase, Outcome) {
    continue_report(pass);
    report_canary(pass, r);
    (Phase::Deploying, Outcome::Done { requeue_after: Some(left) })
}

/// `AdvanceCanary`: the next share of traffic, then the tests at it.
pub(crate) async fn advance(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    r: &RolloutProgress,
    p: u32,
    pass: &mut Pass<'_>,
) -> (Phase, Outcome) {
    continue_report(pass);
    let (_, interval) = canary_steps(d);
    if let Err(e) = ops::deploy_versions(
        client,
        &d.account_id,
        &d.script_name,
        &[(r.version_id.clone(), p), (r.previous_version_id.clone(), 100 - p)],
        &format!("canary {p}%"),
    )
    .await
    {
        return stop_on_cf_error(pass, c::WORKER_DEPLOYED, "deploying the next canary step", e);
    }
    let next = usize::try_from(r.step + 1).unwrap_or(0) as i32;
    let progress = RolloutProgress { step: next, percentage: p, step_started_at: pass.now.clone(), ..r.clone() };
    pass.emit(PassEvent::normal("CanaryStep", "Canary", format!("version {} now serves {p}%", short(&r.version_id))));
    if let StepTests::Failed(why) = run_tests(engine, d, pass, None).await {
        return abort(engine, client, d, pass, &progress, &format!("tests at {p}% failed: {why}")).await;
    }
    report_canary(pass, &progress);
    pass.status.rollout = Some(progress);
    (Phase::Deploying, Outcome::Done { requeue_after: Some(interval) })
}

/// `PromoteCanary`: the last step is done; deploy the canary at 100% and test it.
pub(crate) async fn promote(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    r: &RolloutProgress,
    pass: &mut Pass<'_>,
) -> (Phase, Outcome) {
    continue_report(pass);
    if let Err(e) = ops::deploy_versions(
        client,
        &d.account_id,
        &d.script_name,
        &[(r.version_id.clone(), 100)],
        "canary promoted to 100%",
    )
    .await
    {
        return stop_on_cf_error(pass, c::WORKER_DEPLOYED, "promoting the canary", e);
    }
    let full = RolloutProgress { percentage: 100, ..r.clone() };
    if let StepTests::Failed(why) = run_tests(engine, d, pass, None).await {
        return abort(engine, client, d, pass, &full, &format!("tests at 100% failed: {why}")).await;
    }
    pass.status.rollout = None;
    record_deploy(pass, d, &r.version_id, Some(r.previous_version_id.clone()), &r.content_hash, "Deployed");
    pass.status.failed_content_hash = None;
    pass.emit(PassEvent::normal(
        "CanaryPromoted",
        "Canary",
        format!("version {} promoted to 100%", short(&r.version_id)),
    ));
    pass.report.ok(
        c::WORKER_DEPLOYED,
        reason::DEPLOYED,
        format!("worker {} serves version {}", d.script_name, r.version_id),
    );
    report_promoted_tests(engine, d, pass);
    let phase = if pass.report.first_not_ok().is_none() { Phase::Ready } else { Phase::Testing };
    (phase, Outcome::Done { requeue_after: None })
}

fn report_promoted_tests(engine: &Engine, d: &Desired, pass: &mut Pass<'_>) {
    match &d.tests {
        None => pass.report.ok(c::PRODUCTION_TESTS_PASSED, reason::NO_TESTS, "no production tests declared"),
        Some(_) if engine.config.no_local_runtime => pass.report.unknown(
            c::PRODUCTION_TESTS_PASSED,
            reason::NO_LOCAL_RUNTIME,
            "no local Workers runtime to test the canary",
        ),
        Some(_) => {
            pass.report.ok(c::PRODUCTION_TESTS_PASSED, reason::TESTS_PASSED, "canary passed its tests at every step")
        }
    }
}

/// Honour `clodo.dev/rollback-to`: make the named version serve 100% (once), and hold it there
/// while the annotation stays.
pub(crate) async fn manual(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    target: &str,
    pass: &mut Pass<'_>,
) -> Result<(), (Phase, Outcome)> {
    let serving = match ops::active_deployment(client, &d.account_id, &d.script_name).await {
        Ok(dep) => dep.unwrap_or_default(),
        Err(e) => return Err(stop_on_cf_error(pass, c::WORKER_DEPLOYED, "reading the active deployment", e)),
    };
    if serving == vec![(target.to_string(), 100)] {
        return Ok(());
    }
    let version = match client.get_version(&d.account_id, &d.script_name, target).await {
        Ok(v) => v,
        Err(e) if e.is_not_found() => {
            pass.report.fail(
                c::WORKER_DEPLOYED,
                reason::INVALID_SPEC,
                format!(
                    "annotation clodo.dev/rollback-to names version {target}, which worker {} does not have",
                    d.script_name
                ),
            );
            return Err((Phase::Failed, Outcome::Terminal));
        }
        Err(e) => return Err(stop_on_cf_error(pass, c::WORKER_DEPLOYED, "reading the rollback target version", e)),
    };
    if let Err(e) = ops::deploy_versions(
        client,
        &d.account_id,
        &d.script_name,
        &[(target.to_string(), 100)],
        "manual rollback (clodo.dev/rollback-to)",
    )
    .await
    {
        return Err(stop_on_cf_error(pass, c::WORKER_DEPLOYED, "rolling back to the annotated version", e));
    }
    let previous = serving.iter().max_by_key(|(_, p)| *p).map(|(v, _)| v.clone());
    let hash = version.annotations.and_then(|a| a.tag).unwrap_or_default();
    pass.status.rollout = None;
    record_deploy(pass, d, target, previous, &hash, "ManualRollback");
    engine.metrics.rollbacks_total.with_label_values(&["Manual"]).inc();
    pass.emit(PassEvent::warning(
        reason::ROLLED_BACK,
        "ManualRollback",
        format!("rolled {} back to version {} (annotation clodo.dev/rollback-to)", d.script_name, short(target)),
    ));
    Ok(())
}
