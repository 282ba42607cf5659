//! Structural OpenAPI v3 schema handling for custom resources: pruning,
//! defaulting, validation and CEL (`x-kubernetes-validations`) rules.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::{Map, Value, json};

use crate::field::{FieldError, json_type_name};

/// One CRD version's schema, with its CEL rules compiled once.
#[derive(Debug)]
pub struct CompiledVersion {
    pub schema: Value,
    cel: Option<kube_cel::CompiledSchema>,
}

impl CompiledVersion {
    /// Compile the CEL rules of a schema; compilation failures are CRD validation errors.
    pub fn compile(schema: &Value, prefix: &str) -> Result<Self, Vec<FieldError>> {
        let mut errs = Vec::new();
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            errs.push(FieldError::required_because(format!("{prefix}.type"), "must be object at the root"));
        }
        let has_rules = contains_rules(schema);
        let cel = if has_rules {
            let compiled = kube_cel::compile_schema(schema);
            collect_compile_errors(&compiled, prefix, &mut errs);
            Some(compiled)
        } else {
            None
        };
        if errs.is_empty() { Ok(Self { schema: schema.clone(), cel }) } else { Err(errs) }
    }

    /// Drop fields the schema does not declare; returns their paths.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut unknown = Vec::new();
        prune_node(&self.schema, obj, "", &mut unknown, true);
        unknown
    }

    /// Fill in schema `default`s for missing fields.
    pub fn apply_defaults(&self, obj: &mut Value) {
        *obj = kube_cel::apply_defaults(&self.schema, obj);
    }

    /// Validate against the schema, then (if that passed) the CEL rules.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        validate_object_root(&self.schema, obj, &mut errs);
        let Some(cel) = &self.cel else {
            return errs;
        };
        // Like the real server: type and required errors block CEL evaluation.
        let blocking = errs.iter().any(|e| matches!(e.reason, "FieldValueTypeInvalid" | "FieldValueRequired"));
        if blocking {
            errs.push(FieldError::invalid(
                "",
                &Value::Null,
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
        } else {
            let validator = kube_cel::Validator::new();
            if let Err(cel_errs) = validator.validate_compiled(cel, obj, old) {
                for e in cel_errs.iter() {
                    errs.push(cel_error(obj, e));
                }
            }
        }
        errs
    }
}

fn contains_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => m.contains_key("x-kubernetes-validations") || m.values().any(contains_rules),
        Value::Array(a) => a.iter().any(contains_rules),
        _ => false,
    }
}

fn collect_compile_errors(c: &kube_cel::CompiledSchema, path: &str, errs: &mut Vec<FieldError>) {
    for (i, r) in c.validations.iter().enumerate() {
        if let Err(e) = r {
            errs.push(FieldError::new(
                format!("{path}.x-kubernetes-validations[{i}].rule"),
                "FieldValueInvalid",
                format!("Invalid value: compilation failed: {e}"),
            ));
        }
    }
    for (k, child) in &c.properties {
        collect_compile_errors(child, &format!("{path}.properties[{k}]"), errs);
    }
    if let Some(items) = &c.items {
        collect_compile_errors(items, &format!("{path}.items"), errs);
    }
    if let Some(ap) = &c.additional_properties {
        collect_compile_errors(ap, &format!("{path}.additionalProperties"), errs);
    }
}

fn cel_error(obj: &Value, e: &kube_cel::ValidationError) -> FieldError {
    let ty = value_at_path(obj, &e.field_path).map(json_type_name).unwrap_or("object");
    let msg = e.message.as_str();
    match e.reason.as_deref() {
        Some("FieldValueForbidden") => FieldError::forbidden(e.field_path.clone(), msg),
        Some("FieldValueRequired") => FieldError::required_because(e.field_path.clone(), msg),
        Some("FieldValueDuplicate") => {
            FieldError::new(e.field_path.clone(), "FieldValueDuplicate", format!("Duplicate value: {msg}"))
        }
        _ => FieldError::new(e.field_path.clone(), "FieldValueInvalid", format!("Invalid value: \"{ty}\": {msg}")),
    }
}

