//! Admission of custom resources the way the Kubernetes API server does it, without a server:
//! structural OpenAPI v3 schemas (pruning, defaulting, validation) and CEL
//! (`x-kubernetes-validations`) rules. Shared by `clodo-operator validate` and kube-fake-api, so
//! the offline check and the test API server agree on what is valid.

pub mod field;
pub mod schema;

/// Offline check of one custom resource against a CRD version's `openAPIV3Schema`, the way the
/// server admits a create with `fieldValidation=Strict`: unknown fields, then defaults, then the
/// structural schema (types, enums, patterns, ranges, lengths, required) and the CEL rules.
/// Returns one `field: message` line per problem; empty when the object would be admitted.
/// Used by `clodo-operator validate`, so CI and the fake server agree on what is valid.
pub fn check_custom_resource(schema: &serde_json::Value, obj: &serde_json::Value) -> Vec<String> {
    let compiled = match schema::CompiledVersion::compile(schema, "openAPIV3Schema") {
        Ok(c) => c,
        Err(errs) => return errs.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect(),
    };
    let mut obj = obj.clone();
    let mut out: Vec<String> = compiled.prune(&mut obj).into_iter().map(|u| format!("{u}: unknown field")).collect();
    compiled.apply_defaults(&mut obj);
    out.extend(
        compiled
            .validate(&obj, None)
            .into_iter()
            .map(|e| if e.field.is_empty() { e.detail } else { format!("{}: {}", e.field, e.detail) }),
    );
    out
}
