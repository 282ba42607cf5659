//! Which resources are served: the built-in ones and those defined by CRDs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::schema::CompiledVersion;
use crate::status::{FieldError, Qualified};

/// Built-in kinds with server-side behaviour of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    Namespace,
    Secret,
    ConfigMap,
    CoreEvent,
    Event,
    Lease,
    Crd,
    Deployment,
    Service,
    ServiceAccount,
    ClusterRole,
    ClusterRoleBinding,
    Role,
    RoleBinding,
    PodDisruptionBudget,
}

/// Storage key of a resource: `(group, plural)`.
pub(crate) type ResKey = (String, String);

/// One served resource.
#[derive(Clone, Debug)]
pub(crate) struct ResourceDef {
    pub group: String,
    /// Served versions; the first is the storage version.
    pub versions: Vec<String>,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    pub status_subresource: bool,
    /// `metadata.generation` is maintained (custom resources and CRDs).
    pub has_generation: bool,
    /// PUT without `metadata.resourceVersion` is allowed.
    pub unconditional_update: bool,
    pub builtin: Option<Builtin>,
    /// Per served version: compiled schema (custom resources only).
    pub schemas: BTreeMap<String, Arc<CompiledVersion>>,
    /// `spec.versions[].selectableFields[].jsonPath` of a CRD (per version).
    pub selectable_fields: BTreeMap<String, Vec<String>>,
    /// `spec.versions[].additionalPrinterColumns` of a CRD (per version).
    pub printer_columns: BTreeMap<String, Vec<Value>>,
}

impl ResourceDef {
    pub fn key(&self) -> ResKey {
        (self.group.clone(), self.plural.clone())
    }

    pub fn qualified(&self) -> Qualified {
        Qualified { group: self.group.clone(), plural: self.plural.clone(), kind: self.kind.clone() }
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() { version.to_string() } else { format!("{}/{version}", self.group) }
    }

    fn in_category(mut self, category: &str) -> Self {
        self.categories.push(category.to_string());
        self
    }

    pub fn is_custom(&self) -> bool {
        self.builtin.is_none()
    }

    #[allow(clippy::too_many_arguments)]
    fn builtin(
        b: Builtin,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short: &[&str],
        status: bool,
    ) -> Self {
        Self {
            group: group.to_string(),
            versions: vec![version.to_string()],
            kind: kind.to_string(),
            list_kind: format!("{kind}List"),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: Vec::new(),
            namespaced,
            status_subresource: status,
            has_generation: matches!(b, Builtin::Crd | Builtin::Deployment | Builtin::PodDisruptionBudget),
            unconditional_update: b != Builtin::Crd,
            builtin: Some(b),
            schemas: BTreeMap::new(),
            selectable_fields: BTreeMap::new(),
            printer_columns: BTreeMap::new(),
        }
    }
}

const RBAC: &str = "rbac.authorization.k8s.io";

/// The resources every fake server starts with.
pub(crate) fn builtins() -> Vec<ResourceDef> {
    use Builtin::*;
    vec![
        ResourceDef::builtin(Namespace, "", "v1", "Namespace", "namespaces", false, &["ns"], true),
        ResourceDef::builtin(Secret, "", "v1", "Secret", "secrets", true, &[], false),
        ResourceDef::builtin(ConfigMap, "", "v1", "ConfigMap", "configmaps", true, &["cm"], false),
        ResourceDef::builtin(CoreEvent, "", "v1", "Event", "events", true, &["ev"], false),
        ResourceDef::builtin(Event, "events.k8s.io", "v1", "Event", "events", true, &["ev"], false),
        ResourceDef::builtin(Lease, "coordination.k8s.io", "v1", "Lease", "leases", true, &[], false),
        ResourceDef::builtin(
            Crd,
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
        ),
        ResourceDef::builtin(Deployment, "apps", "v1", "Deployment", "deployments", true, &["deploy"], true)
            .in_category("all"),
        ResourceDef::builtin(Service, "", "v1", "Service", "services", true, &["svc"], true).in_category("all"),
        ResourceDef::builtin(ServiceAccount, "", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], false),
        ResourceDef::builtin(ClusterRole, RBAC, "v1", "ClusterRole", "clusterroles", false, &[], false),
        ResourceDef::builtin(
            ClusterRoleBinding,
            RBAC,
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            false,
        ),
        ResourceDef::builtin(Role, RBAC, "v1", "Role", "roles", true, &[], false),
        ResourceDef::builtin(RoleBinding, RBAC, "v1", "RoleBinding", "rolebindings", true, &[], false),
        ResourceDef::builtin(
            PodDisruptionBudget,
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            &["pdb"],
            true,
        ),
    ]
}

