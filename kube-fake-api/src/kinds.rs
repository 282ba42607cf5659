//! The workload, networking, RBAC and policy kinds a Helm chart renders
//! (Deployment, Service, ServiceAccount, (Cluster)Role(Binding),
//! PodDisruptionBudget): decoded through k8s-openapi's typed structs, the
//! defaults the real strategies set, and the validation that matters to a
//! chart (required fields, selectors matching the pod template). No
//! controllers run: a Deployment never gets pods.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::registry::Builtin;
use crate::status::{ApiError, FieldError};

/// Decode `v` as `T` and back, as Go struct decoding would (unknown fields vanish).
pub(crate) fn roundtrip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, ApiError> {
    let typed: T = serde_json::from_value(v.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
    serde_json::to_value(typed).map_err(|e| ApiError::internal(e.to_string()))
}

/// Typed round trip of the kinds in this module; `None` for other kinds.
pub(crate) fn decode(b: Builtin, v: &Value) -> Option<Result<Value, ApiError>> {
    Some(match b {
        Builtin::Deployment => roundtrip::<Deployment>(v),
        Builtin::Service => roundtrip::<Service>(v),
        Builtin::ServiceAccount => roundtrip::<ServiceAccount>(v),
        Builtin::ClusterRole => roundtrip::<ClusterRole>(v),
        Builtin::ClusterRoleBinding => roundtrip::<ClusterRoleBinding>(v),
        Builtin::Role => roundtrip::<Role>(v),
        Builtin::RoleBinding => roundtrip::<RoleBinding>(v),
        Builtin::PodDisruptionBudget => roundtrip::<PodDisruptionBudget>(v),
        _ => return None,
    })
}

/// Fields of `sent` (non-null) that decoding dropped: what a real server calls
/// unknown fields (`fieldValidation=Strict` fails on them, `Warn` warns).
pub(crate) fn unknown_fields(sent: &Value, decoded: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_unknown(sent, decoded, "", &mut out);
    out
}

fn walk_unknown(sent: &Value, decoded: &Value, prefix: &str, out: &mut Vec<String>) {
    match (sent, decoded) {
        (Value::Object(s), Value::Object(d)) => {
            for (k, v) in s {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match d.get(k) {
                    None if !v.is_null() => out.push(path),
                    Some(dv) => walk_unknown(v, dv, &path, out),
                    None => {}
                }
            }
        }
        (Value::Array(s), Value::Array(d)) => {
            for (i, (sv, dv)) in s.iter().zip(d).enumerate() {
                walk_unknown(sv, dv, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Server-side defaults and checks of the kinds in this module.
pub(crate) fn admit(b: Builtin, obj: &mut Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    match b {
        Builtin::Deployment => deployment(obj, errs),
        Builtin::Service => service(obj, old, errs),
        Builtin::ClusterRole | Builtin::Role => rules(obj, errs),
        Builtin::ClusterRoleBinding | Builtin::RoleBinding => binding(b, obj, errs),
        Builtin::PodDisruptionBudget => pdb(obj, errs),
        _ => {}
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn default(obj: &mut Value, parent: &str, key: &str, value: Value) {
    if let Some(Value::Object(m)) = obj.pointer_mut(parent) {
        m.entry(key.to_string()).or_insert(value);
    }
}

fn deployment(obj: &mut Value, errs: &mut Vec<FieldError>) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        errs.push(FieldError::required("spec"));
        return;
    }
    default(obj, "/spec", "replicas", json!(1));
    default(obj, "/spec", "revisionHistoryLimit", json!(10));
    default(obj, "/spec", "progressDeadlineSeconds", json!(600));
    default(
        obj,
        "/spec",
        "strategy",
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
    );
    let selector = obj.pointer("/spec/selector/matchLabels").and_then(Value::as_object).cloned();
    let expressions =
        obj.pointer("/spec/selector/matchExpressions").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    match &selector {
        None if !expressions => errs.push(FieldError::required("spec.selector")),
        Some(m) if m.is_empty() && !expressions => {
            errs.push(FieldError::invalid("spec.selector", &json!({}), "empty selector is invalid for deployment"));
        }
        _ => {}
    }
    let labels = obj.pointer("/spec/template/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(sel) = &selector
        && sel.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            &Value::Object(labels),
            "`selector` does not match template `labels`",
        ));
    }
    let Some(pod) = obj.pointer_mut("/spec/template/spec") else {
        errs.push(FieldError::required("spec.template.spec"));
        return;
    };
    if let Some(m) = pod.as_object_mut() {
        m.entry("restartPolicy").or_insert(json!("Always"));
        m.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
        m.entry("schedulerName").or_insert(json!("default-scheduler"));
        m.entry("terminationGracePeriodSeconds").or_insert(json!(30));
        m.entry("securityContext").or_insert(json!({}));
    }
    containers(pod, "spec.template.spec", errs);
}

fn containers(pod: &mut Value, prefix: &str, errs: &mut Vec<FieldError>) {
    let list = pod.get_mut("containers").and_then(Value::as_array_mut);
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        errs.push(FieldError::required(format!("{prefix}.containers")));
        return;
    };
    let mut seen = Vec::new();
    for (i, c) in list.iter_mut().enumerate() {
        let name = str_at(c, "/name").to_string();
        if name.is_empty() {
            errs.push(FieldError::required(format!("{prefix}.containers[{i}].name")));
        } else if seen.contains(&name) {
            errs.push(FieldError::duplicate(format!("{prefix}.containers[{i}].name"), &json!(name)));
        }
        seen.push(name);
        if str_at(c, "/image").trim().is_empty() {
            errs.push(FieldError::required(format!("{prefix}.containers[{i}].image")));
        }
        if let Some(m) = c.as_object_mut() {
            m.entry("terminationMessagePath").or_insert(json!("/dev/termination-log"));
            m.entry("terminationMessagePolicy").or_insert(json!("File"));
            m.entry("imagePullPolicy").or_insert(json!("IfNotPresent"));
        }
        if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
            for (j, p) in ports.iter_mut().enumerate() {
                if p.get("containerPort").and_then(Value::as_i64).is_none_or(|n| !(1..=65535).contains(&n)) {
                    errs.push(FieldError::required(format!("{prefix}.containers[{i}].ports[{j}].containerPort")));
                }
                default(p, "", "protocol", json!("TCP"));
            }
        }
    }
}

/// A ClusterIP from 10.96.0.0/12, as the allocator would hand out (not checked for reuse).
fn cluster_ip() -> String {
    let n = uuid::Uuid::new_v4().as_u128();
    format!("10.96.{}.{}", (n >> 8) as u8, ((n as u8) % 254) + 1)
}

fn service(obj: &mut Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    default(obj, "/spec", "type", json!("ClusterIP"));
    default(obj, "/spec", "sessionAffinity", json!("None"));
    default(obj, "/spec", "internalTrafficPolicy", json!("Cluster"));
    let ty = str_at(obj, "/spec/type").to_string();
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty.as_str()) {
        errs.push(FieldError::not_supported(
            "spec.type",
            &json!(ty),
            &[json!("ClusterIP"), json!("ExternalName"), json!("LoadBalancer"), json!("NodePort")],
        ));
    }
    if ty != "ExternalName" {
        let previous = old.map(|o| str_at(o, "/spec/clusterIP").to_string()).filter(|s| !s.is_empty());
        let ip = match str_at(obj, "/spec/clusterIP") {
            "" => previous.clone().unwrap_or_else(cluster_ip),
            ip => ip.to_string(),
        };
        if let Some(prev) = previous
            && prev != ip
        {
            errs.push(FieldError::invalid("spec.clusterIPs[0]", &json!(ip), "may not change once set"));
        }
        obj["spec"]["clusterIP"] = json!(ip);
        obj["spec"]["clusterIPs"] = json!([ip]);
        default(obj, "/spec", "ipFamilies", json!(["IPv4"]));
        default(obj, "/spec", "ipFamilyPolicy", json!("SingleStack"));
        let empty = obj.pointer("/spec/ports").and_then(Value::as_array).is_none_or(Vec::is_empty);
        if empty && ip != "None" {
            errs.push(FieldError::required("spec.ports"));
        }
    }
    if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        let multiple = ports.len() > 1;
        for (i, p) in ports.iter_mut().enumerate() {
            let port = p.get("port").and_then(Value::as_i64);
            if port.is_none_or(|n| !(1..=65535).contains(&n)) {
                errs.push(FieldError::required(format!("spec.ports[{i}].port")));
            }
            if multiple && str_at(p, "/name").is_empty() {
                errs.push(FieldError::required(format!("spec.ports[{i}].name")));
            }
            default(p, "", "protocol", json!("TCP"));
            if let Some(port) = port {
                default(p, "", "targetPort", json!(port));
            }
        }
    }
    if obj.get("status").is_none() {
        obj["status"] = json!({"loadBalancer": {}});
    }
}

