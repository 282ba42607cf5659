//! Workers scripts: multipart upload (+ deploy), list, settings, script-settings, delete, and the
//! service view (`workers/services/:w`). Also the shared upload types (metadata, bindings,
//! modules) used by version uploads.

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
pub use crate::endpoints::bindings::Binding;
use crate::error::CloudflareError;
use crate::multipart::{MultipartBody, Part};

pub const EP_SCRIPTS: &str = "/accounts/:account/workers/scripts";
pub const EP_SCRIPT: &str = "/accounts/:account/workers/scripts/:script";
pub const EP_SCRIPT_SETTINGS: &str = "/accounts/:account/workers/scripts/:script/settings";
pub const EP_SCRIPT_SCRIPT_SETTINGS: &str = "/accounts/:account/workers/scripts/:script/script-settings";
pub const EP_SERVICE: &str = "/accounts/:account/workers/services/:script";

/// Longest `workers/message` annotation the API keeps (bytes).
pub const MAX_MESSAGE_BYTES: usize = 1000;
/// Longest `workers/tag` annotation (bytes).
pub const MAX_TAG_BYTES: usize = 100;

/// Binding types that carry secrets; `keep_bindings` with these keeps existing secrets.
pub const SECRET_BINDING_TYPES: &[&str] = &["secret_text", "secret_key"];

/// Version annotations (`workers/*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotations {
    #[serde(rename = "workers/message", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(rename = "workers/tag", default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Set by Cloudflare (`upload`, `rollback`, ...); ignored on requests.
    #[serde(rename = "workers/triggered_by", default, skip_serializing_if = "Option::is_none")]
    pub triggered_by: Option<String>,
    #[serde(rename = "workers/alias", default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl Annotations {
    /// Message and tag, truncated to the API limits on a character boundary.
    pub fn new(message: Option<&str>, tag: Option<&str>) -> Self {
        Self {
            message: message.map(|m| truncate_bytes(m, MAX_MESSAGE_BYTES).to_string()),
            tag: tag.map(|t| truncate_bytes(t, MAX_TAG_BYTES).to_string()),
            triggered_by: None,
            alias: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.message.is_none() && self.tag.is_none() && self.triggered_by.is_none() && self.alias.is_none()
    }

    /// Limits applied, response-only fields removed.
    pub(crate) fn for_request(&self) -> Self {
        Self {
            message: self.message.as_deref().map(|m| truncate_bytes(m, MAX_MESSAGE_BYTES).to_string()),
            tag: self.tag.as_deref().map(|t| truncate_bytes(t, MAX_TAG_BYTES).to_string()),
            triggered_by: None,
            alias: self.alias.clone(),
        }
    }
}

pub(crate) fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Upload metadata (the `metadata` part). `bindings` replaces the previous set except the types
/// listed in `keep_bindings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerMetadata {
    /// Entry module; required for ES-module Workers and version uploads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_module: Option<String>,
    /// "YYYY-MM-DD". Always send it: without it the API uses 2021-11-02.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility_date: Option<String>,
    #[serde(default, deserialize_with = "de::null_default", skip_serializing_if = "Vec::is_empty")]
    pub compatibility_flags: Vec<String>,
    #[serde(default, deserialize_with = "de::null_default")]
    pub bindings: Vec<Binding>,
    /// Binding types kept from the previous version, e.g. [`SECRET_BINDING_TYPES`].
    #[serde(default, deserialize_with = "de::null_default", skip_serializing_if = "Vec::is_empty")]
    pub keep_bindings: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// Script tags (script upload only; versions ignore them, use script-settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logpush: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observability: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_consumers: Option<Vec<Value>>,
    /// Durable Object migrations (script upload and settings PATCH); build the value with
    /// [`crate::DoMigrations`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<Value>,
    /// `limits` (`{"cpu_ms": ...}`), see [`crate::WorkerLimits`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
    /// Any other metadata field, sent as is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl WorkerMetadata {
    /// Add `secret_text` and `secret_key` to `keep_bindings` (what wrangler sends on version
    /// uploads so existing secrets survive).
    pub fn keep_secrets(mut self) -> Self {
        for t in SECRET_BINDING_TYPES {
            if !self.keep_bindings.iter().any(|k| k == t) {
                self.keep_bindings.push((*t).to_string());
            }
        }
        self
    }
}

