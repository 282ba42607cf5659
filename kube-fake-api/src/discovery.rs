//! Discovery documents: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{g}`,
//! `/apis/{g}/{v}`, plain and aggregated (`apidiscovery.k8s.io/v2`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceDef};

const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "gitVersion": "v1.33.0-kube-fake-api",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

fn scope(d: &ResourceDef) -> &'static str {
    if d.namespaced { "Namespaced" } else { "Cluster" }
}

fn api_resources(d: &ResourceDef) -> Vec<Value> {
    let mut out = vec![json!({
        "name": d.plural,
        "singularName": d.singular,
        "namespaced": d.namespaced,
        "kind": d.kind,
        "verbs": VERBS,
        "shortNames": d.short_names,
        "categories": d.categories,
    })];
    if d.status_subresource {
        out.push(json!({
            "name": format!("{}/status", d.plural),
            "singularName": "",
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    out
}

/// `/api` (APIVersions).
pub(crate) fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

/// `/api/v1` or `/apis/{g}/{v}` (APIResourceList); None when nothing is served there.
pub(crate) fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> =
        reg.all().filter(|d| d.group == group && d.versions.iter().any(|v| v == version)).collect();
    if defs.is_empty() {
        return None;
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    let resources: Vec<Value> = defs.into_iter().flat_map(api_resources).collect();
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

fn groups(reg: &Registry) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in reg.all().filter(|d| !d.group.is_empty()) {
        let vs = out.entry(d.group.clone()).or_default();
        for v in &d.versions {
            if !vs.contains(v) {
                vs.push(v.clone());
            }
        }
    }
    out
}

fn api_group(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis` (APIGroupList).
pub(crate) fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = groups(reg)
        .iter()
        .map(|(g, vs)| {
            let mut v = api_group(g, vs);
            if let Some(m) = v.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            v
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}` (APIGroup).
pub(crate) fn group(reg: &Registry, name: &str) -> Option<Value> {
    groups(reg).get(name).map(|vs| api_group(name, vs))
}

/// Aggregated discovery for `/api` (core) or `/apis` (all other groups).
pub(crate) fn aggregated(reg: &Registry, core: bool) -> Value {
    let mut by_group: BTreeMap<String, BTreeMap<String, Vec<Value>>> = BTreeMap::new();
    for d in reg.all().filter(|d| d.group.is_empty() == core) {
        for v in &d.versions {
            let mut r = json!({
                "resource": d.plural,
                "responseKind": {"group": d.group, "version": v, "kind": d.kind},
                "scope": scope(d),
                "singularResource": d.singular,
                "verbs": VERBS,
                "shortNames": d.short_names,
                "categories": d.categories,
            });
            if d.status_subresource {
                r["subresources"] = json!([{
                    "subresource": "status",
                    "responseKind": {"group": d.group, "version": v, "kind": d.kind},
                    "verbs": ["get", "patch", "update"],
                }]);
            }
            by_group.entry(d.group.clone()).or_default().entry(v.clone()).or_default().push(r);
        }
    }
    let items: Vec<Value> = by_group
        .into_iter()
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .into_iter()
                .map(|(v, resources)| json!({"version": v, "resources": resources, "freshness": "Current"}))
                .collect();
            json!({"metadata": {"name": g}, "versions": vs})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}
