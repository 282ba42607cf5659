//! Field ownership (`metadata.managedFields`, FieldsV1) and server-side apply.
//!
//! A field set is a set of paths; each path element is a FieldsV1 key:
//! `f:<field>`, `k:<json key object>` (map-list item), `v:<json value>` (set item).
//! Scalars, atomic lists, empty maps and list items are members; maps with
//! children are implied by their members.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::schema::{json_eq, key_of, list_map_keys};

pub(crate) type Path = Vec<String>;

/// Which part of an object a write may touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// The main resource; `status` excluded when it is a subresource.
    Main { exclude_status: bool },
    /// The `/status` subresource: only `status`.
    Status,
}

impl Part {
    pub fn subresource(self) -> &'static str {
        match self {
            Part::Main { .. } => "",
            Part::Status => "status",
        }
    }
}

/// List semantics of a schema node.
enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

fn list_type(schema: Option<&Value>) -> ListType {
    match schema.and_then(|s| s.get("x-kubernetes-list-type")).and_then(Value::as_str) {
        Some("set") => ListType::Set,
        Some("map") => {
            let keys = schema.map(list_map_keys).unwrap_or_default();
            if keys.is_empty() { ListType::Atomic } else { ListType::Map(keys) }
        }
        _ => ListType::Atomic,
    }
}

fn child_schema<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let s = schema?;
    s.get("properties").and_then(|p| p.get(key)).or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
}

fn items_schema(schema: Option<&Value>) -> Option<&Value> {
    schema?.get("items")
}

/// List semantics of `metadata` shared by every kind.
fn metadata_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "ownerReferences": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"]},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}}
        }
    })
}

/// The schema used to navigate list semantics: the CR schema with metadata's list types.
pub(crate) fn navigation_schema(schema: Option<&Value>) -> Value {
    let mut nav = schema.cloned().unwrap_or_else(|| json!({"type": "object"}));
    if let Some(obj) = nav.as_object_mut() {
        let props = obj.entry("properties").or_insert_with(|| Value::Object(Map::new()));
        if let Some(p) = props.as_object_mut() {
            p.insert("metadata".into(), metadata_schema());
        }
    }
    nav
}

/// Navigation schema for built-in kinds.
pub(crate) fn builtin_navigation_schema() -> &'static Value {
    static NAV: OnceLock<Value> = OnceLock::new();
    NAV.get_or_init(|| {
        let mut nav = navigation_schema(None);
        nav["properties"]["spec"] = json!({"type": "object", "properties": {
            "finalizers": {"type": "array", "x-kubernetes-list-type": "set"}
        }});
        nav
    })
}

