//! The object store: one global resourceVersion counter like etcd, a bounded
//! event history for watch resumption, and a broadcast of live events.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::events;
use crate::registry::{Registry, ResKey};

/// Namespace ("" for cluster-scoped) and name.
pub(crate) type ObjKey = (String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as kept in the history and sent to watchers.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub res: ResKey,
    pub kind: EventType,
    pub object: Value,
    /// The previous state (for MODIFIED), so selector watches can emit ADDED/DELETED.
    pub old: Option<Value>,
}

/// Server behaviour switches.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub strict_namespaces: bool,
    pub history_limit: usize,
}

pub(crate) struct State {
    pub rv: u64,
    pub registry: Registry,
    objects: BTreeMap<ResKey, BTreeMap<ObjKey, Value>>,
    history: VecDeque<Arc<Change>>,
    /// Highest resourceVersion no longer in the history.
    pub compacted_rv: u64,
    tx: broadcast::Sender<Arc<Change>>,
    pub opts: Options,
    /// Set by writes that can give garbage collection work (a removal, an object being deleted
    /// or carrying owner references, a CRD); cleared once nothing is left being deleted.
    pub gc_dirty: bool,
}

/// Whether storing `obj` (of resource `res`) can give garbage collection work.
fn gc_relevant(res: &ResKey, obj: &Value) -> bool {
    is_deleting(obj)
        || *res == crd_key()
        || obj.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|r| !r.is_empty())
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl State {
    pub fn new(opts: Options) -> Self {
        let (tx, _) = broadcast::channel(opts.history_limit.max(1024));
        let mut s = Self {
            rv: 0,
            registry: Registry::with_builtins(),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted_rv: 0,
            tx,
            opts,
            gc_dirty: true,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            s.insert_namespace(ns);
        }
        s
    }

    /// Create a namespace object directly (startup and auto-creation).
    pub fn insert_namespace(&mut self, name: &str) {
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": now_rfc3339(),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        self.put(&ns_key(), (String::new(), name.to_string()), obj, None);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    pub fn get(&self, res: &ResKey, key: &ObjKey) -> Option<&Value> {
        self.objects.get(res)?.get(key)
    }

    /// Objects of a resource, in (namespace, name) order, optionally one namespace only.
    pub fn list(&self, res: &ResKey, namespace: Option<&str>) -> Vec<(&ObjKey, &Value)> {
        let Some(m) = self.objects.get(res) else {
            return Vec::new();
        };
        m.iter().filter(|(k, _)| namespace.is_none_or(|ns| k.0 == ns)).collect()
    }

    /// Every stored object with its resource and key.
    pub fn all_objects(&self) -> Vec<(ResKey, ObjKey, &Value)> {
        self.objects.iter().flat_map(|(r, m)| m.iter().map(move |(k, v)| (r.clone(), k.clone(), v))).collect()
    }

    /// History entries after `rv` (exclusive), oldest first.
    pub fn history_after(&self, rv: u64) -> Vec<Arc<Change>> {
        self.history.iter().filter(|c| c.rv > rv).cloned().collect()
    }

    /// Forget all history, as an etcd compaction would.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_rv = self.rv;
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.opts.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.rv;
            }
        }
        // No receivers is fine.
        let _ = self.tx.send(change);
    }

    fn bump(&mut self, obj: &mut Value) -> u64 {
        self.rv += 1;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        }
        self.rv
    }

    /// Store a new or changed object with a fresh resourceVersion; returns it.
    pub fn put(&mut self, res: &ResKey, key: ObjKey, mut obj: Value, old: Option<Value>) -> Value {
        let rv = self.bump(&mut obj);
        self.store_change(res, &key, &obj, rv, old);
        if let Some((other, convert)) = events::mirror_of(res) {
            let copy = convert(&obj);
            let previous = self.get(&other, &key).cloned();
            self.store_change(&other, &key, &copy, rv, previous);
        }
        obj
    }

    fn store_change(&mut self, res: &ResKey, key: &ObjKey, obj: &Value, rv: u64, old: Option<Value>) {
        self.gc_dirty |= gc_relevant(res, obj);
        self.objects.entry(res.clone()).or_default().insert(key.clone(), obj.clone());
        let kind = if old.is_some() { EventType::Modified } else { EventType::Added };
        self.record(Change { rv, res: res.clone(), kind, object: obj.clone(), old });
    }

    /// Remove an object for good; returns its final state (with the deletion's resourceVersion).
    pub fn remove(&mut self, res: &ResKey, key: &ObjKey) -> Option<Value> {
        let mut obj = self.objects.get_mut(res)?.remove(key)?;
        self.gc_dirty = true;
        let rv = self.bump(&mut obj);
        self.record(Change { rv, res: res.clone(), kind: EventType::Deleted, object: obj.clone(), old: None });
        if let Some((other, _)) = events::mirror_of(res)
            && let Some(mut copy) = self.objects.get_mut(&other).and_then(|m| m.remove(key))
        {
            if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("resourceVersion".into(), json!(rv.to_string()));
            }
            self.record(Change { rv, res: other, kind: EventType::Deleted, object: copy, old: None });
        }
        Some(obj)
    }

    /// Replace a stored object without an event (the next change reports it).
    pub fn replace_silently(&mut self, res: &ResKey, key: &ObjKey, obj: Value) {
        self.gc_dirty |= gc_relevant(res, &obj);
        if let Some((other, convert)) = events::mirror_of(res) {
            self.objects.entry(other).or_default().insert(key.clone(), convert(&obj));
        }
        self.objects.entry(res.clone()).or_default().insert(key.clone(), obj);
    }

    /// Drop every object of a resource without events (the resource went away).
    pub fn drop_resource(&mut self, res: &ResKey) {
        self.gc_dirty = true;
        self.objects.remove(res);
    }
}

