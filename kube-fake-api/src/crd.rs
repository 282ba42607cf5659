//! What the apiextensions server does with CRD objects: serve them, set their status.

use serde_json::{Value, json};

use crate::registry::{Builtin, ResourceDef, resource_from_crd};
use crate::store::{State, crd_key, meta_str, now_rfc3339};

pub(crate) const CRD_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

impl State {
    /// Keep the registry in step with CRD objects.
    pub(crate) fn after_commit(&mut self, rd: &ResourceDef, obj: &Value) {
        if rd.builtin != Some(Builtin::Crd) {
            return;
        }
        let name = meta_str(obj, "name").unwrap_or_default().to_string();
        let still_there = self.get(&crd_key(), &(String::new(), name)).is_some();
        match resource_from_crd(obj) {
            Ok(def) if still_there => self.registry.insert(def),
            Ok(def) => {
                let key = def.key();
                self.registry.remove(&key);
                self.drop_resource(&key);
            }
            Err(_) => {}
        }
    }
}

/// The status the apiextensions server maintains on a CRD.
pub(crate) fn set_crd_status(crd: &mut Value) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let mut accepted = names.clone();
    if let Some(kind) = names.get("kind").and_then(Value::as_str) {
        if accepted.get("singular").is_none() {
            accepted["singular"] = json!(kind.to_lowercase());
        }
        if accepted.get("listKind").is_none() {
            accepted["listKind"] = json!(format!("{kind}List"));
        }
    }
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let previous = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(|c| c.get("lastTransitionTime"))
        .cloned()
        .unwrap_or_else(|| json!(now_rfc3339()));
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "reason": reason, "message": msg, "lastTransitionTime": previous});
    crd["status"] = json!({
        "acceptedNames": accepted,
        "storedVersions": stored,
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
    });
}