/// The part of an object whose fields are owned by managers.
pub(crate) fn tracked(obj: &Value, part: Part) -> Value {
    let Some(map) = obj.as_object() else {
        return Value::Object(Map::new());
    };
    let mut out = Map::new();
    match part {
        Part::Status => {
            if let Some(s) = map.get("status") {
                out.insert("status".into(), s.clone());
            }
        }
        Part::Main { exclude_status } => {
            for (k, v) in map {
                match k.as_str() {
                    "apiVersion" | "kind" => {}
                    "status" if exclude_status => {}
                    "metadata" => {
                        let mut meta = Map::new();
                        for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
                            if let Some(x) = v.get(key) {
                                meta.insert(key.into(), x.clone());
                            }
                        }
                        if !meta.is_empty() {
                            out.insert("metadata".into(), Value::Object(meta));
                        }
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    Value::Object(out)
}

/// Member paths of a value with the value found there.
pub(crate) fn leaves(value: &Value, schema: Option<&Value>) -> BTreeMap<Path, Value> {
    let mut out = BTreeMap::new();
    let mut prefix = Vec::new();
    collect(value, schema, &mut prefix, &mut out);
    out
}

fn collect(value: &Value, schema: Option<&Value>, prefix: &mut Path, out: &mut BTreeMap<Path, Value>) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                if v.is_null() {
                    continue;
                }
                prefix.push(format!("f:{k}"));
                collect(v, child_schema(schema, k), prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match list_type(schema) {
            ListType::Atomic => {
                out.insert(prefix.clone(), value.clone());
            }
            ListType::Set => {
                for item in items {
                    prefix.push(format!("v:{item}"));
                    out.insert(prefix.clone(), item.clone());
                    prefix.pop();
                }
            }
            ListType::Map(keys) => {
                let is = items_schema(schema);
                for item in items {
                    let key = key_of(item, &keys);
                    prefix.push(format!("k:{key}"));
                    out.insert(prefix.clone(), key);
                    if let Some(m) = item.as_object() {
                        for (k, v) in m {
                            if v.is_null() {
                                continue;
                            }
                            prefix.push(format!("f:{k}"));
                            collect(v, child_schema(is, k), prefix, out);
                            prefix.pop();
                        }
                    }
                    prefix.pop();
                }
            }
        },
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.clone(), value.clone());
            }
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: BTreeSet<Path>,
}

impl Entry {
    fn same_owner(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

fn parse_fields(node: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(m) = node.as_object() else { return };
    if (m.is_empty() || m.contains_key(".")) && !prefix.is_empty() {
        out.insert(prefix.clone());
    }
    for (k, v) in m {
        if k == "." {
            continue;
        }
        prefix.push(k.clone());
        parse_fields(v, prefix, out);
        prefix.pop();
    }
}

fn to_fields_v1(set: &BTreeSet<Path>) -> Value {
    fn insert(node: &mut Map<String, Value>, path: &[String]) {
        match path.split_first() {
            None => {
                node.insert(".".into(), Value::Object(Map::new()));
            }
            Some((first, rest)) => {
                let child = node.entry(first.clone()).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = child {
                    insert(m, rest);
                }
            }
        }
    }
    let mut root = Map::new();
    for path in set {
        insert(&mut root, path);
    }
    fn collapse(v: &mut Value) {
        if let Value::Object(m) = v {
            for (k, child) in m.iter_mut() {
                if k != "." {
                    collapse(child);
                }
            }
            if m.len() == 1 && m.contains_key(".") {
                m.clear();
            }
        }
    }
    let mut v = Value::Object(root);
    collapse(&mut v);
    v
}

/// Read the entries stored in an object.
pub(crate) fn entries_of(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj.pointer("/metadata/managedFields").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let manager = s("manager");
            if manager.is_empty() {
                return None;
            }
            let mut fields = BTreeSet::new();
            if let Some(f) = e.get("fieldsV1") {
                parse_fields(f, &mut Vec::new(), &mut fields);
            }
            Some(Entry {
                manager,
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields,
            })
        })
        .collect()
}

/// Store entries in an object (removing `managedFields` when there are none).
pub(crate) fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Who is writing, for ownership bookkeeping.
pub(crate) struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub time: &'a str,
    pub part: Part,
    pub nav: &'a Value,
}

/// Record an Update-operation write: the writer owns what it changed.
pub(crate) fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    let mut entries = old.map(entries_of).unwrap_or_default();
    let old_leaves = old.map(|o| leaves(&tracked(o, w.part), Some(w.nav))).unwrap_or_default();
    let new_leaves = leaves(&tracked(new, w.part), Some(w.nav));
    let changed: BTreeSet<Path> = new_leaves
        .iter()
        .filter(|(p, v)| !old_leaves.get(*p).is_some_and(|o| json_eq(o, v)))
        .map(|(p, _)| p.clone())
        .collect();
    let removed: BTreeSet<Path> = old_leaves.keys().filter(|p| !new_leaves.contains_key(*p)).cloned().collect();
    for e in &mut entries {
        e.fields.retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if !changed.is_empty() {
        let sub = w.part.subresource();
        match entries.iter_mut().find(|e| e.same_owner(w.manager, "Update", sub)) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = w.time.to_string();
                e.api_version = w.api_version.to_string();
            }
            None => entries.push(Entry {
                manager: w.manager.to_string(),
                operation: "Update".into(),
                api_version: w.api_version.to_string(),
                time: w.time.to_string(),
                subresource: sub.to_string(),
                fields: changed,
            }),
        }
    }
    write_entries(new, &entries);
}

/// A field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Conflict {
    pub manager: String,
    pub path: String,
}

