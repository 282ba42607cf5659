//! Pure: the whole plan of a CloudflareService pass. [`preflight`] decides the pass-level steps
//! from the spec and status (token check, canary in flight, manual rollback, drift check);
//! [`resources`] turns the observed Cloudflare state into resource steps, with the Worker's
//! upload decided there too (full, canary, pinned or held back). No IO: `clodo-operator plan`,
//! a dry run (`status.plan`) and `deploy` list the same steps.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use super::desired::Desired;
use super::plan::{self, Observed, Plan, PlanError};
use super::steps::{Step, UploadMode, UploadReason};
use crate::crd::conditions as c;
use crate::crd::{AppliedMigration, CloudflareServiceStatus};

/// Whether the last pass converged on exactly these inputs, so a drift check is enough.
/// `canary_done`: no canary is in flight (or this pass stops it first).
fn converged_on(d: &Desired, st: &CloudflareServiceStatus, canary_done: bool) -> bool {
    st.input_hash.as_deref() == Some(d.input_digest.as_str())
        && st.observed_generation == d.generation
        && c::is_true(&st.conditions, c::READY)
        && st.worker.as_ref().is_some_and(|w| w.version_id.is_some())
        && canary_done
        && !d.dry_run
}

/// The pass-level steps, in order. `token_trusted`: a Customer status or a recent check vouches
/// for the token. A canary step other than `StopCanary` ends the plan: that pass does nothing else.
pub fn preflight(d: &Desired, st: &CloudflareServiceStatus, token_trusted: bool, now: Timestamp) -> Vec<Step> {
    let mut steps = Vec::new();
    if !token_trusted {
        steps.push(Step::VerifyToken);
    }
    let canary = super::rollout::plan_canary(d, st, now);
    let stopping = matches!(canary, Some(Step::StopCanary { .. }));
    if let Some(step) = canary {
        steps.push(step);
        if !stopping {
            return steps;
        }
    }
    if let Some(to) = &d.rollback_to {
        steps.push(Step::ManualRollback { to: to.clone() });
    }
    if converged_on(d, st, st.rollout.is_none() || stopping) {
        let version = st.worker.as_ref().and_then(|w| w.version_id.clone()).unwrap_or_default();
        steps.push(Step::DriftCheck { version });
    }
    steps
}

/// The resource steps for what was observed, with the upload decided: pinned by
/// `clodo.dev/rollback-to`, held back after failed tests, a canary, or a full deploy.
pub fn resources(d: &Desired, o: &Observed, st: &CloudflareServiceStatus) -> Result<Plan, PlanError> {
    let recorded: BTreeMap<String, Vec<AppliedMigration>> =
        st.databases.iter().map(|db| (db.binding.clone(), db.applied_migrations.clone())).collect();
    let mut p = plan::plan(d, o, &recorded)?;
    let hash = p.content_hash.clone();
    for step in &mut p.steps {
        if let Step::UploadWorker { reason, .. } = step {
            *step = upload(d, o, st, hash.as_deref(), *reason);
        }
    }
    Ok(p)
}

fn upload(d: &Desired, o: &Observed, st: &CloudflareServiceStatus, hash: Option<&str>, reason: UploadReason) -> Step {
    if let Some(version) = &d.rollback_to {
        return Step::KeepPinned { version: version.clone() };
    }
    // A hash is unknown only while a database is yet to be created: new content, never held back.
    if let Some(h) = hash
        && st.failed_content_hash.as_deref() == Some(h)
    {
        return Step::HoldBack { content_hash: h.to_string() };
    }
    let serving = o.script.as_ref().and_then(|s| s.deployed_version.as_deref());
    let mode = if super::rollout::wants_canary(d, serving) {
        UploadMode::Canary { percent: super::rollout::first_step(d) }
    } else {
        UploadMode::Full
    };
    Step::UploadWorker { reason, mode }
}

#[cfg(test)]
#[path = "preflight_tests.rs"]
mod tests;
