//! Workers domain logic (no HTTP): script names, multipart uploads, binding resolution,
//! versions and deployments.

use std::collections::{BTreeMap, HashSet};

use axum::extract::Multipart;
use bytes::Bytes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::envelope::ApiError;
use crate::ids;
use crate::model::{Account, Deployment, DeploymentVersion, Module, Script, Version};

/// Oldest compatibility date, used when an upload omits it (like the real API).
pub(crate) const OLDEST_COMPAT_DATE: &str = "2021-11-02";
/// Paid-plan script size limit.
pub(crate) const MAX_SCRIPT_BYTES: usize = 10 * 1024 * 1024;
/// Only this many recent versions can be deployed.
pub(crate) const DEPLOYABLE_VERSIONS: usize = 100;
pub(crate) const AUTHOR_EMAIL: &str = "emulator@example.com";

/// One part of a multipart upload.
pub(crate) struct UploadPart {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Bytes,
}

/// A parsed multipart upload: the JSON part (`metadata` or `settings`) and all other parts.
pub(crate) struct Upload {
    pub metadata: Value,
    pub parts: Vec<UploadPart>,
}

/// Read every part; the one named `json_part` must be JSON (with or without content type).
pub(crate) async fn read_multipart(mut mp: Multipart, json_part: &str) -> Result<Upload, ApiError> {
    let mut metadata = None;
    let mut parts = Vec::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Err(ApiError::bad_request(10021, format!("could not parse multipart body: {e}")));
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let data = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad_request(10021, format!("could not read content for part {name}: {e}")))?;
        if name == json_part {
            let v: Value = serde_json::from_slice(&data)
                .map_err(|e| ApiError::bad_request(10021, format!("could not parse JSON in part {json_part}: {e}")))?;
            metadata = Some(v);
        } else {
            parts.push(UploadPart { name, filename, content_type, data });
        }
    }
    let metadata =
        metadata.ok_or_else(|| ApiError::bad_request(10021, format!("could not read content for part {json_part}")))?;
    if !metadata.is_object() {
        return Err(ApiError::bad_request(10021, format!("part {json_part} must be a JSON object")));
    }
    Ok(Upload { metadata, parts })
}

/// Script names: letter first, letter or digit last, letters/digits/`_`/`-`, at most 63.
pub(crate) fn validate_script_name(name: &str) -> Result<(), ApiError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphabetic()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            10016,
            format!(
                "Invalid Worker name {name:?}: use letters, digits, '-' and '_', start with a letter, end with a letter or digit, at most 63 characters"
            ),
        ))
    }
}

/// Module parts of an upload. The module name is the part name; a part named `files` (or
/// unnamed) takes its filename, and so does a part whose filename is the entry point named
/// in `metadata` when no part carries that name.
pub(crate) fn modules_from_parts(parts: Vec<UploadPart>, metadata: &Value) -> Vec<Module> {
    let entry = metadata.get("main_module").or_else(|| metadata.get("body_part")).and_then(Value::as_str);
    let entry_is_part_name = entry.is_some_and(|e| parts.iter().any(|p| p.name == e));
    parts
        .into_iter()
        .map(|p| {
            let name = match (&p.filename, p.name.as_str()) {
                (Some(f), "files" | "") => f.clone(),
                (Some(f), _) if !entry_is_part_name && Some(f.as_str()) == entry => f.clone(),
                _ => p.name.clone(),
            };
            let content_type =
                p.content_type.filter(|c| !c.is_empty()).unwrap_or_else(|| guess_content_type(&name).to_string());
            Module { name, content_type, content: p.data.to_vec() }
        })
        .collect()
}

fn guess_content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "js" | "mjs" => "application/javascript+module",
        "cjs" => "application/javascript",
        "wasm" => "application/wasm",
        "map" => "application/source-map",
        "py" => "text/x-python",
        "txt" | "html" | "sql" => "text/plain",
        _ => "application/javascript+module",
    }
}

/// Everything needed to build a version from uploaded metadata.
pub(crate) struct VersionInput<'a> {
    /// The script's name (it may not exist yet).
    pub name: &'a str,
    pub metadata: &'a Value,
    pub modules: Vec<Module>,
    pub source: &'a str,
    pub triggered_by: &'a str,
    /// `bindings_inherit=strict`.
    pub strict: bool,
}