/// Content type of a module by file extension.
///
/// `.js`/`.mjs` ES module, `.cjs` CommonJS, `.wasm` WebAssembly, `.py` Python, `.map` source map,
/// text-like files (`.txt .html .htm .sql .css .csv .md .json .xml .svg`) text modules, everything
/// else a data module.
pub fn module_content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "js" | "mjs" => "application/javascript+module",
        "cjs" => "application/javascript",
        "wasm" => "application/wasm",
        "py" => "text/x-python",
        "map" => "application/source-map",
        "txt" | "html" | "htm" | "sql" | "css" | "csv" | "md" | "json" | "xml" | "svg" => "text/plain",
        _ => "application/octet-stream",
    }
}

/// One module file of an upload.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkerModule {
    /// Module name = part name = filename (`index.js`, `lib/util.js`).
    pub name: String,
    pub content: Bytes,
    /// Overrides the extension-based content type.
    pub content_type: Option<String>,
}

impl std::fmt::Debug for WorkerModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerModule")
            .field("name", &self.name)
            .field("content_type", &self.content_type())
            .field("len", &self.content.len())
            .finish()
    }
}

impl WorkerModule {
    pub fn new(name: impl Into<String>, content: impl Into<Bytes>) -> Self {
        Self { name: name.into(), content: content.into(), content_type: None }
    }

    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    pub fn content_type(&self) -> &str {
        self.content_type.as_deref().unwrap_or_else(|| module_content_type(&self.name))
    }
}

/// A complete upload: metadata plus modules. Used by script PUT and version POST.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerUpload {
    pub metadata: WorkerMetadata,
    pub modules: Vec<WorkerModule>,
    /// Send `bindings_inherit=strict`: fail instead of dropping unresolvable `inherit` bindings.
    pub strict_inherit: bool,
}

impl WorkerUpload {
    pub fn new(metadata: WorkerMetadata, modules: Vec<WorkerModule>) -> Self {
        Self { metadata, modules, strict_inherit: false }
    }

