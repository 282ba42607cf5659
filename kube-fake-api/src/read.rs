//! Reads: rendering stored objects for a request, selectors, list paging.

use base64::Engine;
use serde_json::{Value, json};

use crate::query::Query;
use crate::registry::{Builtin, ResourceDef};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{ObjKey, State, meta_str};

/// The object as served at a version: `apiVersion` of the request, or metadata only.
pub(crate) fn render(rd: &ResourceDef, version: &str, obj: &Value, meta_only: bool) -> Value {
    if meta_only {
        return json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        });
    }
    let mut out = obj.clone();
    out["apiVersion"] = json!(rd.api_version(version));
    out["kind"] = json!(rd.kind);
    out
}

/// Namespace plus label and field selectors.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    pub namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

/// Field paths usable in `fieldSelector` beyond `metadata.name`/`metadata.namespace`.
fn selectable_fields(rd: &ResourceDef, version: &str) -> Vec<String> {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    match rd.builtin {
        Some(Builtin::Secret) => owned(&["type"]),
        Some(Builtin::Namespace) => owned(&["status.phase"]),
        Some(Builtin::CoreEvent) => owned(&[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]),
        Some(Builtin::Event) => owned(&[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "reason",
            "reportingController",
            "type",
        ]),
        Some(_) => Vec::new(),
        None => rd.selectable_fields.get(version).cloned().unwrap_or_default(),
    }
}

impl Filter {
    pub fn from_query(rd: &ResourceDef, version: &str, namespace: Option<String>, q: &Query) -> Result<Self, ApiError> {
        let labels = match q.get("labelSelector") {
            Some(s) => LabelSelector::parse(s)?,
            None => LabelSelector::default(),
        };
        let fields = match q.get("fieldSelector") {
            Some(s) => FieldSelector::parse(s, &selectable_fields(rd, version))?,
            None => FieldSelector::default(),
        };
        Ok(Self { namespace, labels, fields })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && meta_str(obj, "namespace") != Some(ns.as_str())
        {
            return false;
        }
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

fn encode_continue(rv: u64, key: &ObjKey) -> String {
    let raw = json!({"rv": rv, "ns": key.0, "name": key.1}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Option<(u64, ObjKey)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((v.get("rv")?.as_u64()?, (v.get("ns")?.as_str()?.to_string(), v.get("name")?.as_str()?.to_string())))
}

/// A list response with paging.
pub(crate) fn list(
    st: &State,
    rd: &ResourceDef,
    version: &str,
    filter: &Filter,
    q: &Query,
    meta_only: bool,
) -> Result<Value, ApiError> {
    if q.get("resourceVersionMatch") == Some("Exact")
        && let Some(rv) = q.get("resourceVersion")
        && rv != st.rv.to_string()
    {
        return Err(ApiError::gone(format!("too old resource version: {rv} ({})", st.rv)));
    }
    let limit = match q.get("limit") {
        Some(l) => l.parse::<usize>().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let (list_rv, after) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, key) = decode_continue(token).ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            if rv < st.compacted_rv {
                return Err(ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ));
            }
            (rv, Some(key))
        }
        None => (st.rv, None),
    };
    let matching: Vec<(&ObjKey, &Value)> = st
        .list(&rd.key(), filter.namespace.as_deref())
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
        .filter(|(_, o)| filter.matches(o))
        .collect();
    let take = if limit == 0 { matching.len() } else { limit.min(matching.len()) };
    let items: Vec<Value> = matching[..take].iter().map(|(_, o)| render(rd, version, o, meta_only)).collect();
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if take < matching.len()
        && let Some((last, _)) = matching.get(take.saturating_sub(1))
    {
        metadata["continue"] = json!(encode_continue(list_rv, last));
        metadata["remainingItemCount"] = json!(matching.len() - take);
    }
    let (api_version, kind) = if meta_only {
        ("meta.k8s.io/v1".to_string(), "PartialObjectMetadataList".to_string())
    } else {
        (rd.api_version(version), rd.list_kind.clone())
    };
    Ok(json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata,
        "items": items,
    }))
}