fn err(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(10021, msg)
}

/// Build (but do not store) the next version of `script` from an upload.
pub(crate) fn new_version(
    account: &Account,
    script: Option<&Script>,
    input: VersionInput<'_>,
) -> Result<Version, ApiError> {
    let meta = input.metadata;
    let mut modules = input.modules;
    let main_module = opt_str(meta, "main_module")?;
    let body_part = opt_str(meta, "body_part")?;
    let entry = match (&main_module, &body_part) {
        (Some(m), _) => m.clone(),
        (None, Some(b)) => b.clone(),
        (None, None) => {
            return Err(err(
                "metadata must name the entry point: main_module (ES modules) or body_part (service worker)",
            ));
        }
    };
    if !modules.iter().any(|m| m.name == entry) {
        return Err(err(format!("Uncaught Error: No such module \"{entry}\".")));
    }
    let mut seen = HashSet::new();
    for m in &modules {
        if !seen.insert(m.name.clone()) {
            return Err(err(format!("module {:?} was uploaded more than once", m.name)));
        }
    }
    let total: usize = modules.iter().map(|m| m.content.len()).sum();
    if total > MAX_SCRIPT_BYTES {
        return Err(ApiError::bad_request(
            10027,
            format!("Your Worker exceeded the size limit of 10 MiB ({total} bytes)"),
        ));
    }
    // entry module first, others in upload order
    if let Some(pos) = modules.iter().position(|m| m.name == entry) {
        let m = modules.remove(pos);
        modules.insert(0, m);
    }
    let prev = script.and_then(|s| s.latest_version());
    let bindings = resolve_bindings(account, input.name, script, meta, input.strict)?;
    let compatibility_date = match meta.get("compatibility_date") {
        None | Some(Value::Null) => OLDEST_COMPAT_DATE.to_string(),
        Some(Value::String(d)) => validate_compat_date(d)?,
        Some(_) => return Err(err("compatibility_date must be a string YYYY-MM-DD")),
    };
    let compatibility_flags = string_list(meta, "compatibility_flags")?;
    let usage_model = opt_str(meta, "usage_model")?.unwrap_or_else(|| "standard".to_string());
    let annotations = annotations_from(meta.get("annotations"), input.triggered_by)?;
    let handlers = detect_handlers(modules.first());
    let etag = etag_of(&modules);
    Ok(Version {
        id: ids::uuid(),
        number: prev.map(|v| v.number + 1).unwrap_or(1),
        created_on: ids::now_after(prev.map(|v| &v.created_on)),
        source: input.source.to_string(),
        author_email: AUTHOR_EMAIL.to_string(),
        annotations,
        main_module,
        body_part,
        modules,
        bindings,
        compatibility_date,
        compatibility_flags,
        usage_model,
        limits: meta.get("limits").filter(|v| !v.is_null()).cloned(),
        placement: meta.get("placement").filter(|v| !v.is_null()).cloned(),
        etag,
        handlers,
    })
}

/// A copy of `base` as a new version (secret writes, settings changes): new id, number,
/// time and annotations; same code.
pub(crate) fn derived_version(script: &Script, base: &Version, source: &str, triggered_by: &str) -> Version {
    let prev = script.latest_version();
    let mut annotations = BTreeMap::new();
    annotations.insert("workers/triggered_by".to_string(), triggered_by.to_string());
    Version {
        id: ids::uuid(),
        number: prev.map(|v| v.number + 1).unwrap_or(1),
        created_on: ids::now_after(prev.map(|v| &v.created_on)),
        source: source.to_string(),
        author_email: AUTHOR_EMAIL.to_string(),
        annotations,
        ..base.clone()
    }
}

fn validate_compat_date(d: &str) -> Result<String, ApiError> {
    let date = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
        .map_err(|_| err(format!("Invalid compatibility date {d:?}: expected YYYY-MM-DD")))?;
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Duration::days(1);
    if date > tomorrow {
        return Err(err(format!("Can't set compatibility date in the future: {d}")));
    }
    Ok(d.to_string())
}

