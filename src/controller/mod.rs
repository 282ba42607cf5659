//! Controllers: shared context, startup, backoff and the Lease gate. One file per CRD, each a thin
//! adapter on the generic [`scaffold`] (span, metrics, status write, ready gauge, error policy).

pub mod customer;
pub mod portfolio;
pub mod resync;
pub mod scaffold;
pub mod service;
pub mod source;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::{finalizer, watcher};

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cloudflare::Fence;
use crate::crd::conditions::reason;
use crate::crd::keys::FIELD_MANAGER;
use crate::engine::backoff::{self, Backoff};
use crate::engine::cleanup::CleanupError;
use crate::engine::error::PassError;
use crate::engine::{Engine, PassEvent};
use crate::metrics::Metrics;

/// Settings of the running controllers.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub resync: Duration,
    /// Resync requests per second one token's budget sustains (its resync share): CloudflareService
    /// resyncs are spaced so that a Customer's services fit in it (see [`resync`]).
    pub resync_rate: f64,
    pub concurrency: u16,
    pub watch_namespaces: Vec<String>,
    pub selector: Option<String>,
    pub instance: String,
    /// Retry policy for failing objects.
    pub backoff: Backoff,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(600),
            resync_rate: crate::cloudflare::RateLimit::default().resync_rate(crate::cloudflare::ResyncShare::default()),
            concurrency: 8,
            watch_namespaces: Vec::new(),
            selector: None,
            instance: "clodo-operator".into(),
            backoff: backoff::CONTROLLER,
        }
    }
}

/// Everything a reconcile needs.
pub struct Context {
    pub client: Client,
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    pub config: ControllerConfig,
    pub reporter: Reporter,
    /// One recorder for the process, so a repeated Event (same object, reason, note) becomes a
    /// series on one Event object instead of a new Event per pass.
    recorder: Recorder,
    /// Closed once this replica may no longer act (lost leadership): no status writes, no Events.
    pub fence: Fence,
    /// When each CloudflareService resyncs next.
    pub resync: resync::ResyncSchedule,
    failures: Mutex<HashMap<String, u32>>,
    /// Highest `metadata.generation` reconciled per object uid: a pass that starts from an older
    /// cached copy (a delayed watch) is skipped instead of acting on an outdated spec.
    generations: Mutex<HashMap<String, i64>>,
    /// Per object uid, resourceVersions this process replaced with its own status writes: a
    /// pass handed one of them (the watch has not delivered the newer write yet) is skipped.
    superseded: Mutex<HashMap<String, Vec<String>>>,
}

impl Context {
    pub fn new(
        client: Client,
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        config: ControllerConfig,
        fence: Fence,
    ) -> Arc<Self> {
        let reporter = Reporter { controller: "clodo-operator".into(), instance: Some(config.instance.clone()) };
        let recorder = Recorder::new(client.clone(), reporter.clone());
        let resync =
            resync::ResyncSchedule::new(config.resync, config.resync_rate, metrics.resync_effective_period.clone());
        Arc::new(Self {
            client,
            engine,
            metrics,
            config,
            reporter,
            recorder,
            fence,
            resync,
            failures: Mutex::new(HashMap::new()),
            generations: Mutex::new(HashMap::new()),
            superseded: Mutex::new(HashMap::new()),
        })
    }

    /// Refuse to act on an object older than one this process already reconciled (by uid and
    /// generation): the cache has not caught up yet, and the newer pass's result must stand.
    pub fn check_fresh<K: Resource>(&self, obj: &K) -> Result<(), Error> {
        if self.fence.is_closed() {
            return Err(Error::NotLeader);
        }
        let (Some(uid), Some(generation)) = (obj.meta().uid.clone(), obj.meta().generation) else {
            return Ok(());
        };
        if let Some(rv) = &obj.meta().resource_version
            && self.superseded.lock().unwrap_or_else(|e| e.into_inner()).get(&uid).is_some_and(|v| v.contains(rv))
        {
            return Err(Error::StaleObject);
        }
        let mut map = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        let seen = map.entry(uid).or_insert(generation);
        if generation < *seen {
            return Err(Error::StaleObject);
        }
        *seen = generation;
        Ok(())
    }

