//! Where a Worker's module files come from: a ConfigMap, an OCI artifact or a pinned URL.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::LocalObjectRef;

/// Exactly one of `configMapRef`, `oci` or `url`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.configMapRef) ? 1 : 0) + (has(self.oci) ? 1 : 0) + (has(self.url) ? 1 : 0) == 1").message("worker.source: set exactly one of configMapRef, oci or url"))]
pub struct WorkerSource {
    /// ConfigMap in the same namespace; each key (data or binaryData) is one file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<LocalObjectRef>,
    /// An OCI artifact whose layers are the module files (as `oras push` writes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciSource>,
    /// A tarball (`.tar.gz`/`.tgz`) or a single module at a URL, pinned by its SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<UrlSource>,
}

impl WorkerSource {
    /// A ConfigMap source.
    pub fn config_map(name: impl Into<String>) -> Self {
        Self { config_map_ref: Some(LocalObjectRef { name: name.into() }), ..Default::default() }
    }

    /// The ConfigMap's name, when the code comes from one.
    pub fn config_map_name(&self) -> Option<&str> {
        self.config_map_ref.as_ref().map(|r| r.name.as_str())
    }
}

/// An OCI artifact: each layer is one module file named by its `org.opencontainers.image.title`
/// annotation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciSource {
    /// `registry/repository:tag` or `registry/repository@sha256:<hex>`. A tag is resolved to a
    /// digest on every pass; a digest is pulled once and served from the cache afterwards.
    #[serde(rename = "ref")]
    #[x_kube(validation = Rule::new("self.size() > 0 && !self.contains('://')").message("worker.source.oci.ref must be a reference such as registry.example.com/acme/app:1.0 (no scheme)"))]
    pub reference: String,
    /// A `kubernetes.io/dockerconfigjson` Secret in the same namespace with credentials for the
    /// registry (basic auth or an identity/registry token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret_ref: Option<LocalObjectRef>,
    /// Talk plain HTTP to the registry (for registries inside the cluster without TLS).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

/// A file at a URL, pinned by its SHA-256.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UrlSource {
    /// `https://…/bundle.tar.gz` (a gzipped tarball of module files) or `https://…/worker.js`
    /// (one module, named by the URL's last path segment).
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("worker.source.url.url must start with https:// or http://"))]
    pub url: String,
    /// Lowercase hex SHA-256 of the downloaded file; the content is used only when it matches.
    #[schemars(regex(pattern = r"^[a-f0-9]{64}$"))]
    pub sha256: String,
}

/// The code a pass used, when it came from an artifact (status.source).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    /// `oci` or `url`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The OCI reference as written in the spec (URLs are not recorded: they may carry tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// `sha256:<hex>`: the manifest digest of an OCI artifact, or the file digest of a URL.
    pub digest: String,
}
