//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`),
//! which client-go's typed clients send: kubectl's `create namespace|secret|configmap`
//! and Helm's release storage (Secrets). The `k8s\0` envelope and the messages are
//! decoded with k8s-pb (the kube-rs project's protobuf bindings) and turned into the
//! JSON the rest of the server works on. Only the kinds those clients write are
//! decoded (Namespace, Secret, ConfigMap, and DeleteOptions); any other protobuf
//! body gets 415, which is also what CBOR bodies get.

use base64::Engine;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

use crate::status::ApiError;

pub(crate) const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\x00";

fn decode_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("error decoding request body: {e}"))
}

/// The JSON form of a protobuf body, or 415 for kinds not decoded here.
pub(crate) fn to_json(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| decode_error("missing the k8s protobuf envelope"))?;
    let unknown = Unknown::decode(rest).map_err(decode_error)?;
    let tm = unknown.type_meta.unwrap_or_default();
    let api_version = tm.api_version.unwrap_or_default();
    let kind = tm.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let mut obj = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => namespace(core::Namespace::decode(raw.as_slice()).map_err(decode_error)?),
        ("v1", "Secret") => secret(core::Secret::decode(raw.as_slice()).map_err(decode_error)?),
        ("v1", "ConfigMap") => config_map(core::ConfigMap::decode(raw.as_slice()).map_err(decode_error)?),
        (_, "DeleteOptions") => delete_options(meta::DeleteOptions::decode(raw.as_slice()).map_err(decode_error)?),
        _ => return Err(ApiError::unsupported_media_type(CONTENT_TYPE)),
    };
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

fn put<T: serde::Serialize>(m: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(key.into(), json!(v));
    }
}

fn put_map<T: serde::Serialize>(m: &mut Map<String, Value>, key: &str, v: &std::collections::BTreeMap<String, T>) {
    if !v.is_empty() {
        m.insert(key.into(), json!(v));
    }
}

fn time(t: Option<meta::Time>) -> Option<String> {
    let t = t?;
    chrono::DateTime::from_timestamp(t.seconds.unwrap_or(0), 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn object_meta(m: Option<meta::ObjectMeta>) -> Value {
    let m = m.unwrap_or_default();
    let mut out = Map::new();
    put(&mut out, "name", m.name);
    put(&mut out, "generateName", m.generate_name);
    put(&mut out, "namespace", m.namespace);
    put(&mut out, "uid", m.uid);
    put(&mut out, "resourceVersion", m.resource_version);
    put(&mut out, "generation", m.generation);
    put(&mut out, "creationTimestamp", time(m.creation_timestamp));
    put(&mut out, "deletionTimestamp", time(m.deletion_timestamp));
    put(&mut out, "deletionGracePeriodSeconds", m.deletion_grace_period_seconds);
    put_map(&mut out, "labels", &m.labels);
    put_map(&mut out, "annotations", &m.annotations);
    if !m.finalizers.is_empty() {
        out.insert("finalizers".into(), json!(m.finalizers));
    }
    let refs: Vec<Value> = m
        .owner_references
        .into_iter()
        .map(|r| {
            let mut o = Map::new();
            put(&mut o, "apiVersion", r.api_version);
            put(&mut o, "kind", r.kind);
            put(&mut o, "name", r.name);
            put(&mut o, "uid", r.uid);
            put(&mut o, "controller", r.controller);
            put(&mut o, "blockOwnerDeletion", r.block_owner_deletion);
            Value::Object(o)
        })
        .collect();
    if !refs.is_empty() {
        out.insert("ownerReferences".into(), Value::Array(refs));
    }
    Value::Object(out)
}

fn namespace(ns: core::Namespace) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("metadata".into(), object_meta(ns.metadata));
    if let Some(spec) = ns.spec.filter(|s| !s.finalizers.is_empty()) {
        out.insert("spec".into(), json!({"finalizers": spec.finalizers}));
    }
    out
}

fn b64(data: &std::collections::BTreeMap<String, Vec<u8>>) -> std::collections::BTreeMap<String, String> {
    data.iter().map(|(k, v)| (k.clone(), base64::engine::general_purpose::STANDARD.encode(v))).collect()
}

fn secret(s: core::Secret) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("metadata".into(), object_meta(s.metadata));
    put_map(&mut out, "data", &b64(&s.data));
    put_map(&mut out, "stringData", &s.string_data);
    put(&mut out, "type", s.r#type);
    put(&mut out, "immutable", s.immutable);
    out
}

fn config_map(c: core::ConfigMap) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("metadata".into(), object_meta(c.metadata));
    put_map(&mut out, "data", &c.data);
    put_map(&mut out, "binaryData", &b64(&c.binary_data));
    put(&mut out, "immutable", c.immutable);
    out
}

fn delete_options(d: meta::DeleteOptions) -> Map<String, Value> {
    let mut out = Map::new();
    put(&mut out, "gracePeriodSeconds", d.grace_period_seconds);
    put(&mut out, "propagationPolicy", d.propagation_policy);
    put(&mut out, "orphanDependents", d.orphan_dependents);
    if !d.dry_run.is_empty() {
        out.insert("dryRun".into(), json!(d.dry_run));
    }
    if let Some(p) = d.preconditions {
        let mut pre = Map::new();
        put(&mut pre, "uid", p.uid);
        put(&mut pre, "resourceVersion", p.resource_version);
        out.insert("preconditions".into(), Value::Object(pre));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let u = Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(u.encode_to_vec());
        out
    }

    #[test]
    fn secret_is_decoded_to_json() {
        let s = core::Secret {
            metadata: Some(meta::ObjectMeta {
                name: Some("sh.helm.release.v1.x.v1".into()),
                labels: [("owner".to_string(), "helm".to_string())].into(),
                ..Default::default()
            }),
            data: [("release".to_string(), b"abc".to_vec())].into(),
            r#type: Some("helm.sh/release.v1".into()),
            ..Default::default()
        };
        let v = to_json(&envelope("v1", "Secret", s.encode_to_vec())).expect("decodes");
        assert_eq!(v["metadata"]["name"], "sh.helm.release.v1.x.v1");
        assert_eq!(v["metadata"]["labels"]["owner"], "helm");
        assert_eq!(v["data"]["release"], "YWJj");
        assert_eq!(v["type"], "helm.sh/release.v1");
        assert_eq!(v["kind"], "Secret");
    }

    #[test]
    fn other_kinds_are_unsupported_media_type() {
        let e = to_json(&envelope("apps/v1", "Deployment", Vec::new())).unwrap_err();
        assert_eq!(e.code, 415);
        assert_eq!(to_json(b"not protobuf").unwrap_err().code, 400);
    }
}