    /// Record resourceVersions of `obj` that this process's own writes replaced.
    pub fn note_superseded<K: Resource>(&self, obj: &K, versions: impl IntoIterator<Item = String>) {
        let Some(uid) = obj.meta().uid.clone() else { return };
        let mut map = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(uid).or_default();
        list.extend(versions);
        let excess = list.len().saturating_sub(8);
        list.drain(..excess);
    }

    /// Forget an object that is gone.
    pub fn forget<K: Resource>(&self, obj: &K) {
        if let Some(uid) = &obj.meta().uid {
            self.generations.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
            self.superseded.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
            self.resync.forget(uid);
        }
    }

    /// One server-side apply of the whole status with `resource_version` (the object's, or the
    /// one after this pass's last checkpoint) as a precondition, so a pass that started from a
    /// stale copy can never overwrite a newer pass's result (the API answers 409 and the object
    /// is reconciled again from fresh state).
    pub async fn write_status<K: StatusObject, S: Serialize>(
        &self,
        obj: &K,
        resource_version: Option<String>,
        status: &S,
    ) -> Result<(), Error> {
        if self.fence.is_closed() {
            return Err(Error::NotLeader);
        }
        apply_status(&self.client, obj, resource_version.clone(), status).await?;
        // The version this write replaced (and the one the pass started from) are outdated now.
        self.note_superseded(obj, obj.meta().resource_version.clone().into_iter().chain(resource_version));
        Ok(())
    }

    /// Resync interval with up to 10% jitter, so that a fleet does not resync in lockstep.
    pub fn resync_with_jitter(&self) -> Duration {
        resync::with_jitter(self.config.resync)
    }

    /// Record a failure for an object and return the backoff to wait.
    pub fn record_failure(&self, key: &str) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        self.config.backoff.delay(*n)
    }

    /// Forget an object's failures after a successful pass.
    pub fn reset_failures(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// Publish Events for an object; failures to publish are logged, never fatal.
    pub async fn publish(&self, reference: &ObjectReference, events: &[PassEvent]) {
        if events.is_empty() || self.fence.is_closed() {
            return;
        }
        let recorder = &self.recorder;
        for ev in events {
            let e = KubeEvent {
                type_: if ev.warning { EventType::Warning } else { EventType::Normal },
                reason: ev.reason.clone(),
                note: Some(ev.note.chars().take(1000).collect()),
                action: ev.action.clone(),
                secondary: None,
            };
            if let Err(err) = recorder.publish(&e, reference).await {
                tracing::warn!(error = %err, reason = %ev.reason, "publishing event failed");
            }
        }
    }

    /// Watcher config for the primary resources (label selector applied).
    pub fn watcher_config(&self) -> watcher::Config {
        let wc = watcher::Config::default();
        match &self.config.selector {
            Some(sel) if !sel.is_empty() => wc.labels(sel),
            _ => wc,
        }
    }
}

/// A namespaced custom resource whose status the operator writes.
pub trait StatusObject:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug
{
}

impl<K> StatusObject for K where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
{
}

/// Server-side apply of `status` with a resourceVersion precondition; returns the new
/// resourceVersion. A 409 (the object changed since) is [`Error::StaleObject`].
pub(crate) async fn apply_status<K: StatusObject, S: Serialize>(
    client: &Client,
    obj: &K,
    resource_version: Option<String>,
    status: &S,
) -> Result<Option<String>, Error> {
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let mut patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    if let Some(rv) = resource_version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": rv });
    }
    match api.patch_status(&obj.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await {
        Ok(o) => Ok(o.meta().resource_version.clone()),
        Err(kube::Error::Api(e)) if e.code == 409 => Err(Error::StaleObject),
        Err(e) => Err(e.into()),
    }
}

/// An error and its sources, `outer: inner: …`, for logs.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = e.source();
    }
    out
}

/// Key for per-object bookkeeping.
pub fn object_key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    format!("{kind}/{}/{name}", namespace.unwrap_or_default())
}

