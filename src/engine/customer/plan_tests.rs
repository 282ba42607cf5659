//! The Customer planner and finish, IO-free: objects in, plan (and status) out.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::execute::Executed;
use super::finish::finish;
use super::observe::{Observed, TokenInput};
use super::plan::{Plan, TokenStep, ZoneStep, plan};
use super::{CustomerError, CustomerPass};
use crate::cloudflare::CloudflareError;
use crate::crd::conditions::{self as c, CondSpec, reason};
use crate::crd::{Customer, CustomerSpec, CustomerStatus, SecretKeyRef, TokenStatus, ZoneStatus};
use crate::engine::credentials::{TokenVerdict, Verification};
use crate::engine::secret::SecretValue;
use crate::engine::zones::{Resolved, ZONE_RETRY, Zone, ZoneError};

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_750_000_000 + secs).unwrap()
}

fn customer(zones: &[&str]) -> Customer {
    let mut cust = Customer::new(
        "acme",
        CustomerSpec {
            display_name: None,
            account_id: ACCOUNT.into(),
            api_token_secret_ref: SecretKeyRef { name: "acme-cloudflare".into(), key: "token".into() },
            zones: zones.iter().map(|z| z.to_string()).collect(),
            vars: Default::default(),
            environments: Default::default(),
        },
    );
    cust.metadata.namespace = Some("acme".into());
    cust.metadata.generation = Some(1);
    cust
}

fn token(checked_for: &str) -> Observed {
    Observed {
        services: 2,
        rejected_at: None,
        token: TokenInput::Present { token: SecretValue::new("t"), checked_for: checked_for.into() },
    }
}

/// A status as a previous pass at `at(0)` left it.
fn verified(creds: Option<bool>, zones: Option<bool>, zone_names: &[&str]) -> CustomerStatus {
    CustomerStatus {
        observed_generation: Some(1),
        conditions: c::merge(
            &[],
            &[
                CondSpec::new(c::CREDENTIALS_VALID, creds, "R", "cached"),
                CondSpec::new(c::ZONES_RESOLVED, zones, "Z", "z"),
            ],
            Some(1),
            &Time(at(0)),
        ),
        zones: zone_names
            .iter()
            .map(|n| ZoneStatus { name: n.to_string(), id: format!("id-{n}"), status: "active".into() })
            .collect(),
        token: Some(TokenStatus {
            status: "active".into(),
            expires_on: None,
            checked_for: Some("v1".into()),
            checked_at: Some(Time(at(0))),
        }),
        services: 0,
    }
}

fn active(expires_on: Option<&str>) -> Verification {
    Verification::from_result(Ok(TokenVerdict {
        active: true,
        status: "active".into(),
        expires_on: expires_on.map(str::to_string),
    }))
}

fn api(status: u16) -> CloudflareError {
    CloudflareError::Api { status, errors: Vec::new(), method: reqwest::Method::GET, endpoint: "/zones" }
}

fn cond<'a>(pass: &'a CustomerPass, t: &str) -> (&'a str, &'a str) {
    let x = c::find(&pass.status.conditions, t).unwrap();
    (x.status.as_str(), x.reason.as_str())
}

#[test]
fn a_missing_token_plans_no_cloudflare_call() {
    let obs =
        Observed { services: 1, rejected_at: None, token: TokenInput::Missing("spec.apiTokenSecretRef: gone".into()) };
    let p = plan(&customer(&["acme.com"]), &verified(Some(true), Some(true), &["acme.com"]), &obs, at(5));
    assert_eq!(
        p,
        Plan {
            services: 1,
            token: TokenStep::Missing { message: "spec.apiTokenSecretRef: gone".into() },
            checked_for: None,
            zones: ZoneStep::Skip,
        }
    );
    let pass = finish(&customer(&["acme.com"]), &CustomerStatus::default(), &p, Executed::default(), &Time(at(5)));
    assert_eq!(cond(&pass, c::CREDENTIALS_VALID), ("False", reason::TOKEN_MISSING));
    assert_eq!(cond(&pass, c::ZONES_RESOLVED), ("Unknown", reason::BLOCKED));
    assert_eq!(cond(&pass, c::READY), ("False", reason::TOKEN_MISSING));
    assert!(pass.status.token.is_none() && pass.error.is_none() && pass.requeue_after.is_none());
    assert_eq!(pass.events.len(), 1, "{:?}", pass.events);
    assert!(pass.events[0].warning);
}