    /// Validate and encode the multipart body: part `metadata` (application/json), then one part
    /// per module with part name = filename = module name.
    pub fn to_multipart(&self) -> Result<MultipartBody, CloudflareError> {
        if self.modules.is_empty() {
            return Err(CloudflareError::InvalidInput("worker upload has no modules".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.modules {
            if m.name.is_empty() || m.name == "metadata" {
                return Err(CloudflareError::InvalidInput(format!("invalid module name {:?}", m.name)));
            }
            if !seen.insert(m.name.as_str()) {
                return Err(CloudflareError::InvalidInput(format!("duplicate module {:?}", m.name)));
            }
        }
        if let Some(main) = &self.metadata.main_module
            && !seen.contains(main.as_str())
        {
            return Err(CloudflareError::InvalidInput(format!("main_module {main:?} is not among the modules")));
        }
        let mut names = std::collections::BTreeSet::new();
        for b in &self.metadata.bindings {
            if let Some(n) = b.name()
                && !names.insert(n)
            {
                return Err(CloudflareError::InvalidInput(format!("duplicate binding name {n:?}")));
            }
        }
        let mut metadata = self.metadata.clone();
        metadata.annotations = metadata.annotations.as_ref().map(Annotations::for_request).filter(|a| !a.is_empty());
        let meta_json = serde_json::to_vec(&metadata)
            .map_err(|_| CloudflareError::InvalidInput("worker metadata could not be serialized".into()))?;
        let mut parts = Vec::with_capacity(self.modules.len() + 1);
        parts.push(Part {
            name: "metadata".into(),
            filename: None,
            content_type: Some("application/json".into()),
            data: Bytes::from(meta_json),
        });
        for m in &self.modules {
            parts.push(Part {
                name: m.name.clone(),
                filename: Some(m.name.clone()),
                content_type: Some(m.content_type().to_string()),
                data: m.content.clone(),
            });
        }
        Ok(MultipartBody::encode(&parts))
    }
}

/// A route attached to a script (in script lists).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptRoute {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub id: String,
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub pattern: String,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub script: Option<String>,
}

/// A script as returned by upload and list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// The script name.
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub id: String,
    /// Immutable script ID.
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub tag: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub etag: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub created_on: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub modified_on: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub compatibility_date: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub compatibility_flags: Vec<String>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub handlers: Vec<String>,
    #[serde(default, deserialize_with = "de::null_default")]
    pub has_modules: Option<bool>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub usage_model: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub last_deployed_from: Option<String>,
    /// The new version's ID on upload (wrangler reads it; not in the SDK schema).
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub deployment_id: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub routes: Vec<ScriptRoute>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub migration_tag: Option<String>,
}

impl Script {
    /// Version created by an upload (`deployment_id`), when the API reported it.
    pub fn version_id(&self) -> Option<&str> {
        self.deployment_id.as_deref().filter(|s| !s.is_empty())
    }
}

/// `GET .../settings`: configuration of the latest version. Secret bindings come back without
/// `text`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptSettings {
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub bindings: Vec<Binding>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub compatibility_date: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub compatibility_flags: Vec<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub usage_model: Option<String>,
    #[serde(default, deserialize_with = "de::null_default")]
    pub logpush: Option<bool>,
    #[serde(default)]
    pub placement: Option<Value>,
    #[serde(default)]
    pub observability: Option<Value>,
    #[serde(default)]
    pub limits: Option<Value>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub tail_consumers: Option<Value>,
    #[serde(default, deserialize_with = "lenient_annotations")]
    pub annotations: Option<Annotations>,
}

pub(crate) fn lenient_annotations<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Annotations>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// `script-settings`: non-versioned settings (PATCH body and GET/PATCH result). `None` fields
/// are not sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptLevelSettings {
    #[serde(default, deserialize_with = "de::null_default", skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de::null_default", skip_serializing_if = "Option::is_none")]
    pub logpush: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observability: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_consumers: Option<Value>,
}

/// `GET workers/services/:w`: the script's service view (wrangler reads the script tag and tags
/// from `default_environment.script`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerService {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub id: String,
    #[serde(default)]
    pub default_environment: Option<ServiceEnvironment>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub created_on: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub modified_on: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceEnvironment {
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub environment: Option<String>,
    #[serde(default)]
    pub script: Option<Script>,
}

impl WorkerService {
    pub fn script_tag(&self) -> Option<&str> {
        self.default_environment.as_ref()?.script.as_ref()?.tag.as_deref()
    }

    pub fn script_tags(&self) -> &[String] {
        self.default_environment.as_ref().and_then(|e| e.script.as_ref()).map_or(&[], |s| s.tags.as_slice())
    }
}

fn script_path(account: &str, script: &str) -> String {
    format!("/accounts/{}/workers/scripts/{}", enc(account), enc(script))
}

impl CloudflareClient {
    /// `PUT .../scripts/:script`: create or replace the script and deploy it at 100% (every call
    /// makes a new version; read it with [`Script::version_id`]).
    pub async fn upload_script(
        &self,
        account_id: &str,
        script: &str,
        upload: &WorkerUpload,
    ) -> Result<Script, CloudflareError> {
        let body = upload.to_multipart()?;
        let req = Request::put(EP_SCRIPT, script_path(account_id, script))
            .query_opt("bindings_inherit", upload.strict_inherit.then_some("strict"))
            .multipart(body);
        self.call(req).await
    }

