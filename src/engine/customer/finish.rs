//! The end of a Customer pass, pure: the new status, its conditions, the Events of what changed,
//! and when to look again.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::execute::Executed;
use super::plan::{Plan, TokenStep, ZoneStep};
use super::{CustomerError, CustomerPass};
use crate::crd::conditions::{self as c, CondSpec, reason};
use crate::crd::{Customer, CustomerStatus, TokenStatus, ZoneStatus};
use crate::engine::PassEvent;
use crate::engine::credentials::Verification;
use crate::engine::zones::{self, Resolved, ZoneError};

/// Build the pass result from the plan and what its calls returned.
pub fn finish(customer: &Customer, prev: &CustomerStatus, plan: &Plan, done: Executed, now: &Time) -> CustomerPass {
    let mut status = CustomerStatus { services: plan.services, ..prev.clone() };
    let mut conds: Vec<CondSpec> = Vec::new();
    let mut error = None;
    let mut requeue: Option<Duration> = None;

    match &plan.token {
        TokenStep::Missing { message } => {
            conds.push(CondSpec::fail(c::CREDENTIALS_VALID, reason::TOKEN_MISSING, message.clone()));
            status.token = None;
        }
        TokenStep::Reuse { recheck_in } => {
            requeue = *recheck_in;
            conds.extend(kept(prev, c::CREDENTIALS_VALID).filter(|_| done.verification.is_none()));
        }
        TokenStep::Verify { .. } => {}
    }
    if let Some(v) = done.verification {
        if let Some((st, expires_on)) = v.recorded() {
            let checked_for = plan.checked_for.clone();
            status.token = Some(TokenStatus { status: st, expires_on, checked_for, checked_at: Some(now.clone()) });
        }
        conds.push(v.condition(&customer.spec.account_id));
        if let Verification::Unavailable(source) = v {
            error = Some(CustomerError::VerifyToken { source });
        }
    }
    let creds_ok = conds.iter().any(|x| x.type_ == c::CREDENTIALS_VALID && x.status == Some(true));
    if creds_ok {
        let zone_cond = match (plan.zones, done.zones) {
            (_, Some(Ok(resolved))) => resolved_condition(customer, &mut status, resolved),
            (_, Some(Err(e))) => {
                let (cond, retry) = lookup_failed(e);
                error = error.or(retry);
                Some(cond)
            }
            (ZoneStep::Reuse, None) => kept(prev, c::ZONES_RESOLVED),
            (ZoneStep::Skip | ZoneStep::Resolve, None) => None,
        };
        conds.extend(zone_cond);
        if !conds.iter().any(|x| x.type_ == c::ZONES_RESOLVED && x.status == Some(true)) {
            requeue = min(requeue, zones::ZONE_RETRY);
        }
        if let Some(left) = until_expiry(&status, now.0) {
            requeue = min(requeue, left);
        }
    }
    if !conds.iter().any(|x| x.type_ == c::ZONES_RESOLVED) {
        conds.push(CondSpec::unknown(c::ZONES_RESOLVED, reason::BLOCKED, "not evaluated: credentials are not valid"));
    }
    let ready = match conds.iter().find(|x| x.status != Some(true)) {
        None => CondSpec::ok(c::READY, reason::READY, "credentials valid and zones resolved"),
        Some(x) => CondSpec::fail(c::READY, &x.reason.clone(), format!("{}: {}", x.type_, x.message)),
    };
    conds.push(ready);
    status.conditions = c::merge(&prev.conditions, &conds, customer.metadata.generation, now);
    status.observed_generation = customer.metadata.generation;
    let events = transitions(prev, &status);
    CustomerPass { status, events, requeue_after: requeue, error }
}

fn min(a: Option<Duration>, b: Duration) -> Option<Duration> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// A condition of the previous status, carried over unchanged.
fn kept(prev: &CustomerStatus, type_: &'static str) -> Option<CondSpec> {
    let x = c::find(&prev.conditions, type_)?;
    let st = match x.status.as_str() {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    };
    Some(CondSpec::new(type_, st, &x.reason, x.message.clone()))
}

/// `ZonesResolved` from a finished lookup; fills `status.zones`.
fn resolved_condition(customer: &Customer, status: &mut CustomerStatus, r: Resolved) -> Option<CondSpec> {
    status.zones = r.found.into_iter().map(|z| ZoneStatus { name: z.name, id: z.id, status: z.status }).collect();
    Some(if r.missing.is_empty() {
        CondSpec::ok(
            c::ZONES_RESOLVED,
            reason::ZONES_RESOLVED,
            format!("{} zone(s) resolved", customer.spec.zones.len()),
        )
    } else {
        CondSpec::fail(
            c::ZONES_RESOLVED,
            reason::ZONE_NOT_FOUND,
            format!("spec.zones: not found in account {}: {}", customer.spec.account_id, r.missing.join(", ")),
        )
    })
}

/// `ZonesResolved` for a failed lookup, and the error to retry (none for a token that may not
/// read the zone: that needs a new token).
fn lookup_failed(e: ZoneError) -> (CondSpec, Option<CustomerError>) {
    let detail = e.cloudflare().map(|cf| format!("{e}: {cf}")).unwrap_or_else(|| e.to_string());
    match e {
        ZoneError::Forbidden { .. } => {
            (CondSpec::fail(c::ZONES_RESOLVED, e.reason(), format!("spec.zones: {detail}")), None)
        }
        e => {
            (CondSpec::unknown(c::ZONES_RESOLVED, e.reason(), detail), Some(CustomerError::ResolveZones { source: e }))
        }
    }
}

/// Time left until the recorded token expiry, when it lies ahead (verify again then).
fn until_expiry(status: &CustomerStatus, now: Timestamp) -> Option<Duration> {
    let exp = status.token.as_ref()?.expires_on.as_deref()?.parse::<Timestamp>().ok()?;
    (exp > now).then(|| Duration::from_secs(exp.duration_since(now).as_secs().max(1) as u64))
}

/// Events for `CredentialsValid` and `ZonesResolved` changes: Normal when one turns True,
/// Warning when one turns False.
fn transitions(prev: &CustomerStatus, status: &CustomerStatus) -> Vec<PassEvent> {
    let mut events = Vec::new();
    for t in [c::CREDENTIALS_VALID, c::ZONES_RESOLVED] {
        let was = c::find(&prev.conditions, t).map(|x| (x.status.clone(), x.reason.clone()));
        let is = c::find(&status.conditions, t).map(|x| (x.status.clone(), x.reason.clone()));
        let Some(x) = c::find(&status.conditions, t).filter(|_| was != is) else { continue };
        let action = if t == c::CREDENTIALS_VALID { "VerifyToken" } else { "ResolveZones" };
        match x.status.as_str() {
            "True" => events.push(PassEvent::normal(&x.reason, action, x.message.clone())),
            "False" => events.push(PassEvent::warning(&x.reason, action, x.message.clone())),
            _ => {}
        }
    }
    events
}
