//! Built-in kinds driven with the real kube `Api<T>`: CRUD, conflicts, namespaces,
//! selectors, paging, Events, discovery, faults and the request log.

mod common;

use std::collections::BTreeMap;

use common::{WAIT, api_status, eventually};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ObjectReference, Secret};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, ResourceExt};
use kube_fake_api::{FakeApiServer, Fault};
use serde_json::json;

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        ..Default::default()
    }
}

#[tokio::test]
async fn configmap_crud_conflicts_and_not_found() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
    let pp = PostParams::default();

    let created = cms.create(&pp, &cm("a", &[("k", "1")])).await?;
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(created.metadata.generation, None, "built-ins have no generation");
    let rv1: u64 = created.resource_version().unwrap_or_default().parse()?;

    let dup = api_status(cms.create(&pp, &cm("a", &[])).await.unwrap_err());
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(dup.message, "configmaps \"a\" already exists");

    // Optimistic concurrency: the stale copy loses.
    let mut fresh = cms.get("a").await?;
    fresh.data = Some(BTreeMap::from([("k".to_string(), "2".to_string())]));
    let updated = cms.replace("a", &pp, &fresh).await?;
    let rv2: u64 = updated.resource_version().unwrap_or_default().parse()?;
    assert!(rv2 > rv1);
    let stale = api_status(cms.replace("a", &pp, &created).await.unwrap_err());
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert!(stale.message.contains("the object has been modified"), "{}", stale.message);

    // ConfigMaps allow unconditional updates (no resourceVersion).
    let mut unconditional = cm("a", &[("k", "3")]);
    unconditional.metadata.resource_version = None;
    cms.replace("a", &pp, &unconditional).await?;

    // Merge patch; a merge patch carrying a stale resourceVersion conflicts.
    cms.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"m": "x"}}))).await?;
    let patched = cms.get("a").await?;
    assert_eq!(patched.data.as_ref().and_then(|d| d.get("m")).map(String::as_str), Some("x"));
    let stale_patch = json!({"metadata": {"resourceVersion": rv1.to_string()}, "data": {"m": "y"}});
    let e = api_status(cms.patch("a", &PatchParams::default(), &Patch::Merge(stale_patch)).await.unwrap_err());
    assert_eq!(e.code, 409);

    // A JSON patch whose test fails is rejected as invalid.
    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/k", "value": "nope"},
        {"op": "replace", "path": "/data/k", "value": "4"}
    ]))?;
    let e = api_status(cms.patch("a", &PatchParams::default(), &Patch::Json::<()>(failing)).await.unwrap_err());
    assert_eq!(e.code, 422);

    // A no-op write changes nothing, not even the resourceVersion.
    let before = cms.get("a").await?;
    let same = cms.replace("a", &pp, &before).await?;
    assert_eq!(same.resource_version(), before.resource_version());

    // Delete without finalizers: gone at once, answered with a Status.
    let res = cms.delete("a", &DeleteParams::default()).await?;
    let status = res.right().expect("immediate deletion answers with a Status");
    assert!(status.is_success());
    let e = api_status(cms.get("a").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.message, "configmaps \"a\" not found");
    let e = api_status(cms.replace("a", &pp, &cm("a", &[])).await.unwrap_err());
    assert_eq!(e.code, 404);
    Ok(())
}

#[tokio::test]
async fn generate_name_dry_run_and_secrets() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
    let mut generated = cm("", &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let made = cms.create(&PostParams::default(), &generated).await?;
    let name = made.name_any();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let dry = PostParams { dry_run: true, ..Default::default() };
    cms.create(&dry, &cm("dry", &[])).await?;
    assert!(cms.get_opt("dry").await?.is_none(), "dry run stores nothing");

    let secrets: Api<Secret> = Api::default_namespaced(api.client());
    let s = Secret {
        metadata: ObjectMeta { name: Some("token".into()), ..Default::default() },
        string_data: Some(BTreeMap::from([("token".to_string(), "s3cr3t".to_string())])),
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &s).await?;
    let got = secrets.get("token").await?;
    assert!(got.string_data.is_none(), "stringData is folded into data");
    assert_eq!(got.type_.as_deref(), Some("Opaque"));
    let value = got.data.as_ref().and_then(|d| d.get("token")).map(|b| b.0.clone());
    assert_eq!(value.as_deref(), Some(b"s3cr3t".as_slice()));
    Ok(())
}

