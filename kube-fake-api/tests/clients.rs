//! What kubectl and helm need beyond kube-rs: OpenAPI documents, 415 for CBOR, protobuf
//! bodies of client-go's typed clients, Table output, Events as one resource with two API
//! versions, the chart's built-in kinds, and the `kube-fake-api` binary.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{WAIT, api_status, install_widget_crd, widget};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace, ObjectReference, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{CustomResourceExt, ResourceExt};
use kube_fake_api::FakeApiServer;
use prost::Message;
use serde_json::{Value, json};

use crate::common::Widget;

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

async fn get(api: &FakeApiServer, path: &str, accept: &str) -> anyhow::Result<(u16, Value)> {
    let resp = reqwest::Client::new().get(format!("{}{path}", api.url())).header("Accept", accept).send().await?;
    let code = resp.status().as_u16();
    Ok((code, resp.json().await?))
}

async fn post(api: &FakeApiServer, path: &str, content_type: &str, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", api.url()))
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await?;
    let code = resp.status().as_u16();
    Ok((code, resp.json().await?))
}

/// Every `$ref` in `doc` (with this prefix) names a definition present in `defs`.
fn assert_refs_resolve(doc: &Value, prefix: &str, defs: &serde_json::Map<String, Value>) {
    let mut stack = vec![doc];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let name = r.strip_prefix(prefix).unwrap_or_else(|| panic!("ref {r} outside {prefix}"));
                    assert!(defs.contains_key(name), "dangling $ref {r}");
                }
                stack.extend(m.values());
            }
            Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
}

#[tokio::test]
async fn openapi_v3_documents_serve_kinds_and_field_validation() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    install_widget_crd(&api.client()).await?;
    let (code, index) = get(&api, "/openapi/v3", "application/json").await?;
    assert_eq!(code, 200);
    let paths: BTreeSet<&str> = index["paths"].as_object().expect("paths").keys().map(String::as_str).collect();
    for gv in ["api/v1", "apis/apps/v1", "apis/rbac.authorization.k8s.io/v1", "apis/test.clodo.dev/v1"] {
        assert!(paths.contains(gv), "{gv} missing from {paths:?}");
    }
    let url = index["paths"]["apis/test.clodo.dev/v1"]["serverRelativeURL"].as_str().expect("url");
    assert!(url.starts_with("/openapi/v3/apis/test.clodo.dev/v1?hash="), "{url}");

    let (code, doc) = get(&api, url, "application/json").await?;
    assert_eq!(code, 200);
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let widget = &schemas["dev.clodo.test.v1.Widget"];
    assert_eq!(
        widget["x-kubernetes-group-version-kind"],
        json!([{"group": "test.clodo.dev", "version": "v1", "kind": "Widget"}])
    );
    assert_eq!(widget["properties"]["spec"]["properties"]["replicas"]["maximum"], json!(100.0));
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
    assert_refs_resolve(&doc, "#/components/schemas/", schemas);
    // kubectl sends fieldValidation=Strict only when the PATCH operation declares it.
    let patch = &doc["paths"]["/apis/test.clodo.dev/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Widget");
    let params: Vec<&str> =
        patch["parameters"].as_array().expect("params").iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(params.contains(&"fieldValidation"), "{params:?}");

    let (_, apps) = get(&api, "/openapi/v3/apis/apps/v1", "application/json").await?;
    let apps_schemas = apps["components"]["schemas"].as_object().expect("schemas");
    let deployment = &apps_schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(deployment["x-kubernetes-group-version-kind"][0]["kind"], "Deployment");
    assert!(
        deployment["properties"]["spec"]["allOf"][0]["$ref"].is_string(),
        "refs with siblings are wrapped in allOf"
    );
    assert_refs_resolve(&apps, "#/components/schemas/", apps_schemas);

    assert_eq!(get(&api, "/openapi/v3/apis/nope.dev/v1", "application/json").await?.0, 404);
    api.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn openapi_v2_is_json_only() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let (code, status) = get(&api, "/openapi/v2", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf").await?;
    assert_eq!(code, 406, "{status}");
    let (code, doc) = get(&api, "/openapi/v2", "application/json").await?;
    assert_eq!(code, 200);
    assert_eq!(doc["swagger"], "2.0");
    let defs = doc["definitions"].as_object().expect("definitions");
    assert!(defs.contains_key("io.k8s.api.core.v1.ConfigMap"));
    assert_refs_resolve(&doc, "#/definitions/", defs);
    api.shutdown().await;
    Ok(())
}

