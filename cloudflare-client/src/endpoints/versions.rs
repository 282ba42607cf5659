//! Worker versions: upload without deploying, list (page-items), get.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::scripts::{Annotations, Binding, WorkerUpload, lenient_annotations};
use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;
use crate::pagination::{Page, collect_pages};

pub const EP_VERSIONS: &str = "/accounts/:account/workers/scripts/:script/versions";
pub const EP_VERSION: &str = "/accounts/:account/workers/scripts/:script/versions/:version";

const VERSIONS_PER_PAGE: u32 = 50;

/// `metadata` of a version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMetadata {
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub author_email: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub author_id: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub created_on: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub modified_on: Option<String>,
    /// `api`, `wrangler`, `terraform`, `dash`, ...
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub source: Option<String>,
    /// SDK `hasPreview`, wrangler `has_preview`.
    #[serde(default, alias = "hasPreview", deserialize_with = "de::null_default")]
    pub has_preview: Option<bool>,
}

/// Runtime settings of a version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptRuntime {
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub compatibility_date: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub compatibility_flags: Vec<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub usage_model: Option<String>,
}

/// `resources` of a version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionResources {
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub bindings: Vec<Binding>,
    #[serde(default)]
    pub script: Option<Value>,
    #[serde(default, deserialize_with = "lenient_runtime")]
    pub script_runtime: Option<ScriptRuntime>,
}

fn lenient_runtime<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ScriptRuntime>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

fn lenient_metadata<'de, D: serde::Deserializer<'de>>(d: D) -> Result<VersionMetadata, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

fn lenient_resources<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<VersionResources>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// A Worker version (upload result, list item, or full get).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub id: String,
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub number: Option<u64>,
    #[serde(default, deserialize_with = "lenient_metadata")]
    pub metadata: VersionMetadata,
    #[serde(default, deserialize_with = "lenient_annotations")]
    pub annotations: Option<Annotations>,
    #[serde(default, deserialize_with = "lenient_resources")]
    pub resources: Option<VersionResources>,
    #[serde(default)]
    pub startup_time_ms: Option<f64>,
}

impl Version {
    /// Bindings of the version (empty when not included in the response).
    pub fn bindings(&self) -> &[Binding] {
        self.resources.as_ref().map_or(&[], |r| r.bindings.as_slice())
    }
}

fn versions_path(account: &str, script: &str) -> String {
    format!("/accounts/{}/workers/scripts/{}/versions", enc(account), enc(script))
}

impl CloudflareClient {
    /// `POST .../versions`: upload a version without deploying it. `metadata.main_module` is
    /// required. Existing secrets are kept only if `keep_bindings` lists the secret types (see
    /// [`super::scripts::WorkerMetadata::keep_secrets`]). The script must already exist (first
    /// upload via [`CloudflareClient::upload_script`]).
    ///
    /// Not idempotent: every call creates the next version number. A retried request (after a
    /// 5xx or timeout) can leave an extra, undeployed version behind; that is harmless, and the
    /// caller deploys the version ID it got back.
    pub async fn upload_version(
        &self,
        account_id: &str,
        script: &str,
        upload: &WorkerUpload,
    ) -> Result<Version, CloudflareError> {
        if upload.metadata.main_module.as_deref().is_none_or(str::is_empty) {
            return Err(CloudflareError::InvalidInput("version upload needs metadata.main_module".into()));
        }
        let body = upload.to_multipart()?;
        let req = Request::post(EP_VERSIONS, versions_path(account_id, script))
            .query_opt("bindings_inherit", upload.strict_inherit.then_some("strict"))
            .multipart(body);
        self.call(req).await
    }

    /// One page of `GET .../versions` (newest first).
    pub async fn list_versions_page(
        &self,
        account_id: &str,
        script: &str,
        page: u32,
        per_page: u32,
    ) -> Result<Page<Version>, CloudflareError> {
        let req = Request::get(EP_VERSIONS, versions_path(account_id, script))
            .query("page", page)
            .query("per_page", per_page);
        self.page_items(req).await
    }

    /// All versions, newest first (every page).
    pub async fn list_versions(&self, account_id: &str, script: &str) -> Result<Vec<Version>, CloudflareError> {
        collect_pages(VERSIONS_PER_PAGE, |page| self.list_versions_page(account_id, script, page, VERSIONS_PER_PAGE))
            .await
    }

    /// Versions that can be deployed or rolled back to (`deployable=true`; one call, unpaged).
    pub async fn list_deployable_versions(
        &self,
        account_id: &str,
        script: &str,
    ) -> Result<Vec<Version>, CloudflareError> {
        let req = Request::get(EP_VERSIONS, versions_path(account_id, script)).query("deployable", "true");
        Ok(self.page_items(req).await?.items)
    }

    /// `GET .../versions/:version`: metadata, annotations and resources (bindings, runtime).
    pub async fn get_version(
        &self,
        account_id: &str,
        script: &str,
        version_id: &str,
    ) -> Result<Version, CloudflareError> {
        let req = Request::get(EP_VERSION, format!("{}/{}", versions_path(account_id, script), enc(version_id)));
        self.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_parses_both_preview_spellings_and_opaque_resources() {
        let v: Version = serde_json::from_value(json!({
            "id": "0f5d-uuid", "number": 3,
            "metadata": {"author_email": "a@b", "source": "api", "hasPreview": true, "created_on": "2025-01-01T00:00:00Z"},
            "annotations": {"workers/triggered_by": "upload", "workers/message": "m"},
            "resources": {
                "bindings": [{"type": "plain_text", "name": "A", "text": "1"}],
                "script": {"etag": "x", "handlers": ["fetch"]},
                "script_runtime": {"compatibility_date": "2025-10-01", "compatibility_flags": null}
            }
        }))
        .unwrap();
        assert_eq!(v.number, Some(3));
        assert_eq!(v.metadata.has_preview, Some(true));
        assert_eq!(v.annotations.as_ref().unwrap().triggered_by.as_deref(), Some("upload"));
        assert_eq!(v.bindings().len(), 1);
        assert_eq!(v.resources.unwrap().script_runtime.unwrap().compatibility_date.as_deref(), Some("2025-10-01"));

        let v: Version =
            serde_json::from_value(json!({"id": "x", "metadata": {"has_preview": false}, "resources": "opaque"}))
                .unwrap();
        assert_eq!(v.metadata.has_preview, Some(false));
        assert!(v.resources.is_none() && v.bindings().is_empty());
        let v: Version = serde_json::from_value(json!({"id": "x", "metadata": null})).unwrap();
        assert_eq!(v.metadata, VersionMetadata::default());
    }
}
