//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (what `kubectl get`
//! asks for): a `meta.k8s.io/v1` Table whose columns are a CRD version's
//! `additionalPrinterColumns` (Name first, Age when none are declared), or the
//! usual columns of the built-in kinds.

use chrono::{DateTime, Utc};
use jsonpath_rust::JsonPath;
use serde_json::{Value, json};

use crate::registry::{Builtin, ResourceDef};
use crate::status::ApiError;

/// The request asks for a Table.
pub(crate) fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.split(',').next().is_some_and(|first| first.contains("as=Table")))
}

/// What each row carries in `object` (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        match s {
            None | Some("") | Some("Metadata") => Ok(Self::Metadata),
            Some("None") => Ok(Self::None),
            Some("Object") => Ok(Self::Object),
            Some(other) => Err(ApiError::bad_request(format!(
                "includeObject: Unsupported value: \"{other}\": supported values: \"Metadata\", \"None\", \"Object\""
            ))),
        }
    }
}

/// One column: its definition and how to compute a cell.
struct Column {
    name: String,
    ty: String,
    format: String,
    priority: i64,
    description: String,
    cell: Cell,
}

enum Cell {
    /// A JSONPath (Kubernetes syntax, e.g. `.status.phase`).
    Path(String),
    /// Computed by a function of the object.
    Fn(fn(&Value) -> Value),
}

fn col(name: &str, ty: &str, cell: Cell) -> Column {
    Column {
        name: name.to_string(),
        ty: ty.to_string(),
        format: if name == "Name" { "name".to_string() } else { String::new() },
        priority: 0,
        description: String::new(),
        cell,
    }
}

fn path(p: &str) -> Cell {
    Cell::Path(p.to_string())
}

fn name_col() -> Column {
    let mut c = col("Name", "string", path(".metadata.name"));
    c.description = "Name must be unique within a namespace.".to_string();
    c
}

fn age_col() -> Column {
    col("Age", "date", path(".metadata.creationTimestamp"))
}

fn count_of(field: &'static str) -> fn(&Value) -> Value {
    match field {
        "data" => |o| json!(o.get("data").and_then(Value::as_object).map_or(0, |m| m.len())),
        _ => |o| {
            let n = |k: &str| o.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
            json!(n("data") + n("binaryData"))
        },
    }
}

fn columns(rd: &ResourceDef, version: &str) -> Vec<Column> {
    let mut cols = vec![name_col()];
    match rd.builtin {
        None => {
            let declared = rd.printer_columns.get(version).cloned().unwrap_or_default();
            if declared.is_empty() {
                cols.push(age_col());
            }
            for c in declared {
                let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                let mut column = col(&s("name"), &s("type"), Cell::Path(s("jsonPath")));
                column.format = s("format");
                column.description = s("description");
                column.priority = c.get("priority").and_then(Value::as_i64).unwrap_or(0);
                cols.push(column);
            }
            return cols;
        }
        Some(Builtin::Namespace) => cols.push(col("Status", "string", path(".status.phase"))),
        Some(Builtin::Secret) => {
            cols.push(col("Type", "string", path(".type")));
            cols.push(col("Data", "string", Cell::Fn(count_of("data"))));
        }
        Some(Builtin::ConfigMap) => cols.push(col("Data", "string", Cell::Fn(count_of("all")))),
        Some(Builtin::CoreEvent) | Some(Builtin::Event) => return event_columns(rd.builtin == Some(Builtin::Event)),
        Some(Builtin::Lease) => cols.push(col("Holder", "string", path(".spec.holderIdentity"))),
        Some(Builtin::Crd) => {
            cols.push(col(
                "Created At",
                "string",
                Cell::Fn(|o| o.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null)),
            ));
            return cols;
        }
        Some(Builtin::Deployment) => {
            cols.push(col(
                "Ready",
                "string",
                Cell::Fn(|o| {
                    let n = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
                    json!(format!("{}/{}", n("/status/readyReplicas"), n("/spec/replicas")))
                }),
            ));
            cols.push(col(
                "Up-to-date",
                "integer",
                Cell::Fn(|o| json!(o.pointer("/status/updatedReplicas").and_then(Value::as_i64).unwrap_or(0))),
            ));
            cols.push(col(
                "Available",
                "integer",
                Cell::Fn(|o| json!(o.pointer("/status/availableReplicas").and_then(Value::as_i64).unwrap_or(0))),
            ));
        }
        Some(Builtin::Service) => {
            cols.push(col("Type", "string", path(".spec.type")));
            cols.push(col("Cluster-IP", "string", path(".spec.clusterIP")));
            cols.push(col("External-IP", "string", Cell::Fn(|_| json!("<none>"))));
            cols.push(col("Port(s)", "string", Cell::Fn(service_ports)));
        }
        Some(Builtin::PodDisruptionBudget) => {
            cols.push(col("Min Available", "string", Cell::Fn(|o| or_na(o.pointer("/spec/minAvailable")))));
            cols.push(col("Max Unavailable", "string", Cell::Fn(|o| or_na(o.pointer("/spec/maxUnavailable")))));
            cols.push(col(
                "Allowed Disruptions",
                "integer",
                Cell::Fn(|o| json!(o.pointer("/status/disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0))),
            ));
        }
        Some(Builtin::ClusterRoleBinding) | Some(Builtin::RoleBinding) => {
            cols.push(col(
                "Role",
                "string",
                Cell::Fn(|o| {
                    let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
                    json!(format!("{}/{}", s("/roleRef/kind"), s("/roleRef/name")))
                }),
            ));
        }
        Some(Builtin::ServiceAccount) | Some(Builtin::ClusterRole) | Some(Builtin::Role) => {}
    }
    cols.push(age_col());
    cols
}

fn or_na(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) => json!(s),
        Some(Value::Number(n)) => json!(n.to_string()),
        _ => json!("N/A"),
    }
}

