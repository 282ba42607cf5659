//! Custom resources: CRD installation, generation, status subresource, schema and
//! CEL validation, server-side apply, finalizers and owner cascades.

mod common;

use common::{Widget, WidgetStatus, api_status, install_widget_crd, spec, widget};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{CustomResourceExt, Resource, ResourceExt};
use kube_fake_api::FakeApiServer;
use serde_json::json;

async fn setup() -> anyhow::Result<(FakeApiServer, Api<Widget>)> {
    let api = FakeApiServer::start().await?;
    install_widget_crd(&api.client()).await?;
    let widgets: Api<Widget> = Api::namespaced(api.client(), "ns1");
    Ok((api, widgets))
}

fn dynamic(api: &FakeApiServer, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("test.clodo.dev", "v1", "Widget");
    Api::namespaced_with(api.client(), ns, &ApiResource::from_gvk_with_plural(&gvk, "widgets"))
}

#[tokio::test]
async fn crd_install_is_validated_and_sets_status() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(api.client());
    let widgets: Api<Widget> = Api::namespaced(api.client(), "default");
    let e = api_status(widgets.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(e.code, 404, "not served before the CRD exists");

    let mut wrong_name = Widget::crd();
    wrong_name.metadata.name = Some("widgets.example.com".into());
    let e = api_status(crds.create(&PostParams::default(), &wrong_name).await.unwrap_err());
    assert_eq!(e.code, 422);
    assert!(e.message.contains("metadata.name"), "{}", e.message);

    let mut bad_rule = serde_json::to_value(Widget::crd())?;
    bad_rule["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
        json!([{"rule": "self.replicas >", "message": "broken"}]);
    let bad_rule: CustomResourceDefinition = serde_json::from_value(bad_rule)?;
    let e = api_status(crds.create(&PostParams::default(), &bad_rule).await.unwrap_err());
    assert_eq!(e.code, 422);
    assert!(e.message.contains("x-kubernetes-validations[0].rule"), "{}", e.message);

    install_widget_crd(&api.client()).await?;
    let crd = crds.get(Widget::crd_name()).await?;
    assert_eq!(crd.metadata.generation, Some(1));
    let status = crd.status.expect("status set by the server");
    assert_eq!(status.stored_versions, Some(vec!["v1".to_string()]));
    assert!(
        crd.metadata.finalizers.unwrap_or_default().contains(&"customresourcecleanup.apiextensions.k8s.io".to_string())
    );
    assert!(widgets.list(&ListParams::default()).await?.items.is_empty());
    Ok(())
}

#[tokio::test]
async fn generation_and_status_subresource() -> anyhow::Result<()> {
    let (api, widgets) = setup().await?;
    let pp = PostParams::default();
    let mut w = widget("w", 2);
    w.status = Some(WidgetStatus { phase: Some("Injected".into()), ..Default::default() });
    let created = widgets.create(&pp, &w).await?;
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.status, None, "status is ignored on create");

    // Status writes: status changes, generation does not.
    let s = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready", "observedGeneration": 1}})),
        )
        .await?;
    assert_eq!(s.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Ready"));
    assert_eq!(s.metadata.generation, Some(1));
    assert_ne!(s.resource_version(), created.resource_version());

    // Main writes ignore status; a spec change bumps the generation.
    let mut main = s.clone();
    main.status = Some(WidgetStatus { phase: Some("Hacked".into()), ..Default::default() });
    main.spec.replicas = 3;
    let m = widgets.replace("w", &pp, &main).await?;
    assert_eq!(m.metadata.generation, Some(2));
    assert_eq!(m.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Ready"));

    // Metadata-only changes keep the generation.
    let l =
        widgets.patch("w", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}}))).await?;
    assert_eq!(l.metadata.generation, Some(2));

    // /status writes ignore spec.
    let mut st = l.clone();
    st.spec.replicas = 9;
    st.status = Some(WidgetStatus { phase: Some("Degraded".into()), ..Default::default() });
    let after = widgets.replace_status("w", &pp, &st).await?;
    assert_eq!(after.spec.replicas, 3);
    assert_eq!(after.metadata.generation, Some(2));
    assert_eq!(after.status.and_then(|s| s.phase).as_deref(), Some("Degraded"));

    // Custom resources need a resourceVersion on PUT.
    let mut unconditional = widgets.get("w").await?;
    unconditional.metadata.resource_version = None;
    let e = api_status(widgets.replace("w", &pp, &unconditional).await.unwrap_err());
    assert_eq!(e.code, 422);
    assert!(e.message.contains("metadata.resourceVersion"), "{}", e.message);

    // Strategic merge patch is not supported for custom resources.
    let e = api_status(
        widgets
            .patch("w", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"replicas": 4}})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 415);
    let raw = api.get_raw("test.clodo.dev", "v1", "widgets", Some("ns1"), "w").expect("stored");
    assert_eq!(raw["spec"]["replicas"], 3);
    Ok(())
}

