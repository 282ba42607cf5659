//! CloudflareService controller: a thin adapter around the engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info_span, warn};

use super::source::KubeSource;
use super::{Context, Error, object_key};
use crate::crd::conditions::{self, CondSpec};
use crate::crd::keys::FINALIZER;
use crate::crd::{CloudflareService, Customer};
use crate::engine::Outcome;
use crate::engine::cleanup::CleanupError;

const KIND: &str = "CloudflareService";

/// Reconcile one service.
pub async fn reconcile(svc: Arc<CloudflareService>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = svc.namespace().unwrap_or_else(|| "default".into());
    let span = info_span!("reconcile", kind = KIND, namespace = %ns, name = %svc.name_any(), generation = svc.metadata.generation.unwrap_or_default());
    async move {
        let start = Instant::now();
        let api: Api<CloudflareService> = Api::namespaced(ctx.client.clone(), &ns);
        let result = finalizer(&api, FINALIZER, svc.clone(), |event| async {
            match event {
                Finalizer::Apply(svc) => apply(&svc, &ctx).await,
                Finalizer::Cleanup(svc) => cleanup(&svc, &ctx).await,
            }
        })
        .await
        .map_err(|e| match e {
            kube::runtime::finalizer::Error::ApplyFailed(inner)
            | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner,
            other => Error::Finalizer(other.to_string()),
        });
        let label = super::result_label(&result);
        ctx.metrics.reconcile_total.with_label_values(&["service", label]).inc();
        ctx.metrics.reconcile_duration.with_label_values(&["service", label]).observe(start.elapsed().as_secs_f64());
        result
    }
    .instrument(span)
    .await
}

async fn apply(svc: &CloudflareService, ctx: &Context) -> Result<Action, Error> {
    let key = object_key(KIND, svc.namespace().as_deref(), &svc.name_any());
    ctx.check_fresh(svc)?;
    let source = KubeSource::for_object(ctx.client.clone(), svc).with_fetcher(ctx.engine.code_fetcher());
    let pass = ctx.engine.reconcile(svc, &source, &crate::engine::NoProgress).await;
    ctx.publish(&svc.object_ref(&()), &pass.events).await;
    // Also written when a checkpoint changed the stored status during the pass.
    if svc.status.as_ref() != Some(&pass.status) || source.resource_version() != svc.resource_version() {
        ctx.write_status(svc, source.resource_version(), &pass.status).await?;
    } else if ctx.fence.is_closed() {
        return Err(Error::NotLeader);
    }
    match pass.outcome {
        Outcome::Done { requeue_after } => {
            ctx.reset_failures(&key);
            // The resync period, stretched to the share of the budget resyncs may use.
            Ok(Action::requeue(requeue_after.unwrap_or_else(|| ctx.resync.next_for(svc))))
        }
        Outcome::Terminal => {
            ctx.reset_failures(&key);
            // No fast retry: an edit of the spec or a referenced object retriggers at once.
            Ok(Action::requeue(ctx.resync.next_for(svc)))
        }
        Outcome::Retry(e) => Err(Error::Engine(e.to_string())),
    }
}

async fn cleanup(svc: &CloudflareService, ctx: &Context) -> Result<Action, Error> {
    let source = KubeSource::new(ctx.client.clone()).with_fetcher(ctx.engine.code_fetcher());
    let (events, result) = ctx.engine.cleanup(svc, &source, &crate::engine::NoProgress).await;
    ctx.publish(&svc.object_ref(&()), &events).await;
    match result {
        Ok(()) => {
            ctx.forget(svc);
            Ok(Action::await_change())
        }
        Err(e @ CleanupError::Blocked { .. }) => {
            // Keep the finalizer and say why on the object; retried with backoff.
            let mut status = svc.status.clone().unwrap_or_default();
            let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
            let cond = CondSpec::ok(conditions::CLEANUP_BLOCKED, e.reason(), e.to_string());
            let others: Vec<_> =
                status.conditions.iter().filter(|x| x.type_ != conditions::CLEANUP_BLOCKED).cloned().collect();
            let merged = conditions::merge(&status.conditions, &[cond], svc.metadata.generation, &now);
            status.conditions = others.into_iter().chain(merged).collect();
            if svc.status.as_ref() != Some(&status) {
                ctx.write_status(svc, svc.resource_version(), &status).await?;
            }
            Err(Error::Engine(e.to_string()))
        }
        Err(e) => Err(Error::Engine(e.to_string())),
    }
}

/// Error policy: metrics and capped exponential backoff per object.
pub fn error_policy(svc: Arc<CloudflareService>, err: &Error, ctx: Arc<Context>) -> Action {
    if let Some(action) = err.no_backoff() {
        return action;
    }
    let key = object_key(KIND, svc.namespace().as_deref(), &svc.name_any());
    let wait = ctx.record_failure(&key);
    warn!(namespace = %svc.namespace().unwrap_or_default(), name = %svc.name_any(), error = %err, retry_in_ms = wait.as_millis() as u64, "reconcile failed");
    Action::requeue(wait)
}

/// Services in a store that reference a Customer.
fn services_for_customer(
    store: &Store<CloudflareService>,
    ns: &str,
    customer: &str,
) -> Vec<ObjectRef<CloudflareService>> {
    store
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(ns) && s.spec.customer_ref.name == customer)
        .map(|s| ObjectRef::from_obj(&*s))
        .collect()
}

