//! Strategic merge patch (`application/strategic-merge-patch+json`) of the built-in
//! kinds served here, as kubectl and helm compute it from the Go types: lists with a
//! merge key (containers and env by `name`, container ports by `containerPort`,
//! Service ports by `port`, ...) merge item by item, `metadata.finalizers` merges as
//! a set, and the directives `$patch` (`replace`, `delete`, `merge`),
//! `$setElementOrder/<list>`, `$retainKeys` and `$deleteFromPrimitiveList/<list>`
//! are honoured. Other lists are replaced, like a JSON merge patch.

use serde_json::{Map, Value};

const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// How a list field merges: by the value of a key, as a set of primitives, or replaced.
#[derive(Debug, PartialEq)]
enum ListMerge {
    Key(&'static str),
    Set,
    Replace,
}

/// The merge strategy of the list at `path` (field names joined by '.', no indices).
fn list_merge(path: &str) -> ListMerge {
    let last = path.rsplit('.').next().unwrap_or_default();
    let parent = path.rsplit('.').nth(1).unwrap_or_default();
    match last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets"
        | "env"
        | "resourceClaims"
        | "secrets" => ListMerge::Key("name"),
        "ports" if matches!(parent, "containers" | "initContainers" | "ephemeralContainers") => {
            ListMerge::Key("containerPort")
        }
        "ports" if path == "spec.ports" => ListMerge::Key("port"),
        "volumeMounts" => ListMerge::Key("mountPath"),
        "volumeDevices" => ListMerge::Key("devicePath"),
        "hostAliases" => ListMerge::Key("ip"),
        "topologySpreadConstraints" => ListMerge::Key("topologyKey"),
        "conditions" => ListMerge::Key("type"),
        "ownerReferences" if path == "metadata.ownerReferences" => ListMerge::Key("uid"),
        "finalizers" if path == "metadata.finalizers" => ListMerge::Set,
        _ => ListMerge::Replace,
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// A value from a patch with every directive removed (for inserting where nothing was).
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter().filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete")).map(strip).collect(),
        ),
        other => other.clone(),
    }
}

/// Apply a strategic merge patch object to `target` (an object).
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let (Value::Object(t), Value::Object(p)) = (target, patch) {
        merge_map(t, p, "");
    }
}

fn merge_map(target: &mut Map<String, Value>, patch: &Map<String, Value>, path: &str) {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            if let Value::Object(m) = strip(&Value::Object(patch.clone())) {
                *target = m;
            }
            return;
        }
        Some("delete") => {
            target.clear();
            return;
        }
        _ => {}
    }
    for (k, v) in patch {
        if k.starts_with('$') {
            continue;
        }
        let sub = child(path, k);
        match (v, target.get_mut(k)) {
            (Value::Null, _) => {
                target.remove(k);
            }
            (Value::Object(pm), Some(Value::Object(tm))) => merge_map(tm, pm, &sub),
            (Value::Array(pa), Some(Value::Array(ta))) => merge_list(ta, pa, &sub),
            (v, _) => {
                target.insert(k.clone(), strip(v));
            }
        }
    }
    for (k, v) in patch {
        if let (Some(field), Value::Array(remove)) = (k.strip_prefix(DELETE_PRIMITIVE), v)
            && let Some(Value::Array(list)) = target.get_mut(field)
        {
            list.retain(|x| !remove.contains(x));
        }
    }
    for (k, v) in patch {
        if let (Some(field), Value::Array(order)) = (k.strip_prefix(SET_ORDER), v)
            && let Some(Value::Array(list)) = target.get_mut(field)
        {
            reorder(list, order, &list_merge(&child(path, field)));
        }
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        target.retain(|k, _| keep.contains(&k.as_str()));
    }
}

fn merge_list(target: &mut Vec<Value>, patch: &[Value], path: &str) {
    if patch.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace")) {
        *target = patch.iter().filter(|i| i.get("$patch").is_none()).map(strip).collect();
        return;
    }
    match list_merge(path) {
        ListMerge::Replace => *target = patch.iter().map(strip).collect(),
        ListMerge::Set => {
            for item in patch {
                if !target.contains(item) {
                    target.push(item.clone());
                }
            }
        }
        ListMerge::Key(key) => {
            for item in patch {
                let id = item.get(key).cloned().unwrap_or(Value::Null);
                let pos = target.iter().position(|t| t.get(key) == Some(&id));
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, item) {
                    (Some(i), _) if delete => {
                        target.remove(i);
                    }
                    (None, _) if delete => {}
                    (Some(i), Value::Object(pm)) => {
                        if let Value::Object(tm) = &mut target[i] {
                            merge_map(tm, pm, path);
                        }
                    }
                    _ => target.push(strip(item)),
                }
            }
        }
    }
}

/// Order `list` as `$setElementOrder` says; items it does not name keep their place after.
fn reorder(list: &mut [Value], order: &[Value], how: &ListMerge) {
    let rank = |item: &Value| -> usize {
        order
            .iter()
            .position(|o| match how {
                ListMerge::Key(key) => o.get(*key).is_some() && o.get(*key) == item.get(*key),
                _ => o == item,
            })
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(rank);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment() -> Value {
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "x"}],
             "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "side", "image": "busybox"}
        ]}}}})
    }

    #[test]
    fn kubectl_set_image_patch_merges_containers_by_name() {
        let mut d = deployment();
        merge(
            &mut d,
            &json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
                "containers": [{"name": "side", "image": "busybox:2"}]}}}}),
        );
        let cs = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs.as_array().map(Vec::len), Some(2));
        assert_eq!(cs[0]["image"], "nginx:1");
        assert_eq!(cs[1]["image"], "busybox:2");
    }

    #[test]
    fn env_merges_by_name_and_deletes_with_directive() {
        let mut d = deployment();
        merge(
            &mut d,
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "web",
                "env": [{"name": "A", "value": "2"}, {"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}],
                "ports": [{"containerPort": 81}]}]}}}}),
        );
        let web = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(web["env"], json!([{"name": "A", "value": "2"}, {"name": "C", "value": "3"}]));
        assert_eq!(web["ports"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn replace_directive_and_plain_lists() {
        let mut v = json!({"spec": {"args": ["a", "b"], "m": {"x": 1, "y": 2}}, "metadata": {"finalizers": ["f1"]}});
        merge(
            &mut v,
            &json!({"spec": {"args": ["c"], "m": {"$patch": "replace", "z": 3}}, "metadata": {"finalizers": ["f2"]}}),
        );
        assert_eq!(v["spec"]["args"], json!(["c"]));
        assert_eq!(v["spec"]["m"], json!({"z": 3}));
        assert_eq!(v["metadata"]["finalizers"], json!(["f1", "f2"]));
    }
}