fn service_ports(o: &Value) -> Value {
    let ports: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            format!("{port}/{proto}")
        })
        .collect();
    json!(if ports.is_empty() { "<none>".to_string() } else { ports.join(",") })
}

fn event_columns(v1: bool) -> Vec<Column> {
    let last_seen: fn(&Value) -> Value = |o| {
        let ts = ["/series/lastObservedTime", "/lastTimestamp", "/deprecatedLastTimestamp", "/eventTime"]
            .iter()
            .find_map(|p| o.pointer(p).and_then(Value::as_str).map(str::to_string))
            .or_else(|| o.pointer("/metadata/creationTimestamp").and_then(Value::as_str).map(str::to_string));
        ts.map_or(json!("<unknown>"), |t| json!(age(&t)))
    };
    let object: fn(&Value) -> Value = |o| {
        let r = o.get("regarding").or_else(|| o.get("involvedObject")).cloned().unwrap_or(Value::Null);
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        json!(format!("{}/{}", s("kind").to_lowercase(), s("name")))
    };
    let message = if v1 { path(".note") } else { path(".message") };
    let mut name = name_col();
    name.priority = 1;
    vec![
        col("Last Seen", "string", Cell::Fn(last_seen)),
        col("Type", "string", path(".type")),
        col("Reason", "string", path(".reason")),
        col("Object", "string", Cell::Fn(object)),
        col("Message", "string", message),
        name,
    ]
}

/// `duration.HumanDuration` of the time since `ts` (RFC 3339), as kubectl shows ages.
pub(crate) fn age(ts: &str) -> String {
    match DateTime::parse_from_rfc3339(ts) {
        Ok(t) => human_duration(Utc::now().signed_duration_since(t).num_seconds()),
        Err(_) => "<unknown>".to_string(),
    }
}

pub(crate) fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".to_string();
    }
    let secs = secs.max(0);
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{d}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

/// A Kubernetes JSONPath such as `.status.conditions[?(@.type=="Ready")].status`.
fn eval_path(obj: &Value, p: &str) -> Option<Value> {
    let p = p.trim().trim_start_matches('{').trim_end_matches('}');
    let rfc = if p.starts_with('$') { p.to_string() } else { format!("${p}") };
    let found = obj.query(&rfc).ok()?;
    found.first().map(|v| (*v).clone())
}

fn cell(c: &Column, obj: &Value) -> Value {
    let raw = match &c.cell {
        Cell::Path(p) => eval_path(obj, p),
        Cell::Fn(f) => Some(f(obj)),
    };
    match (c.ty.as_str(), raw) {
        (_, None) | (_, Some(Value::Null)) => Value::Null,
        ("date", Some(Value::String(s))) => json!(age(&s)),
        ("string", Some(Value::String(s))) => json!(s),
        ("string", Some(v)) if !v.is_object() && !v.is_array() => json!(v.to_string()),
        ("string", Some(v)) => json!(v.to_string()),
        (_, Some(v)) => v,
    }
}

fn row_object(obj: &Value, include: Include) -> Option<Value> {
    match include {
        Include::None => None,
        Include::Object => Some(obj.clone()),
        Include::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        })),
    }
}

/// A Table of `objects` (already rendered at `version`) with the list's metadata.
pub(crate) fn table(rd: &ResourceDef, version: &str, objects: &[Value], metadata: Value, include: Include) -> Value {
    let cols = columns(rd, version);
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.ty, "format": c.format, "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|c| cell(c, o)).collect();
            let mut row = json!({"cells": cells});
            if let Some(obj) = row_object(o, include) {
                row["object"] = obj;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(60 * 30), "30m");
        assert_eq!(human_duration(3600 * 5 + 60 * 2), "5h2m");
        assert_eq!(human_duration(3600 * 24 * 3), "3d");
    }

    #[test]
    fn kubernetes_jsonpath_filters_work() {
        let o = json!({"status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(eval_path(&o, r#".status.conditions[?(@.type=="Ready")].status"#), Some(json!("True")));
        assert_eq!(eval_path(&o, ".status.phase"), None);
    }
}