fn opt_str(meta: &Value, key: &str) -> Result<Option<String>, ApiError> {
    match meta.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(err(format!("metadata field {key} must be a string"))),
    }
}

pub(crate) fn string_list(meta: &Value, key: &str) -> Result<Vec<String>, ApiError> {
    match meta.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| err(format!("{key} must be a list of strings"))))
            .collect(),
        Some(_) => Err(err(format!("{key} must be a list of strings"))),
    }
}

/// Version annotations: `workers/message` (truncated to 1000 bytes), `workers/tag`
/// (at most 100 bytes), `workers/alias`; `workers/triggered_by` is set by the emulator.
pub(crate) fn annotations_from(v: Option<&Value>, triggered_by: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(map)) = v {
        for (k, val) in map {
            let Some(text) = val.as_str() else {
                if val.is_null() {
                    continue;
                }
                return Err(err(format!("annotation {k} must be a string")));
            };
            match k.as_str() {
                "workers/message" => {
                    out.insert(k.clone(), truncate_bytes(text, 1000).to_string());
                }
                "workers/tag" => {
                    if text.len() > 100 {
                        return Err(err("annotation workers/tag must be at most 100 bytes"));
                    }
                    out.insert(k.clone(), text.to_string());
                }
                "workers/triggered_by" => {}
                _ => {
                    out.insert(k.clone(), text.to_string());
                }
            }
        }
    }
    out.insert("workers/triggered_by".to_string(), triggered_by.to_string());
    Ok(out)
}

fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn binding_name(b: &Value) -> Option<&str> {
    b.get("name").and_then(Value::as_str)
}

pub(crate) fn binding_type(b: &Value) -> Option<&str> {
    b.get("type").and_then(Value::as_str)
}

/// A binding object with nothing but `name` and `type`.
fn is_reference_only(b: &Value) -> bool {
    b.as_object().is_some_and(|o| o.keys().all(|k| k == "name" || k == "type"))
}

pub(crate) fn is_secret_type(t: &str) -> bool {
    t == "secret_text" || t == "secret_key"
}

/// Resolve the uploaded bindings against the previous version:
/// `inherit` bindings, secret bindings without a value, `keep_bindings` types, and
/// secrets carried over implicitly (wrangler relies on that). Validates references.
pub(crate) fn resolve_bindings(
    account: &Account,
    script_name: &str,
    script: Option<&Script>,
    meta: &Value,
    strict: bool,
) -> Result<Vec<Value>, ApiError> {
    let prev = script.and_then(|s| s.latest_version());
    let uploaded = match meta.get("bindings") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(err("bindings must be a list")),
    };
    let mut out: Vec<Value> = Vec::new();
    let mut names = HashSet::new();
    for b in uploaded {
        let (Some(name), Some(kind)) = (binding_name(&b), binding_type(&b)) else {
            return Err(err("every binding needs a string name and type"));
        };
        let name = name.to_string();
        let kind = kind.to_string();
        if !names.insert(name.clone()) {
            return Err(err(format!(
                "Binding name '{name}' is used by more than one binding; binding names must be unique"
            )));
        }
        let resolved = match kind.as_str() {
            // `{name, type}` alone keeps the previous binding of that name and type
            // (wrangler's `secret bulk` sends the existing bindings this way).
            _ if is_reference_only(&b) && kind != "inherit" => {
                match prev.and_then(|v| v.binding(&name)).filter(|p| binding_type(p) == Some(kind.as_str())) {
                    Some(found) => found.clone(),
                    None => b,
                }
            }
            "inherit" => {
                let from = match b.get("version_id").and_then(Value::as_str) {
                    None | Some("latest") => prev,
                    Some(id) => script.and_then(|s| s.version(id)),
                };
                let old = b.get("old_name").and_then(Value::as_str).unwrap_or(&name);
                match from.and_then(|v| v.binding(old)) {
                    Some(found) => {
                        let mut found = found.clone();
                        found["name"] = Value::String(name.clone());
                        found
                    }
                    None if strict => {
                        return Err(ApiError::bad_request(
                            10057,
                            format!(
                                "binding {name} of type inherit could not be resolved: the previous version has no binding named {old}"
                            ),
                        ));
                    }
                    None => continue,
                }
            }
            _ => b,
        };
        out.push(crate::bindings::validate_binding(account, Some(script_name), prev, resolved)?);
    }
    if let Some(prev) = prev {
        let keep: Vec<String> = string_list(meta, "keep_bindings")?;
        for b in &prev.bindings {
            let (Some(name), Some(kind)) = (binding_name(b), binding_type(b)) else {
                continue;
            };
            if names.contains(name) {
                continue;
            }
            if keep.iter().any(|k| k == kind) || is_secret_type(kind) {
                names.insert(name.to_string());
                out.push(b.clone());
            }
        }
    }
    Ok(out)
}

