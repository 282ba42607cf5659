//! `validate`'s offline OpenAPI check: every clodo.dev document is checked against the schema of
//! its CRD (types, enums, patterns, ranges, lengths, required fields, unknown fields, CEL rules)
//! the way the API server admits it, using kube-fake-api's implementation of that admission.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

/// Problems found in one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaFinding {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `field: message` lines.
    pub errors: Vec<String>,
}

/// Why the check could not run.
#[derive(Debug, thiserror::Error)]
pub enum SchemaCheckError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: document {doc} is not valid YAML: {message}")]
    Yaml { path: PathBuf, doc: usize, message: String },
    #[error("CRD schema for {0} cannot be rendered")]
    Schema(String),
}

/// The `openAPIV3Schema` of each clodo.dev kind.
fn schemas() -> Result<BTreeMap<String, Value>, SchemaCheckError> {
    let mut out = BTreeMap::new();
    for (_, crd) in crate::crd::all_crds() {
        let kind = crd.spec.names.kind.clone();
        let schema = crd
            .spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
            .ok_or_else(|| SchemaCheckError::Schema(kind.clone()))?;
        out.insert(kind, schema);
    }
    Ok(out)
}

/// Check every clodo.dev document of the files; returns only documents with problems.
pub fn check(files: &[PathBuf]) -> Result<Vec<SchemaFinding>, SchemaCheckError> {
    let schemas = schemas()?;
    let mut findings = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(path).map_err(|source| SchemaCheckError::Read { path: path.clone(), source })?;
        for (i, doc) in serde_norway::Deserializer::from_str(&text).enumerate() {
            let value = serde_norway::Value::deserialize(doc).map_err(|e| SchemaCheckError::Yaml {
                path: path.clone(),
                doc: i + 1,
                message: e.to_string(),
            })?;
            let json: Value = serde_json::to_value(value).unwrap_or(Value::Null);
            let mut items = vec![json.clone()];
            if json.get("kind").and_then(Value::as_str) == Some("List") {
                items = json.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            }
            for obj in items {
                if obj.get("apiVersion").and_then(Value::as_str) != Some("clodo.dev/v1alpha1") {
                    continue;
                }
                let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
                let Some(schema) = schemas.get(&kind) else { continue };
                let errors = crd_admission::check_custom_resource(schema, &obj);
                if !errors.is_empty() {
                    let meta =
                        |k: &str| obj.pointer(&format!("/metadata/{k}")).and_then(Value::as_str).map(str::to_string);
                    findings.push(SchemaFinding {
                        kind,
                        namespace: meta("namespace").unwrap_or_else(|| "default".into()),
                        name: meta("name").unwrap_or_default(),
                        errors,
                    });
                }
            }
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_ranges_and_required_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("svc.yaml");
        std::fs::write(
            &f,
            r#"
apiVersion: clodo.dev/v1alpha1
kind: CloudflareService
metadata: { name: api }
spec:
  customerRef: { name: acme }
  environment: production
  scriptName: "Bad_Name"
  worker:
    mainModule: index.js
    source: { configMapRef: { name: code } }
    compatibilityDate: "2025-1-1"
  productionTests: { timeoutSeconds: 500 }
  surprise: 1
---
apiVersion: clodo.dev/v1alpha1
kind: Customer
metadata: { name: acme }
spec: { accountId: "0123456789abcdef0123456789abcdef" }
"#,
        )
        .unwrap();
        let found = check(&[f]).unwrap();
        let svc = found.iter().find(|x| x.kind == "CloudflareService").expect("service findings");
        let all = svc.errors.join("\n");
        for needle in
            ["spec.scriptName", "spec.worker.compatibilityDate", "spec.productionTests.timeoutSeconds", "spec.surprise"]
        {
            assert!(all.contains(needle), "{needle} missing in:\n{all}");
        }
        let cust = found.iter().find(|x| x.kind == "Customer").expect("customer findings");
        assert!(cust.errors.join("\n").contains("spec.apiTokenSecretRef"), "{:?}", cust.errors);
    }
}