#[tokio::test]
async fn namespaces_auto_created_by_default_and_required_when_strict() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "auto");
    cms.create(&PostParams::default(), &cm("a", &[])).await?;
    let nss: Api<Namespace> = Api::all(api.client());
    let ns = nss.get("auto").await?;
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    assert_eq!(
        ns.metadata.labels.unwrap_or_default().get("kubernetes.io/metadata.name").map(String::as_str),
        Some("auto")
    );
    // A rejected create leaves no namespace behind.
    let elsewhere: Api<ConfigMap> = Api::namespaced(api.client(), "never");
    let e = api_status(elsewhere.create(&PostParams::default(), &cm("Bad_Name", &[])).await.unwrap_err());
    assert_eq!(e.code, 422);
    assert!(nss.get_opt("never").await?.is_none());

    let strict = FakeApiServer::builder().strict_namespaces(true).start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(strict.client(), "team");
    let e = api_status(cms.create(&PostParams::default(), &cm("a", &[])).await.unwrap_err());
    assert_eq!((e.code, e.message.as_str()), (404, "namespaces \"team\" not found"));
    let nss: Api<Namespace> = Api::all(strict.client());
    let ns =
        Namespace { metadata: ObjectMeta { name: Some("team".into()), ..Default::default() }, ..Default::default() };
    nss.create(&PostParams::default(), &ns).await?;
    cms.create(&PostParams::default(), &cm("a", &[])).await?;

    // A finalizer on content keeps the namespace Terminating; no new content meanwhile.
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["test.clodo.dev/hold".into()]);
    cms.create(&PostParams::default(), &held).await?;
    let pending = nss.delete("team", &DeleteParams::default()).await?;
    let pending = pending.left().expect("namespace deletion is not immediate");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(cms.get_opt("a").await?.is_none(), "content is deleted");
    let ns = nss.get("team").await?;
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Terminating"));
    let e = api_status(cms.create(&PostParams::default(), &cm("late", &[])).await.unwrap_err());
    assert_eq!(e.code, 403);
    assert!(e.message.contains("because it is being terminated"), "{}", e.message);
    cms.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await?;
    assert!(nss.get_opt("team").await?.is_none(), "namespace goes once empty");
    Ok(())
}

#[tokio::test]
async fn list_selectors_and_paging() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "sel");
    for (i, tier) in ["a", "b", "c", "a", "b"].iter().enumerate() {
        let mut c = cm(&format!("cm-{i}"), &[]);
        c.metadata.labels = Some(BTreeMap::from([("tier".to_string(), tier.to_string())]));
        if i == 0 {
            c.metadata.labels.get_or_insert_default().insert("special".into(), "yes".into());
        }
        cms.create(&PostParams::default(), &c).await?;
    }
    let names =
        |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> { l.items.iter().map(|c| c.name_any()).collect() };
    assert_eq!(names(cms.list(&ListParams::default().labels("tier=a")).await?), ["cm-0", "cm-3"]);
    assert_eq!(
        names(cms.list(&ListParams::default().labels("tier in (a, b),!special")).await?),
        ["cm-1", "cm-3", "cm-4"]
    );
    assert_eq!(names(cms.list(&ListParams::default().labels("tier notin (a),tier!=c")).await?), ["cm-1", "cm-4"]);
    assert_eq!(names(cms.list(&ListParams::default().labels("special")).await?), ["cm-0"]);
    assert_eq!(names(cms.list(&ListParams::default().fields("metadata.name=cm-2")).await?), ["cm-2"]);
    let e = api_status(cms.list(&ListParams::default().fields("data.x=1")).await.unwrap_err());
    assert_eq!(e.code, 400);

    // Paging: 2 + 2 + 1 with continue tokens, one resourceVersion for the whole list.
    let first = cms.list(&ListParams::default().limit(2)).await?;
    let rv = first.metadata.resource_version.clone();
    assert!(rv.is_some());
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().expect("more pages");
    let second = cms.list(&ListParams::default().limit(2).continue_token(&token)).await?;
    assert_eq!(second.metadata.resource_version, rv);
    let token = second.metadata.continue_.clone().expect("more pages");
    let third = cms.list(&ListParams::default().limit(2).continue_token(&token)).await?;
    assert!(third.metadata.continue_.is_none());
    let all: Vec<String> = [first, second, third].into_iter().flat_map(names).collect();
    assert_eq!(all, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);

    // Cluster-wide list spans namespaces.
    let other: Api<ConfigMap> = Api::namespaced(api.client(), "other");
    other.create(&PostParams::default(), &cm("x", &[])).await?;
    let everywhere: Api<ConfigMap> = Api::all(api.client());
    assert_eq!(everywhere.list(&ListParams::default()).await?.items.len(), 6);
    Ok(())
}