/// Exported handler names found in the entry module (a source-text heuristic).
fn detect_handlers(entry: Option<&Module>) -> Vec<String> {
    let Some(m) = entry else {
        return Vec::new();
    };
    let Ok(src) = std::str::from_utf8(&m.content) else {
        return Vec::new();
    };
    let mut found: Vec<String> = ["fetch", "scheduled", "queue", "email", "tail", "trace"]
        .iter()
        .filter(|h| {
            src.match_indices(**h).any(|(i, _)| {
                let before_ok = src[..i]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '$'));
                let after = src[i + h.len()..].trim_start();
                before_ok && (after.starts_with('(') || after.starts_with(':'))
            })
        })
        .map(|h| h.to_string())
        .collect();
    if found.is_empty() && src.contains("addEventListener") {
        found.push("fetch".to_string());
    }
    found
}

fn etag_of(modules: &[Module]) -> String {
    let mut h = Sha256::new();
    for m in modules {
        h.update(m.name.as_bytes());
        h.update([0]);
        h.update(m.content_type.as_bytes());
        h.update([0]);
        h.update(&m.content);
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// A fresh script (no versions yet).
pub(crate) fn new_script(name: &str, source: &str) -> Script {
    let now = ids::now();
    Script {
        name: name.to_string(),
        tag: ids::hex32(),
        created_on: now,
        modified_on: now,
        tags: Vec::new(),
        logpush: false,
        observability: None,
        tail_consumers: None,
        last_deployed_from: source.to_string(),
        workers_dev_enabled: false,
        previews_enabled: false,
        schedules: Vec::new(),
        versions: Vec::new(),
        deployments: Vec::new(),
        migration_tag: None,
    }
}

/// Apply script-level (non-versioned) settings present in `settings`:
/// `logpush`, `observability`, `tags`, `tail_consumers`.
pub(crate) fn apply_script_settings(script: &mut Script, settings: &Value) -> Result<(), ApiError> {
    if let Some(v) = settings.get("logpush") {
        script.logpush = match v {
            Value::Bool(b) => *b,
            Value::Null => false,
            _ => return Err(err("logpush must be a boolean")),
        };
    }
    if let Some(v) = settings.get("observability") {
        script.observability = (!v.is_null()).then(|| v.clone());
    }
    if let Some(v) = settings.get("tail_consumers") {
        script.tail_consumers = (!v.is_null()).then(|| v.clone());
    }
    if settings.get("tags").is_some() {
        script.tags = string_list(settings, "tags")?;
    }
    Ok(())
}

/// Store `version` and deploy it at 100%.
pub(crate) fn push_and_deploy(script: &mut Script, version: Version, triggered_by: &str) -> Deployment {
    let source = version.source.clone();
    let id = version.id.clone();
    script.modified_on = ids::now_after(Some(&script.modified_on));
    script.last_deployed_from = source.clone();
    script.versions.push(version);
    let mut annotations = BTreeMap::new();
    annotations.insert("workers/triggered_by".to_string(), triggered_by.to_string());
    push_deployment(script, vec![DeploymentVersion { version_id: id, percentage: 100.0 }], annotations, &source)
}

pub(crate) fn push_deployment(
    script: &mut Script,
    versions: Vec<DeploymentVersion>,
    annotations: BTreeMap<String, String>,
    source: &str,
) -> Deployment {
    let d = Deployment {
        id: ids::uuid(),
        created_on: ids::now_after(script.deployments.last().map(|d| &d.created_on)),
        source: source.to_string(),
        strategy: "percentage".to_string(),
        author_email: AUTHOR_EMAIL.to_string(),
        versions,
        annotations,
    };
    script.deployments.push(d.clone());
    script.modified_on = ids::now_after(Some(&script.modified_on));
    d
}

/// Validate a deployment request (`strategy`, 1 or 2 versions of this script summing to 100).
pub(crate) fn parse_deployment_versions(script: &Script, body: &Value) -> Result<Vec<DeploymentVersion>, ApiError> {
    let bad = |m: String| ApiError::bad_request(10021, m);
    match body.get("strategy").and_then(Value::as_str) {
        Some("percentage") => {}
        other => {
            return Err(bad(format!(
                "strategy must be \"percentage\" (got {})",
                other.map(|s| format!("{s:?}")).unwrap_or_else(|| "nothing".into())
            )));
        }
    }
    let Some(items) = body.get("versions").and_then(Value::as_array) else {
        return Err(bad("versions must be a list of {version_id, percentage}".into()));
    };
    if items.is_empty() || items.len() > 2 {
        return Err(bad(format!("a deployment holds 1 or 2 versions, got {}", items.len())));
    }
    let deployable: Vec<&str> = script.versions.iter().rev().take(DEPLOYABLE_VERSIONS).map(|v| v.id.as_str()).collect();
    let mut out = Vec::new();
    for item in items {
        let id = item.get("version_id").and_then(Value::as_str).unwrap_or_default();
        let pct = item
            .get("percentage")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad(format!("version {id:?} needs a numeric percentage")))?;
        if script.version(id).is_none() {
            return Err(ApiError::bad_request(
                10221,
                format!("version {id:?} does not belong to Worker {}", script.name),
            ));
        }
        if !deployable.contains(&id) {
            return Err(bad(format!(
                "version {id} is not among the {DEPLOYABLE_VERSIONS} most recent versions and cannot be deployed"
            )));
        }
        if !(0.0..=100.0).contains(&pct) {
            return Err(bad(format!("percentage {pct} is outside 0..100")));
        }
        if out.iter().any(|d: &DeploymentVersion| d.version_id == id) {
            return Err(bad(format!("version {id} is listed twice")));
        }
        out.push(DeploymentVersion { version_id: id.to_string(), percentage: pct });
    }
    let sum: f64 = out.iter().map(|d| d.percentage).sum();
    if (sum - 100.0).abs() > 1e-9 {
        return Err(bad(format!("version percentages must sum to 100, got {sum}")));
    }
    Ok(out)
}

/// `rollback` when a single version at 100% that an earlier (non-current) deployment
/// already served is redeployed; `deployment` otherwise.
pub(crate) fn deployment_trigger(script: &Script, versions: &[DeploymentVersion]) -> &'static str {
    if let [only] = versions {
        let n = script.deployments.len();
        let served_before = script
            .deployments
            .iter()
            .take(n.saturating_sub(1))
            .any(|d| d.versions.iter().any(|v| v.version_id == only.version_id));
        let is_latest = script.latest_version().is_some_and(|v| v.id == only.version_id);
        let is_current =
            script.active_deployment().is_some_and(|d| d.versions.iter().any(|v| v.version_id == only.version_id));
        if served_before && !is_latest && !is_current {
            return "rollback";
        }
    }
    "deployment"
}

