//! CloudflareService controller: a thin adapter around the engine.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use super::source::KubeSource;
use super::{Context, Error, scaffold};
use crate::crd::conditions::{self, CondSpec};
use crate::crd::keys::FINALIZER;
use crate::crd::{CloudflareService, Customer};
use crate::engine::Outcome;
use crate::engine::cleanup::CleanupError;

/// Reconcile one service.
pub async fn reconcile(svc: Arc<CloudflareService>, ctx: Arc<Context>) -> Result<Action, Error> {
    scaffold::reconcile(&*svc, &ctx.metrics, async {
        let api: Api<CloudflareService> = Api::namespaced(ctx.client.clone(), &scaffold::namespace_of(&*svc));
        finalizer(&api, FINALIZER, svc.clone(), |event| async {
            match event {
                Finalizer::Apply(svc) => apply(&svc, &ctx).await,
                Finalizer::Cleanup(svc) => cleanup(&svc, &ctx).await,
            }
        })
        .await
        .map_err(Error::from_finalizer)
    })
    .await
}

async fn apply(svc: &CloudflareService, ctx: &Context) -> Result<Action, Error> {
    ctx.check_fresh(svc)?;
    let source = KubeSource::for_object(ctx.client.clone(), svc).with_fetcher(ctx.engine.code_fetcher());
    let pass = ctx.engine.reconcile(svc, &source, &crate::engine::NoProgress).await;
    // Also written when a checkpoint changed the stored status during the pass.
    let written = scaffold::finish(ctx, svc, &pass.events, source.resource_version(), &pass.status).await?;
    if !written && ctx.fence.is_closed() {
        return Err(Error::NotLeader);
    }
    match pass.outcome {
        Outcome::Done { requeue_after } => {
            ctx.reset_failures(&scaffold::key_of(svc));
            // The resync period, stretched to the share of the budget resyncs may use.
            Ok(Action::requeue(requeue_after.unwrap_or_else(|| ctx.resync.next_for(svc))))
        }
        Outcome::Terminal => {
            ctx.reset_failures(&scaffold::key_of(svc));
            // No fast retry: an edit of the spec or a referenced object retriggers at once.
            Ok(Action::requeue(ctx.resync.next_for(svc)))
        }
        Outcome::Retry(e) => Err(e.into()),
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
            scaffold::write_status_if_changed(ctx, svc, svc.resource_version(), &status).await?;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
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

/// The APIs the CloudflareService controller watches.
struct Watched {
    services: Api<CloudflareService>,
    secrets: Api<PartialObjectMeta<Secret>>,
    config_maps: Api<PartialObjectMeta<ConfigMap>>,
    customers: Api<Customer>,
}

impl Watched {
    fn new(client: &kube::Client, namespace: Option<&str>) -> Self {
        Self {
            services: scaffold::scoped_api(client.clone(), namespace),
            secrets: scaffold::scoped_api(client.clone(), namespace),
            config_maps: scaffold::scoped_api(client.clone(), namespace),
            customers: scaffold::scoped_api(client.clone(), namespace),
        }
    }
}

/// Services of `store` in `m`'s namespace for which `refers(service, name of m)` holds.
fn referring<M: Resource>(
    store: &Store<CloudflareService>,
    m: &M,
    refers: impl Fn(&CloudflareService, &str) -> bool,
) -> Vec<ObjectRef<CloudflareService>> {
    let ns = m.namespace().unwrap_or_default();
    let name = m.name_any();
    store
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()) && refers(s, &name))
        .map(|s| ObjectRef::from_obj(&*s))
        .collect()
}

/// Customer changes that retrigger its services: only what services consume from a Customer,
/// its spec and whether its credentials are valid (not its service count or timestamps); and
/// its deletion, which carries the last known state a predicate would filter out.
fn customer_triggers(
    api: Api<Customer>,
) -> (
    impl futures::Stream<Item = Result<Customer, watcher::Error>> + Send + 'static,
    impl futures::Stream<Item = Result<Customer, watcher::Error>> + Send + 'static,
) {
    let changes = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .predicate_filter(customer_relevance, kube::runtime::PredicateConfig::default());
    let deletions = watcher(api, watcher::Config::default()).filter_map(|ev| async move {
        match ev {
            Ok(watcher::Event::Delete(c)) => Some(Ok(c)),
            Err(e) => Some(Err(e)),
            _ => None,
        }
    });
    (changes, deletions)
}

/// Run the controller for one namespace (or all, with `None`) until `shutdown` resolves;
/// `synced` is called once the watch of services has listed them.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    customers: Store<Customer>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    synced: impl Fn() + Send + Sync + 'static,
) {
    let apis = Watched::new(&ctx.client, namespace.as_deref());
    let controller = scaffold::controller(&ctx, apis.services);
    let store = controller.store();

    let s = store.clone();
    let by_customer = move |c: Customer| services_for_customer(&s, &c.namespace().unwrap_or_default(), &c.name_any());
    let by_customer_deleted = by_customer.clone();
    let s = store.clone();
    let by_secret =
        move |m: PartialObjectMeta<Secret>| referring(&s, &m, |svc, name| references_secret(svc, &customers, name));
    let by_config_map = move |m: PartialObjectMeta<ConfigMap>| referring(&store, &m, references_config_map);
    let (customer_changes, customer_deletions) = customer_triggers(apis.customers);

    let controller = controller
        .watches_stream(customer_changes, by_customer)
        .watches_stream(customer_deletions, by_customer_deleted)
        .watches_stream(watcher(apis.secrets, watcher::Config::default()).touched_objects(), by_secret)
        .watches_stream(watcher(apis.config_maps, watcher::Config::default()).touched_objects(), by_config_map)
        .graceful_shutdown_on(shutdown);
    scaffold::run(controller, ctx, reconcile, Some(Box::new(synced))).await;
}