#[tokio::test]
async fn leases_behave_like_leader_election_needs() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let leases: Api<Lease> = Api::default_namespaced(api.client());
    let lease = Lease {
        metadata: ObjectMeta { name: Some("clodo-operator".into()), ..Default::default() },
        spec: Some(LeaseSpec {
            holder_identity: Some("pod-a".into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    };
    let a = leases.create(&PostParams::default(), &lease).await?;
    // Two contenders read the same version; only the first write wins.
    let mut b1 = a.clone();
    b1.spec.get_or_insert_default().holder_identity = Some("pod-b".into());
    let mut c1 = a.clone();
    c1.spec.get_or_insert_default().holder_identity = Some("pod-c".into());
    leases.replace("clodo-operator", &PostParams::default(), &b1).await?;
    let e = api_status(leases.replace("clodo-operator", &PostParams::default(), &c1).await.unwrap_err());
    assert_eq!(e.code, 409);
    let now = leases.get("clodo-operator").await?;
    assert_eq!(now.spec.and_then(|s| s.holder_identity).as_deref(), Some("pod-b"));
    Ok(())
}

#[tokio::test]
async fn events_recorder_creates_then_patches_a_series() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let client = api.client();
    let reporter = Reporter { controller: "clodo-operator".into(), instance: Some("pod-1".into()) };
    let recorder = Recorder::new(client.clone(), reporter);
    let regarding = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: Some("code".into()),
        namespace: Some("ev".into()),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Warning,
        reason: "ConfigInvalid".into(),
        note: Some("worker.mainModule: key missing".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&ev, &regarding).await?;
    recorder.publish(&ev, &regarding).await?;
    let events: Api<K8sEvent> = Api::namespaced(client, "ev");
    let list = events.list(&ListParams::default()).await?;
    assert_eq!(list.items.len(), 1, "the second publish patches the same event");
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("ConfigInvalid"));
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));
    let writes: Vec<(String, Option<String>)> = api
        .request_log()
        .into_iter()
        .filter(|r| r.plural() == Some("events") && r.verb != "list")
        .map(|r| (r.verb, r.content_type))
        .collect();
    assert_eq!(
        writes,
        [
            ("create".to_string(), Some("application/json".to_string())),
            ("patch".to_string(), Some("application/merge-patch+json".to_string())),
        ]
    );

    // events.k8s.io/v1 validation: a type other than Normal/Warning is rejected.
    let bad = K8sEvent {
        metadata: ObjectMeta { name: Some("bad".into()), ..Default::default() },
        event_time: Some(MicroTime(jiff_now())),
        reporting_controller: Some("c".into()),
        reporting_instance: Some("i".into()),
        action: Some("A".into()),
        reason: Some("R".into()),
        type_: Some("Info".into()),
        ..Default::default()
    };
    let e = api_status(events.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(e.code, 422);
    assert!(e.message.contains("type: Unsupported value: \"Info\""), "{}", e.message);
    Ok(())
}

fn jiff_now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

#[tokio::test]
async fn discovery_and_version() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let client: Client = api.client();
    let info = client.apiserver_version().await?;
    assert_eq!(info.major, "1");
    common::install_widget_crd(&client).await?;
    let discovery = kube::Discovery::new(client.clone()).run().await?;
    let kinds: Vec<String> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .map(|(ar, _)| format!("{}/{}", ar.group, ar.plural))
        .collect();
    for want in
        ["/configmaps", "/secrets", "coordination.k8s.io/leases", "events.k8s.io/events", "test.clodo.dev/widgets"]
    {
        assert!(kinds.iter().any(|k| k == want), "{want} missing from {kinds:?}");
    }
    let aggregated = kube::Discovery::new(client).run_aggregated().await?;
    assert!(aggregated.has_group("test.clodo.dev"));
    let (ar, caps) = aggregated
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.plural == "widgets")
        .expect("widgets discovered");
    assert_eq!(ar.kind, "Widget");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(
        caps.subresources.iter().any(|(s, _)| s.plural == "widgets/status" || s.plural == "status"),
        "{:?}",
        caps.subresources
    );
    Ok(())
}

