//! The `Customer` custom resource: a tenant with one Cloudflare account.

// kube-derive attributes repeat `type_ = "string"` per column by design.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Environment, PolicyLevel, SecretKeyRef};

/// A tenant: Cloudflare account, API token, zones, environments and template variables.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "clodo.dev",
    version = "v1alpha1",
    kind = "Customer",
    plural = "customers",
    singular = "customer",
    shortname = "cust",
    category = "clodo",
    namespaced,
    cel,
    status = "CustomerStatus",
    printcolumn(json_path = ".spec.accountId", name = "Account", type_ = "string"),
    printcolumn(json_path = ".status.conditions[?(@.type==\"Ready\")].status", name = "Ready", type_ = "string"),
    printcolumn(json_path = ".status.services", name = "Services", type_ = "integer"),
    printcolumn(json_path = ".metadata.creationTimestamp", name = "Age", type_ = "date")
)]
#[serde(rename_all = "camelCase")]
pub struct CustomerSpec {
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Cloudflare account id (32 lowercase hex characters).
    #[schemars(regex(pattern = r"^[0-9a-f]{32}$"))]
    pub account_id: String,
    /// Secret key (same namespace) holding the Cloudflare API token.
    pub api_token_secret_ref: SecretKeyRef,
    /// Zones (domain names) this customer's routes and custom domains live in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new(r"self.all(z, z.matches('^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\.)+[a-z][-a-z0-9]{0,61}[a-z0-9]$'))").message("zones: each entry must be a lowercase domain name such as acme.com"))]
    pub zones: Vec<String>,
    /// Template variables available to every service as `{{NAME}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// Per-environment settings.
    #[serde(default)]
    pub environments: Environments,
}

/// Settings per environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Environments {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub development: Option<EnvironmentSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<EnvironmentSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production: Option<EnvironmentSettings>,
}

impl Environments {
    pub fn get(&self, env: Environment) -> Option<&EnvironmentSettings> {
        match env {
            Environment::Development => self.development.as_ref(),
            Environment::Staging => self.staging.as_ref(),
            Environment::Production => self.production.as_ref(),
        }
    }
}

/// Settings of one environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSettings {
    /// The environment's domain; available to templates as `{{DOMAIN}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Variables that override the customer-level vars in this environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// Security policy; may only tighten the environment's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyLevel>,
}

impl CustomerSpec {
    /// The effective policy level of an environment: the default, tightened by the customer.
    pub fn policy_for(&self, env: Environment) -> PolicyLevel {
        let default = PolicyLevel::default_for(env);
        match self.environments.get(env).and_then(|e| e.policy) {
            Some(p) if p > default => p,
            _ => default,
        }
    }

    /// Template variables for an environment: customer vars overlaid with environment vars.
    pub fn vars_for(&self, env: Environment) -> BTreeMap<String, String> {
        let mut vars = self.vars.clone();
        if let Some(e) = self.environments.get(env) {
            vars.extend(e.vars.clone());
        }
        vars
    }
}

/// Observed state of a Customer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenStatus>,
    /// Number of CloudflareServices referencing this customer.
    #[serde(default)]
    pub services: i32,
}

/// A resolved zone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStatus {
    pub name: String,
    pub id: String,
    pub status: String,
}

/// What Cloudflare said about the token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenStatus {
    /// active, disabled, expired or invalid.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
    /// Digest of the Secret's resourceVersion and key the check was made for (never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_for: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Time>,
}
