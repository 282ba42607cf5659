//! The observed state of a `CloudflareService` (its `status`), as the operator writes it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Ownership;
use super::prodtests::ReleaseBaseline;
use super::source::SourceStatus;

/// Lifecycle phase.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Phase {
    #[default]
    Pending,
    Validating,
    Migrating,
    Deploying,
    Testing,
    Ready,
    Failed,
    RolledBack,
    Suspended,
}

/// Observed state of a CloudflareService.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudflareServiceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_domains: Vec<CustomDomainStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_test_run: Option<TestRun>,
    /// Deploy history, newest first, at most 10 entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    /// Changes a dry run would make.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<String>,
    /// Progress of a canary rollout in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutProgress>,
    /// Content hash of a version that failed its tests and was rolled back; not redeployed until it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_content_hash: Option<String>,
    /// Digest of the inputs the last pass saw (spec + referenced objects); lets a quiet resync skip work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_hash: Option<String>,
    /// The artifact the last pass took the Worker's code from (OCI or URL sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceStatus>,
    /// Measurements of the current release for production-test regression checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_baseline: Option<ReleaseBaseline>,
}

/// The deployed Worker.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    pub script_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// First 8 characters of versionId (printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<Time>,
}

/// A D1 database and its migrations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    pub binding: String,
    pub name: String,
    /// Database UUID; empty while a creation this resource asked for is not confirmed yet.
    pub id: String,
    /// `Created` or `Adopted`: why this resource may migrate (and, with `deletionPolicy:
    /// Delete`, delete) the database. Absent in status written before ownership was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Ownership>,
    #[serde(default)]
    pub applied_migrations: Vec<AppliedMigration>,
    /// D1 Time Travel bookmark taken before the last production migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_bookmark: Option<String>,
}

/// One applied migration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedMigration {
    pub name: String,
    /// `sha256:<hex>` of the file content as applied; empty when applied outside the operator.
    pub checksum: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
}

/// A route the service owns.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    pub pattern: String,
    pub id: String,
    pub zone_id: String,
}

/// A custom domain the service owns.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomDomainStatus {
    pub hostname: String,
    pub id: String,
}

/// The last production test run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    pub passed: u32,
    pub failed: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<u64>,
    #[serde(default)]
    pub results: Vec<TestResult>,
    /// Share of failed requests (0..1) of the performance (else throughput) check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Requests per second measured by the throughput check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
}

/// One check's result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub suite: String,
    pub name: String,
    pub passed: bool,
    pub message: String,
    pub duration_ms: u64,
}

/// One deploy in the history.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub version_id: String,
    pub content_hash: String,
    pub at: Time,
    /// Deployed, RolledBack, Failed, CanaryAborted, ManualRollback.
    pub outcome: String,
}

/// Canary progress kept across passes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutProgress {
    pub version_id: String,
    pub previous_version_id: String,
    pub content_hash: String,
    /// Index into rollout.canary.steps of the step currently deployed; -1 = smoke test at 0%.
    pub step: i32,
    pub percentage: u32,
    pub step_started_at: Time,
}
