//! The `CloudflareService` custom resource: one Worker service in one environment.

// kube-derive attributes repeat `type_ = "string"` per column by design.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ConfigMapSource, Environment, LocalObjectRef, ValueFrom};
use super::prodtests::{AuthFlowTest, RegressionTest, TestHeader, ThroughputTest};
use super::service_status::CloudflareServiceStatus;
use super::source::WorkerSource;

/// Desired state of a Cloudflare Workers service.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "clodo.dev",
    version = "v1alpha1",
    kind = "CloudflareService",
    plural = "cloudflareservices",
    singular = "cloudflareservice",
    shortname = "cfs",
    category = "clodo",
    namespaced,
    cel,
    status = "CloudflareServiceStatus",
    printcolumn(json_path = ".status.phase", name = "Phase", type_ = "string"),
    printcolumn(json_path = ".status.conditions[?(@.type==\"Ready\")].status", name = "Ready", type_ = "string"),
    printcolumn(json_path = ".status.worker.shortVersion", name = "Version", type_ = "string"),
    printcolumn(json_path = ".status.url", name = "URL", type_ = "string"),
    printcolumn(json_path = ".metadata.creationTimestamp", name = "Age", type_ = "date")
)]
#[serde(rename_all = "camelCase")]
pub struct CloudflareServiceSpec {
    /// The Customer (same namespace) whose account, token, zones and variables this service uses.
    pub customer_ref: LocalObjectRef,
    /// Target environment: development, staging or production.
    pub environment: Environment,
    /// Everything else about the service; shared with Portfolio templates.
    #[serde(flatten)]
    pub body: ServiceBody,
}

/// The part of a service spec that Portfolio templates carry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.d1Databases) || self.d1Databases.all(d, self.d1Databases.exists_one(e, e.binding == d.binding))").message("d1Databases: binding names must be unique"))]
#[x_kube(validation = Rule::new("!has(self.d1Databases) || !has(self.worker.vars) || self.d1Databases.all(d, !(d.binding in self.worker.vars))").message("d1Databases: a binding name is also used by worker.vars"))]
pub struct ServiceBody {
    /// Kind of service; selects defaults for production tests.
    #[serde(default)]
    pub service_type: ServiceType,
    /// Worker script name. Default `<customer>-<name>-<environment>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z]([a-z0-9_-]{0,61}[a-z0-9])?$"))]
    pub script_name: Option<String>,
    /// The Worker's code and configuration.
    pub worker: WorkerSpec,
    /// D1 databases bound to the Worker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub d1_databases: Vec<D1DatabaseSpec>,
    /// Zone routes that send traffic to the Worker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(r, self.exists_one(s, s.pattern == r.pattern))").message("routes: patterns must be unique"))]
    pub routes: Vec<RouteSpec>,
    /// Custom domains attached to the Worker (hostnames).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new(r"self.all(h, h.matches('^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\.)+[a-z][-a-z0-9]{0,61}[a-z0-9]$') || h.matches('^[-a-z0-9.]*(\\{\\{ *[A-Za-z0-9_]+ *\\}\\}[-a-z0-9.]*)+$'))").message("customDomains: each entry must be a lowercase hostname such as api.example.com (templates such as api.{{DOMAIN}} allowed)"))]
    #[x_kube(validation = Rule::new("self.all(h, self.exists_one(g, g == h))").message("customDomains: hostnames must be unique"))]
    pub custom_domains: Vec<String>,
    /// Tests run against the live service after every deploy and on every resync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_tests: Option<ProductionTestsSpec>,
    /// How a new version reaches users.
    #[serde(default)]
    pub rollout: RolloutSpec,
    /// Redeploy the previous version when production tests fail after a deploy.
    #[serde(default = "default_true")]
    pub rollback_on_failure: bool,
    /// Plan only: compute and report changes in status.plan, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Stop reconciling (nothing is changed in Cloudflare while suspended).
    #[serde(default)]
    pub suspend: bool,
    /// What happens in Cloudflare when the resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_true() -> bool {
    true
}

/// Service kind.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceType {
    DataService,
    AuthService,
    ApiGateway,
    ContentService,
    #[default]
    Generic,
}

