//! Events are one resource with two API versions: core/v1 `events` and
//! events.k8s.io/v1 `events`. The store keeps each object in both shapes
//! (same name, uid and resourceVersion), converting with the field mapping of
//! the real server (`k8s.io/kubernetes/pkg/apis/events/v1` conversions).

use serde_json::{Map, Value};

use crate::registry::ResKey;

pub(crate) fn core_key() -> ResKey {
    (String::new(), "events".to_string())
}

pub(crate) fn v1_key() -> ResKey {
    ("events.k8s.io".to_string(), "events".to_string())
}

/// Turns an Event of one API version into the other.
pub(crate) type Convert = fn(&Value) -> Value;

/// The other API version's storage key and the conversion to it, for Event keys.
pub(crate) fn mirror_of(res: &ResKey) -> Option<(ResKey, Convert)> {
    if *res == core_key() {
        Some((v1_key(), core_to_v1))
    } else if *res == v1_key() {
        Some((core_key(), v1_to_core))
    } else {
        None
    }
}

/// (core/v1 field, events.k8s.io/v1 field) pairs that only change names.
const RENAMED: [(&str, &str); 6] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Fields with the same name in both versions.
const SAME: [&str; 7] = ["metadata", "eventTime", "series", "related", "action", "reason", "type"];

fn copy_fields(from: &Value, pairs: &[(&str, &str)], out: &mut Map<String, Value>) {
    for (a, b) in pairs {
        if let Some(v) = from.get(*a).filter(|v| !v.is_null()) {
            out.insert((*b).to_string(), v.clone());
        }
    }
}

fn same_pairs() -> Vec<(&'static str, &'static str)> {
    SAME.iter().map(|f| (*f, *f)).collect()
}

/// A core/v1 Event as events.k8s.io/v1 serves it.
pub(crate) fn core_to_v1(core: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), "events.k8s.io/v1".into());
    out.insert("kind".into(), "Event".into());
    copy_fields(core, &same_pairs(), &mut out);
    copy_fields(core, &RENAMED, &mut out);
    if let Some(instance) = core.get("reportingInstance").filter(|v| !v.is_null()) {
        out.insert("reportingInstance".into(), instance.clone());
    }
    if let Some(source) = core.get("source").filter(|v| v.as_object().is_some_and(|m| !m.is_empty())) {
        out.insert("deprecatedSource".into(), source.clone());
    }
    Value::Object(out)
}

/// An events.k8s.io/v1 Event as core/v1 serves it.
pub(crate) fn v1_to_core(v1: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), "v1".into());
    out.insert("kind".into(), "Event".into());
    copy_fields(v1, &same_pairs(), &mut out);
    let reversed: Vec<(&str, &str)> = RENAMED.iter().map(|(a, b)| (*b, *a)).collect();
    copy_fields(v1, &reversed, &mut out);
    if let Some(instance) = v1.get("reportingInstance").filter(|v| !v.is_null()) {
        out.insert("reportingInstance".into(), instance.clone());
    }
    if let Some(source) = v1.get("deprecatedSource").filter(|v| v.as_object().is_some_and(|m| !m.is_empty())) {
        out.insert("source".into(), source.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_map_between_versions_and_back() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "n"}, "eventTime": "2025-01-01T00:00:00.000000Z",
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hello", "reason": "Started", "type": "Normal",
            "action": "Start", "reportingController": "c", "reportingInstance": "i"});
        let core = v1_to_core(&v1);
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "c");
        let back = core_to_v1(&core);
        for f in ["regarding", "note", "reason", "type", "action", "reportingController", "reportingInstance"] {
            assert_eq!(back[f], v1[f], "{f}");
        }
    }
}
