//! Validation of one uploaded binding against the account: required fields per type and
//! references to resources (D1, KV, R2, queues, Durable Object classes, other Workers).

use serde_json::Value;

use crate::envelope::ApiError;
use crate::model::{Account, Version};
use crate::workers::{binding_name, binding_type};

/// Binding to a class without a namespace (no migration applied).
pub(crate) const CODE_DO_CLASS: u32 = 10061;
/// Service binding to a Worker that does not exist (code unconfirmed).
pub(crate) const CODE_SERVICE_NOT_FOUND: u32 = 10143;

fn err(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(10021, msg)
}

fn str_field<'a>(b: &'a Value, key: &str) -> Option<&'a str> {
    b.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn required<'a>(b: &'a Value, name: &str, kind: &str, key: &str) -> Result<&'a str, ApiError> {
    str_field(b, key).ok_or_else(|| err(format!("binding {name} of type {kind} must have a string `{key}`")))
}

/// Validate (and complete) one binding. `script` is the Worker being uploaded.
pub(crate) fn validate_binding(
    account: &Account,
    script: Option<&str>,
    prev: Option<&Version>,
    mut b: Value,
) -> Result<Value, ApiError> {
    let name = binding_name(&b).unwrap_or_default().to_string();
    let kind = binding_type(&b).unwrap_or_default().to_string();
    match kind.as_str() {
        "plain_text" if !b.get("text").is_some_and(Value::is_string) => {
            return Err(err(format!("binding {name} of type plain_text must have a string `text`")));
        }
        "json" if b.get("json").is_none() => {
            return Err(err(format!("binding {name} of type json must have a `json` value")));
        }
        "secret_text" if !b.get("text").is_some_and(Value::is_string) => {
            let previous = prev.and_then(|v| v.binding(&name)).filter(|p| binding_type(p) == Some("secret_text"));
            match previous {
                Some(p) => b["text"] = p["text"].clone(),
                None => {
                    return Err(err(format!("binding {name} of type secret_text must have a string `text`")));
                }
            }
        }
        "d1" => {
            let id = str_field(&b, "database_id").or_else(|| str_field(&b, "id")).unwrap_or_default().to_string();
            if id.is_empty() || !account.d1_databases.contains_key(&id) {
                return Err(err(format!(
                    "binding {name} of type d1 must have a valid `id` specified: D1 database {id:?} was not found in this account"
                )));
            }
            b["id"] = Value::String(id.clone());
            b["database_id"] = Value::String(id);
        }
        "kv_namespace" => {
            let id = str_field(&b, "namespace_id").unwrap_or_default();
            if !account.kv_namespaces.iter().any(|ns| ns.id == id) {
                return Err(ApiError::bad_request(
                    10041,
                    format!(
                        "binding {name} of type kv_namespace must have a valid `namespace_id` specified: KV namespace {id:?} was not found in this account"
                    ),
                ));
            }
        }
        "r2_bucket" => {
            let bucket = required(&b, &name, &kind, "bucket_name")?;
            let jurisdiction = str_field(&b, "jurisdiction").unwrap_or("default");
            if !account.r2_buckets.iter().any(|r| r.name == bucket && r.jurisdiction == jurisdiction) {
                return Err(err(format!(
                    "binding {name} of type r2_bucket must reference an existing bucket: R2 bucket {bucket:?} (jurisdiction {jurisdiction}) was not found in this account"
                )));
            }
        }
        "queue" => {
            let queue = required(&b, &name, &kind, "queue_name")?;
            if !account.queues.iter().any(|q| q.name == queue) {
                return Err(err(format!(
                    "binding {name} of type queue must reference an existing queue: Queue {queue:?} was not found in this account"
                )));
            }
        }
        "durable_object_namespace" => validate_do(account, script, &name, &mut b)?,
        "service" => {
            let target = required(&b, &name, &kind, "service")?;
            if Some(target) != script && !account.scripts.contains_key(target) {
                return Err(ApiError::bad_request(
                    CODE_SERVICE_NOT_FOUND,
                    format!("Could not resolve service binding '{name}'. Target script '{target}' not found."),
                ));
            }
        }
        "analytics_engine" => {
            required(&b, &name, &kind, "dataset")?;
        }
        "hyperdrive" => {
            required(&b, &name, &kind, "id")?;
        }
        "dispatch_namespace" => {
            required(&b, &name, &kind, "namespace")?;
        }
        _ => {}
    }
    Ok(b)
}

/// A DO binding names a namespace by id, or a class of this Worker or of `script_name`,
/// whose namespace must exist (its migration applied). Fills `namespace_id`.
fn validate_do(account: &Account, script: Option<&str>, name: &str, b: &mut Value) -> Result<(), ApiError> {
    if let Some(id) = str_field(b, "namespace_id") {
        let Some(ns) = account.do_namespaces.iter().find(|n| n.id == id) else {
            return Err(err(format!("binding {name}: Durable Object namespace {id:?} was not found in this account")));
        };
        let class = ns.class.clone();
        b["class_name"] = Value::String(class);
        return Ok(());
    }
    let class = str_field(b, "class_name")
        .ok_or_else(|| err(format!("binding {name} of type durable_object_namespace must have a `class_name`")))?
        .to_string();
    let owner = str_field(b, "script_name").or(script).unwrap_or_default().to_string();
    let found = account.do_namespaces.iter().find(|n| n.script == owner && n.class == class);
    match found {
        Some(ns) => {
            b["namespace_id"] = Value::String(ns.id.clone());
            Ok(())
        }
        None if Some(owner.as_str()) == script => Err(ApiError::bad_request(
            CODE_DO_CLASS,
            format!(
                "Cannot create binding for class '{class}' because it is not currently configured to implement Durable Objects. Did you forget to apply a Durable Object migration?"
            ),
        )),
        None => Err(ApiError::bad_request(
            CODE_DO_CLASS,
            format!(
                "Cannot create binding for class '{class}' in script '{owner}': that script does not export a Durable Object class by that name"
            ),
        )),
    }
}
