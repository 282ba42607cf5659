//! The Customer planner, pure: whether this pass asks Cloudflare about the token and looks the
//! zones up, or trusts what status already says.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::observe::{Observed, TokenInput};
use crate::crd::conditions as c;
use crate::crd::{Customer, CustomerStatus};
use crate::engine::credentials::{self, Recheck};

/// What to do about the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenStep {
    /// The Secret or key is missing or empty (`CredentialsValid=False, TokenMissing`); nothing
    /// is asked.
    Missing { message: String },
    /// Trust the verdict in status; verify again within `recheck_in` when a rate-limited
    /// recheck is pending.
    Reuse { recheck_in: Option<Duration> },
    /// Ask Cloudflare; `why` is for logs. A `routine` check (the hourly re-verification) and
    /// the zone lookup after it go at resync priority.
    Verify { why: &'static str, routine: bool },
}

/// What to do about the zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneStep {
    /// Not evaluated: the credentials are not (known to be) valid.
    Skip,
    /// Keep the lookup recorded in status (same generation, same zones, a definite answer).
    Reuse,
    /// Look every zone up, once the token is valid.
    Resolve,
}

/// One Customer pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// CloudflareServices naming the Customer.
    pub services: i32,
    pub token: TokenStep,
    /// Secret version and account the verdict is for (`None` without a token).
    pub checked_for: Option<String>,
    pub zones: ZoneStep,
}

impl Plan {
    /// The steps in words, for logs.
    pub fn steps(&self, customer: &Customer) -> Vec<String> {
        let mut out = Vec::new();
        match &self.token {
            TokenStep::Missing { message } => out.push(format!("report the token missing: {message}")),
            TokenStep::Reuse { recheck_in: None } => out.push("keep the cached token verification".into()),
            TokenStep::Reuse { recheck_in: Some(d) } => {
                out.push(format!("keep the cached token verification, verify again in {}s", d.as_secs()))
            }
            TokenStep::Verify { why, .. } => out.push(format!("verify the API token ({why})")),
        }
        match self.zones {
            ZoneStep::Skip => {}
            ZoneStep::Reuse => out.push("keep the resolved zones".into()),
            ZoneStep::Resolve => out.push(format!("look up zones {}", customer.spec.zones.join(", "))),
        }
        out
    }
}

/// Plan a pass from the Customer, its previous status and what [`super::observe`] found.
pub fn plan(customer: &Customer, prev: &CustomerStatus, observed: &Observed, now: Timestamp) -> Plan {
    let services = observed.services as i32;
    let checked_for = match &observed.token {
        TokenInput::Missing(message) => {
            return Plan {
                services,
                token: TokenStep::Missing { message: message.clone() },
                checked_for: None,
                zones: ZoneStep::Skip,
            };
        }
        TokenInput::Present { checked_for, .. } => checked_for.clone(),
    };
    let (token, zones) = match credentials::recheck(prev, &checked_for, now, observed.rejected_at) {
        // A fresh verdict invalidates what was looked up with the old one.
        Recheck::Verify(why) => (TokenStep::Verify { why, routine: false }, ZoneStep::Resolve),
        Recheck::Refresh => (
            TokenStep::Verify { why: "the cached verification is older than an hour", routine: true },
            ZoneStep::Resolve,
        ),
        Recheck::Cached => (TokenStep::Reuse { recheck_in: None }, reuse_zones(customer, prev)),
        Recheck::CachedFor(d) => (TokenStep::Reuse { recheck_in: Some(d) }, reuse_zones(customer, prev)),
    };
    Plan { services, token, checked_for: Some(checked_for), zones }
}

/// Zones while the cached token verdict stands: skipped without valid credentials, kept when the
/// last lookup gave a definite answer for this generation and these zones, else looked up.
fn reuse_zones(customer: &Customer, prev: &CustomerStatus) -> ZoneStep {
    if !c::is_true(&prev.conditions, c::CREDENTIALS_VALID) {
        return ZoneStep::Skip;
    }
    let cached = prev.observed_generation == customer.metadata.generation
        && c::find(&prev.conditions, c::ZONES_RESOLVED).is_some_and(|x| x.status != "Unknown")
        && (!c::is_true(&prev.conditions, c::ZONES_RESOLVED)
            || prev.zones.iter().map(|z| &z.name).eq(customer.spec.zones.iter()));
    if cached { ZoneStep::Reuse } else { ZoneStep::Resolve }
}
