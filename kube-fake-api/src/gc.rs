//! Garbage collection run synchronously after every write: owner-reference
//! cascades, foreground deletion, namespace and CRD cleanup.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::crd::CRD_CLEANUP;
use crate::delete::{FOREGROUND, Propagation};
use crate::registry::{Builtin, ResKey, ResourceDef};
use crate::store::{ObjKey, State, crd_key, finalizers, is_deleting, meta_str, ns_key, set_finalizers};

/// Upper bound on GC rounds per write (each round makes progress or stops).
const MAX_ROUNDS: usize = 10_000;

fn owner_refs(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/ownerReferences").and_then(Value::as_array).cloned().unwrap_or_default()
}

impl State {
    /// Drop owner references to `uid` from every dependent (the `Orphan` policy).
    pub(crate) fn orphan_dependents(&mut self, uid: &str) {
        let dependents: Vec<(ResKey, ObjKey, Value)> = self
            .all_objects()
            .into_iter()
            .filter(|(_, _, o)| owner_refs(o).iter().any(|r| r.get("uid").and_then(Value::as_str) == Some(uid)))
            .map(|(r, k, o)| (r, k, o.clone()))
            .collect();
        for (res, key, old) in dependents {
            let mut new = old.clone();
            let kept: Vec<Value> =
                owner_refs(&old).into_iter().filter(|r| r.get("uid").and_then(Value::as_str) != Some(uid)).collect();
            set_owner_refs(&mut new, kept);
            self.put(&res, key, new, Some(old));
        }
    }

    fn def(&self, res: &ResKey) -> Option<ResourceDef> {
        self.registry.get(res).cloned()
    }

    /// Run collection rounds until nothing changes.
    pub(crate) fn collect_garbage(&mut self) {
        // Most writes (status updates, Events, objects without owners) give it nothing to do.
        if !self.gc_dirty {
            return;
        }
        for _ in 0..MAX_ROUNDS {
            if !self.gc_round() {
                // Deletions in progress (finalizers, foreground owners, terminating namespaces)
                // need another look after later writes.
                self.gc_dirty = self.all_objects().iter().any(|(_, _, o)| is_deleting(o));
                return;
            }
        }
        tracing::warn!("garbage collection did not settle");
    }