/// Hash of the parts of a Customer its services depend on.
fn customer_relevance(c: &Customer) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    c.metadata.generation.hash(&mut h);
    let creds = c
        .status
        .as_ref()
        .and_then(|s| crate::crd::conditions::find(&s.conditions, crate::crd::conditions::CREDENTIALS_VALID));
    creds.map(|x| (x.status.as_str(), x.reason.as_str())).hash(&mut h);
    for z in c.status.iter().flat_map(|s| s.zones.iter()) {
        (z.name.as_str(), z.id.as_str()).hash(&mut h);
    }
    Some(h.finish())
}

/// Does a service reference this Secret (directly or through its Customer's token)?
fn references_secret(s: &CloudflareService, customers: &Store<Customer>, name: &str) -> bool {
    let b = &s.spec.body;
    let direct = b.worker.secrets.iter().any(|x| x.value_from.as_ref().is_some_and(|v| v.secret_key_ref.name == name))
        || b.production_tests
            .as_ref()
            .and_then(|t| t.auth.as_ref())
            .and_then(|a| a.with_credentials.as_ref())
            .is_some_and(|c| c.value_from.secret_key_ref.name == name)
        || b.worker.source.oci.as_ref().and_then(|o| o.pull_secret_ref.as_ref()).is_some_and(|r| r.name == name)
        || b.production_tests
            .as_ref()
            .is_some_and(|t| crate::prodtest::headers::secret_refs(t).iter().any(|(_, r)| r.name == name));
    if direct {
        return true;
    }
    let ns = s.namespace().unwrap_or_default();
    customers
        .get(&ObjectRef::new(&s.spec.customer_ref.name).within(&ns))
        .is_some_and(|c| c.spec.api_token_secret_ref.name == name)
}

fn references_config_map(s: &CloudflareService, name: &str) -> bool {
    let b = &s.spec.body;
    b.worker.source.config_map_name() == Some(name)
        || b.d1_databases.iter().any(|d| d.migrations.as_ref().is_some_and(|m| m.config_map_ref.name == name))
}

/// Run the controller for one namespace (or all, with `None`) until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    customers: Store<Customer>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    synced: impl Fn() + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    #[allow(clippy::type_complexity)]
    let (services, secrets, config_maps, customer_api): (
        Api<CloudflareService>,
        Api<PartialObjectMeta<Secret>>,
        Api<PartialObjectMeta<ConfigMap>>,
        Api<Customer>,
    ) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => {
            (Api::all(client.clone()), Api::all(client.clone()), Api::all(client.clone()), Api::all(client.clone()))
        }
    };
    let controller = Controller::new(services, ctx.watcher_config())
        .with_config(kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency));
    let store = controller.store();

    let s1 = store.clone();
    let by_customer = move |c: Customer| services_for_customer(&s1, &c.namespace().unwrap_or_default(), &c.name_any());
    let s2 = store.clone();
    let c2 = customers.clone();
    let by_secret = move |m: PartialObjectMeta<Secret>| {
        let ns = m.namespace().unwrap_or_default();
        let name = m.name_any();
        s2.state()
            .into_iter()
            .filter(|s| s.namespace().as_deref() == Some(ns.as_str()) && references_secret(s, &c2, &name))
            .map(|s| ObjectRef::from_obj(&*s))
            .collect::<Vec<_>>()
    };
    let s3 = store.clone();
    let by_config_map = move |m: PartialObjectMeta<ConfigMap>| {
        let ns = m.namespace().unwrap_or_default();
        let name = m.name_any();
        s3.state()
            .into_iter()
            .filter(|s| s.namespace().as_deref() == Some(ns.as_str()) && references_config_map(s, &name))
            .map(|s| ObjectRef::from_obj(&*s))
            .collect::<Vec<_>>()
    };

    let ready_store = store.clone();
    let gauge = ctx.metrics.resources_ready.with_label_values(&[KIND]);
    let gauge_task = tokio::spawn(async move {
        // Re-poll in short slices: a Controller's store can miss the wake-up of its ready
        // signal (observed with kube-runtime 5.0), while the state itself is ready.
        let r = loop {
            if let Ok(r) = tokio::time::timeout(Duration::from_millis(200), ready_store.wait_until_ready()).await {
                break r;
            }
        };
        if r.is_ok() {
            synced();
        }
        loop {
            let ready = ready_store
                .state()
                .iter()
                .filter(|s| {
                    s.status.as_ref().is_some_and(|st| {
                        crate::crd::conditions::is_true(&st.conditions, crate::crd::conditions::READY)
                    })
                })
                .count();
            gauge.set(ready as i64);
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });

    // Only what services consume from a Customer retriggers them: its spec and whether its
    // credentials are valid (not its service count or timestamps).
    let customer_changes = watcher(customer_api.clone(), watcher::Config::default())
        .applied_objects()
        .predicate_filter(customer_relevance, kube::runtime::PredicateConfig::default());
    // Deletions carry the last known state, which a predicate would filter out: watch them apart.
    let customer_deletions = watcher(customer_api, watcher::Config::default()).filter_map(|ev| async move {
        match ev {
            Ok(watcher::Event::Delete(c)) => Some(Ok(c)),
            Err(e) => Some(Err(e)),
            _ => None,
        }
    });
    let by_customer_deleted = by_customer.clone();
    controller
        .watches_stream(customer_changes, by_customer)
        .watches_stream(customer_deletions, by_customer_deleted)
        .watches_stream(watcher(secrets, watcher::Config::default()).touched_objects(), by_secret)
        .watches_stream(watcher(config_maps, watcher::Config::default()).touched_objects(), by_config_map)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
    gauge_task.abort();
}