/// Errors the controllers return to kube-runtime (retried with backoff by `error_policy`). Each
/// keeps its `#[source]` and maps to a bounded [`Error::reason`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A CloudflareService pass stopped early and will be retried.
    #[error(transparent)]
    Pass(#[from] PassError),
    /// Cleaning up a deleted CloudflareService is blocked or failed.
    #[error(transparent)]
    Cleanup(#[from] CleanupError),
    #[error(transparent)]
    Customer(#[from] crate::engine::customer::CustomerError),
    #[error(transparent)]
    Portfolio(#[from] crate::engine::portfolio::PortfolioError),
    /// Adding or removing our finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] finalizer::Error<std::convert::Infallible>),
    /// The pass started from a copy older than the object's current state; it is retried from
    /// fresh state without counting as a failure.
    #[error("the cached object is older than its current state; reconciling again")]
    StaleObject,
    /// This replica no longer holds the Lease.
    #[error("this replica is no longer the leader")]
    NotLeader,
}

impl Error {
    /// What the error policies do instead of backing off, for errors that are no failure.
    pub fn no_backoff(&self) -> Option<kube::runtime::controller::Action> {
        match self {
            Error::StaleObject => Some(kube::runtime::controller::Action::requeue(Duration::from_millis(500))),
            Error::NotLeader => Some(kube::runtime::controller::Action::await_change()),
            _ => None,
        }
    }

    /// Bounded reason, from the error's type (never its text): the `reason` label of
    /// `clodo_reconcile_errors_total` and of the failure log line.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) | Error::Finalizer(_) => reason::KUBERNETES_ERROR,
            Error::Pass(e) => e.reason(),
            Error::Cleanup(e) => e.reason(),
            Error::Customer(e) => e.reason(),
            Error::Portfolio(e) => e.reason(),
            Error::StaleObject => "StaleObject",
            Error::NotLeader => "NotLeader",
        }
    }

    /// The error of a pass run through kube's `finalizer()`: the pass's own error, or the
    /// failed finalizer step.
    pub fn from_finalizer(err: finalizer::Error<Error>) -> Error {
        use finalizer::Error as F;
        match err {
            F::ApplyFailed(inner) | F::CleanupFailed(inner) => inner,
            F::AddFinalizer(e) => Error::Finalizer(F::AddFinalizer(e)),
            F::RemoveFinalizer(e) => Error::Finalizer(F::RemoveFinalizer(e)),
            F::UnnamedObject => Error::Finalizer(F::UnnamedObject),
            F::InvalidFinalizer => Error::Finalizer(F::InvalidFinalizer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudflare::CloudflareError;

    fn api_error() -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status { code: 500, message: "etcd down".into(), ..Default::default() }))
    }

    #[test]
    fn finalizer_steps_keep_their_text_and_source_and_have_a_kubernetes_reason() {
        let e = Error::from_finalizer(finalizer::Error::AddFinalizer(api_error()));
        assert!(matches!(e, Error::Finalizer(finalizer::Error::AddFinalizer(_))), "{e:?}");
        assert_eq!(e.reason(), reason::KUBERNETES_ERROR);
        let step = finalizer::Error::<Error>::AddFinalizer(api_error()).to_string();
        assert_eq!(e.to_string(), format!("finalizer: {step}"));
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn a_pass_error_keeps_its_type_through_the_finalizer_and_its_reason() {
        let pass = PassError::cloudflare(
            crate::crd::conditions::WORKER_DEPLOYED,
            "uploading",
            CloudflareError::not_found("zone acme.com"),
        );
        let text = pass.to_string();
        let e = Error::from_finalizer(finalizer::Error::ApplyFailed(pass.into()));
        assert!(matches!(e, Error::Pass(PassError::Cloudflare { .. })), "{e:?}");
        assert_eq!(e.reason(), reason::ZONE_NOT_FOUND);
        assert_eq!(e.to_string(), text, "the message is the pass error's");
        let blocked = Error::from(CleanupError::Blocked { reason: reason::TOKEN_MISSING, message: "m".into() });
        assert_eq!(blocked.reason(), reason::TOKEN_MISSING);
        assert_eq!(Error::from(CleanupError::Failed("x".into())).reason(), "CleanupFailed");
    }

    #[test]
    fn skipped_passes_are_no_failures() {
        assert_eq!(scaffold::result_label::<()>(&Err(Error::StaleObject)), "skipped");
        assert_eq!(scaffold::result_label::<()>(&Err(Error::NotLeader)), "skipped");
        assert_eq!(scaffold::result_label::<()>(&Err(Error::Kube(api_error()))), "error");
        assert!(Error::StaleObject.no_backoff().is_some() && Error::Kube(api_error()).no_backoff().is_none());
    }
}
