//! The writes of a Portfolio pass, as planned: delete the children no longer declared, then
//! apply the wave.

use tracing::{Instrument, info_span};

use super::plan::Converge;
use super::{ChildStore, PortfolioError};
use crate::crd::{CloudflareService, Portfolio};

/// What the writes did.
#[derive(Debug, Default)]
pub struct Executed {
    /// Children deleted this pass.
    pub deleted: Vec<String>,
    /// Children applied this pass, as stored, with "created" or "updated".
    pub applied: Vec<(CloudflareService, &'static str)>,
}

/// Run the plan's writes through `store`. The first failure ends the pass (nothing is reported
/// for it; the next pass observes what was done and continues).
pub async fn execute(store: &dyn ChildStore, p: &Portfolio, plan: &Converge) -> Result<Executed, PortfolioError> {
    let mut done = Executed::default();
    for name in &plan.delete {
        store
            .delete(name)
            .instrument(info_span!("step", step = "delete_child"))
            .await
            .map_err(|source| PortfolioError::DeleteChild { name: name.clone(), source })?;
        done.deleted.push(name.clone());
    }
    for (child, verb) in plan.applies(p) {
        let name = child.metadata.name.clone().unwrap_or_default();
        let applied = store
            .apply(&child)
            .instrument(info_span!("step", step = "apply_child"))
            .await
            .map_err(|source| PortfolioError::ApplyChild { name, source })?;
        done.applied.push((applied, verb));
    }
    Ok(done)
}
