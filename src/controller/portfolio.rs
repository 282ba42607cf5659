//! Portfolio controller: a thin adapter around [`crate::engine::portfolio`]. Its children live in
//! Kubernetes (label `clodo.dev/portfolio=<name>`, applied server-side); their status changes
//! retrigger the portfolio through `owns`.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use super::{Context, Error, scaffold};
use crate::crd::keys::{FIELD_MANAGER, LABEL_PORTFOLIO};
use crate::crd::{CloudflareService, Portfolio};
use crate::engine::portfolio::{self, ChildStore, StoreError};

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
    scaffold::reconcile(&*p, &ctx.metrics, apply(&p, &ctx)).await
}

async fn apply(p: &Portfolio, ctx: &Context) -> Result<Action, Error> {
    ctx.check_fresh(p)?;
    let store = KubeChildren { api: Api::namespaced(ctx.client.clone(), &scaffold::namespace_of(p)) };
    let pass = portfolio::reconcile(&store, p, Time(Timestamp::now())).await?;
    scaffold::finish(ctx, p, &pass.events, p.resource_version(), &pass.status).await?;
    ctx.reset_failures(&scaffold::key_of(p));
    // Invalid dependencies are terminal too: an edit of the spec retriggers at once.
    Ok(Action::requeue(ctx.resync_with_jitter()))
}

/// Run the Portfolio controller until shutdown.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let portfolios: Api<Portfolio> = scaffold::scoped_api(ctx.client.clone(), namespace.as_deref());
    let services: Api<CloudflareService> = scaffold::scoped_api(ctx.client.clone(), namespace.as_deref());
    let controller = scaffold::controller(&ctx, portfolios)
        .owns(services, kube::runtime::watcher::Config::default())
        .graceful_shutdown_on(shutdown);
    scaffold::run(controller, ctx, reconcile, None).await;
}
