//! OpenAPI documents: `/openapi/v3` (index), `/openapi/v3/{api/v1|apis/g/v}`
//! and `/openapi/v2`, generated from k8s-openapi's schemas of the built-in
//! kinds and from each CRD version's `openAPIV3Schema`. Enough for kubectl:
//! the PATCH operations declare `fieldValidation` (so `kubectl apply`
//! validates on the server, `--validate=strict`), and each kind's schema
//! carries `x-kubernetes-group-version-kind` (so `kubectl explain` finds it).

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::OnceLock;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use k8s_openapi::schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use crate::registry::{Builtin, Registry, ResourceDef};

const V3_REF: &str = "#/components/schemas/";
const META_REF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Built-in schemas: the kind's definition name, and every definition (shared).
struct BuiltinSchemas {
    names: BTreeMap<&'static str, String>,
    definitions: Map<String, Value>,
}

fn schema_of<T: JsonSchema>(
    generator: &mut SchemaGenerator,
    names: &mut BTreeMap<&'static str, String>,
    key: &'static str,
) {
    let _: Schema = generator.subschema_for::<T>();
    names.insert(key, T::schema_name().to_string());
}

fn builtin_key(b: Builtin) -> &'static str {
    match b {
        Builtin::Namespace => "Namespace",
        Builtin::Secret => "Secret",
        Builtin::ConfigMap => "ConfigMap",
        Builtin::CoreEvent => "CoreEvent",
        Builtin::Event => "Event",
        Builtin::Lease => "Lease",
        Builtin::Crd => "Crd",
        Builtin::Deployment => "Deployment",
        Builtin::Service => "Service",
        Builtin::ServiceAccount => "ServiceAccount",
        Builtin::ClusterRole => "ClusterRole",
        Builtin::ClusterRoleBinding => "ClusterRoleBinding",
        Builtin::Role => "Role",
        Builtin::RoleBinding => "RoleBinding",
        Builtin::PodDisruptionBudget => "PodDisruptionBudget",
    }
}

fn builtin_schemas() -> &'static BuiltinSchemas {
    static CELL: OnceLock<BuiltinSchemas> = OnceLock::new();
    CELL.get_or_init(|| {
        let mut g = SchemaSettings::openapi3().into_generator();
        let mut names = BTreeMap::new();
        schema_of::<Namespace>(&mut g, &mut names, "Namespace");
        schema_of::<Secret>(&mut g, &mut names, "Secret");
        schema_of::<ConfigMap>(&mut g, &mut names, "ConfigMap");
        schema_of::<CoreEvent>(&mut g, &mut names, "CoreEvent");
        schema_of::<Event>(&mut g, &mut names, "Event");
        schema_of::<Lease>(&mut g, &mut names, "Lease");
        schema_of::<CustomResourceDefinition>(&mut g, &mut names, "Crd");
        schema_of::<Deployment>(&mut g, &mut names, "Deployment");
        schema_of::<Service>(&mut g, &mut names, "Service");
        schema_of::<ServiceAccount>(&mut g, &mut names, "ServiceAccount");
        schema_of::<ClusterRole>(&mut g, &mut names, "ClusterRole");
        schema_of::<ClusterRoleBinding>(&mut g, &mut names, "ClusterRoleBinding");
        schema_of::<Role>(&mut g, &mut names, "Role");
        schema_of::<RoleBinding>(&mut g, &mut names, "RoleBinding");
        schema_of::<PodDisruptionBudget>(&mut g, &mut names, "PodDisruptionBudget");
        schema_of::<ObjectMeta>(&mut g, &mut names, "ObjectMeta");
        let mut definitions = g.take_definitions(true);
        for v in definitions.values_mut() {
            wrap_refs(v);
        }
        BuiltinSchemas { names, definitions }
    })
}

/// `{"$ref": x, "description": d}` → `{"allOf": [{"$ref": x}], "description": d}`, as the
/// real server publishes it (OpenAPI 3.0 ignores siblings of `$ref`).
fn wrap_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.len() > 1
                && let Some(r) = m.remove("$ref")
            {
                m.insert("allOf".into(), json!([{"$ref": r}]));
            }
            for (k, child) in m.iter_mut() {
                // A map of property names (which may be "$ref" itself) to schemas.
                if matches!(k.as_str(), "properties" | "patternProperties")
                    && let Some(props) = child.as_object_mut()
                {
                    props.values_mut().for_each(wrap_refs);
                } else {
                    wrap_refs(child);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(wrap_refs),
        _ => {}
    }
}

/// All definitions `root` refers to, transitively.
fn collect_refs(root: &Value, all: &Map<String, Value>, out: &mut Map<String, Value>) {
    let mut stack = vec![root.clone()];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                if let Some(name) = m.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix(V3_REF))
                    && !out.contains_key(name)
                    && let Some(def) = all.get(name)
                {
                    out.insert(name.to_string(), def.clone());
                    stack.push(def.clone());
                }
                stack.extend(m.into_iter().map(|(_, c)| c));
            }
            Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
}

fn gvk(rd: &ResourceDef, version: &str) -> Value {
    json!([{"group": rd.group, "version": version, "kind": rd.kind}])
}

/// Definition name of a custom resource kind: `dev.clodo.v1alpha1.CloudflareService`.
fn custom_name(rd: &ResourceDef, version: &str) -> String {
    let reversed: Vec<&str> = rd.group.split('.').rev().collect();
    format!("{}.{version}.{}", reversed.join("."), rd.kind)
}