fn rules(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(rules) = obj.get("rules").and_then(Value::as_array) else {
        return;
    };
    for (i, r) in rules.iter().enumerate() {
        if r.get("verbs").and_then(Value::as_array).is_none_or(Vec::is_empty) {
            errs.push(FieldError::required(format!("rules[{i}].verbs")));
        }
        let has = |k: &str| r.get(k).and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        if !has("nonResourceURLs") && !has("resources") {
            errs.push(FieldError::required(format!("rules[{i}].resources")));
        }
    }
}

fn binding(b: Builtin, obj: &Value, errs: &mut Vec<FieldError>) {
    let kind = str_at(obj, "/roleRef/kind");
    let allowed: &[&str] = if b == Builtin::RoleBinding { &["Role", "ClusterRole"] } else { &["ClusterRole"] };
    if !allowed.contains(&kind) {
        let list: Vec<Value> = allowed.iter().map(|k| json!(k)).collect();
        errs.push(FieldError::not_supported("roleRef.kind", &json!(kind), &list));
    }
    if str_at(obj, "/roleRef/name").is_empty() {
        errs.push(FieldError::required("roleRef.name"));
    }
    if str_at(obj, "/roleRef/apiGroup") != "rbac.authorization.k8s.io" {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &json!(str_at(obj, "/roleRef/apiGroup")),
            &[json!("rbac.authorization.k8s.io")],
        ));
    }
    for (i, s) in obj.get("subjects").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if str_at(s, "/name").is_empty() {
            errs.push(FieldError::required(format!("subjects[{i}].name")));
        }
        if str_at(s, "/kind") == "ServiceAccount" && str_at(s, "/namespace").is_empty() {
            errs.push(FieldError::required(format!("subjects[{i}].namespace")));
        }
    }
}

fn pdb(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Object(Map::new()));
    if spec.get("minAvailable").is_some() && spec.get("maxUnavailable").is_some() {
        errs.push(FieldError::invalid("spec", &spec, "minAvailable and maxUnavailable cannot be both set"));
    }
}