    /// `GET .../scripts` (unpaginated). `tags` filters like `owner:yes,team-x:no`.
    pub async fn list_scripts(&self, account_id: &str, tags: Option<&str>) -> Result<Vec<Script>, CloudflareError> {
        let req =
            Request::get(EP_SCRIPTS, format!("/accounts/{}/workers/scripts", enc(account_id))).query_opt("tags", tags);
        let r: Option<Vec<Script>> = self.call(req).await?;
        Ok(r.unwrap_or_default())
    }

    /// `GET .../scripts/:script/settings`: bindings and config of the latest version (drift checks).
    pub async fn get_script_settings(&self, account_id: &str, script: &str) -> Result<ScriptSettings, CloudflareError> {
        let req = Request::get(EP_SCRIPT_SETTINGS, format!("{}/settings", script_path(account_id, script)));
        let r: Option<ScriptSettings> = self.call(req).await?;
        Ok(r.unwrap_or_default())
    }

    /// `GET .../scripts/:script/script-settings`.
    pub async fn get_script_level_settings(
        &self,
        account_id: &str,
        script: &str,
    ) -> Result<ScriptLevelSettings, CloudflareError> {
        let req =
            Request::get(EP_SCRIPT_SCRIPT_SETTINGS, format!("{}/script-settings", script_path(account_id, script)));
        let r: Option<ScriptLevelSettings> = self.call(req).await?;
        Ok(r.unwrap_or_default())
    }

    /// `PATCH .../scripts/:script/script-settings` (JSON): non-versioned settings such as tags.
    /// Does not create a version.
    pub async fn patch_script_settings(
        &self,
        account_id: &str,
        script: &str,
        patch: &ScriptLevelSettings,
    ) -> Result<ScriptLevelSettings, CloudflareError> {
        let req =
            Request::patch(EP_SCRIPT_SCRIPT_SETTINGS, format!("{}/script-settings", script_path(account_id, script)))
                .json(patch)?;
        let r: Option<ScriptLevelSettings> = self.call(req).await?;
        Ok(r.unwrap_or_default())
    }

    /// `DELETE .../scripts/:script`. With `force`, deletes even if other Workers reference it.
    /// A missing script is an error with `is_not_found()`.
    pub async fn delete_script(&self, account_id: &str, script: &str, force: bool) -> Result<(), CloudflareError> {
        let req =
            Request::delete(EP_SCRIPT, script_path(account_id, script)).query_opt("force", force.then_some("true"));
        self.call_unit(req).await
    }

    /// `GET .../workers/services/:script`: script tag and tags of the production environment.
    pub async fn get_service(&self, account_id: &str, script: &str) -> Result<WorkerService, CloudflareError> {
        let req = Request::get(EP_SERVICE, format!("/accounts/{}/workers/services/{}", enc(account_id), enc(script)));
        self.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;
    use serde_json::json;

    #[test]
    fn content_types_by_extension() {
        for (n, ct) in [
            ("index.js", "application/javascript+module"),
            ("lib/util.MJS", "application/javascript+module"),
            ("legacy.cjs", "application/javascript"),
            ("add.wasm", "application/wasm"),
            ("schema.sql", "text/plain"),
            ("page.html", "text/plain"),
            ("notes.txt", "text/plain"),
            ("data.bin", "application/octet-stream"),
            ("README", "application/octet-stream"),
            ("index.js.map", "application/source-map"),
            ("main.py", "text/x-python"),
        ] {
            assert_eq!(module_content_type(n), ct, "{n}");
        }
        assert_eq!(WorkerModule::new("a.bin", "x").with_content_type("text/plain").content_type(), "text/plain");
    }

    #[test]
    fn metadata_serialization_and_keep_secrets() {
        let m = WorkerMetadata {
            main_module: Some("index.js".into()),
            compatibility_date: Some("2025-10-01".into()),
            bindings: vec![Binding::plain_text("A", "b")],
            annotations: Some(Annotations::new(Some("deploy"), Some("v1"))),
            ..WorkerMetadata::default()
        }
        .keep_secrets()
        .keep_secrets();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            json!({
                "main_module": "index.js", "compatibility_date": "2025-10-01",
                "bindings": [{"type": "plain_text", "name": "A", "text": "b"}],
                "keep_bindings": ["secret_text", "secret_key"],
                "annotations": {"workers/message": "deploy", "workers/tag": "v1"}
            })
        );
        let empty = serde_json::to_value(WorkerMetadata::default()).unwrap();
        assert_eq!(empty, json!({"bindings": []}), "bindings always sent so removals apply");
        let mut extra = WorkerMetadata::default();
        extra.extra.insert("assets".into(), json!({"jwt": "x"}));
        assert_eq!(serde_json::to_value(&extra).unwrap()["assets"]["jwt"], "x");
    }

