//! The end of a Portfolio pass, pure: the aggregate status, its conditions and the Events of
//! what changed.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::PortfolioPass;
use super::execute::Executed;
use super::observe::Observed;
use super::plan::{Child, ChildState, Converge, DependencyError, Wave, child_spec};
use crate::crd::conditions::{self as c, CondSpec, reason};
use crate::crd::{Phase, Portfolio, PortfolioServiceStatus, PortfolioStatus};
use crate::engine::PassEvent;

/// The pass result when `dependsOn` is invalid: the services of the last good pass stay, the
/// conditions name the problem, one Warning when it first appears.
pub fn invalid(p: &Portfolio, prev: &PortfolioStatus, err: &DependencyError, now: &Time) -> PortfolioPass {
    let msg = err.to_string();
    let conds = vec![
        CondSpec::fail(c::READY, reason::INVALID_DEPENDENCIES, msg.clone()),
        CondSpec::fail(
            c::PROGRESSING,
            reason::INVALID_DEPENDENCIES,
            "nothing is created or changed until dependsOn is fixed",
        ),
        CondSpec::ok(c::DEGRADED, reason::INVALID_DEPENDENCIES, msg.clone()),
    ];
    let status = PortfolioStatus {
        observed_generation: p.metadata.generation,
        conditions: c::merge(&prev.conditions, &conds, p.metadata.generation, now),
        services: prev.services.clone(),
        ready_services: prev.ready_services.clone(),
    };
    let mut events = Vec::new();
    if c::find(&prev.conditions, c::READY).map(|x| x.reason.as_str()) != Some(reason::INVALID_DEPENDENCIES) {
        events.push(PassEvent::warning(reason::INVALID_DEPENDENCIES, "Plan", format!("spec.services: {msg}")));
    }
    PortfolioPass { status, events }
}

/// The pass result after the writes: the children as they are now, aggregated.
pub fn finish(
    p: &Portfolio,
    prev: &PortfolioStatus,
    observed: &Observed,
    plan: &Converge,
    done: Executed,
    now: &Time,
) -> PortfolioPass {
    let mut events: Vec<PassEvent> = done
        .deleted
        .iter()
        .map(|n| {
            PassEvent::normal(
                "ServiceRemoved",
                "DeleteChild",
                format!("deleted CloudflareService {n}: no longer in spec.services"),
            )
        })
        .collect();
    let mut states = plan.states.clone();
    let mut current = observed.children.clone();
    for (applied, verb) in done.applied {
        let name = applied.name_any();
        events.push(PassEvent::normal("ServiceApplied", "ApplyChild", format!("{verb} CloudflareService {name}")));
        if let Some(w) = plan.wanted.iter().find(|w| w.name == name) {
            states.insert(name.clone(), ChildState::of(&applied, &child_spec(p, w)));
        }
        current.insert(name, applied);
    }
    let phases: BTreeMap<String, String> =
        current.iter().filter_map(|(n, s)| Some((n.clone(), phase_name(s.status.as_ref()?.phase?)))).collect();
    let (services, ready_services, conds) = aggregate(&plan.wanted, &states, &phases, &plan.wave, plan.limit);
    let status = PortfolioStatus {
        observed_generation: p.metadata.generation,
        services,
        ready_services: Some(ready_services),
        conditions: c::merge(&prev.conditions, &conds, p.metadata.generation, now),
    };
    events.extend(transitions(prev, &status));
    PortfolioPass { status, events }
}

fn phase_name(ph: Phase) -> String {
    serde_json::to_value(ph).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| format!("{ph:?}"))
}

/// A Normal Event when `Ready` turns True, a Warning when `Degraded` does.
fn transitions(prev: &PortfolioStatus, status: &PortfolioStatus) -> Vec<PassEvent> {
    let flipped = |t: &str| {
        let was = c::find(&prev.conditions, t).map(|x| (x.status.clone(), x.reason.clone()));
        let is = c::find(&status.conditions, t).map(|x| (x.status.clone(), x.reason.clone()));
        (was != is).then(|| c::find(&status.conditions, t).cloned()).flatten().filter(|x| x.status == "True")
    };
    let mut events = Vec::new();
    if let Some(x) = flipped(c::READY) {
        events.push(PassEvent::normal(&x.reason, "Aggregate", x.message));
    }
    if let Some(x) = flipped(c::DEGRADED) {
        events.push(PassEvent::warning(&x.reason, "Aggregate", x.message));
    }
    events
}

