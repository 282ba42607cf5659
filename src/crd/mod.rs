//! Custom resource types and their pure helpers.

pub mod common;
pub mod conditions;
pub mod customer;
pub mod keys;
pub mod portfolio;
pub mod prodtests;
pub mod service;
pub mod service_status;
pub mod source;

pub use common::*;
pub use customer::*;
pub use portfolio::*;
pub use prodtests::*;
pub use service::*;
pub use service_status::*;
pub use source::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// All CRDs, in a stable order: (file stem, definition).
pub fn all_crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("cloudflareservice", CloudflareService::crd()),
        ("customer", Customer::crd()),
        ("portfolio", Portfolio::crd()),
    ]
}

/// Render one CRD as YAML (what `clodo-operator crds` prints and `crds/` holds).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_norway::Error> {
    serde_norway::to_string(crd)
}

/// All CRDs as one multi-document YAML stream.
pub fn all_crds_yaml() -> Result<String, serde_norway::Error> {
    let mut out = String::new();
    for (_, crd) in all_crds() {
        out.push_str("---\n");
        out.push_str(&crd_yaml(&crd)?);
    }
    Ok(out)
}
