//! The reconcile core shared by the controllers and the CLI. It never touches `kube::Api`:
//! Kubernetes objects come in through [`resolve::ObjectSource`], and a pass returns the new
//! status, the Events to publish and what to do next.
//!
//! One pass: resolve -> render -> security -> pass-level steps (token, canary, manual rollback,
//! drift check) -> observe -> plan -> execute -> production tests -> status. Every decision is a
//! [`steps::Step`], planned by the pure [`preflight`] before it runs.

pub mod backoff;
pub mod cleanup;
pub mod credentials;
pub mod customer;
pub mod desired;
pub mod error;
pub mod execute;
mod execute_steps;
#[cfg(test)]
pub mod fixtures;
pub mod generated;
pub mod hash;
pub mod migrations;
pub mod observe;
pub mod ops;
pub mod plan;
pub mod portfolio;
pub mod preflight;
pub mod render;
pub mod resolve;
pub mod rollout;
pub mod secret;
pub mod security;
pub mod status;
pub mod steps;
pub mod verify;
pub mod zones;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::cloudflare::{ClientPool, CloudflareClient, CloudflareError};
use crate::crd::conditions::{self as c, reason};
use crate::crd::{CloudflareService, CloudflareServiceStatus, Phase};
use crate::metrics::Metrics;
use resolve::{ObjectSource, ResolveError};
use security::Severity;
use status::Report;

/// Source of the current time (tests pin it).
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// One Event to publish (Normal for a change, Warning for a failure). Notes name fields and keys,
/// never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassEvent {
    pub warning: bool,
    pub reason: String,
    pub action: String,
    pub note: String,
}

impl PassEvent {
    pub fn normal(reason: &str, action: &str, note: impl Into<String>) -> Self {
        Self { warning: false, reason: reason.into(), action: action.into(), note: note.into() }
    }
    pub fn warning(reason: &str, action: &str, note: impl Into<String>) -> Self {
        Self { warning: true, reason: reason.into(), action: action.into(), note: note.into() }
    }
}

/// Receives events as they happen (the CLI prints them).
pub trait Progress: Send + Sync {
    fn event(&self, ev: &PassEvent);
}

/// Discards progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _ev: &PassEvent) {}
}

/// What the caller should do after a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Converged (or waiting on time): requeue after the given delay, or the resync interval.
    Done { requeue_after: Option<Duration> },
    /// Needs a spec or referenced-object change; no fast retry.
    Terminal,
    /// Retryable failure (its message names the step, never a value).
    Retry(error::PassError),
}

/// Result of one pass.
#[derive(Debug, Clone)]
pub struct PassResult {
    pub status: CloudflareServiceStatus,
    pub events: Vec<PassEvent>,
    pub outcome: Outcome,
    /// Every step the pass planned, in order (a dry run lists their descriptions in status.plan).
    pub planned: Vec<plan::Step>,
    /// The steps the pass ran, in order: the planned ones, up to where the pass stopped (a dry
    /// run runs only the reads).
    pub executed: Vec<plan::Step>,
}

/// Engine settings.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Production tests cannot reach deployed code (sandbox without a local Workers runtime).
    pub no_local_runtime: bool,
    /// Send production tests to this local edge listener, with the service's host in the Host
    /// header (the sandbox's stand-in for DNS).
    pub edge_url: Option<String>,
}

/// The reconcile core.
pub struct Engine {
    pub clients: ClientPool,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub config: EngineConfig,
    /// Tokens verified recently (by key, never the token), so quiet passes skip the check.
    verified: std::sync::Mutex<std::collections::HashMap<crate::cloudflare::TokenKey, std::time::Instant>>,
    /// Per service (`namespace/name`): the version last seen (or made) serving 100%, and when.
    checked: std::sync::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
    /// Fetches OCI and URL code sources (cache in the temp dir unless configured).
    code_fetcher: Option<Arc<crate::source::Fetcher>>,
}

/// How long a successful token verification is trusted when no Customer status vouches for it.
pub const TOKEN_VERIFY_TTL: Duration = Duration::from_secs(3600);

/// How long a quiet pass trusts the last drift check (or deploy) of the same service instead of
/// reading the active deployment again: the passes that follow right after another one (the echo
/// of its own status write, the startup events of watched Secrets and ConfigMaps) cost nothing.
pub const DRIFT_CHECK_TTL: Duration = Duration::from_secs(30);