/// Aggregate status of the children: `services[]`, `readyServices` and the conditions.
pub fn aggregate(
    wanted: &[Child],
    states: &BTreeMap<String, ChildState>,
    phases: &BTreeMap<String, String>,
    wave: &Wave,
    limit: usize,
) -> (Vec<PortfolioServiceStatus>, String, Vec<CondSpec>) {
    let state = |n: &str| states.get(n).copied().unwrap_or_default();
    let services: Vec<PortfolioServiceStatus> = wanted
        .iter()
        .map(|w| PortfolioServiceStatus {
            name: w.service.clone(),
            domain: w.domain.clone(),
            service: w.name.clone(),
            phase: phases.get(&w.name).cloned(),
            ready: state(&w.name).done(),
        })
        .collect();
    let total = wanted.len();
    let ready = services.iter().filter(|s| s.ready).count();
    let failed: Vec<&str> = wanted.iter().filter(|w| state(&w.name).failed).map(|w| w.name.as_str()).collect();
    let foreign: Vec<&str> = wanted.iter().filter(|w| state(&w.name).foreign).map(|w| w.name.as_str()).collect();
    let conds = vec![
        ready_condition(ready, total, &failed, &foreign),
        progressing_condition(wave, limit, ready == total),
        degraded_condition(&failed, &foreign),
    ];
    (services, format!("{ready}/{total}"), conds)
}

fn ready_condition(ready: usize, total: usize, failed: &[&str], foreign: &[&str]) -> CondSpec {
    if ready == total {
        CondSpec::ok(c::READY, reason::SERVICES_READY, format!("{ready}/{total} services ready"))
    } else if !foreign.is_empty() {
        CondSpec::fail(
            c::READY,
            reason::CONFLICT,
            format!("CloudflareService {} exists and is not owned by this portfolio", foreign.join(", ")),
        )
    } else if !failed.is_empty() {
        CondSpec::fail(
            c::READY,
            reason::SERVICES_FAILED,
            format!("{ready}/{total} services ready; failed: {}", failed.join(", ")),
        )
    } else {
        CondSpec::fail(c::READY, reason::WAVE_IN_PROGRESS, format!("{ready}/{total} services ready"))
    }
}

fn progressing_condition(wave: &Wave, limit: usize, all_ready: bool) -> CondSpec {
    let waiting = wave.waiting_on_dependencies.len() + wave.waiting_on_capacity.len();
    if wave.progressing > 0 {
        CondSpec::ok(
            c::PROGRESSING,
            reason::WAVE_IN_PROGRESS,
            format!(
                "{} progressing (maxConcurrent {limit}), {} waiting for dependencies, {} waiting for capacity",
                wave.progressing,
                wave.waiting_on_dependencies.len(),
                wave.waiting_on_capacity.len()
            ),
        )
    } else if waiting > 0 {
        CondSpec::fail(
            c::PROGRESSING,
            reason::BLOCKED,
            format!(
                "nothing can progress: {} wait for dependencies that are not Ready",
                wave.waiting_on_dependencies.join(", ")
            ),
        )
    } else if all_ready {
        CondSpec::fail(c::PROGRESSING, reason::SERVICES_READY, "all services ready at the desired spec")
    } else {
        CondSpec::fail(c::PROGRESSING, reason::BLOCKED, "no service can progress")
    }
}

fn degraded_condition(failed: &[&str], foreign: &[&str]) -> CondSpec {
    if !foreign.is_empty() {
        CondSpec::ok(c::DEGRADED, reason::CONFLICT, format!("not owned by this portfolio: {}", foreign.join(", ")))
    } else if !failed.is_empty() {
        CondSpec::ok(c::DEGRADED, reason::SERVICES_FAILED, format!("failed: {}", failed.join(", ")))
    } else {
        CondSpec::fail(c::DEGRADED, reason::NO_FAILURES, "no failed services")
    }
}
