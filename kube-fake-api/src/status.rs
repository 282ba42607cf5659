//! `metav1.Status` error responses, shaped like the real API server's.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

pub(crate) use crd_admission::field::FieldError;

/// An error answered as a `kind: Status` body with a matching HTTP code.
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// What an error message names: `configmaps` or `widgets.example.com`, plus the kind.
#[derive(Clone, Debug)]
pub(crate) struct Qualified {
    pub group: String,
    pub plural: String,
    pub kind: String,
}

impl Qualified {
    fn resource(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    fn kind_group(&self) -> String {
        if self.group.is_empty() { self.kind.clone() } else { format!("{}.{}", self.kind, self.group) }
    }

    fn details(&self, name: &str) -> Value {
        json!({ "name": name, "group": self.group, "kind": self.plural })
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None }
    }

    pub fn not_found(q: &Qualified, name: &str) -> Self {
        let mut e = Self::new(404, "NotFound", format!("{} \"{name}\" not found", q.resource()));
        e.details = Some(q.details(name));
        e
    }

    pub fn path_not_found() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    pub fn already_exists(q: &Qualified, name: &str) -> Self {
        let mut e = Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", q.resource()));
        e.details = Some(q.details(name));
        e
    }

    pub fn conflict(q: &Qualified, name: &str, why: &str) -> Self {
        let mut e =
            Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{name}\": {why}", q.resource()));
        e.details = Some(q.details(name));
        e
    }

    pub fn stale(q: &Qualified, name: &str) -> Self {
        Self::conflict(
            q,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn invalid(q: &Qualified, name: &str, errors: &[FieldError]) -> Self {
        let rendered: Vec<String> = errors.iter().map(FieldError::render).collect();
        let joined = if rendered.len() == 1 { rendered[0].clone() } else { format!("[{}]", rendered.join(", ")) };
        let causes: Vec<Value> =
            errors.iter().map(|e| json!({ "reason": e.reason, "message": e.detail, "field": e.field })).collect();
        let mut details = q.details(name);
        details["kind"] = Value::String(q.kind.clone());
        details["causes"] = Value::Array(causes);
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{} \"{name}\" is invalid: {joined}", q.kind_group()),
            details: Some(details),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

/// The default reason for an HTTP status code (used by injected faults).
pub(crate) fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

/// A JSON response with `Content-Type: application/json`.
pub(crate) fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.code, &self.to_status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> Qualified {
        Qualified { group: "clodo.dev".into(), plural: "widgets".into(), kind: "Widget".into() }
    }

    #[test]
    fn invalid_message_names_field_and_value() {
        let e = ApiError::invalid(
            &q(),
            "w",
            &[FieldError::not_supported(
                "spec.environment",
                &json!("prod"),
                &[json!("development"), json!("production")],
            )],
        );
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Widget.clodo.dev \"w\" is invalid: spec.environment: Unsupported value: \"prod\": supported values: \"development\", \"production\""
        );
        let s = e.to_status();
        assert_eq!(s["details"]["causes"][0]["field"], "spec.environment");
        assert_eq!(s["reason"], "Invalid");
    }

    #[test]
    fn several_errors_are_bracketed() {
        let e = ApiError::invalid(&q(), "w", &[FieldError::required("spec.a"), FieldError::required("spec.b")]);
        assert!(e.message.ends_with("[spec.a: Required value, spec.b: Required value]"));
    }

    #[test]
    fn not_found_for_core_group_has_no_suffix() {
        let core = Qualified { group: String::new(), plural: "configmaps".into(), kind: "ConfigMap".into() };
        assert_eq!(ApiError::not_found(&core, "x").message, "configmaps \"x\" not found");
    }
}
