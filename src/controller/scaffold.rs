//! What every controller does around its kind-specific pass, written once: the root span and the
//! reconcile metrics around a pass, the one status write (skipped when unchanged), the
//! `clodo_resources_ready` gauge, the error policy (capped exponential backoff per object) and
//! the loop that drives a kube `Controller`. A controller file keeps only what is its own: which
//! objects it reads, which engine call it makes, and which changes retrigger it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use tracing::{Instrument, info_span, warn};

use super::{Context, Error, StatusObject, error_chain, object_key};
use crate::crd::conditions::{self, READY};
use crate::crd::{CloudflareService, Customer, Portfolio};
use crate::engine::PassEvent;
use crate::metrics::Metrics;

/// A kind one of our controllers reconciles.
pub trait Reconciled: StatusObject + Send + Sync + 'static {
    /// The kind: span field, per-object bookkeeping key and `clodo_resources_ready{kind}`.
    const KIND: &'static str;
    /// The `controller` label of the reconcile metrics.
    const CONTROLLER: &'static str;
    /// What the operator writes to `/status`.
    type Status: Serialize + PartialEq + Send + Sync;

    fn status(&self) -> Option<&Self::Status>;

    /// The conditions of the stored status (none without a status).
    fn conditions(&self) -> &[Condition];

    /// `Ready=True` in the stored status.
    fn is_ready(&self) -> bool {
        conditions::is_true(self.conditions(), READY)
    }
}

macro_rules! reconciled {
    ($kind:ty, $status:ty, $controller:literal) => {
        impl Reconciled for $kind {
            const KIND: &'static str = stringify!($kind);
            const CONTROLLER: &'static str = $controller;
            type Status = $status;

            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }

            fn conditions(&self) -> &[Condition] {
                self.status.as_ref().map_or(&[], |s| s.conditions.as_slice())
            }
        }
    };
}

reconciled!(CloudflareService, crate::crd::CloudflareServiceStatus, "service");
reconciled!(Customer, crate::crd::CustomerStatus, "customer");
reconciled!(Portfolio, crate::crd::PortfolioStatus, "portfolio");

/// The object's namespace (`default` when it has none).
pub fn namespace_of<K: Reconciled>(obj: &K) -> String {
    obj.namespace().unwrap_or_else(|| "default".into())
}

/// Key of the object's failure count in [`Context`].
pub fn key_of<K: Reconciled>(obj: &K) -> String {
    object_key(K::KIND, obj.namespace().as_deref(), &obj.name_any())
}

/// Run one pass inside the root span (`kind`, `namespace`, `name`, `generation`) and record it:
/// `clodo_reconcile_total` and `clodo_reconcile_duration_seconds` by result, and for a failed
/// pass `clodo_reconcile_errors_total` by its error's reason.
pub async fn reconcile<K: Reconciled>(
    obj: &K,
    metrics: &Metrics,
    pass: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let span = info_span!(
        "reconcile",
        kind = K::KIND,
        namespace = %namespace_of(obj),
        name = %obj.name_any(),
        generation = obj.meta().generation.unwrap_or_default()
    );
    async move {
        let start = Instant::now();
        let result = pass.await;
        record(metrics, K::CONTROLLER, &result, start.elapsed());
        result
    }
    .instrument(span)
    .await
}

/// Label of `clodo_reconcile_total`: `ok`, `error`, or `skipped` for passes that did nothing
/// because the object was stale or this replica no longer leads.
pub fn result_label<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Error::StaleObject | Error::NotLeader) => "skipped",
        Err(_) => "error",
    }
}

fn record<T>(metrics: &Metrics, controller: &str, result: &Result<T, Error>, elapsed: Duration) {
    let label = result_label(result);
    metrics.reconcile_total.with_label_values(&[controller, label]).inc();
    metrics.reconcile_duration.with_label_values(&[controller, label]).observe(elapsed.as_secs_f64());
    if let Err(e) = result
        && label == "error"
    {
        metrics.reconcile_errors_total.with_label_values(&[controller, e.reason()]).inc();
    }
}

/// The end of a pass: its Events, then one server-side apply of the whole status, skipped when
/// neither the status nor the resourceVersion to write against (`resource_version`: the
/// object's, or the one after this pass's last checkpoint) differs from the object's. Returns
/// whether the status was written.
pub async fn finish<K: Reconciled>(
    ctx: &Context,
    obj: &K,
    events: &[PassEvent],
    resource_version: Option<String>,
    status: &K::Status,
) -> Result<bool, Error> {
    ctx.publish(&obj.object_ref(&()), events).await;
    write_status_if_changed(ctx, obj, resource_version, status).await
}

/// [`finish`] without Events.
pub async fn write_status_if_changed<K: Reconciled>(
    ctx: &Context,
    obj: &K,
    resource_version: Option<String>,
    status: &K::Status,
) -> Result<bool, Error> {
    if obj.status() == Some(status) && resource_version == obj.resource_version() {
        return Ok(false);
    }
    ctx.write_status(obj, resource_version, status).await?;
    Ok(true)
}

/// Error policy: no backoff for passes that were no failure, otherwise capped exponential
/// backoff from the object's failure count (reset by the next successful pass).
pub fn error_policy<K: Reconciled>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    if let Some(action) = err.no_backoff() {
        return action;
    }
    let wait = ctx.record_failure(&key_of(&*obj));
    warn!(
        kind = K::KIND,
        namespace = %obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        reason = err.reason(),
        error = %error_chain(err),
        retry_in_ms = wait.as_millis() as u64,
        "reconcile failed"
    );
    Action::requeue(wait)
}

/// An API for one namespace, or all of them with `None`.
pub fn scoped_api<K>(client: Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// A controller for the primary resources of `api` (label selector and concurrency applied).
pub fn controller<K: Reconciled>(ctx: &Context, api: Api<K>) -> Controller<K> {
    Controller::new(api, ctx.watcher_config())
        .with_config(kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency))
}

/// Drive `controller` with `reconcile` and [`error_policy`] until its shutdown signal, keeping
/// the ready gauge of its kind up to date meanwhile (see [`spawn_ready_gauge`] for `synced`).
pub async fn run<K, Fut>(
    controller: Controller<K>,
    ctx: Arc<Context>,
    reconcile: impl FnMut(Arc<K>, Arc<Context>) -> Fut,
    synced: Option<Box<dyn FnOnce() + Send>>,
) where
    K: Reconciled,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    let gauge = spawn_ready_gauge(&ctx.metrics, controller.store(), synced);
    controller
        .run(reconcile, error_policy::<K>, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(kind = K::KIND, error = %e, "controller event");
            }
        })
        .await;
    gauge.abort();
}

/// Keep `clodo_resources_ready{kind}` at the number of objects in `store` with `Ready=True`,
/// recounted every 5 s. With `synced`, first wait for the store's initial listing and call it.
pub fn spawn_ready_gauge<K: Reconciled>(
    metrics: &Metrics,
    store: Store<K>,
    synced: Option<Box<dyn FnOnce() + Send>>,
) -> tokio::task::JoinHandle<()> {
    let gauge = metrics.resources_ready.with_label_values(&[K::KIND]);
    tokio::spawn(async move {
        if let Some(synced) = synced {
            // Re-poll in short slices: a Controller's store can miss the wake-up of its ready
            // signal (observed with kube-runtime 5.0), while the state itself is ready.
            let r = loop {
                if let Ok(r) = tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
                    break r;
                }
            };
            if r.is_ok() {
                synced();
            }
        }
        loop {
            let ready = store.state().iter().filter(|o| o.is_ready()).count();
            gauge.set(ready as i64);
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    })
}
