//! The Portfolio core: generate CloudflareServices wave by wave in dependency order, at most
//! `maxConcurrent` progressing at once, and report aggregate health.
//!
//! One pass: [`observe`] (the children this portfolio controls, through a [`ChildStore`]) ->
//! [`plan`] (pure: dependency check, children to delete, the next wave to create or update, the
//! ones held on dependencies or capacity) -> [`execute`] (the writes, through the store) ->
//! [`finish`] (pure: status, conditions, Events). The controller's store writes the children to
//! Kubernetes (their status changes retrigger the portfolio); the CLI's store runs each applied
//! child's deployment itself and passes again as each one settles.

pub mod execute;
pub mod finish;
pub mod observe;
pub mod plan;
#[cfg(test)]
mod plan_tests;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::PassEvent;
use crate::crd::conditions::reason;
use crate::crd::{CloudflareService, Portfolio, PortfolioStatus};
pub use observe::Observed;
pub use plan::{
    Child, ChildState, Converge, DependencyError, Plan, Wave, check_dependencies, child_object, child_spec, children,
    controlled_by, next_wave, slug,
};

/// A failure of the object store behind a [`ChildStore`].
pub type StoreError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where a portfolio's children live: Kubernetes for the controller, memory for `deploy -f`.
#[async_trait::async_trait]
pub trait ChildStore: Send + Sync {
    /// The CloudflareServices labelled as children of portfolio `portfolio`.
    async fn list(&self, portfolio: &str) -> Result<Vec<CloudflareService>, StoreError>;
    /// The CloudflareService of this name, whoever owns it.
    async fn get(&self, name: &str) -> Result<Option<CloudflareService>, StoreError>;
    /// Create or update a child (its spec, labels and owner); returns it as stored.
    async fn apply(&self, child: &CloudflareService) -> Result<CloudflareService, StoreError>;
    /// Delete a child (its finalizer cleans Cloudflare up).
    async fn delete(&self, name: &str) -> Result<(), StoreError>;
    /// Whether the store ran this child's deployment to its end, and whether that is good
    /// enough for its dependants; `None` (the default): read `Ready` from its status.
    fn settled(&self, _name: &str) -> Option<bool> {
        None
    }
}

/// Result of one Portfolio pass.
#[derive(Debug)]
pub struct PortfolioPass {
    pub status: PortfolioStatus,
    pub events: Vec<PassEvent>,
}

/// Why a Portfolio pass stopped (the next pass observes what was done and continues).
#[derive(Debug, thiserror::Error)]
pub enum PortfolioError {
    #[error("listing the portfolio's CloudflareServices")]
    ListChildren {
        #[source]
        source: StoreError,
    },
    #[error("reading CloudflareService {name}")]
    GetChild {
        name: String,
        #[source]
        source: StoreError,
    },
    #[error("applying CloudflareService {name}")]
    ApplyChild {
        name: String,
        #[source]
        source: StoreError,
    },
    #[error("deleting CloudflareService {name}")]
    DeleteChild {
        name: String,
        #[source]
        source: StoreError,
    },
}

impl PortfolioError {
    /// Bounded reason (metric label): every step is a write or read of the object store.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ListChildren { .. } | Self::GetChild { .. } | Self::ApplyChild { .. } | Self::DeleteChild { .. } => {
                reason::KUBERNETES_ERROR
            }
        }
    }
}

/// Run one pass for `p` over `store`.
pub async fn reconcile(store: &dyn ChildStore, p: &Portfolio, now: Time) -> Result<PortfolioPass, PortfolioError> {
    let prev = p.status.clone().unwrap_or_default();
    // Invalid dependencies: nothing is read or written.
    let observed = match check_dependencies(&p.spec.services) {
        Ok(_) => observe::observe(store, p).await?,
        Err(_) => Observed::default(),
    };
    match plan::plan(p, &observed) {
        Plan::Invalid(e) => Ok(finish::invalid(p, &prev, &e, &now)),
        Plan::Converge(steps) => {
            tracing::debug!(
                apply = ?steps.wave.apply,
                delete = ?steps.delete,
                waiting_on_dependencies = ?steps.wave.waiting_on_dependencies,
                waiting_on_capacity = ?steps.wave.waiting_on_capacity,
                "portfolio plan"
            );
            let done = execute::execute(store, p, &steps).await?;
            Ok(finish::finish(p, &prev, &observed, &steps, done, &now))
        }
    }
}