fn protobuf_envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\x00".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

#[tokio::test]
async fn cbor_is_415_and_typed_client_protobuf_is_decoded() -> anyhow::Result<()> {
    let api = FakeApiServer::builder().strict_namespaces(true).start().await?;
    // kubectl with CBOR preferred: 415, then it retries with JSON.
    let (code, status) = post(&api, "/api/v1/namespaces", "application/cbor", vec![0xa0]).await?;
    assert_eq!(code, 415, "{status}");
    assert_eq!(status["reason"], "UnsupportedMediaType");
    let (code, _) =
        post(&api, "/api/v1/namespaces", "application/json", br#"{"metadata":{"name":"acme"}}"#.to_vec()).await?;
    assert_eq!(code, 201);

    // client-go's typed clients (kubectl create, helm's release storage) send protobuf.
    let secret = k8s_pb::api::core::v1::Secret {
        metadata: Some(k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("sh.helm.release.v1.demo.v1".into()),
            labels: [("owner".to_string(), "helm".to_string())].into(),
            ..Default::default()
        }),
        data: [("release".to_string(), b"payload".to_vec())].into(),
        r#type: Some("helm.sh/release.v1".into()),
        ..Default::default()
    };
    let body = protobuf_envelope("v1", "Secret", secret.encode_to_vec());
    let (code, created) =
        post(&api, "/api/v1/namespaces/acme/secrets", "application/vnd.kubernetes.protobuf", body).await?;
    assert_eq!(code, 201, "{created}");
    let stored = api.get_raw("", "v1", "secrets", Some("acme"), "sh.helm.release.v1.demo.v1").expect("stored");
    assert_eq!(stored["data"]["release"], "cGF5bG9hZA==");
    assert_eq!(stored["type"], "helm.sh/release.v1");
    assert_eq!(stored["metadata"]["labels"]["owner"], "helm");

    let body = protobuf_envelope("apps/v1", "Deployment", Vec::new());
    let (code, _) =
        post(&api, "/apis/apps/v1/namespaces/acme/deployments", "application/vnd.kubernetes.protobuf", body).await?;
    assert_eq!(code, 415, "kinds the server cannot decode from protobuf are 415");
    api.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn tables_use_printer_columns() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let client = api.client();
    let mut crd = Widget::crd();
    let col = |name: &str, ty: &str, path: &str| CustomResourceColumnDefinition {
        name: name.into(),
        type_: ty.into(),
        json_path: path.into(),
        ..Default::default()
    };
    crd.spec.versions[0].additional_printer_columns = Some(vec![
        col("Phase", "string", ".status.phase"),
        col("Replicas", "integer", ".spec.replicas"),
        col("Env", "string", ".spec.environment"),
        col("Age", "date", ".metadata.creationTimestamp"),
    ]);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd).await?;
    tokio::time::timeout(WAIT, await_condition(crds, Widget::crd_name(), conditions::is_crd_established())).await??;
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    widgets.create(&PostParams::default(), &widget("a", 3)).await?;

    let (code, table) = get(&api, "/apis/test.clodo.dev/v1/namespaces/default/widgets", TABLE).await?;
    assert_eq!(code, 200);
    assert_eq!(table["kind"], "Table");
    let names: Vec<&str> =
        table["columnDefinitions"].as_array().expect("columns").iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["Name", "Phase", "Replicas", "Env", "Age"]);
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[0], "a");
    assert_eq!(cells[1], Value::Null, "a missing value is a null cell (kubectl prints <none>)");
    assert_eq!(cells[2], 3);
    assert_eq!(cells[3], "staging");
    assert!(cells[4].as_str().is_some_and(|age| age.ends_with('s')), "{cells}");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let (_, one) = get(&api, "/apis/test.clodo.dev/v1/namespaces/default/widgets/a?includeObject=None", TABLE).await?;
    assert_eq!(one["rows"].as_array().map(Vec::len), Some(1));
    assert!(one["rows"][0].get("object").is_none());

    let (_, cms) = get(&api, "/api/v1/namespaces/default/configmaps", TABLE).await?;
    let names: Vec<&str> =
        cms["columnDefinitions"].as_array().expect("columns").iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["Name", "Data", "Age"]);
    api.shutdown().await;
    Ok(())
}

