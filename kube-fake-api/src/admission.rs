//! What happens to an object between the request body and storage: decoding
//! (typed for built-ins, schema pruning and defaulting for custom resources),
//! validation, and per-kind server-side rules.

use std::sync::OnceLock;

use base64::Engine;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use regex::Regex;
use serde_json::{Map, Value, json};

use crate::kinds::{self, roundtrip};
use crate::registry::{Builtin, ResourceDef, resource_from_crd};
use crate::status::{ApiError, FieldError};

/// The `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        match s {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// Decode a built-in kind as the real server's Go structs would: unknown fields vanish.
fn decode_builtin(b: Builtin, v: &Value) -> Result<Value, ApiError> {
    match b {
        Builtin::Namespace => roundtrip::<Namespace>(v),
        Builtin::Secret => roundtrip::<Secret>(v),
        Builtin::ConfigMap => roundtrip::<ConfigMap>(v),
        Builtin::CoreEvent => roundtrip::<CoreEvent>(v),
        Builtin::Event => roundtrip::<Event>(v),
        Builtin::Lease => roundtrip::<Lease>(v),
        Builtin::Crd => roundtrip::<CustomResourceDefinition>(v),
        other => kinds::decode(other, v).unwrap_or_else(|| Err(ApiError::internal("no decoder"))),
    }
}

fn dns_subdomain() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
            .unwrap_or_else(|_| unreachable!("static regex"))
    })
}

fn dns_label() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").unwrap_or_else(|_| unreachable!("static regex")))
}

fn qualified_name_part() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").unwrap_or_else(|_| unreachable!("static regex"))
    })
}

fn config_key() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[-._a-zA-Z0-9]+$").unwrap_or_else(|_| unreachable!("static regex")))
}

/// A `prefix/name` key (labels, annotations, finalizers).
fn qualified_name_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !dns_subdomain().is_match(p))
    {
        return Some("prefix part must be a lowercase RFC 1123 subdomain".into());
    }
    if name.is_empty() || name.len() > 63 || !qualified_name_part().is_match(name) {
        return Some("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, at most 63 characters".into());
    }
    None
}

/// Validate the generic parts of `metadata`.
pub(crate) fn validate_metadata(rd: &ResourceDef, obj: &Value, errs: &mut Vec<FieldError>) {
    let meta = obj.get("metadata").cloned().unwrap_or(Value::Null);
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
    let label_only = matches!(rd.builtin, Some(Builtin::Namespace));
    if label_only {
        if name.len() > 63 || !dns_label().is_match(name) {
            errs.push(FieldError::invalid(
                "metadata.name",
                &json!(name),
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            ));
        }
    } else if name.len() > 253 || !dns_subdomain().is_match(name) {
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ));
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(why) = qualified_name_error(k) {
                errs.push(FieldError::invalid("metadata.labels", &json!(k), &why));
            }
            let v = v.as_str().unwrap_or_default();
            if !v.is_empty() && (v.len() > 63 || !qualified_name_part().is_match(v)) {
                errs.push(FieldError::invalid(
                    "metadata.labels",
                    &json!(v),
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, at most 63 characters",
                ));
            }
        }
    }
    if let Some(ann) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0usize;
        for (k, v) in ann {
            if let Some(why) = qualified_name_error(k) {
                errs.push(FieldError::invalid("metadata.annotations", &json!(k), &why));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            errs.push(FieldError::too_long("metadata.annotations", 256 * 1024));
        }
    }
    if let Some(fins) = meta.get("finalizers").and_then(Value::as_array) {
        for (i, f) in fins.iter().enumerate() {
            let f = f.as_str().unwrap_or_default();
            if let Some(why) = qualified_name_error(f) {
                errs.push(FieldError::invalid(format!("metadata.finalizers[{i}]"), &json!(f), &why));
            }
        }
    }
    if let Some(refs) = meta.get("ownerReferences").and_then(Value::as_array) {
        let mut controllers = 0;
        for (i, r) in refs.iter().enumerate() {
            for field in ["apiVersion", "kind", "name", "uid"] {
                if r.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
                    errs.push(FieldError::required(format!("metadata.ownerReferences[{i}].{field}")));
                }
            }
            if r.get("controller").and_then(Value::as_bool) == Some(true) {
                controllers += 1;
            }
        }
        if controllers > 1 {
            errs.push(FieldError::invalid(
                "metadata.ownerReferences",
                &json!(controllers),
                "Only one reference can have Controller set to true",
            ));
        }
    }
}

fn validate_data_keys(obj: &Value, fields: &[&str], errs: &mut Vec<FieldError>) {
    for field in fields {
        if let Some(m) = obj.get(*field).and_then(Value::as_object) {
            for k in m.keys() {
                if k.len() > 253 || !config_key().is_match(k) {
                    errs.push(FieldError::invalid(
                        format!("{field}[{k}]"),
                        &json!(k),
                        "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                    ));
                }
            }
        }
    }
}

/// Merge `stringData` into `data` (base64), as the real Secret strategy does.
fn fold_string_data(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(sd)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| Value::Object(Map::new()));
    if let Some(d) = data.as_object_mut() {
        for (k, v) in sd {
            let raw = v.as_str().unwrap_or_default();
            d.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(raw)));
        }
    }
}

fn immutable_data_changed(obj: &Value, old: &Value) -> bool {
    old.get("immutable").and_then(Value::as_bool) == Some(true)
        && (obj.get("data") != old.get("data")
            || obj.get("binaryData") != old.get("binaryData")
            || obj.get("immutable") != old.get("immutable"))
}