#[tokio::test]
async fn schema_validation_errors_name_the_field() -> anyhow::Result<()> {
    let (api, _widgets) = setup().await?;
    let dyn_api = dynamic(&api, "ns1");
    let pp = PostParams::default();
    let make = |spec: serde_json::Value| -> anyhow::Result<DynamicObject> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "test.clodo.dev/v1", "kind": "Widget",
            "metadata": {"name": "bad"}, "spec": spec
        }))?)
    };

    let e = api_status(
        dyn_api.create(&pp, &make(json!({"environment": "prod", "replicas": 1, "owner": "o"}))?).await.unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(
        e.message.contains("spec.environment: Unsupported value: \"prod\": supported values: \"development\", \"staging\", \"production\""),
        "{}",
        e.message
    );
    assert!(e.message.starts_with("Widget.test.clodo.dev \"bad\" is invalid: "), "{}", e.message);
    let causes = e.details.map(|d| d.causes).unwrap_or_default();
    assert_eq!(causes[0].field, "spec.environment");

    let e =
        api_status(dyn_api.create(&pp, &make(json!({"environment": "staging", "replicas": 0}))?).await.unwrap_err());
    assert!(
        e.message
            .contains("spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"),
        "{}",
        e.message
    );
    assert!(e.message.contains("spec.owner: Required value"), "{}", e.message);

    let e = api_status(
        dyn_api
            .create(
                &pp,
                &make(json!({"environment": "staging", "replicas": 1, "owner": "o", "scriptName": "Bad_Name"}))?,
            )
            .await
            .unwrap_err(),
    );
    assert!(e.message.contains("spec.scriptName: Invalid value: \"Bad_Name\""), "{}", e.message);

    // CEL rules, object-level and field-level.
    let e = api_status(
        dyn_api
            .create(&pp, &make(json!({"environment": "development", "replicas": 50, "owner": "o"}))?)
            .await
            .unwrap_err(),
    );
    assert!(
        e.message.contains("spec: Invalid value: \"object\": development allows at most 10 replicas"),
        "{}",
        e.message
    );
    let e = api_status(
        dyn_api
            .create(
                &pp,
                &make(json!({"environment": "staging", "replicas": 1, "owner": "o", "hosts": ["API.example.com"]}))?,
            )
            .await
            .unwrap_err(),
    );
    assert!(
        e.message.contains("spec.hosts: Invalid value: \"array\": hosts: each entry must be a lowercase hostname"),
        "{}",
        e.message
    );

    // Unknown fields are pruned (with a warning), or rejected with fieldValidation=Strict.
    let created = dyn_api
        .create(&pp, &make(json!({"environment": "staging", "replicas": 1, "owner": "o", "bogus": true}))?)
        .await?;
    assert!(created.data["spec"].get("bogus").is_none());
    let strict = PatchParams { field_validation: Some(kube::api::ValidationDirective::Strict), ..Default::default() };
    let e = api_status(dyn_api.patch("bad", &strict, &Patch::Merge(json!({"spec": {"extra": 1}}))).await.unwrap_err());
    assert_eq!(e.code, 400);
    assert!(e.message.contains("unknown field \"spec.extra\""), "{}", e.message);

    // Transition rule (oldSelf): owner is immutable on update.
    let e = api_status(
        dyn_api
            .patch("bad", &PatchParams::default(), &Patch::Merge(json!({"spec": {"owner": "someone-else"}})))
            .await
            .unwrap_err(),
    );
    assert!(e.message.contains("spec.owner: Invalid value: \"string\": owner is immutable"), "{}", e.message);
    dyn_api.patch("bad", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}}))).await?;
    Ok(())
}

