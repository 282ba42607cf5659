//! [`ObjectSource`] backed by the Kubernetes API: the only place the engine's inputs come from
//! when running in a cluster. Generated secrets live in one operator-owned Secret per service.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};

use crate::crd::keys::{FIELD_MANAGER, LABEL_MANAGED_BY, LABEL_SERVICE, MANAGED_BY};
use crate::crd::{CloudflareService, Customer};
use crate::engine::resolve::{Generated, ObjectSource, SourceError};
use crate::engine::secret::{self, SecretValue};
use crate::source::Fetcher;

/// Reads objects with a kube client.
pub struct KubeSource {
    client: Client,
    /// `resourceVersion` the next status write must find (updated by checkpoints), so that a
    /// pass never overwrites a status newer than the object it started from.
    resource_version: std::sync::Mutex<Option<String>>,
    fetcher: Option<Arc<Fetcher>>,
}

impl KubeSource {
    pub fn new(client: Client) -> Self {
        Self { client, resource_version: std::sync::Mutex::new(None), fetcher: None }
    }

    /// A source for one pass over `obj`: status checkpoints carry its resourceVersion as a
    /// precondition.
    pub fn for_object<K: Resource>(client: Client, obj: &K) -> Self {
        Self { client, resource_version: std::sync::Mutex::new(obj.meta().resource_version.clone()), fetcher: None }
    }

    /// The resourceVersion after the last checkpoint (or of the object the pass started from).
    pub fn resource_version(&self) -> Option<String> {
        self.resource_version.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Load OCI and URL code sources with this fetcher.
    pub fn with_fetcher(mut self, fetcher: Option<Arc<Fetcher>>) -> Self {
        self.fetcher = fetcher;
        self
    }
}

fn source_err(what: &str, e: kube::Error) -> SourceError {
    SourceError { what: what.to_string(), message: e.to_string() }
}

/// Name of the Secret holding a service's generated secret values.
pub fn generated_secret_name(service: &str) -> String {
    format!("{service}-generated")
}

#[async_trait]
impl ObjectSource for KubeSource {
    async fn customer(&self, namespace: &str, name: &str) -> Result<Option<Customer>, SourceError> {
        Api::<Customer>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| source_err(&format!("Customer {namespace}/{name}"), e))
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| source_err(&format!("Secret {namespace}/{name}"), e))
    }

    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, SourceError> {
        Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| source_err(&format!("ConfigMap {namespace}/{name}"), e))
    }

    async fn checkpoint(
        &self,
        service: &CloudflareService,
        status: &crate::crd::CloudflareServiceStatus,
    ) -> Result<(), SourceError> {
        let ns = service.namespace().unwrap_or_else(|| "default".into());
        let what = format!("status of CloudflareService {ns}/{}", service.name_any());
        let rv = self.resource_version();
        let written = super::apply_status::<CloudflareService, _>(&self.client, service, rv, status)
            .await
            .map_err(|e| SourceError { what, message: e.to_string() })?;
        *self.resource_version.lock().unwrap_or_else(|e| e.into_inner()) = written;
        Ok(())
    }

    async fn stored_generated_secret(
        &self,
        service: &CloudflareService,
        secret_name: &str,
    ) -> Result<Option<SecretValue>, SourceError> {
        let ns = service.namespace().unwrap_or_else(|| "default".into());
        let name = generated_secret_name(&service.name_any());
        let what = format!("Secret {ns}/{name}");
        let existing = Api::<Secret>::namespaced(self.client.clone(), &ns)
            .get_opt(&name)
            .await
            .map_err(|e| source_err(&what, e))?;
        match existing.as_ref().and_then(|s| s.data.as_ref()).and_then(|d| d.get(secret_name)) {
            None => Ok(None),
            Some(v) => String::from_utf8(v.0.clone())
                .map(|t| Some(SecretValue::new(t)))
                .map_err(|_| SourceError { what, message: format!("key {secret_name} is not UTF-8") }),
        }
    }

    async fn generated_secret(
        &self,
        service: &CloudflareService,
        secret_name: &str,
        length: u32,
    ) -> Result<Generated, SourceError> {
        let ns = service.namespace().unwrap_or_else(|| "default".into());
        let name = generated_secret_name(&service.name_any());
        let what = format!("Secret {ns}/{name}");
        let api = Api::<Secret>::namespaced(self.client.clone(), &ns);
        // Optimistic loop: read, add the key if absent with a resourceVersion precondition.
        for _ in 0..5 {
            let existing = api.get_opt(&name).await.map_err(|e| source_err(&what, e))?;
            match existing {
                Some(s) => {
                    if let Some(v) = s.data.as_ref().and_then(|d| d.get(secret_name)) {
                        let text = String::from_utf8(v.0.clone()).map_err(|_| SourceError {
                            what: what.clone(),
                            message: format!("key {secret_name} is not UTF-8"),
                        })?;
                        return Ok(Generated { value: SecretValue::new(text), created: false });
                    }
                    let value = secret::generate(length);
                    let patch = serde_json::json!({
                        "metadata": { "resourceVersion": s.resource_version() },
                        "data": { secret_name: ByteString(value.expose().as_bytes().to_vec()) },
                    });
                    match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                        Ok(_) => return Ok(Generated { value, created: true }),
                        Err(kube::Error::Api(e)) if e.code == 409 => continue,
                        Err(e) => return Err(source_err(&what, e)),
                    }
                }
                None => {
                    let value = secret::generate(length);
                    let owner = service.controller_owner_ref(&()).into_iter().collect::<Vec<_>>();
                    let s = Secret {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            namespace: Some(ns.clone()),
                            labels: Some(BTreeMap::from([
                                (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
                                (LABEL_SERVICE.to_string(), service.name_any()),
                            ])),
                            owner_references: Some(owner),
                            ..Default::default()
                        },
                        data: Some(BTreeMap::from([(
                            secret_name.to_string(),
                            ByteString(value.expose().as_bytes().to_vec()),
                        )])),
                        type_: Some("Opaque".into()),
                        ..Default::default()
                    };
                    match api
                        .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &s)
                        .await
                    {
                        Ok(_) => return Ok(Generated { value, created: true }),
                        Err(kube::Error::Api(e)) if e.code == 409 => continue,
                        Err(e) => return Err(source_err(&what, e)),
                    }
                }
            }
        }
        Err(SourceError { what, message: "kept conflicting with concurrent writers".into() })
    }

    fn code_fetcher(&self) -> Option<&Fetcher> {
        self.fetcher.as_deref()
    }
}
