//! Field-level validation errors, rendered like apimachinery's `field.Error`.

use serde_json::Value;

/// One field-level problem, rendered like apimachinery's `field.Error`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// Dotted field path, e.g. `spec.routes[0].pattern`.
    pub field: String,
    /// `FieldValueRequired`, `FieldValueInvalid`, ...
    pub reason: &'static str,
    /// The message without the field path, e.g. `Required value`.
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>) -> Self {
        Self::new(field, "FieldValueRequired", "Required value".to_string())
    }

    pub fn required_because(field: impl Into<String>, why: &str) -> Self {
        Self::new(field, "FieldValueRequired", format!("Required value: {why}"))
    }

    pub fn invalid(field: impl Into<String>, value: &Value, why: &str) -> Self {
        Self::new(field, "FieldValueInvalid", format!("Invalid value: {}: {why}", render_value(value)))
    }

    pub fn type_invalid(field: impl Into<String>, actual: &str, expected: &str) -> Self {
        let field = field.into();
        let detail = format!("Invalid value: \"{actual}\": {field} in body must be of type {expected}: \"{actual}\"");
        Self::new(field, "FieldValueTypeInvalid", detail)
    }

    pub fn not_supported(field: impl Into<String>, value: &Value, allowed: &[Value]) -> Self {
        let allowed: Vec<String> = allowed.iter().map(render_value).collect();
        Self::new(
            field,
            "FieldValueNotSupported",
            format!("Unsupported value: {}: supported values: {}", render_value(value), allowed.join(", ")),
        )
    }

    pub fn forbidden(field: impl Into<String>, why: &str) -> Self {
        Self::new(field, "FieldValueForbidden", format!("Forbidden: {why}"))
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Self::new(field, "FieldValueDuplicate", format!("Duplicate value: {}", render_value(value)))
    }

    pub fn too_long(field: impl Into<String>, max: u64) -> Self {
        Self::new(field, "FieldValueTooLong", format!("Too long: may not be more than {max} bytes"))
    }

    pub fn too_many(field: impl Into<String>, actual: usize, max: u64) -> Self {
        Self::new(field, "FieldValueTooMany", format!("Too many: {actual}: must have at most {max} items"))
    }

    pub fn new(field: impl Into<String>, reason: &'static str, detail: String) -> Self {
        Self { field: field.into(), reason, detail }
    }

    pub fn render(&self) -> String {
        let field = if self.field.is_empty() { "<nil>" } else { &self.field };
        format!("{field}: {}", self.detail)
    }
}

/// Render a value the way apimachinery error messages quote them.
pub fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// The JSON type name used in `Invalid value: "<type>"` messages.
pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
