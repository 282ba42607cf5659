//! A real kube-runtime Controller against the fake: finalizer helper, owned
//! objects, server-side-applied status, and cleanup on delete.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{WAIT, Widget, install_widget_crd, widget};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use kube_fake_api::FakeApiServer;
use serde_json::json;

const FINALIZER: &str = "test.clodo.dev/cleanup";
const MANAGER: &str = "widget-controller";

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
}

struct Ctx {
    client: Client,
}

async fn apply(w: Arc<Widget>, ctx: &Ctx) -> Result<Action, Error> {
    let ns = w.namespace().unwrap_or_default();
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let owned = ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("{}-config", w.name_any())),
            owner_references: w.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        data: Some([("replicas".to_string(), w.spec.replicas.to_string())].into()),
        ..Default::default()
    };
    let mut body = serde_json::to_value(&owned).map_err(|e| Error::Finalizer(e.to_string()))?;
    body["apiVersion"] = json!("v1");
    body["kind"] = json!("ConfigMap");
    cms.patch(&owned.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(body)).await?;

    let widgets: Api<Widget> = Api::namespaced(ctx.client.clone(), &ns);
    let status = json!({
        "apiVersion": "test.clodo.dev/v1",
        "kind": "Widget",
        "status": {"observedGeneration": w.meta().generation, "phase": "Ready"}
    });
    widgets.patch_status(&w.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(status)).await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = w.namespace().unwrap_or_default();
    let widgets: Api<Widget> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&widgets, FINALIZER, w, |event| async {
        match event {
            Finalizer::Apply(w) => apply(w, &ctx).await,
            Finalizer::Cleanup(_) => Ok(Action::await_change()),
        }
    })
    .await
    .map_err(|e| Error::Finalizer(e.to_string()))
}

fn error_policy(_w: Arc<Widget>, _e: &Error, _ctx: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

#[tokio::test]
async fn controller_reconciles_with_finalizer_ssa_status_and_owned_objects() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let client = api.client();
    install_widget_crd(&client).await?;
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "ctl");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "ctl");

    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .owns(cms.clone(), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(Ctx { client: client.clone() }))
        .for_each(|_| async {});
    let running = tokio::spawn(controller);

    widgets.create(&PostParams::default(), &widget("w1", 2)).await?;
    let observed = |generation: i64| {
        let widgets = widgets.clone();
        async move {
            let w = widgets.get_opt("w1").await.ok()??;
            let s = w.status.as_ref()?;
            (s.observed_generation == Some(generation) && s.phase.as_deref() == Some("Ready")).then_some(w)
        }
    };
    let w = common::eventually("first reconcile", || observed(1)).await;
    assert_eq!(w.finalizers(), [FINALIZER]);
    let cm = cms.get("w1-config").await?;
    assert_eq!(cm.data.as_ref().and_then(|d| d.get("replicas")).map(String::as_str), Some("2"));
    assert_eq!(cm.owner_references()[0].uid, w.uid().unwrap_or_default());

    // A spec change bumps the generation and is reconciled again.
    widgets.patch("w1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 4}}))).await?;
    common::eventually("second reconcile", || observed(2)).await;
    common::eventually("owned configmap updated", || async {
        let cm = cms.get_opt("w1-config").await.ok()??;
        (cm.data?.get("replicas")? == "4").then_some(())
    })
    .await;

    // Every status write was a server-side apply to /status by our field manager.
    let status_writes: Vec<_> =
        api.request_log().into_iter().filter(|r| r.subresource() == Some("status") && r.verb == "patch").collect();
    assert!(status_writes.len() >= 2, "{status_writes:?}");
    for r in &status_writes {
        assert_eq!(r.content_type.as_deref(), Some("application/apply-patch+yaml"));
        assert_eq!(r.query_param("fieldManager").as_deref(), Some(MANAGER));
        assert_eq!(r.query_param("force").as_deref(), Some("true"));
    }

    // Deletion runs the finalizer cleanup, then the object and its dependents go.
    widgets.delete("w1", &DeleteParams::default()).await?;
    common::eventually("widget deleted", || async { widgets.get_opt("w1").await.ok()?.is_none().then_some(()) }).await;
    assert!(cms.get_opt("w1-config").await?.is_none(), "owned configmap collected");
    running.abort();
    let _ = WAIT;
    Ok(())
}