/// Resolve `spec.routes[0].pattern` in an object.
fn value_at_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    if path.is_empty() {
        return Some(cur);
    }
    for part in path.split('.') {
        let (name, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            let idx = idx.trim_end_matches(']');
            cur = match idx.parse::<usize>() {
                Ok(i) if cur.is_array() => cur.get(i)?,
                _ => cur.get(idx)?,
            };
        }
    }
    Some(cur)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn prune_node(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>, root: bool) {
    match value {
        Value::Object(map) => {
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let embedded = root || flag(schema, "x-kubernetes-embedded-resource");
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if embedded && (k == "apiVersion" || k == "kind" || k == "metadata") {
                    continue;
                }
                let child_schema = props.and_then(|p| p.get(&k)).or_else(|| additional.filter(|a| a.is_object()));
                let child_path =
                    if props.is_some_and(|p| p.contains_key(&k)) { join(path, &k) } else { format!("{path}[{k}]") };
                match child_schema {
                    Some(cs) => {
                        let is_null = map.get(&k).is_some_and(Value::is_null);
                        if is_null && !flag(cs, "nullable") {
                            map.remove(&k);
                            continue;
                        }
                        if let Some(child) = map.get_mut(&k) {
                            prune_node(cs, child, &child_path, unknown, false);
                        }
                    }
                    None => {
                        let allowed = preserve || additional.and_then(Value::as_bool) == Some(true);
                        if !allowed {
                            map.remove(&k);
                            unknown.push(join(path, &k));
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_node(is, item, &format!("{path}[{i}]"), unknown, false);
                }
            }
        }
        _ => {}
    }
}

fn validate_object_root(schema: &Value, obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(map) = obj.as_object() else {
        errs.push(FieldError::type_invalid("", json_type_name(obj), "object"));
        return;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                errs.push(FieldError::required(r));
            }
        }
    }
    for (k, v) in map {
        if k == "apiVersion" || k == "kind" || k == "metadata" {
            continue;
        }
        if let Some(cs) = props.and_then(|p| p.get(k)) {
            validate_node(cs, v, k, errs);
        }
    }
}

fn regex_cache() -> &'static Mutex<HashMap<String, Option<Regex>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn pattern_matches(pattern: &str, s: &str) -> bool {
    let mut cache = match regex_cache().lock() {
        Ok(c) => c,
        Err(poisoned) => poisoned.into_inner(),
    };
    let re = cache.entry(pattern.to_string()).or_insert_with(|| Regex::new(pattern).ok());
    re.as_ref().is_none_or(|re| re.is_match(s))
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        _ => true,
    }
}

fn num(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn uint(schema: &Value, key: &str) -> Option<u64> {
    schema.get(key).and_then(Value::as_u64)
}

fn format_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { f.to_string() }
}