/// Worker code and configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpec {
    /// Entry module: must be one of the source's module files.
    #[x_kube(validation = Rule::new("self.size() > 0").message("worker.mainModule must not be empty"))]
    pub main_module: String,
    /// Where the module files come from: exactly one of configMapRef, oci or url.
    pub source: WorkerSource,
    /// Workers compatibility date, YYYY-MM-DD.
    #[schemars(regex(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
    pub compatibility_date: String,
    /// Workers compatibility flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compatibility_flags: Vec<String>,
    /// Plain-text variables; values may use `{{VAR}}` templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^[A-Za-z_$][A-Za-z0-9_$]*$'))").message("worker.vars: names must be JavaScript identifiers"))]
    pub vars: BTreeMap<String, String>,
    /// Secret bindings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(s, self.exists_one(t, t.name == s.name))").message("worker.secrets: names must be unique"))]
    pub secrets: Vec<SecretSpec>,
}

/// One secret binding: from a Secret key, or generated by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.valueFrom) != has(self.generate)").message("exactly one of valueFrom or generate must be set"))]
pub struct SecretSpec {
    /// Binding name visible to the Worker.
    #[schemars(regex(pattern = r"^[A-Za-z_$][A-Za-z0-9_$]*$"))]
    pub name: String,
    /// Take the value from a Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
    /// Generate a random value (CSPRNG) once and keep it in a Secret the operator owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<GenerateSpec>,
}

/// Generated secret settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct GenerateSpec {
    /// Length in characters (32 to 256).
    #[serde(default = "default_generate_length")]
    #[schemars(range(min = 32, max = 256))]
    pub length: u32,
}

fn default_generate_length() -> u32 {
    48
}

/// A D1 database bound to the Worker.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct D1DatabaseSpec {
    /// Binding name visible to the Worker (JavaScript identifier).
    #[schemars(regex(pattern = r"^[A-Za-z_$][A-Za-z0-9_$]*$"))]
    pub binding: String,
    /// Database name. Default `<customer>-<name>-<environment>` (plus `-<binding>` when several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$"))]
    pub name: Option<String>,
    /// SQL migrations: each key `NNNN_name.sql` of the ConfigMap is one migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<ConfigMapSource>,
    /// Retain (default) keeps the database when the service is deleted; Delete removes it.
    #[serde(default)]
    pub deletion_policy: DatabaseDeletionPolicy,
}

/// A zone route.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// Route pattern without scheme, e.g. `api.example.com/*`.
    #[x_kube(validation = Rule::new("!self.contains('://') && self.size() > 0").message("routes[].pattern must not contain a scheme"))]
    pub pattern: String,
    /// Zone name; default: the Customer zone that contains the pattern's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// Rollout strategy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.strategy != 'Canary' || has(self.canary)").message("rollout.canary is required when strategy is Canary"))]
pub struct RolloutSpec {
    /// Immediate (default) or Canary.
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// Canary settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
}

/// Rollout strategies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum RolloutStrategy {
    #[default]
    Immediate,
    Canary,
}

/// Canary steps.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// Percentages of traffic for the new version, strictly ascending, each 1..99.
    #[schemars(length(min = 1, max = 10))]
    #[x_kube(validation = Rule::new("self.all(s, s >= 1 && s <= 99)").message("rollout.canary.steps: each step must be between 1 and 99"))]
    #[x_kube(validation = Rule::new("self.isSorted() && self.all(s, self.exists_one(t, t == s))").message("rollout.canary.steps: steps must be strictly ascending"))]
    pub steps: Vec<u32>,
    /// Seconds between steps.
    #[serde(default = "default_step_interval")]
    #[schemars(range(min = 0, max = 86400))]
    pub step_interval_seconds: u32,
}

fn default_step_interval() -> u32 {
    60
}

/// What deletion does in Cloudflare.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    /// Remove the routes, custom domains and script this service owns.
    #[default]
    Delete,
    /// Leave everything in Cloudflare.
    Orphan,
}