    #[test]
    fn annotations_truncate_on_char_boundary() {
        let a = Annotations::new(Some(&"é".repeat(600)), Some(&"t".repeat(150)));
        assert_eq!(a.message.as_ref().unwrap().len(), 1000);
        assert_eq!(a.tag.as_ref().unwrap().len(), 100);
        let long =
            Annotations { message: Some("ü".repeat(501)), triggered_by: Some("upload".into()), ..Default::default() };
        let r = long.for_request();
        assert_eq!(r.message.unwrap().len(), 1000);
        assert!(r.triggered_by.is_none());
    }

    #[test]
    fn upload_validation() {
        let meta = WorkerMetadata { main_module: Some("index.js".into()), ..Default::default() };
        let ok = WorkerUpload::new(meta.clone(), vec![WorkerModule::new("index.js", "export default {}")]);
        assert!(ok.to_multipart().is_ok());
        let none = WorkerUpload::new(meta.clone(), vec![]);
        assert_eq!(none.to_multipart().unwrap_err().reason(), "InvalidInput");
        let missing_main = WorkerUpload::new(meta.clone(), vec![WorkerModule::new("other.js", "")]);
        assert!(missing_main.to_multipart().unwrap_err().to_string().contains("main_module"));
        let dup =
            WorkerUpload::new(meta.clone(), vec![WorkerModule::new("index.js", ""), WorkerModule::new("index.js", "")]);
        assert!(dup.to_multipart().unwrap_err().to_string().contains("duplicate module"));
        let mut dup_b = ok.clone();
        dup_b.metadata.bindings =
            vec![Binding::plain_text("X", "1"), Binding::secret_text("X", SecretString::new("topsecret"))];
        let e = dup_b.to_multipart().unwrap_err().to_string();
        assert!(e.contains("duplicate binding name") && !e.contains("topsecret"), "{e}");
        let reserved = WorkerUpload::new(WorkerMetadata::default(), vec![WorkerModule::new("metadata", "")]);
        assert!(reserved.to_multipart().is_err());
    }

    #[test]
    fn script_and_service_parse_tolerantly() {
        let s: Script = serde_json::from_value(json!({
            "id": "w", "tag": "abc", "etag": "e", "handlers": ["fetch"], "tags": null, "routes": null,
            "deployment_id": "4e2b8b3c0d8f4f6f9b7a1c2d3e4f5a6b", "startup_time_ms": 7, "placement": {}
        }))
        .unwrap();
        assert_eq!(s.version_id(), Some("4e2b8b3c0d8f4f6f9b7a1c2d3e4f5a6b"));
        assert!(s.tags.is_empty() && s.routes.is_empty());
        let svc: WorkerService = serde_json::from_value(json!({
            "id": "w", "default_environment": {"environment": "production", "script": {"id": "w", "tag": "t1", "tags": ["clodo:acme/x"]}}
        }))
        .unwrap();
        assert_eq!(svc.script_tag(), Some("t1"));
        assert_eq!(svc.script_tags(), ["clodo:acme/x".to_string()]);
        assert!(WorkerService::default().script_tags().is_empty());
        let settings: ScriptSettings = serde_json::from_value(json!({
            "bindings": [{"type": "secret_text", "name": "K"}], "tags": null, "annotations": {"workers/message": "m"}
        }))
        .unwrap();
        assert_eq!(settings.bindings.len(), 1);
        assert_eq!(settings.annotations.unwrap().message.as_deref(), Some("m"));
    }
}