/// Mutable state of one pass.
pub(crate) struct Pass<'a> {
    /// Cloudflare rejected the token this pass (forget its cached verification).
    pub token_rejected: bool,
    pub report: Report,
    pub events: Vec<PassEvent>,
    pub status: CloudflareServiceStatus,
    pub progress: &'a dyn Progress,
    pub now: Time,
    /// The object being reconciled and where its inputs (and status checkpoints) go.
    pub svc: &'a CloudflareService,
    pub src: &'a dyn ObjectSource,
    /// The `generate` secrets of this pass's upload: a value to set, or `None` to keep the
    /// Worker's (filled just before the upload).
    pub generated: Vec<(String, Option<secret::SecretValue>)>,
    /// Every step planned this pass, and the ones run.
    pub planned: Vec<plan::Step>,
    pub executed: Vec<plan::Step>,
}

impl Pass<'_> {
    pub fn emit(&mut self, ev: PassEvent) {
        if ev.warning {
            tracing::warn!(reason = %ev.reason, action = %ev.action, note = %ev.note, "event");
        } else {
            tracing::info!(reason = %ev.reason, action = %ev.action, note = %ev.note, "event");
        }
        self.progress.event(&ev);
        self.events.push(ev);
    }
}

/// Map a Cloudflare error to a condition reason.
pub fn cf_reason(e: &CloudflareError) -> &'static str {
    if e.is_auth_error() {
        reason::TOKEN_INVALID
    } else if e.is_rate_limited() {
        reason::RATE_LIMITED
    } else if e.is_timeout() {
        reason::TIMEOUT
    } else if matches!(e, CloudflareError::NotFound { what } if what.starts_with("zone ")) {
        // A zone the Customer names that the account does not have (terminal, not an API error).
        reason::ZONE_NOT_FOUND
    } else {
        reason::CLOUDFLARE_ERROR
    }
}

impl Engine {
    pub fn new(clients: ClientPool, metrics: Arc<Metrics>, config: EngineConfig) -> Self {
        Self {
            clients,
            metrics,
            clock: Arc::new(SystemClock),
            config,
            verified: Default::default(),
            checked: Default::default(),
            code_fetcher: crate::source::Fetcher::new(&Default::default()).ok().map(Arc::new),
        }
    }

    /// Use this fetcher (cache directory, limits) for OCI and URL code sources.
    pub fn with_code_fetcher(mut self, fetcher: Arc<crate::source::Fetcher>) -> Self {
        self.code_fetcher = Some(fetcher);
        self
    }

    /// The fetcher for OCI and URL code sources.
    pub fn code_fetcher(&self) -> Option<Arc<crate::source::Fetcher>> {
        self.code_fetcher.clone()
    }

    fn now(&self) -> Time {
        Time(self.clock.now())
    }

    /// Run one reconcile pass for a service.
    pub async fn reconcile(
        &self,
        svc: &CloudflareService,
        src: &dyn ObjectSource,
        progress: &dyn Progress,
    ) -> PassResult {
        let mut pass = Pass {
            token_rejected: false,
            report: Report::new(),
            events: Vec::new(),
            status: svc.status.clone().unwrap_or_default(),
            progress,
            now: self.now(),
            svc,
            src,
            generated: Vec::new(),
            planned: Vec::new(),
            executed: Vec::new(),
        };
        let generation = svc.metadata.generation;
        let (phase, outcome) = self.run_pass(svc, src, &mut pass).await;
        if let Some(failed) = pass.report.first_not_ok()
            && failed.status == Some(false)
            && !matches!(phase, Phase::Suspended | Phase::RolledBack)
        {
            let ev = PassEvent::warning(&failed.reason, failed.type_, format!("{}: {}", failed.type_, failed.message));
            if !pass.events.contains(&ev) {
                pass.emit(ev);
            }
        }
        status::apply(&mut pass.status, &pass.report, phase, generation, &pass.now);
        PassResult { status: pass.status, events: pass.events, outcome, planned: pass.planned, executed: pass.executed }
    }

