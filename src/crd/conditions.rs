//! Condition types, reasons and the metav1.Condition bookkeeping rules.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const CREDENTIALS_VALID: &str = "CredentialsValid";
pub const CONFIG_VALID: &str = "ConfigValid";
pub const SECURITY_VALIDATED: &str = "SecurityValidated";
pub const DATABASES_READY: &str = "DatabasesReady";
pub const MIGRATIONS_APPLIED: &str = "MigrationsApplied";
pub const WORKER_DEPLOYED: &str = "WorkerDeployed";
pub const ROUTES_CONFIGURED: &str = "RoutesConfigured";
pub const PRODUCTION_TESTS_PASSED: &str = "ProductionTestsPassed";
pub const READY: &str = "Ready";
pub const ZONES_RESOLVED: &str = "ZonesResolved";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
/// Set on a CloudflareService being deleted whose Cloudflare cleanup cannot run yet.
pub const CLEANUP_BLOCKED: &str = "CleanupBlocked";

/// The order in which a CloudflareService reports its conditions.
pub const SERVICE_CONDITIONS: [&str; 9] = [
    CREDENTIALS_VALID,
    CONFIG_VALID,
    SECURITY_VALIDATED,
    DATABASES_READY,
    MIGRATIONS_APPLIED,
    WORKER_DEPLOYED,
    ROUTES_CONFIGURED,
    PRODUCTION_TESTS_PASSED,
    READY,
];

/// Condition reasons (CamelCase, bounded set: they are also metric labels).
pub mod reason {
    pub const READY: &str = "Ready";
    pub const RECONCILED: &str = "Reconciled";
    pub const PENDING: &str = "Pending";
    pub const NOT_CHECKED: &str = "NotChecked";
    pub const TOKEN_VALID: &str = "TokenValid";
    pub const TOKEN_INVALID: &str = "TokenInvalid";
    pub const TOKEN_MISSING: &str = "TokenMissing";
    pub const MISSING_REFERENCE: &str = "MissingReference";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const UNRESOLVED_PLACEHOLDER: &str = "UnresolvedPlaceholder";
    pub const POLICY_VIOLATION: &str = "PolicyViolation";
    pub const POLICY_PASSED: &str = "PolicyPassed";
    pub const CHECKSUM_MISMATCH: &str = "ChecksumMismatch";
    pub const MIGRATION_FAILED: &str = "MigrationFailed";
    pub const MIGRATIONS_APPLIED: &str = "MigrationsApplied";
    pub const NO_MIGRATIONS: &str = "NoMigrations";
    pub const DATABASES_READY: &str = "DatabasesReady";
    pub const NO_DATABASES: &str = "NoDatabases";
    pub const DEPLOYED: &str = "Deployed";
    pub const CONFIGURED: &str = "Configured";
    pub const NO_ROUTES: &str = "NoRoutes";
    pub const CONFLICT: &str = "Conflict";
    pub const CLOUDFLARE_ERROR: &str = "CloudflareError";
    pub const RATE_LIMITED: &str = "RateLimited";
    pub const TIMEOUT: &str = "Timeout";
    pub const DRY_RUN: &str = "DryRun";
    pub const SUSPENDED: &str = "Suspended";
    pub const BLOCKED: &str = "Blocked";
    pub const TESTS_PASSED: &str = "TestsPassed";
    pub const PRODUCTION_TESTS_FAILED: &str = "ProductionTestsFailed";
    pub const NO_TESTS: &str = "NoTests";
    pub const NO_LOCAL_RUNTIME: &str = "NoLocalRuntime";
    pub const ROLLED_BACK: &str = "RolledBack";
    pub const CANARY_IN_PROGRESS: &str = "CanaryInProgress";
    pub const ZONES_RESOLVED: &str = "ZonesResolved";
    pub const ZONE_NOT_FOUND: &str = "ZoneNotFound";
    pub const INVALID_DEPENDENCIES: &str = "InvalidDependencies";
    pub const WAVE_IN_PROGRESS: &str = "WaveInProgress";
    pub const SERVICES_READY: &str = "ServicesReady";
    pub const SERVICES_FAILED: &str = "ServicesFailed";
    pub const NO_FAILURES: &str = "NoFailures";
    pub const CUSTOMER_NOT_FOUND: &str = "CustomerNotFound";
    /// The Kubernetes API could not be read or written (retried with backoff).
    pub const KUBERNETES_ERROR: &str = "KubernetesError";
}

/// Condition status values.
pub fn status_str(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    }
}

/// A desired condition before bookkeeping (transition time, generation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CondSpec {
    pub type_: &'static str,
    pub status: Option<bool>,
    pub reason: String,
    pub message: String,
}

impl CondSpec {
    pub fn new(type_: &'static str, status: Option<bool>, reason: &str, message: impl Into<String>) -> Self {
        Self { type_, status, reason: reason.to_string(), message: message.into() }
    }
    pub fn ok(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self::new(type_, Some(true), reason, message)
    }
    pub fn fail(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self::new(type_, Some(false), reason, message)
    }
    pub fn unknown(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self::new(type_, None, reason, message)
    }
}

/// Merge `desired` into `previous` following metav1 rules: `lastTransitionTime` changes only when
/// the status flips, `observedGeneration` is the current generation. Conditions keep the order of
/// `desired`.
pub fn merge(previous: &[Condition], desired: &[CondSpec], generation: Option<i64>, now: &Time) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = status_str(d.status).to_string();
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == d.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: d.type_.to_string(),
                status,
                reason: d.reason.clone(),
                message: truncate(&d.message, 1024),
                last_transition_time,
                observed_generation: generation,
            }
        })
        .collect()
}

/// Look up a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition exists with status "True".
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_on_status_flip() {
        let first = merge(&[], &[CondSpec::ok(READY, "Ready", "ok")], Some(1), &t(100));
        assert_eq!(first[0].last_transition_time, t(100));
        let same = merge(&first, &[CondSpec::ok(READY, "Other", "msg changed")], Some(2), &t(200));
        assert_eq!(same[0].last_transition_time, t(100));
        assert_eq!(same[0].observed_generation, Some(2));
        assert_eq!(same[0].reason, "Other");
        let flipped = merge(&same, &[CondSpec::fail(READY, "Broken", "x")], Some(2), &t(300));
        assert_eq!(flipped[0].last_transition_time, t(300));
        assert_eq!(flipped[0].status, "False");
    }

    #[test]
    fn unknown_status_and_lookup() {
        let c = merge(&[], &[CondSpec::unknown(PRODUCTION_TESTS_PASSED, "NoLocalRuntime", "m")], None, &t(1));
        assert_eq!(c[0].status, "Unknown");
        assert!(!is_true(&c, PRODUCTION_TESTS_PASSED));
        assert!(find(&c, READY).is_none());
    }

    #[test]
    fn long_messages_are_truncated_on_char_boundary() {
        let msg = "é".repeat(2000);
        let c = merge(&[], &[CondSpec::fail(READY, "X", msg)], None, &t(1));
        assert!(c[0].message.len() <= 1024 + "…".len());
    }
}