/// Render a path like `.spec.replicas` or `.metadata.finalizers[="x"]`.
fn render_path(p: &Path) -> String {
    let mut s = String::new();
    for el in p {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            s.push_str(&format!("[{k}]"));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else {
            s.push_str(&format!("[{el}]"));
        }
    }
    s
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Server-side apply of `applied` onto `live` (or onto nothing, creating).
/// Returns the merged object with updated `managedFields`.
pub(crate) fn apply(
    live: Option<&Value>,
    applied: &Value,
    w: &Writer<'_>,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let sub = w.part.subresource();
    let mut applied_view = tracked(applied, w.part);
    strip_nulls(&mut applied_view);
    let applied_leaves = leaves(&applied_view, Some(w.nav));
    let mut obj = live.cloned().unwrap_or_else(|| json!({"metadata": {}}));
    let live_leaves = leaves(&tracked(&obj, w.part), Some(w.nav));
    let mut entries = live.map(entries_of).unwrap_or_default();

    let mut conflicts = Vec::new();
    for e in &entries {
        if e.same_owner(w.manager, "Apply", sub) || e.subresource != sub {
            continue;
        }
        for p in e.fields.iter() {
            if let Some(av) = applied_leaves.get(p)
                && !live_leaves.get(p).is_some_and(|lv| json_eq(lv, av))
            {
                conflicts.push(Conflict { manager: e.manager.clone(), path: render_path(p) });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    if force {
        for e in &mut entries {
            if e.same_owner(w.manager, "Apply", sub) || e.subresource != sub {
                continue;
            }
            e.fields.retain(|p| {
                !applied_leaves.contains_key(p)
                    || live_leaves.get(p).is_some_and(|lv| applied_leaves.get(p).is_some_and(|av| json_eq(lv, av)))
            });
        }
    }

    let previous: BTreeSet<Path> =
        entries.iter().find(|e| e.same_owner(w.manager, "Apply", sub)).map(|e| e.fields.clone()).unwrap_or_default();
    let mut to_remove: Vec<&Path> = previous
        .iter()
        .filter(|p| !applied_leaves.contains_key(*p))
        .filter(|p| {
            !entries.iter().any(|e| !e.same_owner(w.manager, "Apply", sub) && e.fields.iter().any(|q| q.starts_with(p)))
        })
        .filter(|p| !applied_leaves.keys().any(|q| q.starts_with(p)))
        .collect();
    to_remove.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in to_remove {
        remove_path(&mut obj, p);
    }

    merge_apply(&mut obj, &applied_view, Some(w.nav));

    entries.retain(|e| !e.same_owner(w.manager, "Apply", sub));
    let mine: BTreeSet<Path> = applied_leaves.keys().cloned().collect();
    if !mine.is_empty() {
        entries.push(Entry {
            manager: w.manager.to_string(),
            operation: "Apply".into(),
            api_version: w.api_version.to_string(),
            time: w.time.to_string(),
            subresource: sub.to_string(),
            fields: mine,
        });
    }
    write_entries(&mut obj, &entries);
    Ok(obj)
}

fn element_matches(item: &Value, el: &str) -> bool {
    if let Some(k) = el.strip_prefix("k:") {
        let Ok(Value::Object(key)) = serde_json::from_str::<Value>(k) else {
            return false;
        };
        key.iter().all(|(kk, kv)| item.get(kk).is_some_and(|x| json_eq(x, kv)))
    } else if let Some(v) = el.strip_prefix("v:") {
        serde_json::from_str::<Value>(v).is_ok_and(|want| json_eq(item, &want))
    } else {
        false
    }
}

fn step_mut<'a>(v: &'a mut Value, el: &str) -> Option<&'a mut Value> {
    if let Some(f) = el.strip_prefix("f:") {
        return v.as_object_mut()?.get_mut(f);
    }
    if let Some(i) = el.strip_prefix("i:") {
        return v.as_array_mut()?.get_mut(i.parse::<usize>().ok()?);
    }
    v.as_array_mut()?.iter_mut().find(|x| element_matches(x, el))
}

fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for el in parents {
        match step_mut(cur, el) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(a) = cur.as_array_mut() {
        a.retain(|x| !element_matches(x, last));
    }
}

fn merge_apply(live: &mut Value, applied: &Value, schema: Option<&Value>) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                let cs = child_schema(schema, k);
                match l.get_mut(k) {
                    Some(lv) => merge_apply(lv, av, cs),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) => match list_type(schema) {
            ListType::Atomic => *l = a.clone(),
            ListType::Set => {
                for item in a {
                    if !l.iter().any(|x| json_eq(x, item)) {
                        l.push(item.clone());
                    }
                }
            }
            ListType::Map(keys) => {
                let is = items_schema(schema);
                for item in a {
                    let key = key_of(item, &keys);
                    match l.iter_mut().find(|x| key_of(x, &keys) == key) {
                        Some(existing) => merge_apply(existing, item, is),
                        None => l.push(item.clone()),
                    }
                }
            }
        },
        (live, applied) => *live = applied.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nav() -> Value {
        navigation_schema(Some(&json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}}
            }}
        }})))
    }

    fn writer<'a>(manager: &'a str, nav: &'a Value) -> Writer<'a> {
        Writer {
            manager,
            api_version: "x/v1",
            time: "2024-01-01T00:00:00Z",
            part: Part::Main { exclude_status: true },
            nav,
        }
    }

    #[test]
    fn fields_v1_round_trips() {
        let nav = nav();
        let obj = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x/y"]},
            "spec": {"ports": [{"name": "http", "port": 80}], "empty": {}}});
        let set: BTreeSet<Path> =
            leaves(&tracked(&obj, Part::Main { exclude_status: true }), Some(&nav)).keys().cloned().collect();
        let v1 = to_fields_v1(&set);
        assert_eq!(v1["f:spec"]["f:ports"]["k:{\"name\":\"http\"}"]["."], json!({}));
        assert_eq!(v1["f:metadata"]["f:finalizers"]["v:\"x/y\""], json!({}));
        let mut back = BTreeSet::new();
        parse_fields(&v1, &mut Vec::new(), &mut back);
        assert_eq!(back, set);
    }

    #[test]
    fn apply_removes_fields_it_stopped_applying() {
        let nav = nav();
        let w = writer("op", &nav);
        let first = apply(None, &json!({"spec": {"a": 1, "b": 2}}), &w, false).expect("applies");
        let second = apply(Some(&first), &json!({"spec": {"a": 1}}), &w, false).expect("applies");
        assert_eq!(second["spec"], json!({"a": 1}));
    }

    #[test]
    fn apply_conflicts_with_other_manager_unless_forced() {
        let nav = nav();
        let first = apply(None, &json!({"spec": {"a": 1}}), &writer("one", &nav), false).expect("applies");
        let err = apply(Some(&first), &json!({"spec": {"a": 2}}), &writer("two", &nav), false).unwrap_err();
        assert_eq!(err, vec![Conflict { manager: "one".into(), path: ".spec.a".into() }]);
        let same = apply(Some(&first), &json!({"spec": {"a": 1}}), &writer("two", &nav), false).expect("shared");
        assert_eq!(entries_of(&same).len(), 2);
        let forced = apply(Some(&first), &json!({"spec": {"a": 2}}), &writer("two", &nav), true).expect("forced");
        assert_eq!(forced["spec"]["a"], 2);
        let owners: Vec<String> = entries_of(&forced).into_iter().map(|e| e.manager).collect();
        assert_eq!(owners, vec!["two".to_string()]);
    }

    #[test]
    fn map_lists_merge_by_key_and_update_takes_ownership() {
        let nav = nav();
        let a = apply(None, &json!({"spec": {"ports": [{"name": "http", "port": 80}]}}), &writer("a", &nav), false)
            .expect("a");
        let b = apply(Some(&a), &json!({"spec": {"ports": [{"name": "grpc", "port": 90}]}}), &writer("b", &nav), false)
            .expect("b");
        assert_eq!(b["spec"]["ports"].as_array().map(Vec::len), Some(2));
        let mut updated = b.clone();
        updated["spec"]["ports"][0]["port"] = json!(81);
        record_update(Some(&b), &mut updated, &writer("kubectl", &nav));
        let err = apply(
            Some(&updated),
            &json!({"spec": {"ports": [{"name": "http", "port": 80}]}}),
            &writer("a", &nav),
            false,
        )
        .unwrap_err();
        assert_eq!(err[0].manager, "kubectl");
    }
}
