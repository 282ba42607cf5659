//! The IO half of a pass: walk the plan. The pass-level steps of [`preflight::preflight`]
//! first (token, canary in flight, manual rollback, drift check), then observe, the resource
//! steps of [`preflight::resources`], production tests and status. Every step run is recorded
//! in `Pass::executed`; every step planned in `Pass::planned`.

use super::desired::Desired;
use super::error::PassError;
use super::execute_steps::{self, Deploy};
use super::plan::{PlanError, Step};
use super::{Engine, Outcome, Pass, PassEvent, cf_reason, observe, ops, preflight, rollout, status, verify};
use crate::cloudflare::{CloudflareClient, CloudflareError, Priority};
use crate::crd::conditions::{self as c, reason};
use crate::crd::{HistoryEntry, Phase, WorkerStatus};

/// Most entries kept in status.history.
pub const HISTORY_LIMIT: usize = 10;

/// Ends a pass: its phase and outcome.
type Stop = (Phase, Outcome);

/// Fail a condition from a Cloudflare error; returns the phase and outcome to stop with.
pub(crate) fn stop_on_cf_error(
    pass: &mut Pass<'_>,
    cond: &'static str,
    what: &str,
    e: CloudflareError,
) -> (Phase, Outcome) {
    let message = format!("{what}: {e}");
    let retryable = e.is_retryable();
    if e.is_auth_error() {
        pass.token_rejected = true;
        pass.report.fail(c::CREDENTIALS_VALID, reason::TOKEN_INVALID, message);
        return (Phase::Failed, Outcome::Terminal);
    }
    pass.report.fail(cond, cf_reason(&e), message);
    if retryable {
        (status::phase_for_failure(cond, false), Outcome::Retry(PassError::cloudflare(cond, what, e)))
    } else {
        (Phase::Failed, Outcome::Terminal)
    }
}

/// Run the Cloudflare side of a pass.
pub(crate) async fn run(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    customer_checked: bool,
    pass: &mut Pass<'_>,
) -> Stop {
    let token_trusted = customer_checked || engine.recently_verified(client);
    let steps = preflight::preflight(d, &pass.status, token_trusted, pass.now.0);
    pass.planned = steps.clone();
    if let Some(stop) = run_preflight(engine, client, d, &steps, pass).await {
        return stop;
    }

    let observed = match observe::observe(client, d, &pass.status).await {
        Ok(o) => o,
        Err((cond, what, e)) => return stop_on_cf_error(pass, cond, &what, e),
    };
    let plan = match preflight::resources(d, &observed, &pass.status) {
        Ok(p) => p,
        Err(e) => return plan_failed(pass, e),
    };
    pass.planned.extend(plan.steps.iter().cloned());
    if d.dry_run {
        return dry_run(d, pass);
    }
    let deploy = execute_steps::execute(engine, client, d, &observed, &plan, pass).await;
    match deploy {
        Ok(deploy) => after_resources(engine, client, d, deploy, pass).await,
        Err(stop) => stop,
    }
}

/// Run the pass-level steps. `Some` ends the pass there. A dry run runs only the reads and
/// stops where the pass would stop.
async fn run_preflight(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    steps: &[Step],
    pass: &mut Pass<'_>,
) -> Option<Stop> {
    let mut rest = steps;
    if let Some((Step::VerifyToken, tail)) = steps.split_first() {
        pass.executed.push(Step::VerifyToken);
        if let Err(stop) = verify_token(engine, client, d, pass).await {
            return Some(stop);
        }
        rest = tail;
    }
    pass.report.ok(c::CREDENTIALS_VALID, reason::TOKEN_VALID, "API token is active");
    for step in rest {
        let ends = matches!(step, Step::WaitCanary { .. } | Step::AdvanceCanary { .. } | Step::PromoteCanary { .. });
        if d.dry_run && !step.is_read() {
            if ends {
                return Some(dry_run(d, pass));
            }
            continue;
        }
        if let Some(stop) = run_pass_step(engine, client, d, step, pass).await {
            return Some(stop);
        }
    }
    None
}

