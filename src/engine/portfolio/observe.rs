//! What a Portfolio pass starts from: the children it controls, and which wanted names someone
//! else's object holds.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;

use super::plan::{children, controlled_by};
use super::{ChildStore, PortfolioError};
use crate::crd::{CloudflareService, Portfolio};

/// Everything the planner reads besides the Portfolio.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The CloudflareServices this portfolio controls, by name.
    pub children: BTreeMap<String, CloudflareService>,
    /// Wanted names held by an object this portfolio does not control (never touched).
    pub foreign: BTreeSet<String>,
    /// Children whose deployment the adapter ran to its end, and whether it ended well enough
    /// for their dependants (the CLI; the controller reads `Ready` instead and leaves it empty).
    pub settled: BTreeMap<String, bool>,
}

/// List the portfolio's children; look up each wanted name that is not listed as ours, so that
/// no one else's object is overwritten.
pub async fn observe(store: &dyn ChildStore, p: &Portfolio) -> Result<Observed, PortfolioError> {
    let listed = store.list(&p.name_any()).await.map_err(|source| PortfolioError::ListChildren { source })?;
    let mut observed = Observed::default();
    for s in listed.into_iter().filter(|s| controlled_by(s, p)) {
        observed.children.insert(s.name_any(), s);
    }
    for w in children(p) {
        if observed.children.contains_key(&w.name) {
            continue;
        }
        let found =
            store.get(&w.name).await.map_err(|source| PortfolioError::GetChild { name: w.name.clone(), source })?;
        match found {
            Some(s) if controlled_by(&s, p) => {
                observed.children.insert(w.name.clone(), s);
            }
            Some(_) => {
                observed.foreign.insert(w.name.clone());
            }
            None => {}
        }
    }
    for name in observed.children.keys() {
        if let Some(ok) = store.settled(name) {
            observed.settled.insert(name.clone(), ok);
        }
    }
    Ok(observed)
}