fn validate_node(schema: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if v.is_null() {
        if !flag(schema, "nullable") {
            let expected = schema.get("type").and_then(Value::as_str).unwrap_or("object");
            errs.push(FieldError::type_invalid(path, "null", expected));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(v.is_string() || type_matches("integer", v)) {
            errs.push(FieldError::type_invalid(path, json_type_name(v), "integer-or-string"));
            return;
        }
    } else if let Some(ty) = schema.get("type").and_then(Value::as_str)
        && !type_matches(ty, v)
    {
        errs.push(FieldError::type_invalid(path, json_type_name(v), ty));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| json_eq(a, v))
    {
        errs.push(FieldError::not_supported(path, v, allowed));
    }
    match v {
        Value::String(s) => validate_string(schema, s, v, path, errs),
        Value::Number(_) => validate_number(schema, v, path, errs),
        Value::Array(items) => validate_array(schema, items, v, path, errs),
        Value::Object(map) => validate_map(schema, map, v, path, errs),
        _ => {}
    }
    validate_junctors(schema, v, path, errs);
}

fn validate_string(schema: &Value, s: &str, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let len = s.chars().count() as u64;
    if let Some(max) = uint(schema, "maxLength")
        && len > max
    {
        errs.push(FieldError::too_long(path, max));
    }
    if let Some(min) = uint(schema, "minLength")
        && len < min
    {
        errs.push(FieldError::invalid(path, v, &format!("{path} in body should be at least {min} chars long")));
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str)
        && !pattern_matches(p, s)
    {
        errs.push(FieldError::invalid(path, v, &format!("{path} in body should match '{p}'")));
    }
}

fn validate_number(schema: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(f) = v.as_f64() else { return };
    if let Some(min) = num(schema, "minimum") {
        let exclusive = flag(schema, "exclusiveMinimum");
        if (exclusive && f <= min) || (!exclusive && f < min) {
            let op = if exclusive { "greater than" } else { "greater than or equal to" };
            errs.push(FieldError::invalid(path, v, &format!("{path} in body should be {op} {}", format_num(min))));
        }
    }
    if let Some(max) = num(schema, "maximum") {
        let exclusive = flag(schema, "exclusiveMaximum");
        if (exclusive && f >= max) || (!exclusive && f > max) {
            let op = if exclusive { "less than" } else { "less than or equal to" };
            errs.push(FieldError::invalid(path, v, &format!("{path} in body should be {op} {}", format_num(max))));
        }
    }
    if let Some(m) = num(schema, "multipleOf")
        && m > 0.0
        && (f / m).fract().abs() > 1e-9
    {
        errs.push(FieldError::invalid(path, v, &format!("{path} in body should be a multiple of {}", format_num(m))));
    }
}

fn validate_array(schema: &Value, items: &[Value], v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(max) = uint(schema, "maxItems")
        && items.len() as u64 > max
    {
        errs.push(FieldError::too_many(path, items.len(), max));
    }
    if let Some(min) = uint(schema, "minItems")
        && (items.len() as u64) < min
    {
        errs.push(FieldError::invalid(
            path,
            &json!(items.len()),
            &format!("{path} in body should have at least {min} items"),
        ));
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].iter().any(|p| json_eq(p, item)) {
                    errs.push(FieldError::duplicate(format!("{path}[{i}]"), item));
                }
            }
        }
        Some("map") => {
            let keys = list_map_keys(schema);
            for (i, item) in items.iter().enumerate() {
                let k = key_of(item, &keys);
                if items[..i].iter().any(|p| key_of(p, &keys) == k) {
                    errs.push(FieldError::duplicate(format!("{path}[{i}]"), &k));
                }
            }
        }
        _ => {}
    }
    if flag(schema, "uniqueItems") {
        for (i, item) in items.iter().enumerate() {
            if items[..i].iter().any(|p| json_eq(p, item)) {
                errs.push(FieldError::duplicate(format!("{path}[{i}]"), item));
            }
        }
    }
    let _ = v;
    if let Some(is) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate_node(is, item, &format!("{path}[{i}]"), errs);
        }
    }
}

fn validate_map(schema: &Value, map: &Map<String, Value>, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                errs.push(FieldError::required(join(path, r)));
            }
        }
    }
    if let Some(max) = uint(schema, "maxProperties")
        && map.len() as u64 > max
    {
        errs.push(FieldError::too_many(path, map.len(), max));
    }
    if let Some(min) = uint(schema, "minProperties")
        && (map.len() as u64) < min
    {
        errs.push(FieldError::invalid(path, v, &format!("{path} in body should have at least {min} properties")));
    }
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, child) in map {
        if embedded && (k == "apiVersion" || k == "kind" || k == "metadata") {
            continue;
        }
        if let Some(cs) = props.and_then(|p| p.get(k)) {
            validate_node(cs, child, &join(path, k), errs);
        } else if let Some(cs) = additional {
            validate_node(cs, child, &format!("{path}[{k}]"), errs);
        }
    }
}