/// One pass-level step (recorded as run). `Some` ends the pass.
async fn run_pass_step(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    step: &Step,
    pass: &mut Pass<'_>,
) -> Option<Stop> {
    if let Step::DriftCheck { .. } = step {
        return drift_check(engine, client, d, pass).await;
    }
    pass.executed.push(step.clone());
    if let Step::ManualRollback { to } = step {
        return rollout::manual(engine, client, d, to, pass).await.err();
    }
    // The canary steps act on the canary in status (the plan saw it there).
    let r = pass.status.rollout.clone()?;
    match step {
        Step::StopCanary { .. } => rollout::stop(client, d, &r, pass).await.err(),
        Step::WaitCanary { left, .. } => Some(rollout::wait(pass, &r, *left)),
        Step::AdvanceCanary { percent, .. } => Some(rollout::advance(engine, client, d, &r, *percent, pass).await),
        Step::PromoteCanary { .. } => Some(rollout::promote(engine, client, d, &r, pass).await),
        _ => None,
    }
}

/// `VerifyToken`: ask Cloudflare whether the token is active.
async fn verify_token(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    pass: &mut Pass<'_>,
) -> Result<(), Stop> {
    match ops::verify_token(client, &d.account_id).await {
        Ok(v) if v.active => {
            engine.mark_verified(client, true);
            Ok(())
        }
        Ok(v) => {
            engine.mark_verified(client, false);
            pass.report.fail(c::CREDENTIALS_VALID, reason::TOKEN_INVALID, format!("API token status is {}", v.status));
            Err((Phase::Failed, Outcome::Terminal))
        }
        Err(e) => Err(stop_on_cf_error(pass, c::CREDENTIALS_VALID, "verifying the API token", e)),
    }
}

/// `DriftCheck`: one read tells whether anything drifted (none when one just did). Still
/// serving: the pass ends with the tests of the serving version. Drifted: `None`, reconcile.
async fn drift_check(engine: &Engine, client: &CloudflareClient, d: &Desired, pass: &mut Pass<'_>) -> Option<Stop> {
    let version = pass.status.worker.as_ref().and_then(|w| w.version_id.clone()).unwrap_or_default();
    pass.executed.push(Step::DriftCheck { version: version.clone() });
    let expected = vec![(version.clone(), 100)];
    let serving = if engine.recently_checked(d, &version) {
        Ok(Some(expected.clone()))
    } else {
        // The one read of a quiet resync goes at resync priority: it never delays a new or
        // changed service's requests on the same token. A repair after drift is change work.
        let resync = client.with_priority(Priority::Resync);
        let read = ops::active_deployment(&resync, &d.account_id, &d.script_name).await;
        if matches!(&read, Ok(Some(dep)) if *dep == expected) {
            engine.mark_checked(d, &version);
        }
        read
    };
    match serving {
        Ok(Some(dep)) if dep == expected => {
            let keep = pass.report.clone();
            pass.report = status::report_from_conditions(&pass.status.conditions);
            for t in [c::CREDENTIALS_VALID, c::CONFIG_VALID, c::SECURITY_VALIDATED] {
                if let Some(x) = keep.get(t) {
                    pass.report.set(x.clone());
                }
            }
            Some(verify::after_deploy(engine, client, d, pass, false).await)
        }
        Ok(_) => {
            pass.emit(PassEvent::warning(
                "DriftDetected",
                "DriftCheck",
                format!("worker {} no longer serves version {version} at 100%; reconciling", d.script_name),
            ));
            None
        }
        Err(e) => Some(stop_on_cf_error(pass, c::WORKER_DEPLOYED, "checking the active deployment", e)),
    }
}

/// No plan can be made: report why.
fn plan_failed(pass: &mut Pass<'_>, e: PlanError) -> Stop {
    match e {
        PlanError::Conflict { on, message } => pass.report.fail(on, reason::CONFLICT, message),
        PlanError::Checksum { binding, source } => {
            pass.report.ok(c::DATABASES_READY, reason::DATABASES_READY, "databases exist");
            pass.report.fail(c::MIGRATIONS_APPLIED, reason::CHECKSUM_MISMATCH, format!("binding {binding}: {source}"));
        }
    }
    (Phase::Failed, Outcome::Terminal)
}