    /// Whether a round could change anything: an object is being deleted (foreground owners,
    /// namespaces, CRDs), or an owner reference names a uid that no object has. Reads without
    /// copying, so that the common write, which leaves nothing to collect, does not copy every
    /// stored object.
    fn gc_may_act(&self) -> bool {
        let objects = self.all_objects();
        if objects.iter().any(|(_, _, o)| is_deleting(o)) {
            return true;
        }
        let uids: HashSet<&str> = objects.iter().filter_map(|(_, _, o)| meta_str(o, "uid")).collect();
        objects.iter().any(|(_, _, o)| {
            o.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|refs| {
                refs.iter().any(|r| !uids.contains(r.get("uid").and_then(Value::as_str).unwrap_or("")))
            })
        })
    }

    /// One round; true when something changed.
    fn gc_round(&mut self) -> bool {
        if !self.gc_may_act() {
            return false;
        }
        let objects: Vec<(ResKey, ObjKey, Value)> =
            self.all_objects().into_iter().map(|(r, k, o)| (r, k, o.clone())).collect();
        let by_uid: HashMap<String, &Value> =
            objects.iter().filter_map(|(_, _, o)| meta_str(o, "uid").map(|u| (u.to_string(), o))).collect();

        // Dependents whose owners are gone, or whose owner is being deleted in the foreground.
        for (res, key, obj) in &objects {
            let refs = owner_refs(obj);
            if refs.is_empty() {
                continue;
            }
            let mut dangling = Vec::new();
            let mut foreground_owner = false;
            for r in &refs {
                let uid = r.get("uid").and_then(Value::as_str).unwrap_or_default();
                match by_uid.get(uid) {
                    Some(owner) => {
                        if is_deleting(owner) && finalizers(owner).iter().any(|f| f == FOREGROUND) {
                            foreground_owner = true;
                        }
                    }
                    None => {
                        let av = r.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
                        let kind = r.get("kind").and_then(Value::as_str).unwrap_or_default();
                        // Owners of kinds this server does not serve cannot be verified: leave them.
                        if self.registry.by_kind(av, kind).is_some() {
                            dangling.push(uid.to_string());
                        }
                    }
                }
            }
            let Some(rd) = self.def(res) else { continue };
            if !dangling.is_empty() && dangling.len() == refs.len() {
                if !is_deleting(obj) {
                    self.delete_object(&rd, key, Propagation::Background);
                    return true;
                }
            } else if !dangling.is_empty() {
                let mut new = obj.clone();
                let kept: Vec<Value> = refs
                    .into_iter()
                    .filter(|r| !dangling.iter().any(|d| Some(d.as_str()) == r.get("uid").and_then(Value::as_str)))
                    .collect();
                set_owner_refs(&mut new, kept);
                self.put(res, key.clone(), new, Some(obj.clone()));
                return true;
            } else if foreground_owner && !is_deleting(obj) {
                self.delete_object(&rd, key, Propagation::Foreground);
                return true;
            }
        }

        // Foreground owners whose blocking dependents are all gone.
        let blocking: HashSet<String> = objects
            .iter()
            .flat_map(|(_, _, o)| owner_refs(o))
            .filter(|r| r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true))
            .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
            .collect();
        for (res, key, obj) in &objects {
            let fins = finalizers(obj);
            if !is_deleting(obj) || !fins.iter().any(|f| f == FOREGROUND) {
                continue;
            }
            let uid = meta_str(obj, "uid").unwrap_or_default();
            if blocking.contains(uid) {
                continue;
            }
            let rest: Vec<String> = fins.into_iter().filter(|f| f != FOREGROUND).collect();
            self.drop_finalizers(res, key, obj, &rest);
            return true;
        }

        // Terminating namespaces: delete their content, then themselves.
        for (res, key, obj) in &objects {
            if *res != ns_key() || !is_deleting(obj) {
                continue;
            }
            let ns = key.1.clone();
            let content: Vec<(ResKey, ObjKey, bool)> = objects
                .iter()
                .filter(|(_, k, _)| k.0 == ns)
                .map(|(r, k, o)| (r.clone(), k.clone(), is_deleting(o)))
                .collect();
            let mut changed = false;
            for (r, k, deleting) in &content {
                if !deleting && let Some(rd) = self.def(r) {
                    self.delete_object(&rd, k, Propagation::Background);
                    changed = true;
                }
            }
            if changed {
                return true;
            }
            if content.is_empty() {
                let spec_fins =
                    obj.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
                if spec_fins {
                    let mut new = obj.clone();
                    new["spec"]["finalizers"] = Value::Array(Vec::new());
                    if finalizers(&new).is_empty() {
                        self.replace_silently(res, key, new);
                        self.remove(res, key);
                    } else {
                        self.put(res, key.clone(), new, Some(obj.clone()));
                    }
                    return true;
                }
            }
        }

        // Terminating CRDs: delete every instance, then release the CRD.
        for (res, key, obj) in &objects {
            if *res != crd_key() || !is_deleting(obj) {
                continue;
            }
            let fins = finalizers(obj);
            if !fins.iter().any(|f| f == CRD_CLEANUP) {
                continue;
            }
            let group = obj.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default();
            let plural = obj.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or_default();
            let cr_key: ResKey = (group.to_string(), plural.to_string());
            let instances: Vec<(ObjKey, bool)> =
                objects.iter().filter(|(r, _, _)| *r == cr_key).map(|(_, k, o)| (k.clone(), is_deleting(o))).collect();
            let mut changed = false;
            if let Some(rd) = self.def(&cr_key) {
                for (k, deleting) in &instances {
                    if !deleting {
                        self.delete_object(&rd, k, Propagation::Background);
                        changed = true;
                    }
                }
            }
            if changed {
                return true;
            }
            if instances.is_empty() {
                let rest: Vec<String> = fins.into_iter().filter(|f| f != CRD_CLEANUP).collect();
                self.drop_finalizers(res, key, obj, &rest);
                return true;
            }
        }
        false
    }

    /// Set the finalizers of a deleting object; remove it when none are left.
    fn drop_finalizers(&mut self, res: &ResKey, key: &ObjKey, obj: &Value, rest: &[String]) {
        let mut new = obj.clone();
        set_finalizers(&mut new, rest);
        let Some(rd) = self.def(res) else { return };
        let blocked = rd.builtin == Some(Builtin::Namespace)
            && new.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        if rest.is_empty() && !blocked {
            self.replace_silently(res, key, new);
            if let Some(gone) = self.remove(res, key) {
                self.after_commit(&rd, &gone);
            }
        } else {
            self.put(res, key.clone(), new, Some(obj.clone()));
        }
    }
}

fn set_owner_refs(obj: &mut Value, refs: Vec<Value>) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if refs.is_empty() {
            meta.remove("ownerReferences");
        } else {
            meta.insert("ownerReferences".into(), Value::Array(refs));
        }
    }
}
