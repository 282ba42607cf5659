//! Customer controller: a thin adapter around [`crate::engine::customer`] (token verification,
//! zones, service count), plus the watches that bring Secret and service changes to it.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use super::source::KubeSource;
use super::{Context, Error, scaffold};
use crate::crd::{CloudflareService, Customer};
use crate::engine::customer::{self, observe::token_rejected_at};

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
    scaffold::reconcile(&*cust, &ctx.metrics, apply(&cust, &ctx)).await
}

async fn apply(cust: &Customer, ctx: &Context) -> Result<Action, Error> {
    ctx.check_fresh(cust)?;
    let source = KubeSource::new(ctx.client.clone());
    // Services of the namespace: those naming this customer are counted and read for rejected calls.
    let services: Api<CloudflareService> = Api::namespaced(ctx.client.clone(), &scaffold::namespace_of(cust));
    let all = services.list(&Default::default()).await?.items;
    let pass = customer::reconcile(&ctx.engine, &source, cust, &all, Time(Timestamp::now())).await?;
    scaffold::finish(ctx, cust, &pass.events, cust.resource_version(), &pass.status).await?;
    if let Some(e) = pass.error {
        return Err(e.into());
    }
    ctx.reset_failures(&scaffold::key_of(cust));
    let resync = ctx.resync_with_jitter();
    Ok(Action::requeue(pass.requeue_after.map_or(resync, |r| r.min(resync))))
}

/// Run the Customer controller until shutdown. Returns its store for other controllers' mappers.
pub fn controller(ctx: Arc<Context>, namespace: Option<String>) -> (Controller<Customer>, Store<Customer>) {
    let c = scaffold::controller(&ctx, scaffold::scoped_api(ctx.client.clone(), namespace.as_deref()));
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
    let secrets: Api<PartialObjectMeta<Secret>> = scaffold::scoped_api(ctx.client.clone(), namespace.as_deref());
    let by_secret = move |m: PartialObjectMeta<Secret>| {
        let ns = m.namespace().unwrap_or_default();
        let name = m.name_any();
        store
            .state()
            .into_iter()
            .filter(|c| c.namespace().as_deref() == Some(ns.as_str()) && c.spec.api_token_secret_ref.name == name)
            .map(|c| ObjectRef::from_obj(&*c))
            .collect::<Vec<_>>()
    };
    let services: Api<CloudflareService> = scaffold::scoped_api(ctx.client.clone(), namespace.as_deref());
    let by_service = |s: CloudflareService| {
        let ns = s.namespace().unwrap_or_default();
        Some(ObjectRef::<Customer>::new(&s.spec.customer_ref.name).within(&ns))
    };
    let controller = controller
        .watches_stream(watcher(secrets, watcher::Config::default()).touched_objects(), by_secret)
        .watches_stream(service_triggers(services), by_service)
        .graceful_shutdown_on(shutdown);
    scaffold::run(controller, ctx, reconcile, None).await;
}