fn custom_schema(rd: &ResourceDef, version: &str) -> Option<Value> {
    let mut s = rd.schemas.get(version)?.schema.clone();
    if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            "metadata".into(),
            json!({"allOf": [{"$ref": format!("{V3_REF}{META_REF}")}], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
        );
        props.entry("apiVersion").or_insert(json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
        props.entry("kind").or_insert(json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
    }
    s["x-kubernetes-group-version-kind"] = gvk(rd, version);
    Some(s)
}

/// The kinds of one group-version: definition name and schema, plus referenced definitions.
fn kind_schemas(reg: &Registry, group: &str, version: &str) -> (Vec<(ResourceDef, String)>, Map<String, Value>) {
    let bs = builtin_schemas();
    let mut kinds = Vec::new();
    let mut defs = Map::new();
    for rd in reg.all().filter(|d| d.group == group && d.versions.iter().any(|v| v == version)) {
        let (name, schema) = match rd.builtin {
            Some(b) => {
                let name = bs.names.get(builtin_key(b)).cloned().unwrap_or_default();
                let mut s = bs.definitions.get(&name).cloned().unwrap_or(json!({"type": "object"}));
                if let Some(req) = s.get_mut("required").and_then(Value::as_array_mut) {
                    req.retain(|r| r != "metadata");
                }
                s["x-kubernetes-group-version-kind"] = gvk(rd, version);
                (name, s)
            }
            None => match custom_schema(rd, version) {
                Some(s) => (custom_name(rd, version), s),
                None => continue,
            },
        };
        collect_refs(&schema, &bs.definitions, &mut defs);
        defs.insert(name.clone(), schema);
        kinds.push((rd.clone(), name));
    }
    (kinds, defs)
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(rd: &ResourceDef, version: &str, action: &str, def: &str, write: bool) -> Value {
    let mut params = vec![query_param("pretty", "If 'true', then the output is pretty printed.")];
    if write {
        params.push(query_param("dryRun", "When present, indicates that modifications should not be persisted."));
        params.push(query_param(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ));
        params.push(query_param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict.",
        ));
    }
    if action == "patch" {
        params.push(query_param("force", "Force is going to \"force\" Apply requests."));
    }
    let body = json!({"content": {"application/json": {"schema": {"$ref": format!("{V3_REF}{def}")}}}});
    let mut op = json!({
        "operationId": format!("{action}{}", rd.kind),
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("{V3_REF}{def}")}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rd.group, "version": version, "kind": rd.kind},
    });
    if write {
        op["requestBody"] = body;
    }
    op
}

fn paths(kinds: &[(ResourceDef, String)], version: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for (rd, def) in kinds {
        let root =
            if rd.group.is_empty() { format!("/api/{version}") } else { format!("/apis/{}/{version}", rd.group) };
        let collection = if rd.namespaced {
            format!("{root}/namespaces/{{namespace}}/{}", rd.plural)
        } else {
            format!("{root}/{}", rd.plural)
        };
        out.insert(
            collection.clone(),
            json!({"get": operation(rd, version, "list", def, false), "post": operation(rd, version, "post", def, true)}),
        );
        let item = json!({
            "get": operation(rd, version, "get", def, false),
            "put": operation(rd, version, "put", def, true),
            "patch": operation(rd, version, "patch", def, true),
            "delete": operation(rd, version, "delete", def, false),
        });
        out.insert(format!("{collection}/{{name}}"), item.clone());
        if rd.status_subresource {
            out.insert(format!("{collection}/{{name}}/status"), item);
        }
    }
    out
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": "v1.33.0-kube-fake-api"})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`; None when nothing is served.
pub(crate) fn v3_group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let (kinds, defs) = kind_schemas(reg, group, version);
    if kinds.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths(&kinds, version),
        "components": {"schemas": defs},
    }))
}

fn hash_of(v: &Value) -> String {
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// `/openapi/v3`: every served group-version and its document's URL (with a content hash).
pub(crate) fn v3_index(reg: &Registry) -> Value {
    let mut gvs: Vec<(String, String)> = Vec::new();
    for d in reg.all() {
        for v in &d.versions {
            if !gvs.contains(&(d.group.clone(), v.clone())) {
                gvs.push((d.group.clone(), v.clone()));
            }
        }
    }
    let mut paths = Map::new();
    for (g, v) in gvs {
        let key = if g.is_empty() { format!("api/{v}") } else { format!("apis/{g}/{v}") };
        let hash = v3_group_version(reg, &g, &v).map(|d| hash_of(&d)).unwrap_or_default();
        paths.insert(key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}));
    }
    json!({"paths": paths})
}

/// A v3 schema as Swagger 2.0 wants it: refs to `#/definitions/`.
fn to_v2(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, c)| match (k.as_str(), c) {
                    ("$ref", Value::String(r)) => (k.clone(), json!(r.replace(V3_REF, "#/definitions/"))),
                    _ => (k.clone(), to_v2(c)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(to_v2).collect()),
        other => other.clone(),
    }
}

/// `/openapi/v2` (JSON): the definitions of every served kind.
pub(crate) fn v2(reg: &Registry) -> Value {
    let mut defs = Map::new();
    let mut gvs: Vec<(String, String)> = Vec::new();
    for d in reg.all() {
        for v in &d.versions {
            if !gvs.contains(&(d.group.clone(), v.clone())) {
                gvs.push((d.group.clone(), v.clone()));
            }
        }
    }
    for (g, v) in gvs {
        let (_, d) = kind_schemas(reg, &g, &v);
        for (name, schema) in d {
            defs.insert(name, to_v2(&schema));
        }
    }
    json!({"swagger": "2.0", "info": info(), "paths": {}, "definitions": defs})
}