fn v1_event(name: &str) -> Event {
    Event {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        reporting_controller: Some("clodo.dev/operator".into()),
        reporting_instance: Some("op-1".into()),
        action: Some("Deploy".into()),
        reason: Some("Deployed".into()),
        type_: Some("Normal".into()),
        note: Some("deployed version 1".into()),
        regarding: Some(ObjectReference { kind: Some("Widget".into()), name: Some("a".into()), ..Default::default() }),
        ..Default::default()
    }
}

#[tokio::test]
async fn events_are_one_resource_in_two_versions() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let client = api.client();
    let v1: Api<Event> = Api::default_namespaced(client.clone());
    let core: Api<CoreEvent> = Api::default_namespaced(client.clone());

    let written = v1.create(&PostParams::default(), &v1_event("e1")).await?;
    let seen = core.get("e1").await?;
    assert_eq!(seen.message.as_deref(), Some("deployed version 1"));
    assert_eq!(seen.involved_object.name.as_deref(), Some("a"));
    assert_eq!(seen.reporting_component.as_deref(), Some("clodo.dev/operator"));
    assert_eq!(seen.metadata.uid, written.metadata.uid);
    assert_eq!(seen.metadata.resource_version, written.metadata.resource_version);
    // `kubectl describe` finds events with a core/v1 field selector.
    let found = core.list(&ListParams::default().fields("involvedObject.name=a,involvedObject.kind=Widget")).await?;
    assert_eq!(found.items.len(), 1);

    let core_event = CoreEvent {
        metadata: ObjectMeta { name: Some("e2".into()), ..Default::default() },
        message: Some("from core".into()),
        reason: Some("Created".into()),
        type_: Some("Normal".into()),
        involved_object: ObjectReference { kind: Some("Widget".into()), name: Some("b".into()), ..Default::default() },
        ..Default::default()
    };
    core.create(&PostParams::default(), &core_event).await?;
    let as_v1 = v1.get("e2").await?;
    assert_eq!(as_v1.note.as_deref(), Some("from core"));
    assert_eq!(as_v1.regarding.and_then(|r| r.name).as_deref(), Some("b"));

    core.delete("e1", &DeleteParams::default()).await?;
    assert_eq!(api_status(v1.get("e1").await.unwrap_err()).code, 404);
    assert_eq!(v1.list(&ListParams::default()).await?.items.len(), 1);

    // Deleting a namespace removes its events from both versions.
    let other: Api<Event> = Api::namespaced(client.clone(), "tmp");
    other.create(&PostParams::default(), &v1_event("e3")).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete("tmp", &DeleteParams::default()).await?;
    common::eventually("namespace tmp removed", || async {
        namespaces.get_opt("tmp").await.ok().flatten().is_none().then_some(())
    })
    .await;
    assert!(api.list_raw("", "v1", "events", Some("tmp")).is_empty());
    assert!(api.list_raw("events.k8s.io", "v1", "events", Some("tmp")).is_empty());
    api.shutdown().await;
    Ok(())
}

fn deployment(selector: &str, label: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "op"},
        "spec": {
            "selector": {"matchLabels": {"app": selector}},
            "template": {
                "metadata": {"labels": {"app": label}},
                "spec": {"containers": [{"name": "operator", "image": image, "ports": [{"containerPort": 8080}]}]}
            }
        }
    })
}

