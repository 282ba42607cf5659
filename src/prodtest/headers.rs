//! Request headers of production tests: literal values or Secret keys. Secret values are resolved
//! by the engine's resolve step (the same path as every other Secret) and handed over in
//! [`super::Target::secrets`]; they are never logged or written into results.

use crate::crd::{EndpointTest, ProductionTestsSpec, SecretKeyRef, TestHeader};

/// Key of a resolved Secret value in [`super::Target::secrets`].
pub fn secret_key(r: &SecretKeyRef) -> String {
    format!("{}/{}", r.name, r.key)
}

fn endpoint_refs<'a>(field: String, e: &'a EndpointTest, out: &mut Vec<(String, &'a SecretKeyRef)>) {
    for (i, h) in e.headers.iter().enumerate() {
        if let Some(v) = &h.value_from {
            out.push((format!("{field}.headers[{i}].valueFrom.secretKeyRef"), &v.secret_key_ref));
        }
    }
}

/// Every Secret key the production tests' headers read, with its field path.
pub fn secret_refs(spec: &ProductionTestsSpec) -> Vec<(String, &SecretKeyRef)> {
    let mut out = Vec::new();
    let base = "spec.productionTests";
    for (i, e) in spec.endpoints.iter().enumerate() {
        endpoint_refs(format!("{base}.endpoints[{i}]"), e, &mut out);
    }
    if let Some(f) = &spec.auth_flow {
        endpoint_refs(format!("{base}.authFlow.tokenRequest"), &f.token_request, &mut out);
        endpoint_refs(format!("{base}.authFlow.protected"), &f.protected, &mut out);
    }
    out
}

/// The headers to send, or a message naming the header whose Secret value is missing.
pub fn resolve(headers: &[TestHeader], t: &super::Target) -> Result<Vec<(String, String)>, String> {
    headers
        .iter()
        .map(|h| match (&h.value, &h.value_from) {
            (Some(v), _) => Ok((h.name.clone(), v.clone())),
            (None, Some(vf)) => t
                .secrets
                .get(&secret_key(&vf.secret_key_ref))
                .map(|v| (h.name.clone(), v.expose().to_string()))
                .ok_or_else(|| format!("header {}: Secret value not resolved", h.name)),
            (None, None) => Err(format!("header {}: no value or valueFrom", h.name)),
        })
        .collect()
}