fn validate_events_v1(obj: &Value, errs: &mut Vec<FieldError>) {
    for field in ["eventTime", "reportingController", "reportingInstance", "action", "reason"] {
        if obj.get(field).is_none_or(|v| v.is_null() || v.as_str() == Some("")) {
            errs.push(FieldError::required(field));
        }
    }
    match obj.get("type").and_then(Value::as_str) {
        Some("Normal") | Some("Warning") => {}
        other => errs.push(FieldError::not_supported(
            "type",
            &json!(other.unwrap_or_default()),
            &[json!("Normal"), json!("Warning")],
        )),
    }
    if let Some(note) = obj.get("note").and_then(Value::as_str)
        && note.len() > 1024
    {
        errs.push(FieldError::too_long("note", 1024));
    }
}

/// Unknown fields under `fieldValidation`: an error when Strict, warnings when Warn.
fn report_unknown(unknown: &[String], validation: FieldValidation, warnings: &mut Vec<String>) -> Result<(), ApiError> {
    match validation {
        FieldValidation::Strict if !unknown.is_empty() => {
            let list: Vec<String> = unknown.iter().map(|u| format!("unknown field \"{u}\"")).collect();
            Err(ApiError::bad_request(format!("strict decoding error: {}", list.join(", "))))
        }
        FieldValidation::Warn => {
            warnings.extend(unknown.iter().map(|u| format!("unknown field \"{u}\"")));
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Decode, default and validate an object about to be stored. Returns warnings.
pub(crate) fn admit(
    rd: &ResourceDef,
    version: &str,
    obj: &mut Value,
    old: Option<&Value>,
    validation: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    let mut warnings = Vec::new();
    let mut errs = Vec::new();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let q = rd.qualified();
    match rd.builtin {
        Some(b) => {
            if b == Builtin::Secret {
                fold_string_data(obj);
            }
            let decoded = decode_builtin(b, obj)?;
            report_unknown(&kinds::unknown_fields(obj, &decoded), validation, &mut warnings)?;
            *obj = decoded;
            match b {
                Builtin::Secret => {
                    if obj.get("type").is_none() {
                        obj["type"] = json!("Opaque");
                    }
                    validate_data_keys(obj, &["data"], &mut errs);
                }
                Builtin::ConfigMap => validate_data_keys(obj, &["data", "binaryData"], &mut errs),
                Builtin::Event => validate_events_v1(obj, &mut errs),
                Builtin::Namespace => {
                    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                        let labels = meta.entry("labels").or_insert_with(|| json!({}));
                        if let Some(l) = labels.as_object_mut() {
                            l.insert("kubernetes.io/metadata.name".into(), json!(name));
                        }
                    }
                    if obj.pointer("/status/phase").is_none() {
                        obj["status"] = json!({"phase": "Active"});
                    }
                    if obj.pointer("/spec/finalizers").is_none() {
                        obj["spec"] = json!({"finalizers": ["kubernetes"]});
                    }
                }
                Builtin::Crd => {
                    if let Err(mut e) = resource_from_crd(obj) {
                        errs.append(&mut e);
                    }
                }
                other => kinds::admit(other, obj, old, &mut errs),
            }
            if matches!(b, Builtin::Secret | Builtin::ConfigMap)
                && let Some(old) = old
                && immutable_data_changed(obj, old)
            {
                errs.push(FieldError::forbidden("data", "field is immutable when `immutable` is set"));
            }
        }
        None => {
            if let Some(meta) = obj.get("metadata") {
                let decoded = roundtrip::<ObjectMeta>(meta)?;
                obj["metadata"] = decoded;
            }
            let Some(schema) = rd.schemas.get(version) else {
                return Err(ApiError::internal(format!("no schema for {}/{version}", rd.group)));
            };
            let unknown = schema.prune(obj);
            report_unknown(&unknown, validation, &mut warnings)?;
            schema.apply_defaults(obj);
            errs.extend(schema.validate(obj, old));
        }
    }
    validate_metadata(rd, obj, &mut errs);
    if errs.is_empty() { Ok(warnings) } else { Err(ApiError::invalid(&q, &name, &errs)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;

    fn def(b: Builtin) -> ResourceDef {
        builtins().into_iter().find(|d| d.builtin == Some(b)).expect("builtin exists")
    }

    #[test]
    fn secret_string_data_is_folded_into_data() {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "d"},
            "stringData": {"token": "abc"}, "bogus": 1});
        admit(&def(Builtin::Secret), "v1", &mut s, None, FieldValidation::Warn).expect("valid");
        assert_eq!(s["data"]["token"], "YWJj");
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
        assert!(s.get("bogus").is_none(), "unknown fields are dropped by decoding");
    }

    #[test]
    fn bad_names_and_labels_are_invalid() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "Bad_Name", "labels": {"ok": "bad value!"}}});
        let e = admit(&def(Builtin::ConfigMap), "v1", &mut cm, None, FieldValidation::Warn).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(e.message.contains("metadata.name"), "{}", e.message);
        assert!(e.message.contains("metadata.labels"), "{}", e.message);
    }

    #[test]
    fn immutable_configmap_data_cannot_change() {
        let old = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": true});
        let mut new = old.clone();
        new["data"]["a"] = json!("2");
        let e = admit(&def(Builtin::ConfigMap), "v1", &mut new, Some(&old), FieldValidation::Warn).unwrap_err();
        assert!(e.message.contains("field is immutable"), "{}", e.message);
    }

    #[test]
    fn undecodable_builtin_is_bad_request() {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "%%%"}});
        let e = admit(&def(Builtin::Secret), "v1", &mut s, None, FieldValidation::Warn).unwrap_err();
        assert_eq!(e.code, 400);
    }
}