/// What deletion does to a D1 database.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DatabaseDeletionPolicy {
    /// Keep the database (default).
    #[default]
    Retain,
    /// Delete the database and its data.
    Delete,
}

/// Production tests (DESIGN §5).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductionTestsSpec {
    /// Base URL; default first custom domain, else route host, else workers.dev URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Seconds to wait after a deploy before testing.
    #[serde(default = "default_propagation")]
    #[schemars(range(max = 600))]
    pub propagation_delay_seconds: u32,
    /// Per-request timeout in seconds.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 120))]
    pub timeout_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthTest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthTest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<StatusTest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointTest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance: Option<PerformanceTest>,
    /// Use the serviceType's default checks when no check is declared here (see README).
    #[serde(default = "default_true")]
    pub service_type_defaults: bool,
    /// Obtain a token from one endpoint (JSON path into its response) and use it on the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_flow: Option<AuthFlowTest>,
    /// Requests per second at a concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<ThroughputTest>,
    /// Fail a new release whose p95 latency or error rate is more than N% worse than the previous
    /// release's (measured by `performance`, else `throughput`; kept in status.releaseBaseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<RegressionTest>,
}

fn default_propagation() -> u32 {
    10
}
fn default_timeout() -> u32 {
    10
}
fn default_200() -> u16 {
    200
}
fn default_401() -> u16 {
    401
}

/// Health check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthTest {
    pub path: String,
    #[serde(default = "default_200")]
    pub expect_status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
}

/// A path expected to answer with a status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusTest {
    pub path: String,
    #[serde(default = "default_200")]
    pub expect_status: u16,
}

/// Auth check: without credentials must be refused, with credentials accepted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthTest {
    pub path: String,
    #[serde(default = "default_401")]
    pub expect_status_without_credentials: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_credentials: Option<CredentialTest>,
}

/// Credentials for the auth check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialTest {
    /// Header to send, e.g. Authorization.
    pub header: String,
    /// Header value from a Secret key.
    pub value_from: ValueFrom,
    #[serde(default = "default_200")]
    pub expect_status: u16,
}

/// A named endpoint check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointTest {
    pub name: String,
    #[serde(default = "default_method")]
    pub method: String,
    pub path: String,
    #[serde(default = "default_200")]
    pub expect_status: u16,
    /// A JSON path (`$.items`, `$.data.id`) that must be present in the response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// Request headers; values literal or from Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<TestHeader>,
    /// JSON request body (sent with `content-type: application/json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::prodtests::any_json")]
    pub json_body: Option<serde_json::Value>,
}

fn default_method() -> String {
    "GET".to_string()
}

/// Load check with thresholds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceTest {
    #[serde(default = "default_root")]
    pub path: String,
    #[serde(default = "default_requests")]
    #[schemars(range(min = 1, max = 10000))]
    pub requests: u32,
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 100))]
    pub concurrency: u32,
    #[serde(default = "default_p95")]
    pub max_p95_ms: u64,
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate: f64,
}

fn default_root() -> String {
    "/".to_string()
}
fn default_requests() -> u32 {
    50
}
fn default_concurrency() -> u32 {
    5
}
fn default_p95() -> u64 {
    800
}

impl CloudflareService {
    /// The Worker script name: spec.scriptName or `<customer>-<name>-<environment>`.
    pub fn script_name(&self) -> String {
        self.spec.body.script_name.clone().unwrap_or_else(|| {
            format!(
                "{}-{}-{}",
                self.spec.customer_ref.name,
                self.metadata.name.as_deref().unwrap_or_default(),
                self.spec.environment
            )
        })
    }

    /// The database name for a D1 binding: spec name or a deterministic default.
    pub fn database_name(&self, db: &D1DatabaseSpec) -> String {
        if let Some(name) = &db.name {
            return name.clone();
        }
        let base = format!(
            "{}-{}-{}",
            self.spec.customer_ref.name,
            self.metadata.name.as_deref().unwrap_or_default(),
            self.spec.environment
        );
        if self.spec.body.d1_databases.len() > 1 { format!("{base}-{}", db.binding.to_lowercase()) } else { base }
    }
}