    async fn run_pass(&self, svc: &CloudflareService, src: &dyn ObjectSource, pass: &mut Pass<'_>) -> (Phase, Outcome) {
        if svc.spec.body.suspend {
            pass.report = status::report_from_conditions(&pass.status.conditions);
            pass.report.fail(c::READY, reason::SUSPENDED, "spec.suspend is true: nothing is changed in Cloudflare");
            return (Phase::Suspended, Outcome::Done { requeue_after: None });
        }
        if !svc.spec.body.dry_run {
            pass.status.plan.clear();
        }

        // Resolve references.
        let inputs = match resolve::resolve(src, svc).await {
            Ok(i) => i,
            Err(ResolveError::Config(e)) => {
                let why = e.reason();
                if e.retryable {
                    pass.report.unknown(c::CONFIG_VALID, e.reason(), e.to_string());
                    return (Phase::Validating, Outcome::Retry(error::PassError::Config(e)));
                }
                pass.report.fail(c::CONFIG_VALID, why, e.to_string());
                return (Phase::Failed, Outcome::Terminal);
            }
            Err(ResolveError::Source(e)) => {
                pass.report.unknown(c::CONFIG_VALID, reason::KUBERNETES_ERROR, e.to_string());
                return (Phase::Validating, Outcome::Retry(error::PassError::kubernetes("resolving references", e)));
            }
        };
        pass.status.source = inputs.source.clone();
        let desired = match desired::build(&inputs) {
            Ok(d) => d,
            Err(e) => {
                pass.report.fail(c::CONFIG_VALID, e.reason(), e.to_string());
                return (Phase::Failed, Outcome::Terminal);
            }
        };

        // Security policy.
        let findings = security::evaluate(&security::PolicyInput {
            level: desired.policy,
            vars: desired.vars.iter().map(|(k, v)| (format!("spec.worker.vars.{k}"), v.as_str())).collect(),
            secrets: desired.secrets.iter().map(|(k, v)| (format!("spec.worker.secrets.{k}"), v.expose())).collect(),
            token_present: inputs.token.is_some(),
        });
        let (blocks, warns): (Vec<_>, Vec<_>) = findings.into_iter().partition(|f| f.severity == Severity::Block);
        for w in &warns {
            pass.emit(PassEvent::warning("PolicyWarning", "SecurityCheck", w.to_string()));
        }
        let Some(token) = inputs.token.clone() else {
            let msg = inputs.token_problem.map(|e| e.to_string()).unwrap_or_else(|| "API token missing".into());
            pass.report.fail(c::CREDENTIALS_VALID, reason::TOKEN_MISSING, msg);
            return (Phase::Failed, Outcome::Terminal);
        };
        let customer_says = customer_credentials(&inputs.customer);
        if let Some((false, msg)) = &customer_says {
            pass.report.fail(c::CREDENTIALS_VALID, reason::TOKEN_INVALID, msg.clone());
            return (Phase::Failed, Outcome::Terminal);
        }
        pass.report.ok(c::CONFIG_VALID, reason::RECONCILED, "every reference resolved and every template rendered");
        if !blocks.is_empty() {
            let msg = blocks.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            pass.report.ok(c::CREDENTIALS_VALID, reason::TOKEN_VALID, "API token present");
            pass.report.fail(
                c::SECURITY_VALIDATED,
                reason::POLICY_VIOLATION,
                format!("{} policy: {msg}", policy_name(desired.policy)),
            );
            return (Phase::Failed, Outcome::Terminal);
        }
        pass.report.ok(
            c::SECURITY_VALIDATED,
            reason::POLICY_PASSED,
            format!("{} policy passed with {} warning(s)", policy_name(desired.policy), warns.len()),
        );

        let client = match self.client_for(token.expose()) {
            Ok(c) => c,
            Err(e) => {
                pass.report.fail(c::CREDENTIALS_VALID, reason::TOKEN_INVALID, e.to_string());
                return (Phase::Failed, Outcome::Terminal);
            }
        };
        let result = execute::run(self, &client, &desired, customer_says.is_some(), pass).await;
        if pass.token_rejected {
            self.mark_verified(&client, false);
        }
        result
    }

    /// Delete what the service owns in Cloudflare, per its deletion policies.
    pub async fn cleanup(
        &self,
        svc: &CloudflareService,
        src: &dyn ObjectSource,
        progress: &dyn Progress,
    ) -> (Vec<PassEvent>, Result<(), cleanup::CleanupError>) {
        cleanup::run(self, svc, src, progress).await
    }