fn validate_junctors(schema: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let passes = |s: &Value| {
        let mut e = Vec::new();
        validate_node(s, v, path, &mut e);
        e.is_empty()
    };
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate_node(s, v, path, errs);
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.is_empty()
        && !any.iter().any(passes)
    {
        errs.push(FieldError::invalid(path, v, &format!("{path} in body must validate at least one schema (anyOf)")));
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
        && !one.is_empty()
        && one.iter().filter(|s| passes(s)).count() != 1
    {
        errs.push(FieldError::invalid(
            path,
            v,
            &format!("{path} in body must validate one and only one schema (oneOf)"),
        ));
    }
    if let Some(not) = schema.get("not")
        && passes(not)
    {
        errs.push(FieldError::invalid(path, v, &format!("{path} in body should not validate the given schema")));
    }
}

/// JSON equality where `1` and `1.0` are equal, as in Go's decoded JSON.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// `x-kubernetes-list-map-keys` of a schema node.
pub fn list_map_keys(schema: &Value) -> Vec<String> {
    schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The key object of a map-list item: `{"type": "Ready"}`.
pub fn key_of(item: &Value, keys: &[String]) -> Value {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["environment"],
                    "properties": {
                        "environment": {"type": "string", "enum": ["development", "staging", "production"]},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
                        "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        "vars": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "opt": {"type": "string", "nullable": true}
                    },
                    "x-kubernetes-validations": [{"rule": "!has(self.replicas) || self.replicas != 3", "message": "three is unlucky"}]
                },
                "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
            }
        })
    }

    #[test]
    fn prunes_unknown_fields_but_keeps_preserved_ones() {
        let c = CompiledVersion::compile(&schema(), "s").expect("compiles");
        let mut obj = json!({
            "apiVersion": "x/v1", "kind": "W", "metadata": {"name": "a"},
            "spec": {"environment": "staging", "bogus": 1, "free": {"any": {"thing": 1}}, "vars": {"A": "b"}},
            "extra": true
        });
        let unknown = c.prune(&mut obj);
        assert_eq!(unknown, vec!["extra".to_string(), "spec.bogus".to_string()]);
        assert_eq!(obj["spec"]["free"]["any"]["thing"], 1);
        assert_eq!(obj["spec"]["vars"]["A"], "b");
        assert_eq!(obj["metadata"]["name"], "a");
    }

    #[test]
    fn reports_each_violation_with_its_path() {
        let c = CompiledVersion::compile(&schema(), "s").expect("compiles");
        let obj = json!({"spec": {"environment": "prod", "replicas": 9, "name": "ABC", "tags": ["a", "a", "b"], "vars": {"A": 1}}});
        let errs = c.validate(&obj, None);
        let rendered: Vec<String> = errs.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect();
        assert!(rendered.contains(&"spec.environment: Unsupported value: \"prod\": supported values: \"development\", \"staging\", \"production\"".to_string()), "{rendered:?}");
        assert!(
            rendered.iter().any(|r| r.starts_with(
                "spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 5"
            )),
            "{rendered:?}"
        );
        assert!(rendered.iter().any(|r| r.starts_with("spec.name: Invalid value: \"ABC\"")), "{rendered:?}");
        assert!(rendered.iter().any(|r| r.starts_with("spec.tags: Too many: 3")), "{rendered:?}");
        assert!(rendered.iter().any(|r| r.starts_with("spec.tags[1]: Duplicate value")), "{rendered:?}");
        assert!(rendered.iter().any(|r| r.starts_with("spec.vars[A]: Invalid value: \"integer\"")), "{rendered:?}");
    }

    #[test]
    fn required_and_nulls() {
        let c = CompiledVersion::compile(&schema(), "s").expect("compiles");
        let mut obj = json!({"spec": {"replicas": null, "opt": null}});
        c.prune(&mut obj);
        assert!(obj["spec"].get("replicas").is_none(), "non-nullable null is pruned");
        assert!(obj["spec"].get("opt").is_some(), "nullable null is kept");
        let errs = c.validate(&obj, None);
        assert_eq!(errs[0], FieldError::required("spec.environment"));
        assert_eq!(errs.len(), 2, "a required error blocks CEL: {errs:?}");
        assert!(errs[1].detail.contains("some validation rules were not checked"));
    }

    #[test]
    fn cel_rules_run_after_structural_checks() {
        let c = CompiledVersion::compile(&schema(), "s").expect("compiles");
        let errs = c.validate(&json!({"spec": {"environment": "staging", "replicas": 3}}), None);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "spec");
        assert_eq!(errs[0].detail, "Invalid value: \"object\": three is unlucky");
        assert!(c.validate(&json!({"spec": {"environment": "staging", "replicas": 2}}), None).is_empty());
    }

    #[test]
    fn cel_still_runs_beside_non_blocking_errors() {
        let c = CompiledVersion::compile(&schema(), "s").expect("compiles");
        let errs = c.validate(&json!({"spec": {"environment": "prod", "replicas": 3}}), None);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.environment", "spec"], "{errs:?}");
    }

    #[test]
    fn bad_cel_rule_fails_compilation() {
        let s = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a ==", "message": "m"}]});
        let errs = CompiledVersion::compile(&s, "spec.versions[0].schema.openAPIV3Schema").unwrap_err();
        assert_eq!(errs[0].field, "spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[0].rule");
    }

    #[test]
    fn int_or_string_and_one_of() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "port": {"x-kubernetes-int-or-string": true},
            "choice": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}
        }}}});
        let c = CompiledVersion::compile(&s, "s").expect("compiles");
        assert!(c.validate(&json!({"spec": {"port": "http", "choice": {"a": "x"}}}), None).is_empty());
        let errs = c.validate(&json!({"spec": {"port": true, "choice": {"a": "x", "b": "y"}}}), None);
        assert_eq!(errs.len(), 2, "{errs:?}");
    }
}
