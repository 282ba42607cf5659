//! Production-test types added for deeper checks: headers from Secrets, the auth flow,
//! throughput and release regression (fields of `CloudflareService.spec.productionTests`).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::ValueFrom;
use super::service::EndpointTest;

/// A request header: a literal value or a Secret key (never logged or stored in status).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("exactly one of value or valueFrom must be set"))]
pub struct TestHeader {
    #[schemars(regex(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

/// Auth flow: request a token, read it with a JSON path, send it on a protected request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthFlowTest {
    /// The login/token request (method, path, headers, jsonBody, expectStatus).
    pub token_request: EndpointTest,
    /// Where the token is in the token response, e.g. `$.token` or `$.data.accessToken`.
    pub token_json_path: String,
    /// Header that carries the token on the protected request.
    #[serde(default = "default_auth_header")]
    pub header: String,
    /// Text before the token in that header.
    #[serde(default = "default_bearer")]
    pub value_prefix: String,
    /// The request made with the token.
    pub protected: EndpointTest,
    /// Status the protected request must get without the token (skipped when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status_without_token: Option<u16>,
}

fn default_auth_header() -> String {
    "Authorization".to_string()
}
fn default_bearer() -> String {
    "Bearer ".to_string()
}

/// Throughput check: `requests` requests at `concurrency`, at least `minRequestsPerSecond`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThroughputTest {
    #[serde(default = "default_root")]
    pub path: String,
    #[serde(default = "default_throughput_requests")]
    #[schemars(range(min = 1, max = 10000))]
    pub requests: u32,
    #[serde(default = "default_throughput_concurrency")]
    #[schemars(range(min = 1, max = 100))]
    pub concurrency: u32,
    #[schemars(range(min = 0.0))]
    pub min_requests_per_second: f64,
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate: f64,
}

fn default_throughput_requests() -> u32 {
    200
}
fn default_throughput_concurrency() -> u32 {
    10
}

/// Regression against the previous release.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegressionTest {
    /// A new release fails when its p95 or error rate is more than this many percent worse.
    #[serde(default = "default_degradation")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_degradation_percent: u32,
    /// p95 increases up to this many milliseconds never fail (noise on fast services).
    #[serde(default = "default_p95_slack")]
    #[schemars(range(max = 60000))]
    pub p95_slack_ms: u64,
    /// Error-rate increases up to this absolute amount never fail.
    #[serde(default = "default_error_slack")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub error_rate_slack: f64,
}

fn default_degradation() -> u32 {
    20
}
fn default_p95_slack() -> u64 {
    50
}
fn default_error_slack() -> f64 {
    0.01
}

fn default_root() -> String {
    "/".to_string()
}

/// p95 latency and error rate of the release serving now: what the next release is compared with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseBaseline {
    pub version_id: String,
    pub p95_ms: u64,
    pub error_rate: f64,
}

/// Any JSON value (`x-kubernetes-preserve-unknown-fields`).
pub(crate) fn any_json(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}
