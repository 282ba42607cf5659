//! Customer controller: a thin adapter around [`crate::engine::customer`] (token verification,
//! zones, service count), plus the watches that bring Secret and service changes to it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info_span, warn};

use super::source::KubeSource;
use super::{Context, Error, object_key};
use crate::crd::conditions as c;
use crate::crd::{CloudflareService, Customer};
use crate::engine::customer::{self, observe::token_rejected_at};

const KIND: &str = "Customer";

/// What a service contributes to its Customer's reconcile: which Customer, whether it is going
/// away, and when it last saw the token rejected.
fn customer_facing(s: &CloudflareService) -> u64 {
    use std::hash::{Hash, Hasher};
    let rejected = token_rejected_at(s).map(|t| t.to_string());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&s.spec.customer_ref.name, s.metadata.deletion_timestamp.is_some(), rejected).hash(&mut h);
    h.finish()
}

/// Service changes that can change a Customer's reconcile: a service appears or goes away, moves
/// to another Customer, or sees its token rejected. The status churn of services converging is
/// left out: every trigger lists the namespace's services, so passing it on would cost a list
/// of N services per service change (O(N^2) for a fleet).
fn service_triggers(
    api: Api<CloudflareService>,
) -> impl futures::Stream<Item = Result<CloudflareService, watcher::Error>> + Send + 'static {
    let mut seen: std::collections::HashMap<String, u64> = Default::default();
    watcher(api, watcher::Config::default()).filter_map(move |ev| {
        let out = match ev {
            Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                let key = s.metadata.uid.clone().unwrap_or_else(|| s.name_any());
                let facing = customer_facing(&s);
                (seen.insert(key, facing) != Some(facing)).then_some(Ok(s))
            }
            Ok(watcher::Event::Delete(s)) => {
                seen.remove(&s.metadata.uid.clone().unwrap_or_else(|| s.name_any()));
                Some(Ok(s))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(e) => Some(Err(e)),
        };
        futures::future::ready(out)
    })
}

/// Reconcile one customer.
pub async fn reconcile(cust: Arc<Customer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = cust.namespace().unwrap_or_else(|| "default".into());
    let span = info_span!("reconcile", kind = KIND, namespace = %ns, name = %cust.name_any(), generation = cust.metadata.generation.unwrap_or_default());
    async move {
        let start = Instant::now();
        let result = apply(&cust, &ctx, &ns).await;
        let label = super::result_label(&result);
        ctx.metrics.reconcile_total.with_label_values(&["customer", label]).inc();
        ctx.metrics.reconcile_duration.with_label_values(&["customer", label]).observe(start.elapsed().as_secs_f64());
        result
    }
    .instrument(span)
    .await
}

async fn apply(cust: &Customer, ctx: &Context, ns: &str) -> Result<Action, Error> {
    ctx.check_fresh(cust)?;
    let source = KubeSource::new(ctx.client.clone());
    // Services of the namespace: those naming this customer are counted and read for rejected calls.
    let services: Api<CloudflareService> = Api::namespaced(ctx.client.clone(), ns);
    let all = services.list(&Default::default()).await?.items;
    let pass = customer::reconcile(&ctx.engine, &source, cust, &all, Time(Timestamp::now())).await?;
    ctx.publish(&cust.object_ref(&()), &pass.events).await;
    if cust.status.as_ref() != Some(&pass.status) {
        ctx.write_status(cust, cust.resource_version(), &pass.status).await?;
    }
    if let Some(e) = pass.error {
        return Err(e.into());
    }
    ctx.reset_failures(&object_key(KIND, Some(ns), &cust.name_any()));
    let resync = ctx.resync_with_jitter();
    Ok(Action::requeue(pass.requeue_after.map_or(resync, |r| r.min(resync))))
}

/// Error policy: capped exponential backoff per object.
pub fn error_policy(cust: Arc<Customer>, err: &Error, ctx: Arc<Context>) -> Action {
    if let Some(action) = err.no_backoff() {
        return action;
    }
    let key = object_key(KIND, cust.namespace().as_deref(), &cust.name_any());
    let wait = ctx.record_failure(&key);
    warn!(namespace = %cust.namespace().unwrap_or_default(), name = %cust.name_any(), error = %super::error_chain(err), "customer reconcile failed");
    Action::requeue(wait)
}

/// Run the Customer controller until shutdown. Returns its store for other controllers' mappers.
pub fn controller(ctx: Arc<Context>, namespace: Option<String>) -> (Controller<Customer>, Store<Customer>) {
    let client = ctx.client.clone();
    let api: Api<Customer> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let c = Controller::new(api, ctx.watcher_config())
        .with_config(kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency));
    let store = c.store();
    (c, store)
}

/// Drive a Customer controller built by [`controller`].
pub async fn run(
    ctx: Arc<Context>,
    controller: Controller<Customer>,
    store: Store<Customer>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let secrets: Api<PartialObjectMeta<Secret>> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let s = store.clone();
    let by_secret = move |m: PartialObjectMeta<Secret>| {
        let ns = m.namespace().unwrap_or_default();
        let name = m.name_any();
        s.state()
            .into_iter()
            .filter(|c| c.namespace().as_deref() == Some(ns.as_str()) && c.spec.api_token_secret_ref.name == name)
            .map(|c| ObjectRef::from_obj(&*c))
            .collect::<Vec<_>>()
    };
    let gauge = ctx.metrics.resources_ready.with_label_values(&[KIND]);
    let gs = store.clone();
    let gauge_task = tokio::spawn(async move {
        loop {
            let n = gs
                .state()
                .iter()
                .filter(|c| c.status.as_ref().is_some_and(|s| c::is_true(&s.conditions, c::READY)))
                .count();
            gauge.set(n as i64);
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let services: Api<CloudflareService> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let by_service = |s: CloudflareService| {
        let ns = s.namespace().unwrap_or_default();
        Some(ObjectRef::<Customer>::new(&s.spec.customer_ref.name).within(&ns))
    };
    controller
        .watches_stream(watcher(secrets, watcher::Config::default()).touched_objects(), by_secret)
        .watches_stream(service_triggers(services), by_service)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
    gauge_task.abort();
}