#[tokio::test]
async fn server_side_apply_creates_owns_and_conflicts() -> anyhow::Result<()> {
    let (api, widgets) = setup().await?;
    let apply = |v: serde_json::Value| Patch::Apply(v);
    let body = json!({"apiVersion": "test.clodo.dev/v1", "kind": "Widget", "metadata": {"name": "ssa"},
        "spec": {"environment": "staging", "replicas": 2, "owner": "o"}});
    let created = widgets.patch("ssa", &PatchParams::apply("alice"), &apply(body)).await?;
    assert_eq!(created.metadata.generation, Some(1));
    let create_log = api.request_log().into_iter().last().expect("logged");
    assert_eq!(create_log.status, 201, "apply of a missing object creates it");
    let managers: Vec<(String, String)> = created
        .managed_fields()
        .iter()
        .map(|m| (m.manager.clone().unwrap_or_default(), m.operation.clone().unwrap_or_default()))
        .collect();
    assert_eq!(managers, [("alice".to_string(), "Apply".to_string())]);

    // Another manager changing alice's field conflicts unless forced.
    let bob = json!({"apiVersion": "test.clodo.dev/v1", "kind": "Widget", "metadata": {"name": "ssa"}, "spec": {"replicas": 5}});
    let e = api_status(widgets.patch("ssa", &PatchParams::apply("bob"), &apply(bob.clone())).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(e.message.contains("conflict with \"alice\": .spec.replicas"), "{}", e.message);
    let forced = widgets.patch("ssa", &PatchParams::apply("bob").force(), &apply(bob)).await?;
    assert_eq!(forced.spec.replicas, 5);
    assert_eq!(forced.metadata.generation, Some(2));

    // Status apply: fields the manager stops sending are removed; identical applies are no-ops.
    let status = |plan: Option<Vec<&str>>| {
        let mut s = json!({"apiVersion": "test.clodo.dev/v1", "kind": "Widget", "status": {"phase": "Planned", "observedGeneration": 2}});
        if let Some(p) = plan {
            s["status"]["plan"] = json!(p);
        }
        apply(s)
    };
    let pp = PatchParams::apply("clodo-operator").force();
    let s1 = widgets.patch_status("ssa", &pp, &status(Some(vec!["create worker"]))).await?;
    assert_eq!(s1.status.as_ref().and_then(|s| s.plan.clone()), Some(vec!["create worker".to_string()]));
    let s2 = widgets.patch_status("ssa", &pp, &status(None)).await?;
    assert_eq!(s2.status.as_ref().and_then(|s| s.plan.clone()), None);
    assert_eq!(s2.metadata.generation, Some(2));
    let s3 = widgets.patch_status("ssa", &pp, &status(None)).await?;
    assert_eq!(s3.resource_version(), s2.resource_version(), "a no-op apply does not write");

    // Apply needs apiVersion/kind and a field manager.
    let e = api_status(
        widgets.patch("ssa", &PatchParams::apply("x"), &apply(json!({"spec": {"replicas": 1}}))).await.unwrap_err(),
    );
    assert_eq!(e.code, 400);
    // A resourceVersion in the applied configuration is a precondition.
    let stale = json!({"apiVersion": "test.clodo.dev/v1", "kind": "Widget", "metadata": {"name": "ssa", "resourceVersion": "1"}, "spec": {"replicas": 6}});
    let e = api_status(widgets.patch("ssa", &PatchParams::apply("bob"), &apply(stale)).await.unwrap_err());
    assert_eq!(e.code, 409);
    Ok(())
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() -> anyhow::Result<()> {
    let (_api, widgets) = setup().await?;
    let mut w = widget("fin", 1);
    w.metadata.finalizers = Some(vec!["test.clodo.dev/cleanup".into()]);
    widgets.create(&PostParams::default(), &w).await?;

    let pending = widgets.delete("fin", &DeleteParams::default()).await?;
    let pending = pending.left().expect("finalizers defer deletion");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(pending.metadata.deletion_grace_period_seconds, Some(0));
    let again = widgets.delete("fin", &DeleteParams::default()).await?;
    assert!(again.is_left(), "deleting again is a no-op");

    // No new finalizers on an object being deleted.
    let e = api_status(
        widgets
            .patch(
                "fin",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": ["test.clodo.dev/cleanup", "other.dev/x"]}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(e.message.contains("no new finalizers can be added"), "{}", e.message);

    // Spec and status may still change while deleting.
    widgets
        .patch_status("fin", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Deleting"}})))
        .await?;

    // Removing the last finalizer (as kube's finalizer helper does, with a JSON patch) deletes it.
    let remove: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "test.clodo.dev/cleanup"},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]))?;
    widgets.patch("fin", &PatchParams::default(), &Patch::Json::<()>(remove)).await?;
    assert!(widgets.get_opt("fin").await?.is_none());
    Ok(())
}

fn owned_cm(name: &str, owner: &Widget) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: owner.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn owner_references_cascade() -> anyhow::Result<()> {
    let (api, widgets) = setup().await?;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "ns1");
    let pp = PostParams::default();

    // Background (default): dependents go with the owner.
    let owner = widgets.create(&pp, &widget("owner", 1)).await?;
    cms.create(&pp, &owned_cm("dep", &owner)).await?;
    widgets.delete("owner", &DeleteParams::default()).await?;
    assert!(cms.get_opt("dep").await?.is_none());

    // Orphan: dependents stay, without the owner reference.
    let owner = widgets.create(&pp, &widget("owner2", 1)).await?;
    cms.create(&pp, &owned_cm("kept", &owner)).await?;
    widgets.delete("owner2", &DeleteParams::orphan()).await?;
    let kept = cms.get("kept").await?;
    assert!(kept.metadata.owner_references.unwrap_or_default().is_empty());

    // Foreground: the owner waits (foregroundDeletion) until blocking dependents are gone.
    let owner = widgets.create(&pp, &widget("owner3", 1)).await?;
    let mut held = owned_cm("held", &owner);
    // kube's controller_owner_ref leaves blockOwnerDeletion unset; only blocking dependents hold the owner.
    for r in held.metadata.owner_references.iter_mut().flatten() {
        r.block_owner_deletion = Some(true);
    }
    held.metadata.finalizers = Some(vec!["test.clodo.dev/hold".into()]);
    cms.create(&pp, &held).await?;
    let res = widgets.delete("owner3", &DeleteParams::foreground()).await?;
    let pending = res.left().expect("foreground deletion waits");
    assert!(pending.finalizers().contains(&"foregroundDeletion".to_string()));
    let dep = cms.get("held").await?;
    assert!(dep.metadata.deletion_timestamp.is_some(), "dependent is being deleted");
    assert!(widgets.get_opt("owner3").await?.is_some());
    cms.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await?;
    assert!(cms.get_opt("held").await?.is_none());
    assert!(widgets.get_opt("owner3").await?.is_none(), "owner goes after its dependents");

    // A dependent whose owner never existed is collected, like the real garbage collector does.
    let mut ghost = widget("ghost", 1);
    ghost.meta_mut().uid = Some("00000000-0000-0000-0000-000000000000".into());
    cms.create(&pp, &owned_cm("orphaned", &ghost)).await?;
    assert!(cms.get_opt("orphaned").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn deleting_the_crd_removes_instances_and_the_resource() -> anyhow::Result<()> {
    let (api, widgets) = setup().await?;
    widgets.create(&PostParams::default(), &widget("a", 1)).await?;
    let mut held = widget("b", 1);
    held.metadata.finalizers = Some(vec!["test.clodo.dev/cleanup".into()]);
    widgets.create(&PostParams::default(), &held).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(api.client());
    crds.delete(Widget::crd_name(), &DeleteParams::default()).await?;
    assert!(widgets.get_opt("a").await?.is_none());
    let b = widgets.get("b").await?;
    assert!(b.metadata.deletion_timestamp.is_some());
    let e = api_status(widgets.create(&PostParams::default(), &widget("c", 1)).await.unwrap_err());
    assert_eq!(e.code, 405, "no new instances while the CRD terminates");
    widgets.patch("b", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await?;
    assert!(crds.get_opt(Widget::crd_name()).await?.is_none());
    let e = api_status(widgets.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(e.code, 404);
    let _ = spec(1);
    Ok(())
}

#[tokio::test]
async fn updating_the_crd_changes_the_served_schema() -> anyhow::Result<()> {
    let (api, _widgets) = setup().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(api.client());
    let dyn_api = dynamic(&api, "ns1");
    let obj = |env: &str| -> anyhow::Result<DynamicObject> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "test.clodo.dev/v1", "kind": "Widget", "metadata": {"name": format!("w-{env}")},
            "spec": {"environment": env, "replicas": 1, "owner": "o"}
        }))?)
    };
    let e = api_status(dyn_api.create(&PostParams::default(), &obj("preview")?).await.unwrap_err());
    assert_eq!(e.code, 422);

    let patch: json_patch::Patch = serde_json::from_value(json!([{
        "op": "add",
        "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/environment/enum/-",
        "value": "preview"
    }]))?;
    let crd = crds.patch(Widget::crd_name(), &PatchParams::default(), &Patch::Json::<()>(patch)).await?;
    assert_eq!(crd.metadata.generation, Some(2), "a CRD spec change bumps its generation");
    dyn_api.create(&PostParams::default(), &obj("preview")?).await?;
    Ok(())
}
