//! The Customer core: verify the tenant's API token (cached per Secret version, rate-limited),
//! resolve its zones, count the services using it.
//!
//! One pass: [`observe`] (read the token Secret, look at the services) -> [`plan`] (pure: verify
//! or trust the cached verdict, look zones up or keep them) -> [`execute`] (the Cloudflare calls)
//! -> [`finish`] (pure: status, conditions, Events, when to look again). The verdict lands in
//! `CredentialsValid`, which every service of the customer reads before calling Cloudflare.

pub mod execute;
pub mod finish;
pub mod observe;
pub mod plan;
#[cfg(test)]
mod plan_tests;

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::resolve::{ObjectSource, SourceError};
use super::zones::ZoneError;
use super::{Engine, PassEvent};
use crate::cloudflare::CloudflareError;
use crate::crd::conditions::reason;
use crate::crd::{CloudflareService, Customer, CustomerStatus};
pub use plan::{Plan, TokenStep, ZoneStep};

/// Result of one Customer pass.
#[derive(Debug)]
pub struct CustomerPass {
    pub status: CustomerStatus,
    pub events: Vec<PassEvent>,
    /// Look again within this long (a rate-limited recheck, a zone retry or the token's expiry is
    /// due); the caller's resync interval otherwise.
    pub requeue_after: Option<Duration>,
    /// A failure worth retrying with backoff. The status already reports it in its conditions.
    pub error: Option<CustomerError>,
}

/// Why a Customer pass failed.
#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    /// The token Secret could not be read from the object store (not: it does not exist).
    #[error("reading spec.apiTokenSecretRef")]
    ReadToken {
        #[source]
        source: SourceError,
    },
    /// Cloudflare could not be asked about the token.
    #[error("verifying the token")]
    VerifyToken {
        #[source]
        source: CloudflareError,
    },
    /// A zone lookup failed (not: the zone is missing).
    #[error("resolving spec.zones")]
    ResolveZones {
        #[source]
        source: ZoneError,
    },
}

impl CustomerError {
    /// Bounded reason (condition reason and metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ReadToken { .. } => reason::KUBERNETES_ERROR,
            Self::VerifyToken { source } => super::credentials::reason_for(source),
            Self::ResolveZones { source } => source.reason(),
        }
    }
}

/// Run one pass for `customer`. `services` are the CloudflareServices of its namespace (those
/// naming this Customer are counted and read for rejected calls).
pub async fn reconcile(
    engine: &Engine,
    src: &dyn ObjectSource,
    customer: &Customer,
    services: &[CloudflareService],
    now: Time,
) -> Result<CustomerPass, CustomerError> {
    let prev = customer.status.clone().unwrap_or_default();
    let observed = observe::observe(src, customer, services).await?;
    let plan = plan::plan(customer, &prev, &observed, now.0);
    for step in plan.steps(customer) {
        tracing::debug!(step = %step, "customer plan");
    }
    let done = execute::execute(engine, customer, &observed, &plan).await;
    Ok(finish::finish(customer, &prev, &plan, done, &now))
}
