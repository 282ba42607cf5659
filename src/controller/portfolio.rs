//! Portfolio controller: a thin adapter around [`crate::engine::portfolio`]. Its children live in
//! Kubernetes (label `clodo.dev/portfolio=<name>`, applied server-side); their status changes
//! retrigger the portfolio through `owns`.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info_span, warn};

use super::{Context, Error, object_key};
use crate::crd::conditions as c;
use crate::crd::keys::{FIELD_MANAGER, LABEL_PORTFOLIO};
use crate::crd::{CloudflareService, Portfolio};
use crate::engine::portfolio::{self, ChildStore, StoreError};

const KIND: &str = "Portfolio";

/// The children of one namespace, in Kubernetes.
struct KubeChildren {
    api: Api<CloudflareService>,
}

#[async_trait::async_trait]
impl ChildStore for KubeChildren {
    async fn list(&self, portfolio: &str) -> Result<Vec<CloudflareService>, StoreError> {
        Ok(self.api.list(&ListParams::default().labels(&format!("{LABEL_PORTFOLIO}={portfolio}"))).await?.items)
    }

    async fn get(&self, name: &str) -> Result<Option<CloudflareService>, StoreError> {
        Ok(self.api.get_opt(name).await?)
    }

    async fn apply(&self, child: &CloudflareService) -> Result<CloudflareService, StoreError> {
        let mut body = serde_json::to_value(child)?;
        if let Some(o) = body.as_object_mut() {
            o.insert("apiVersion".into(), json!("clodo.dev/v1alpha1"));
            o.insert("kind".into(), json!("CloudflareService"));
            o.remove("status");
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        Ok(self.api.patch(&child.name_any(), &params, &Patch::Apply(&body)).await?)
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.api.delete(name, &DeleteParams::background()).await?;
        Ok(())
    }
}

/// Reconcile one portfolio.
pub async fn reconcile(p: Arc<Portfolio>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = p.namespace().unwrap_or_else(|| "default".into());
    let span = info_span!("reconcile", kind = KIND, namespace = %ns, name = %p.name_any(), generation = p.metadata.generation.unwrap_or_default());
    async move {
        let start = Instant::now();
        let result = apply(&p, &ctx, &ns).await;
        let label = super::result_label(&result);
        ctx.metrics.reconcile_total.with_label_values(&["portfolio", label]).inc();
        ctx.metrics.reconcile_duration.with_label_values(&["portfolio", label]).observe(start.elapsed().as_secs_f64());
        result
    }
    .instrument(span)
    .await
}

async fn apply(p: &Portfolio, ctx: &Context, ns: &str) -> Result<Action, Error> {
    ctx.check_fresh(p)?;
    let store = KubeChildren { api: Api::namespaced(ctx.client.clone(), ns) };
    let pass = portfolio::reconcile(&store, p, Time(Timestamp::now())).await?;
    // Events, then one server-side apply of the whole status, skipped when unchanged.
    ctx.publish(&p.object_ref(&()), &pass.events).await;
    if p.status.as_ref() != Some(&pass.status) {
        ctx.write_status(p, p.resource_version(), &pass.status).await?;
    }
    ctx.reset_failures(&object_key(KIND, Some(ns), &p.name_any()));
    // Invalid dependencies are terminal too: an edit of the spec retriggers at once.
    Ok(Action::requeue(ctx.resync_with_jitter()))
}

/// Error policy: capped exponential backoff per object.
pub fn error_policy(p: Arc<Portfolio>, err: &Error, ctx: Arc<Context>) -> Action {
    if let Some(action) = err.no_backoff() {
        return action;
    }
    let key = object_key(KIND, p.namespace().as_deref(), &p.name_any());
    let wait = ctx.record_failure(&key);
    warn!(namespace = %p.namespace().unwrap_or_default(), name = %p.name_any(), error = %err, "portfolio reconcile failed");
    Action::requeue(wait)
}

/// Run the Portfolio controller until shutdown.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (portfolios, services): (Api<Portfolio>, Api<CloudflareService>) = match &namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client, ns)),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let gauge = ctx.metrics.resources_ready.with_label_values(&[KIND]);
    let controller = Controller::new(portfolios, ctx.watcher_config())
        .owns(services, kube::runtime::watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency));
    let store = controller.store();
    let gauge_task = tokio::spawn(async move {
        loop {
            let n = store
                .state()
                .iter()
                .filter(|p| p.status.as_ref().is_some_and(|s| c::is_true(&s.conditions, c::READY)))
                .count();
            gauge.set(n as i64);
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    });
    controller.graceful_shutdown_on(shutdown).run(reconcile, error_policy, ctx).for_each(|_| async {}).await;
    gauge_task.abort();
}