#[tokio::test]
async fn chart_kinds_are_stored_defaulted_and_validated() -> anyhow::Result<()> {
    let api = FakeApiServer::start().await?;
    let client = api.client();
    let path = "/apis/apps/v1/namespaces/default/deployments";
    let body = |v: Value| serde_json::to_vec(&v).unwrap_or_default();

    let (code, status) = post(&api, path, "application/json", body(deployment("a", "b", "img"))).await?;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"].as_str().unwrap_or_default().contains("`selector` does not match template `labels`"),
        "{status}"
    );
    let (code, status) = post(&api, path, "application/json", body(deployment("a", "a", ""))).await?;
    assert_eq!(code, 422);
    assert!(
        status["message"].as_str().unwrap_or_default().contains("spec.template.spec.containers[0].image"),
        "{status}"
    );
    let mut typo = deployment("a", "a", "img");
    typo["spec"]["replica"] = json!(2);
    let (code, status) = post(&api, &format!("{path}?fieldValidation=Strict"), "application/json", body(typo)).await?;
    assert_eq!(code, 400);
    assert!(status["message"].as_str().unwrap_or_default().contains("unknown field \"spec.replica\""), "{status}");

    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let created: Deployment = serde_json::from_value(deployment("a", "a", "img"))?;
    let d = deployments.create(&PostParams::default(), &created).await?;
    assert_eq!(d.metadata.generation, Some(1));
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(1));
    let container = &d.spec.as_ref().and_then(|s| s.template.spec.clone()).expect("pod spec").containers[0];
    assert_eq!(container.ports.as_ref().and_then(|p| p[0].protocol.clone()).as_deref(), Some("TCP"));

    let services: Api<Service> = Api::default_namespaced(client.clone());
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "m"}, "spec": {"ports": [{"port": 8080}]}}))?;
    let svc = services.create(&PostParams::default(), &svc).await?;
    let spec = svc.spec.expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert!(spec.cluster_ip.is_some_and(|ip| ip.starts_with("10.96.")));

    let (code, status) = post(
        &api,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        "application/json",
        body(json!({"metadata": {"name": "rb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Deployment", "name": "x"}})),
    )
    .await?;
    assert_eq!(code, 422, "{status}");
    assert!(status["message"].as_str().unwrap_or_default().contains("roleRef.kind"), "{status}");
    for (path, obj) in [
        ("/api/v1/namespaces/default/serviceaccounts", json!({"metadata": {"name": "sa"}})),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            json!({"metadata": {"name": "cr"}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
        ),
        (
            "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
            json!({"metadata": {"name": "p"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "a"}}}}),
        ),
    ] {
        let (code, created) = post(&api, path, "application/json", body(obj)).await?;
        assert_eq!(code, 201, "{path}: {created}");
    }
    api.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_binary_serves_and_writes_a_kubeconfig() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-fake-api"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .kill_on_drop_guard();
    let stdout = child.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await??;
    let url = line.trim().strip_prefix("listening on ").expect("listening line").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let config = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default()).await?;
    assert_eq!(config.cluster_url.to_string().trim_end_matches('/'), url);
    let client = kube::Client::try_from(config)?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> =
        namespaces.list(&ListParams::default()).await?.items.iter().map(|n| n.name_any()).collect();
    assert!(names.contains(&"default".to_string()), "{names:?}");
    // Like a real cluster, the binary does not create namespaces on first use.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "missing");
    let cm = k8s_openapi::api::core::v1::ConfigMap {
        metadata: ObjectMeta { name: Some("c".into()), ..Default::default() },
        ..Default::default()
    };
    let err = cms.create(&PostParams::default(), &cm).await.unwrap_err();
    assert_eq!(api_status(err).code, 404);
    Ok(())
}

/// Kill the child when the test ends, even on a failed assertion.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

trait SpawnGuard {
    fn kill_on_drop_guard(&mut self) -> Guard;
}

impl SpawnGuard for Command {
    fn kill_on_drop_guard(&mut self) -> Guard {
        Guard(self.spawn().expect("spawning kube-fake-api"))
    }
}