/// A dry run ends here: the whole plan goes to status.plan, nothing more is done.
fn dry_run(d: &Desired, pass: &mut Pass<'_>) -> Stop {
    pass.status.plan = pass.planned.iter().map(|s| s.describe(d)).collect();
    let n = pass.planned.iter().filter(|s| s.is_change()).count();
    pass.report.fail(
        c::READY,
        reason::DRY_RUN,
        format!("dry run: {n} change(s) planned, nothing applied (see status.plan)"),
    );
    pass.emit(PassEvent::normal(reason::DRY_RUN, "Plan", format!("dry run planned {n} change(s)")));
    (Phase::Pending, Outcome::Done { requeue_after: None })
}

/// After the resource steps: tests and verdict, per what happened to the Worker.
async fn after_resources(
    engine: &Engine,
    client: &CloudflareClient,
    d: &Desired,
    deploy: Deploy,
    pass: &mut Pass<'_>,
) -> Stop {
    match deploy {
        Deploy::HeldBack => {
            pass.report.fail(
                c::WORKER_DEPLOYED,
                reason::ROLLED_BACK,
                "this spec and code failed production tests and were rolled back; change the spec or code to deploy again",
            );
            let (_, outcome) = verify::after_deploy(engine, client, d, pass, false).await;
            (Phase::RolledBack, outcome)
        }
        Deploy::Canary(wait) => {
            if let Some(r) = pass.status.rollout.clone() {
                rollout::report_canary(pass, &r);
            }
            pass.status.input_hash = Some(d.input_digest.clone());
            (Phase::Deploying, Outcome::Done { requeue_after: Some(wait) })
        }
        Deploy::Pinned => {
            let v = pass.status.worker.as_ref().and_then(|w| w.version_id.clone()).unwrap_or_default();
            pass.report.ok(
                c::WORKER_DEPLOYED,
                "PinnedByAnnotation",
                format!(
                    "pinned to version {v} by annotation clodo.dev/rollback-to; remove it to deploy the spec again"
                ),
            );
            verify::after_deploy(engine, client, d, pass, false).await
        }
        Deploy::New | Deploy::Unchanged => {
            // A release still waiting for propagation when its deploy pass ended is tested by a
            // later pass: that first test run decides on rollback as if it were the deploy's.
            let fresh = deploy == Deploy::New || awaits_first_test(&pass.status);
            let done = verify::after_deploy(engine, client, d, pass, fresh).await;
            // An upload deploys its version at 100%: the echo of this pass needs no drift check.
            if fresh
                && done.0 == Phase::Ready
                && let Some(v) = pass.status.worker.as_ref().and_then(|w| w.version_id.as_deref())
            {
                engine.mark_checked(d, v);
            }
            done
        }
    }
}

/// Whether the serving version was deployed after the last production test run started: its
/// first test run is still to come. (With no run at all there is no tested release to go back
/// to, so nothing is treated as fresh.)
fn awaits_first_test(st: &crate::crd::CloudflareServiceStatus) -> bool {
    let Some(deployed) = st.worker.as_ref().and_then(|w| w.deployed_at.as_ref()) else { return false };
    match st.last_test_run.as_ref().and_then(|r| r.started_at.as_ref()) {
        Some(started) => started.0 < deployed.0,
        None => false,
    }
}

/// First 8 characters of a version id.
pub fn short(version: &str) -> String {
    version.chars().take(8).collect()
}

/// Record a newly serving version in status.worker and status.history.
pub(crate) fn record_deploy(
    pass: &mut Pass<'_>,
    d: &Desired,
    version: &str,
    previous: Option<String>,
    hash: &str,
    outcome: &str,
) {
    pass.status.worker = Some(WorkerStatus {
        script_name: d.script_name.clone(),
        version_id: Some(version.to_string()),
        short_version: Some(short(version)),
        previous_version_id: previous.filter(|p| p != version),
        content_hash: Some(hash.to_string()),
        deployed_at: Some(pass.now.clone()),
    });
    pass.status.history.insert(
        0,
        HistoryEntry {
            version_id: version.to_string(),
            content_hash: hash.to_string(),
            at: pass.now.clone(),
            outcome: outcome.to_string(),
        },
    );
    pass.status.history.truncate(HISTORY_LIMIT);
}
