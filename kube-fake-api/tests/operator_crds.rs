//! The operator's own CRDs (`crds/` at the workspace root) install through the API
//! exactly as `kubectl apply` would, and their schemas and CEL rules are enforced.

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube_fake_api::FakeApiServer;
use serde_json::json;

const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[tokio::test]
async fn operator_crds_install_and_serve() -> anyhow::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no CRDs in {}", dir.display());

    let api = FakeApiServer::start().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(api.client());
    for file in &files {
        let crd: CustomResourceDefinition = serde_norway::from_str(&std::fs::read_to_string(file)?)?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.create(&PostParams::default(), &crd).await?;
        tokio::time::timeout(WAIT, await_condition(crds.clone(), &name, conditions::is_crd_established())).await??;

        let version = crd.spec.versions.iter().find(|v| v.served).map(|v| v.name.clone()).unwrap_or_default();
        let gvk = GroupVersionKind::gvk(&crd.spec.group, &version, &crd.spec.names.kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural);
        let objects: Api<DynamicObject> = Api::namespaced_with(api.client(), "tenant", &ar);
        assert!(objects.list(&ListParams::default()).await?.items.is_empty(), "{name} is served");

        // An object without a spec is rejected by the schema, naming the field.
        let empty: DynamicObject = serde_json::from_value(json!({
            "apiVersion": ar.api_version, "kind": ar.kind, "metadata": {"name": "empty"}
        }))?;
        match objects.create(&PostParams::default(), &empty).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422, "{name}: {}", s.message);
                assert!(s.message.contains("spec: Required value"), "{name}: {}", s.message);
            }
            other => panic!("{name}: expected 422 for a missing spec, got {other:?}"),
        }
    }
    Ok(())
}
