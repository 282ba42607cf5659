//! The `Portfolio` custom resource: services deployed together in dependency order.

// kube-derive attributes repeat `type_ = "string"` per column by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Environment, LocalObjectRef};
use super::service::ServiceBody;

/// A group of services deployed together across domains.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "clodo.dev",
    version = "v1alpha1",
    kind = "Portfolio",
    plural = "portfolios",
    singular = "portfolio",
    shortname = "pf",
    category = "clodo",
    namespaced,
    cel,
    status = "PortfolioStatus",
    printcolumn(json_path = ".status.readyServices", name = "Services", type_ = "string"),
    printcolumn(json_path = ".status.conditions[?(@.type==\"Ready\")].status", name = "Ready", type_ = "string"),
    printcolumn(
        json_path = ".status.conditions[?(@.type==\"Progressing\")].status",
        name = "Progressing",
        type_ = "string"
    ),
    printcolumn(json_path = ".metadata.creationTimestamp", name = "Age", type_ = "date")
)]
#[serde(rename_all = "camelCase")]
pub struct PortfolioSpec {
    /// Customer (same namespace) for every generated service.
    pub customer_ref: LocalObjectRef,
    /// Environment of every generated service.
    pub environment: Environment,
    /// At most this many services progressing at once.
    #[serde(default = "default_max_concurrent")]
    #[schemars(range(min = 1, max = 100))]
    pub max_concurrent: u32,
    /// Optional: stamp each service once per domain (`{{DOMAIN}}` in templates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(d, self.exists_one(e, e == d))").message("domains: entries must be unique"))]
    pub domains: Vec<String>,
    /// The services.
    #[schemars(length(min = 1, max = 200))]
    #[x_kube(validation = Rule::new("self.all(s, self.exists_one(t, t.name == s.name))").message("services: names must be unique"))]
    pub services: Vec<PortfolioService>,
}

fn default_max_concurrent() -> u32 {
    3
}

/// One service of a portfolio.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortfolioService {
    /// Service name; child resources are `<portfolio>-<name>[-<domain>]`.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$"))]
    pub name: String,
    /// Services that must be Ready before this one is created or updated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// CloudflareService spec without customerRef and environment (taken from the Portfolio).
    pub template: ServiceBody,
}

/// Observed state of a Portfolio.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortfolioStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<PortfolioServiceStatus>,
    /// "ready/total", e.g. "4/6".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_services: Option<String>,
}

/// One generated service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortfolioServiceStatus {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Name of the generated CloudflareService.
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    pub ready: bool,
}
