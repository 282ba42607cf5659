//! Patch formats: JSON merge patch, JSON patch, strategic merge (see `smp`)
//! and server-side apply (see `managed`).

use serde_json::Value;

use crate::status::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    /// From the request's `Content-Type` (parameters ignored).
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" => Ok(Self::Apply),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json-patch+json",
            Self::Merge => "application/merge-patch+json",
            Self::Strategic => "application/strategic-merge-patch+json",
            Self::Apply => "application/apply-patch+yaml",
        }
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Apply a non-apply patch to a copy of the stored object.
/// Errors applying a well-formed patch come back with code 422.
pub(crate) fn apply_patch(kind: PatchKind, target: &mut Value, body: &[u8]) -> Result<(), ApiError> {
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
            for op in ops.0.iter() {
                // Like the Go implementation the real server uses, `test` for null
                // succeeds on a missing path (kube's finalizer helper relies on it).
                if let json_patch::PatchOperation::Test(t) = op
                    && t.value.is_null()
                    && target.pointer(t.path.as_str()).is_none()
                {
                    continue;
                }
                json_patch::patch(target, std::slice::from_ref(op)).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!("the server rejected our request due to an error in our request: {e}"),
                    )
                })?;
            }
            Ok(())
        }
        PatchKind::Merge => {
            let p = parse_json(body)?;
            if !p.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(target, &p);
            Ok(())
        }
        PatchKind::Strategic => {
            let p = parse_json(body)?;
            if !p.is_object() {
                return Err(ApiError::bad_request("a strategic merge patch must be a JSON object"));
            }
            crate::smp::merge(target, &p);
            Ok(())
        }
        PatchKind::Apply => Err(ApiError::internal("apply patches go through server-side apply")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_deletes_with_null() {
        let mut t = json!({"data": {"a": "1", "b": "2"}});
        apply_patch(PatchKind::Merge, &mut t, br#"{"data": {"a": null, "c": "3"}}"#).expect("applies");
        assert_eq!(t, json!({"data": {"b": "2", "c": "3"}}));
    }

    #[test]
    fn json_patch_test_failure_is_422() {
        let mut t = json!({"metadata": {"finalizers": ["a"]}});
        let e = apply_patch(
            PatchKind::Json,
            &mut t,
            br#"[{"op": "test", "path": "/metadata/finalizers/0", "value": "b"}, {"op": "remove", "path": "/metadata/finalizers/0"}]"#,
        )
        .unwrap_err();
        assert_eq!(e.code, 422);
        let e = apply_patch(PatchKind::Json, &mut t, b"{}").unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn json_patch_test_for_null_passes_on_missing_path() {
        let mut t = json!({"metadata": {}});
        apply_patch(
            PatchKind::Json,
            &mut t,
            br#"[{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata/finalizers", "value": ["a"]}]"#,
        )
        .expect("applies");
        assert_eq!(t["metadata"]["finalizers"], json!(["a"]));
    }

    #[test]
    fn strategic_merges_finalizers_as_a_set() {
        let mut t = json!({"metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "x"}]}});
        apply_patch(
            PatchKind::Strategic,
            &mut t,
            br#"{"metadata": {"finalizers": ["b", "a"], "ownerReferences": [{"uid": "2", "name": "y"}]}}"#,
        )
        .expect("applies");
        assert_eq!(t["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(t["metadata"]["ownerReferences"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8").ok(),
            Some(PatchKind::Merge)
        );
        assert_eq!(PatchKind::from_content_type("text/plain").unwrap_err().code, 415);
    }
}