/// True when the newest version is the only one deployed (secret writes need that).
pub(crate) fn latest_is_deployed(script: &Script) -> bool {
    match (script.latest_version(), script.active_deployment()) {
        (Some(v), Some(d)) => d.versions.len() == 1 && d.versions[0].version_id == v.id,
        _ => false,
    }
}

/// Set, replace (`Some`) or delete (`None`) secrets, as a new version deployed at 100%.
/// Returns the new version's id.
pub(crate) fn write_secrets(
    script: &mut Script,
    changes: Vec<(String, Option<Value>)>,
    source: &str,
) -> Result<String, ApiError> {
    if !latest_is_deployed(script) {
        return Err(ApiError::bad_request(
            10215,
            "Secret edit failed. You attempted to modify a secret, but the latest version of your Worker isn't currently deployed. Deploy the latest version first.",
        ));
    }
    let Some(base) = script.latest_version().cloned() else {
        return Err(ApiError::script_not_found(&script.name));
    };
    let mut version = derived_version(script, &base, source, "secret");
    for (name, value) in changes {
        let existing = version.bindings.iter().position(|b| binding_name(b) == Some(&name));
        match (value, existing) {
            (Some(v), Some(i)) => {
                let kind = binding_type(&version.bindings[i]).unwrap_or_default();
                if !is_secret_type(kind) {
                    return Err(ApiError::bad_request(
                        10053,
                        format!("Binding name '{name}' is already in use by a {kind} binding"),
                    ));
                }
                version.bindings[i] = v;
            }
            (Some(v), None) => version.bindings.push(v),
            (None, Some(i)) => {
                let kind = binding_type(&version.bindings[i]).unwrap_or_default();
                if !is_secret_type(kind) {
                    return Err(ApiError::not_found(10056, format!("Secret {name} not found")));
                }
                version.bindings.remove(i);
            }
            (None, None) => {
                return Err(ApiError::not_found(10056, format!("Secret {name} not found")));
            }
        }
    }
    let id = version.id.clone();
    push_and_deploy(script, version, "secret");
    Ok(id)
}