pub(crate) fn ns_key() -> ResKey {
    (String::new(), "namespaces".to_string())
}

pub(crate) fn crd_key() -> ResKey {
    ("apiextensions.k8s.io".to_string(), "customresourcedefinitions".to_string())
}

/// Metadata accessors on raw objects.
pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

pub(crate) fn set_finalizers(obj: &mut Value, list: &[String]) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), json!(list));
        }
    }
}

pub(crate) fn is_deleting(obj: &Value) -> bool {
    meta_str(obj, "deletionTimestamp").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(limit: usize) -> State {
        State::new(Options { strict_namespaces: false, history_limit: limit })
    }

    #[test]
    fn resource_versions_are_global_and_increasing() {
        let mut s = state(100);
        let start = s.rv;
        let res: ResKey = (String::new(), "configmaps".into());
        let a = s.put(&res, ("default".into(), "a".into()), json!({"metadata": {"name": "a"}}), None);
        let b = s.put(&res, ("default".into(), "b".into()), json!({"metadata": {"name": "b"}}), None);
        assert_eq!(meta_str(&a, "resourceVersion"), Some((start + 1).to_string().as_str()));
        assert_eq!(meta_str(&b, "resourceVersion"), Some((start + 2).to_string().as_str()));
        let gone = s.remove(&res, &("default".into(), "a".into())).expect("present");
        assert_eq!(meta_str(&gone, "resourceVersion"), Some((start + 3).to_string().as_str()));
        let after: Vec<EventType> = s.history_after(start).iter().map(|c| c.kind).collect();
        assert_eq!(after, vec![EventType::Added, EventType::Added, EventType::Deleted]);
    }

    #[test]
    fn history_is_bounded_and_tracks_compaction() {
        let mut s = state(2);
        let res: ResKey = (String::new(), "configmaps".into());
        for i in 0..5 {
            s.put(&res, ("default".into(), format!("c{i}")), json!({"metadata": {}}), None);
        }
        assert_eq!(s.history_after(0).len(), 2);
        assert_eq!(s.compacted_rv, s.rv - 2);
    }
}