/// The served resources, looked up by path or by kind.
#[derive(Default)]
pub(crate) struct Registry {
    defs: BTreeMap<ResKey, ResourceDef>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let mut r = Self::default();
        for d in builtins() {
            r.insert(d);
        }
        r
    }

    pub fn insert(&mut self, d: ResourceDef) {
        self.defs.insert(d.key(), d);
    }

    pub fn remove(&mut self, key: &ResKey) {
        self.defs.remove(key);
    }

    pub fn get(&self, key: &ResKey) -> Option<&ResourceDef> {
        self.defs.get(key)
    }

    /// Resolve a request path's group, version and plural.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        self.defs.get(&(group.to_string(), plural.to_string())).filter(|d| d.versions.iter().any(|v| v == version))
    }

    /// Resolve an `apiVersion` + `kind` pair (owner references).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceDef> {
        let (group, version) = split_api_version(api_version);
        self.defs.values().find(|d| d.group == group && d.kind == kind && d.versions.iter().any(|v| v == version))
    }

    pub fn all(&self) -> impl Iterator<Item = &ResourceDef> {
        self.defs.values()
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Turn a CRD object into the resource it defines, or say what is wrong with it.
pub(crate) fn resource_from_crd(crd: &Value) -> Result<ResourceDef, Vec<FieldError>> {
    let mut errs = Vec::new();
    let group = str_at(crd, &["spec", "group"]).unwrap_or_default().to_string();
    let plural = str_at(crd, &["spec", "names", "plural"]).unwrap_or_default().to_string();
    let kind = str_at(crd, &["spec", "names", "kind"]).unwrap_or_default().to_string();
    let name = str_at(crd, &["metadata", "name"]).unwrap_or_default();
    if group.is_empty() {
        errs.push(FieldError::required("spec.group"));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid("spec.group", &json!(group), "should be a domain with at least one dot"));
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural"));
    }
    if kind.is_empty() {
        errs.push(FieldError::required("spec.names.kind"));
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            &format!("must be spec.names.plural+\".\"+spec.group: \"{plural}.{group}\""),
        ));
    }
    let scope = str_at(crd, &["spec", "scope"]).unwrap_or_default();
    let namespaced = match scope {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            errs.push(FieldError::not_supported("spec.scope", &json!(other), &[json!("Cluster"), json!("Namespaced")]));
            true
        }
    };
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required("spec.versions"));
    }
    let storage: Vec<&Value> =
        versions.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true)).collect();
    if !versions.is_empty() && storage.len() != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            &json!(storage.len()),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut served = Vec::new();
    let mut schemas = BTreeMap::new();
    let mut selectable = BTreeMap::new();
    let mut printer_columns = BTreeMap::new();
    let mut status_subresource = false;
    for (i, v) in versions.iter().enumerate() {
        let vname = v.get("name").and_then(Value::as_str).unwrap_or_default();
        if vname.is_empty() {
            errs.push(FieldError::required(format!("spec.versions[{i}].name")));
            continue;
        }
        if v.get("served").and_then(Value::as_bool) == Some(true) {
            if v.get("storage").and_then(Value::as_bool) == Some(true) {
                served.insert(0, vname.to_string());
            } else {
                served.push(vname.to_string());
            }
        }
        if v.pointer("/subresources/status").is_some() {
            status_subresource = true;
        }
        match v.pointer("/schema/openAPIV3Schema") {
            Some(s) => {
                let prefix = format!("spec.versions[{i}].schema.openAPIV3Schema");
                match CompiledVersion::compile(s, &prefix) {
                    Ok(c) => {
                        schemas.insert(vname.to_string(), Arc::new(c));
                    }
                    Err(mut e) => errs.append(&mut e),
                }
            }
            None => errs.push(FieldError::required(format!("spec.versions[{i}].schema.openAPIV3Schema"))),
        }
        let fields: Vec<String> = v
            .get("selectableFields")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                    .map(|p| p.trim_start_matches('.').to_string())
                    .collect()
            })
            .unwrap_or_default();
        selectable.insert(vname.to_string(), fields);
        let columns = v.get("additionalPrinterColumns").and_then(Value::as_array).cloned().unwrap_or_default();
        printer_columns.insert(vname.to_string(), columns);
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let names = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
    let strings = |key: &str| -> Vec<String> {
        names
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    Ok(ResourceDef {
        group,
        versions: served,
        list_kind: str_at(&names, &["listKind"]).map(str::to_string).unwrap_or_else(|| format!("{kind}List")),
        singular: str_at(&names, &["singular"]).map(str::to_string).unwrap_or_else(|| kind.to_lowercase()),
        kind,
        plural,
        short_names: strings("shortNames"),
        categories: strings("categories"),
        namespaced,
        status_subresource,
        has_generation: true,
        unconditional_update: false,
        builtin: None,
        schemas,
        selectable_fields: selectable,
        printer_columns,
    })
}