#[test]
fn only_the_hourly_reverification_is_routine() {
    let cust = customer(&["acme.com"]);
    let prev = verified(Some(true), Some(true), &["acme.com"]);
    // A changed Secret is change work: it goes at change priority.
    assert!(matches!(plan(&cust, &prev, &token("v2"), at(5)).token, TokenStep::Verify { routine: false, .. }));
    // The same Secret an hour later is upkeep: resync priority.
    let p = plan(&cust, &prev, &token("v1"), at(3600));
    assert!(matches!(p.token, TokenStep::Verify { routine: true, .. }), "{p:?}");
    assert_eq!(p.zones, ZoneStep::Resolve);
}

#[test]
fn a_new_secret_is_verified_and_its_zones_looked_up() {
    let cust = customer(&["acme.com"]);
    let prev = verified(Some(true), Some(true), &["acme.com"]);
    let p = plan(&cust, &prev, &token("v2"), at(5));
    assert!(matches!(p.token, TokenStep::Verify { .. }), "{p:?}");
    assert_eq!((p.zones, p.checked_for.as_deref(), p.services), (ZoneStep::Resolve, Some("v2"), 2));

    let zone = Zone { name: "acme.com".into(), id: "z1".into(), status: "active".into() };
    let done =
        Executed { verification: Some(active(None)), zones: Some(Ok(Resolved { found: vec![zone], missing: vec![] })) };
    let pass = finish(&cust, &prev, &p, done, &Time(at(5)));
    assert_eq!(cond(&pass, c::CREDENTIALS_VALID), ("True", reason::TOKEN_VALID));
    assert_eq!(cond(&pass, c::ZONES_RESOLVED), ("True", reason::ZONES_RESOLVED));
    assert_eq!(cond(&pass, c::READY), ("True", reason::READY));
    let t = pass.status.token.as_ref().unwrap();
    assert_eq!((t.checked_for.as_deref(), t.checked_at.as_ref().map(|x| x.0)), (Some("v2"), Some(at(5))));
    assert_eq!(pass.status.zones[0].id, "z1");
    assert_eq!(pass.status.services, 2);
    assert!(pass.error.is_none() && pass.requeue_after.is_none());
}

#[test]
fn a_cached_verdict_keeps_zones_of_the_same_generation() {
    let cust = customer(&["acme.com"]);
    let prev = verified(Some(true), Some(true), &["acme.com"]);
    let p = plan(&cust, &prev, &token("v1"), at(60));
    assert_eq!((p.token.clone(), p.zones), (TokenStep::Reuse { recheck_in: None }, ZoneStep::Reuse));
    let pass = finish(&cust, &prev, &p, Executed::default(), &Time(at(60)));
    assert_eq!(pass.status.conditions[..2], prev.conditions[..], "kept as they were");
    assert!(pass.events.is_empty(), "{:?}", pass.events);

    // Another zone list (or generation) is looked up again with the cached verdict.
    let p = plan(&customer(&["acme.com", "acme.io"]), &prev, &token("v1"), at(60));
    assert_eq!(p.zones, ZoneStep::Resolve);
    let mut next = cust.clone();
    next.metadata.generation = Some(2);
    assert_eq!(plan(&next, &prev, &token("v1"), at(60)).zones, ZoneStep::Resolve);
    // A cached rejection evaluates no zones.
    let rejected = verified(Some(false), None, &[]);
    assert_eq!(plan(&cust, &rejected, &token("v1"), at(60)).zones, ZoneStep::Skip);
}

#[test]
fn missing_zones_are_retried_after_the_zone_interval() {
    let cust = customer(&["acme.com", "ghost.dev"]);
    let prev = verified(Some(true), Some(false), &[]);
    let p = plan(&cust, &prev, &token("v1"), at(60));
    assert_eq!(p.token, TokenStep::Reuse { recheck_in: Some(ZONE_RETRY - Duration::from_secs(60)) });
    let p = plan(&cust, &prev, &token("v1"), at(300));
    assert!(matches!(p.token, TokenStep::Verify { .. }));
    let zone = Zone { name: "acme.com".into(), id: "z1".into(), status: "active".into() };
    let done = Executed {
        verification: Some(active(None)),
        zones: Some(Ok(Resolved { found: vec![zone], missing: vec!["ghost.dev".into()] })),
    };
    let pass = finish(&cust, &prev, &p, done, &Time(at(300)));
    let x = c::find(&pass.status.conditions, c::ZONES_RESOLVED).unwrap();
    assert_eq!((x.status.as_str(), x.reason.as_str()), ("False", reason::ZONE_NOT_FOUND));
    assert_eq!(x.message, format!("spec.zones: not found in account {ACCOUNT}: ghost.dev"));
    assert_eq!(pass.requeue_after, Some(ZONE_RETRY));
    assert!(pass.error.is_none(), "a missing zone needs an edit, not a fast retry");
}