#[tokio::test]
async fn injected_faults_and_request_log() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
    cms.create(&PostParams::default(), &cm("a", &[])).await?;
    api.clear_request_log();

    api.inject_fault(Fault::new("/api/v1/namespaces/default/configmaps", 500).method("GET"));
    let e = api_status(cms.get("a").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (500, "InternalError"));
    cms.get("a").await?;

    // kube retries 503 by itself: the injected failure is invisible to the caller.
    api.inject_fault(Fault::new("/api/v1/namespaces/default/configmaps/a", 503).times(2));
    cms.get("a").await?;

    api.inject_fault(Fault::new("/api/v1/namespaces/default/configmaps/a", 409).method("PUT").always());
    let current = cms.get("a").await?;
    for _ in 0..2 {
        let e = api_status(cms.replace("a", &PostParams::default(), &current).await.unwrap_err());
        assert_eq!(e.code, 409);
    }
    api.clear_faults();
    cms.replace("a", &PostParams::default(), &current).await?;

    let log = api.request_log();
    let summary: Vec<(String, u16, bool)> = log.iter().map(|r| (r.verb.clone(), r.status, r.injected)).collect();
    assert_eq!(
        summary,
        [
            ("get".to_string(), 500, true),
            ("get".to_string(), 200, false),
            ("get".to_string(), 503, true),
            ("get".to_string(), 503, true),
            ("get".to_string(), 200, false),
            ("get".to_string(), 200, false),
            ("update".to_string(), 409, true),
            ("update".to_string(), 409, true),
            ("update".to_string(), 200, false),
        ]
    );
    let put = log.last().expect("logged");
    assert_eq!(put.body.as_ref().and_then(|b| b["metadata"]["name"].as_str()), Some("a"));
    assert_eq!(put.target.as_ref().and_then(|t| t.name.as_deref()), Some("a"));
    Ok(())
}

#[tokio::test]
async fn metadata_only_requests() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
    cms.create(&PostParams::default(), &cm("a", &[("k", "v")])).await?;
    let meta = cms.get_metadata("a").await?;
    assert_eq!(meta.metadata.name.as_deref(), Some("a"));
    let list = cms.list_metadata(&ListParams::default()).await?;
    assert_eq!(list.items.len(), 1);
    let _ = WAIT;
    let got = eventually("configmap visible in raw store", || async {
        api.get_raw("", "v1", "configmaps", Some("default"), "a")
    })
    .await;
    assert_eq!(got["data"]["k"], "v");
    assert_eq!(got["kind"], "ConfigMap");
    Ok(())
}

#[tokio::test]
async fn apply_strategic_merge_and_delete_collection_on_builtins() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "b");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "labels": {"app": "x"}},
        "data": {"a": "1", "b": "2"}});
    cms.patch("applied", &PatchParams::apply("op"), &Patch::Apply(body)).await?;
    // The manager stops applying "b": it is removed; "c" written by someone else survives.
    cms.patch("applied", &PatchParams::default(), &Patch::Merge(json!({"data": {"c": "3"}}))).await?;
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "labels": {"app": "x"}},
        "data": {"a": "1"}});
    let after = cms.patch("applied", &PatchParams::apply("op"), &Patch::Apply(body)).await?;
    let keys: Vec<String> = after.data.unwrap_or_default().into_keys().collect();
    assert_eq!(keys, ["a", "c"]);

    // Strategic merge keeps existing finalizers (a set), unlike a JSON merge patch.
    cms.patch("applied", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": ["a.dev/x"]}})))
        .await?;
    let smp = cms
        .patch("applied", &PatchParams::default(), &Patch::Strategic(json!({"metadata": {"finalizers": ["b.dev/y"]}})))
        .await?;
    assert_eq!(smp.finalizers(), ["a.dev/x", "b.dev/y"]);
    cms.patch("applied", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await?;

    for name in ["keep", "drop-1", "drop-2"] {
        let mut c = cm(name, &[]);
        if name.starts_with("drop") {
            c.metadata.labels = Some(BTreeMap::from([("gone".to_string(), "yes".to_string())]));
        }
        cms.create(&PostParams::default(), &c).await?;
    }
    let deleted = cms.delete_collection(&DeleteParams::default(), &ListParams::default().labels("gone=yes")).await?;
    let deleted = deleted.left().expect("the deleted objects are listed");
    assert_eq!(deleted.items.len(), 2);
    let left: Vec<String> = cms.list(&ListParams::default()).await?.items.iter().map(|c| c.name_any()).collect();
    assert_eq!(left, ["applied", "keep"]);
    Ok(())
}

#[tokio::test]
async fn shutdown_ends_watches_and_stops_serving() -> anyhow::Result<()> {
    use futures::StreamExt;
    let api = FakeApiServer::start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
    let mut stream = cms.watch(&kube::api::WatchParams::default(), "0").await?.boxed();
    let client = api.client();
    tokio::time::timeout(WAIT, api.shutdown()).await?;
    let rest = tokio::time::timeout(WAIT, async {
        let mut n = 0;
        while stream.next().await.is_some() {
            n += 1;
        }
        n
    })
    .await?;
    assert_eq!(rest, 0, "the open watch ended");
    let after: Api<ConfigMap> = Api::default_namespaced(client);
    assert!(after.get_opt("x").await.is_err(), "nothing answers after shutdown");
    Ok(())
}