    /// Run the production tests, record their metrics, and list the failures (`suite/name: why`).
    pub(crate) async fn run_production_tests(
        &self,
        spec: &crate::crd::ProductionTestsSpec,
        target: &crate::prodtest::Target,
        now: &Time,
    ) -> (crate::crd::TestRun, Vec<String>) {
        let mut run = crate::prodtest::run_suites(spec, target).await;
        run.started_at = Some(now.clone());
        for r in &run.results {
            let label = if r.passed { "passed" } else { "failed" };
            self.metrics.production_tests_total.with_label_values(&[&r.suite, label]).inc();
            self.metrics.production_test_duration.with_label_values(&[&r.suite]).observe(r.duration_ms as f64 / 1000.0);
        }
        let failures = run
            .results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| format!("{}/{}: {}", r.suite, r.name, r.message))
            .collect();
        (run, failures)
    }

    /// Where production tests go: `productionTests.baseUrl`, else the service URL.
    pub(crate) fn test_target(
        &self,
        d: &desired::Desired,
        st: &CloudflareServiceStatus,
    ) -> Option<crate::prodtest::Target> {
        let base = d.tests.as_ref().and_then(|t| t.base_url.clone()).or_else(|| st.url.clone())?;
        let (base_url, host_header) = match &self.config.edge_url {
            Some(edge) => {
                let host = base.split("://").nth(1).unwrap_or(&base).split('/').next().unwrap_or_default().to_string();
                (edge.clone(), Some(host))
            }
            None => (base, None),
        };
        Some(crate::prodtest::Target {
            base_url,
            host_header,
            headers: Vec::new(),
            credential: d.test_credential.clone(),
            secrets: d.test_secrets.clone(),
        })
    }

    /// Whether `version` was seen (or made) serving 100% of the service within [`DRIFT_CHECK_TTL`].
    pub(crate) fn recently_checked(&self, d: &desired::Desired, version: &str) -> bool {
        let map = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&format!("{}/{}", d.namespace, d.name))
            .is_some_and(|(v, at)| v == version && at.elapsed() < DRIFT_CHECK_TTL)
    }

    /// Record that `version` serves 100% of the service now.
    pub(crate) fn mark_checked(&self, d: &desired::Desired, version: &str) {
        let mut map = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= 4096 {
            map.retain(|_, (_, at)| at.elapsed() < DRIFT_CHECK_TTL);
        }
        map.insert(format!("{}/{}", d.namespace, d.name), (version.to_string(), std::time::Instant::now()));
    }

    /// Whether this client's token was verified within [`TOKEN_VERIFY_TTL`].
    pub(crate) fn recently_verified(&self, client: &CloudflareClient) -> bool {
        let map = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&client.token_key()).is_some_and(|at| at.elapsed() < TOKEN_VERIFY_TTL)
    }

    /// Record (or forget, when `ok` is false) a token verification.
    pub(crate) fn mark_verified(&self, client: &CloudflareClient, ok: bool) {
        let mut map = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            map.insert(client.token_key(), std::time::Instant::now());
        } else {
            map.remove(&client.token_key());
        }
    }

    pub(crate) fn client_for(&self, token: &str) -> Result<CloudflareClient, CloudflareError> {
        self.clients.client_for(&crate::cloudflare::ApiToken::new(token))
    }
}

/// What the Customer's status says about its token: Some((valid, message)) when it was checked.
fn customer_credentials(customer: &crate::crd::Customer) -> Option<(bool, String)> {
    let st = customer.status.as_ref()?;
    let cond = c::find(&st.conditions, c::CREDENTIALS_VALID)?;
    match cond.status.as_str() {
        "True" => Some((true, cond.message.clone())),
        "False" => Some((false, format!("Customer reports: {}", cond.message))),
        _ => None,
    }
}

fn policy_name(p: crate::crd::PolicyLevel) -> &'static str {
    match p {
        crate::crd::PolicyLevel::Strict => "strict",
        crate::crd::PolicyLevel::Standard => "standard",
        crate::crd::PolicyLevel::Relaxed => "relaxed",
    }
}