/// Validate a secret object from a request body into a stored binding.
pub(crate) fn secret_binding(name: &str, body: &Value) -> Result<Value, ApiError> {
    if name.is_empty() {
        return Err(err("secret name must not be empty"));
    }
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("secret_text");
    match kind {
        "secret_text" => {
            let text = body
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| err(format!("secret {name} of type secret_text needs a string `text`")))?;
            Ok(json!({"name": name, "type": "secret_text", "text": text}))
        }
        "secret_key" => {
            let mut b = body.clone();
            b["name"] = Value::String(name.to_string());
            Ok(b)
        }
        other => Err(err(format!("secret type must be secret_text or secret_key, got {other:?}"))),
    }
}

/// Secret names and types of a version (never values).
pub(crate) fn secrets_of(version: &Version) -> Vec<Value> {
    version
        .bindings
        .iter()
        .filter(|b| binding_type(b).is_some_and(is_secret_type))
        .map(|b| json!({"name": b["name"], "type": b["type"]}))
        .collect()
}

/// Names of scripts whose latest version binds `target` through a service binding.
pub(crate) fn referencing_scripts(account: &Account, target: &str) -> Vec<String> {
    account
        .scripts
        .values()
        .filter(|s| s.name != target)
        .filter(|s| {
            s.latest_version().is_some_and(|v| {
                v.bindings.iter().any(|b| {
                    binding_type(b) == Some("service") && b.get("service").and_then(Value::as_str) == Some(target)
                })
            })
        })
        .map(|s| s.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            id: "a".into(),
            name: "a".into(),
            created_on: ids::now(),
            workers_subdomain: None,
            scripts: Default::default(),
            d1_databases: Default::default(),
            custom_domains: vec![],
            kv_namespaces: vec![],
            r2_buckets: vec![],
            queues: vec![],
            do_namespaces: vec![],
        }
    }

    fn module(name: &str, src: &str) -> Module {
        Module {
            name: name.into(),
            content_type: "application/javascript+module".into(),
            content: src.as_bytes().to_vec(),
        }
    }

    fn upload(meta: Value, script: Option<&Script>) -> Result<Version, ApiError> {
        new_version(
            &account(),
            script,
            VersionInput {
                name: "w",
                metadata: &meta,
                modules: vec![module("index.js", "export default { async fetch(req) {} }")],
                source: "api",
                triggered_by: "upload",
                strict: true,
            },
        )
    }

    #[test]
    fn script_names_follow_the_documented_rules() {
        for ok in ["a", "my-worker", "w_1", "A9"] {
            assert!(validate_script_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "-a", "a-", "a.b", "a b", &"a".repeat(64)] {
            assert_eq!(validate_script_name(bad).unwrap_err().first_code(), 10016, "{bad}");
        }
    }

    #[test]
    fn upload_validates_entry_and_bindings() {
        let v = upload(json!({"main_module": "index.js", "compatibility_date": "2025-01-01"}), None).unwrap();
        assert_eq!(v.number, 1);
        assert_eq!(v.handlers, vec!["fetch"]);
        assert_eq!(v.annotations["workers/triggered_by"], "upload");
        let e = upload(json!({"main_module": "missing.js"}), None).unwrap_err();
        assert_eq!(e.first_code(), 10021);
        let e = upload(json!({"main_module": "index.js", "bindings": [{"type":"d1","name":"DB","id":"nope"}]}), None)
            .unwrap_err();
        assert_eq!(e.first_code(), 10021);
        assert!(e.errors[0].message.contains("DB"));
        let e = upload(
            json!({"main_module": "index.js", "bindings": [
            {"type":"plain_text","name":"A","text":"1"},{"type":"plain_text","name":"A","text":"2"}]}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.first_code(), 10021);
        let e = upload(json!({"main_module": "index.js", "compatibility_date": "2999-01-01"}), None).unwrap_err();
        assert_eq!(e.first_code(), 10021);
        let v = upload(json!({"main_module": "index.js"}), None).unwrap();
        assert_eq!(v.compatibility_date, OLDEST_COMPAT_DATE);
    }

    #[test]
    fn secrets_are_kept_and_inherit_resolves() {
        let mut script = new_script("w", "api");
        let v1 = upload(
            json!({"main_module": "index.js", "bindings": [
            {"type":"secret_text","name":"S","text":"v"},
            {"type":"plain_text","name":"OLD","text":"x"}]}),
            None,
        )
        .unwrap();
        push_and_deploy(&mut script, v1, "upload");
        let v2 = upload(
            json!({"main_module": "index.js", "bindings": [
            {"type":"inherit","name":"NEW","old_name":"OLD"}]}),
            Some(&script),
        )
        .unwrap();
        assert_eq!(v2.binding("NEW").unwrap()["text"], "x");
        assert_eq!(v2.binding("S").unwrap()["text"], "v");
        assert!(v2.binding("OLD").is_none());
        let e =
            upload(json!({"main_module": "index.js", "bindings": [{"type":"inherit","name":"NOPE"}]}), Some(&script))
                .unwrap_err();
        assert_eq!(e.first_code(), 10057);
    }

    #[test]
    fn deployments_validate_versions_and_percentages() {
        let mut script = new_script("w", "api");
        let v1 = upload(json!({"main_module": "index.js"}), None).unwrap();
        let id1 = v1.id.clone();
        push_and_deploy(&mut script, v1, "upload");
        let v2 = upload(json!({"main_module": "index.js"}), Some(&script)).unwrap();
        let id2 = v2.id.clone();
        script.versions.push(v2);
        assert!(!latest_is_deployed(&script));
        let ok = json!({"strategy":"percentage","versions":[{"version_id":id1,"percentage":90},{"version_id":id2,"percentage":10}]});
        assert_eq!(parse_deployment_versions(&script, &ok).unwrap().len(), 2);
        let bad_sum = json!({"strategy":"percentage","versions":[{"version_id":id1,"percentage":90}]});
        assert!(parse_deployment_versions(&script, &bad_sum).is_err());
        let foreign = json!({"strategy":"percentage","versions":[{"version_id":"x","percentage":100}]});
        assert_eq!(parse_deployment_versions(&script, &foreign).unwrap_err().first_code(), 10221);
        let dv = parse_deployment_versions(
            &script,
            &json!({"strategy":"percentage","versions":[{"version_id":id2,"percentage":100}]}),
        )
        .unwrap();
        assert_eq!(deployment_trigger(&script, &dv), "deployment");
        push_deployment(&mut script, dv, BTreeMap::new(), "api");
        let back = vec![DeploymentVersion { version_id: id1, percentage: 100.0 }];
        assert_eq!(deployment_trigger(&script, &back), "rollback");
    }

    #[test]
    fn handler_detection() {
        assert_eq!(
            detect_handlers(Some(&module("a.js", "export default { fetch: f, async scheduled(e) {} }"))),
            vec!["fetch", "scheduled"]
        );
        assert!(detect_handlers(Some(&module("a.js", "const prefetch = 1; x.fetch(1)"))).is_empty());
    }
}