#[test]
fn cloudflare_failures_are_retried_with_their_reason() {
    let cust = customer(&["acme.com"]);
    let p = plan(&cust, &CustomerStatus::default(), &token("v1"), at(0));
    let done = Executed { verification: Some(Verification::from_result(Err(api(429)))), zones: None };
    let pass = finish(&cust, &CustomerStatus::default(), &p, done, &Time(at(0)));
    assert_eq!(cond(&pass, c::CREDENTIALS_VALID), ("Unknown", reason::RATE_LIMITED));
    assert!(pass.status.token.is_none(), "no verdict is recorded without an answer");
    let err = pass.error.unwrap();
    assert!(matches!(err, CustomerError::VerifyToken { .. }));
    assert_eq!(err.reason(), reason::RATE_LIMITED);

    let lookup = ZoneError::Lookup { zone: "acme.com".into(), source: api(503) };
    let done = Executed { verification: Some(active(None)), zones: Some(Err(lookup)) };
    let pass = finish(&cust, &CustomerStatus::default(), &p, done, &Time(at(0)));
    assert_eq!(cond(&pass, c::ZONES_RESOLVED), ("Unknown", reason::CLOUDFLARE_ERROR));
    assert_eq!(pass.error.map(|e| e.reason()), Some(reason::CLOUDFLARE_ERROR));

    let forbidden = ZoneError::Forbidden { zone: "acme.com".into(), source: api(403) };
    let done = Executed { verification: Some(active(None)), zones: Some(Err(forbidden)) };
    let pass = finish(&cust, &CustomerStatus::default(), &p, done, &Time(at(0)));
    assert_eq!(cond(&pass, c::ZONES_RESOLVED), ("False", reason::TOKEN_INVALID));
    assert!(
        c::find(&pass.status.conditions, c::ZONES_RESOLVED)
            .unwrap()
            .message
            .starts_with("spec.zones: the token may not read zone acme.com: ")
    );
    assert!(pass.error.is_none());
}

#[test]
fn a_rejected_token_is_recorded_and_evaluates_no_zones() {
    let cust = customer(&["acme.com"]);
    let prev = verified(Some(true), Some(true), &["acme.com"]);
    let p = plan(&cust, &prev, &Observed { rejected_at: Some(at(20)), ..token("v1") }, at(30));
    assert_eq!(p.token, TokenStep::Verify { why: "a service saw Cloudflare reject the token", routine: false });
    let done = Executed { verification: Some(Verification::from_result(Err(api(401)))), zones: None };
    let pass = finish(&cust, &prev, &p, done, &Time(at(30)));
    assert_eq!(cond(&pass, c::CREDENTIALS_VALID), ("False", reason::TOKEN_INVALID));
    assert_eq!(cond(&pass, c::ZONES_RESOLVED), ("Unknown", reason::BLOCKED));
    assert_eq!(pass.status.token.as_ref().map(|t| t.status.as_str()), Some("invalid"));
    assert!(pass.error.is_none(), "a rejected token waits for a new Secret");
    assert!(pass.events.iter().any(|e| e.warning && e.reason == reason::TOKEN_INVALID), "{:?}", pass.events);
}

#[test]
fn a_token_expiry_ahead_bounds_the_requeue() {
    let cust = customer(&[]);
    let p = plan(&cust, &CustomerStatus::default(), &token("v1"), at(0));
    let expiry = at(90).to_string();
    let done = Executed { verification: Some(active(Some(&expiry))), zones: Some(Ok(Resolved::default())) };
    let pass = finish(&cust, &CustomerStatus::default(), &p, done, &Time(at(0)));
    assert_eq!(pass.requeue_after, Some(Duration::from_secs(90)));
    assert_eq!(cond(&pass, c::READY), ("True", reason::READY));
}
