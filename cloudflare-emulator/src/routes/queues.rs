//! Queues: create, list (`name` filter, paged), get, replace/patch, delete; consumers add,
//! list, get, update, delete. Producers are the Workers whose latest version binds the queue.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde_json::{Value, json};

use super::{JsonBody, Params, account, account_mut};
use crate::app::SharedApp;
use crate::envelope::{ApiError, ApiResult, ok, ok_paged, paginate};
use crate::ids;
use crate::model::{Account, Queue, QueueConsumer};

pub(crate) const CODE_NOT_FOUND: u32 = 11000;
pub(crate) const CODE_BAD_NAME: u32 = 11003;
/// A queue has one Worker consumer (code unconfirmed).
pub(crate) const CODE_HAS_CONSUMER: u32 = 11004;
pub(crate) const CODE_NAME_TAKEN: u32 = 11009;
pub(crate) const CODE_BAD_CONSUMER: u32 = 100127;
pub(crate) const CODE_BAD_SETTINGS: u32 = 100128;

pub(crate) fn router() -> Router<SharedApp> {
    let q = "/accounts/{account_id}/queues/{queue_id}";
    Router::new()
        .route("/accounts/{account_id}/queues", get(list_queues).post(create_queue))
        .route(q, get(get_queue).put(replace_queue).patch(patch_queue).delete(delete_queue))
        .route(&format!("{q}/consumers"), get(list_consumers).post(add_consumer))
        .route(
            &format!("{q}/consumers/{{consumer_id}}"),
            get(get_consumer).put(update_consumer).delete(delete_consumer),
        )
}

/// `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`
pub(crate) fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn not_found() -> ApiError {
    ApiError::not_found(CODE_NOT_FOUND, "Queue does not exist")
}

fn consumer_view(q: &Queue, c: &QueueConsumer) -> Value {
    json!({
        "consumer_id": c.id,
        "created_on": ids::ts(&c.created_on),
        "queue_id": q.id,
        "queue_name": q.name,
        "script_name": c.script,
        "script": c.script,
        "type": c.kind,
        "dead_letter_queue": c.dead_letter_queue,
        "settings": c.settings,
    })
}

fn producers(a: &Account, queue: &str) -> Vec<Value> {
    a.scripts
        .values()
        .filter(|s| {
            s.latest_version().is_some_and(|v| {
                v.bindings.iter().any(|b| {
                    b.get("type").and_then(Value::as_str) == Some("queue")
                        && b.get("queue_name").and_then(Value::as_str) == Some(queue)
                })
            })
        })
        .map(|s| json!({"type": "worker", "script": s.name}))
        .collect()
}

pub(crate) fn view(a: &Account, q: &Queue) -> Value {
    let producers = producers(a, &q.name);
    json!({
        "queue_id": q.id,
        "queue_name": q.name,
        "created_on": ids::ts(&q.created_on),
        "modified_on": ids::ts(&q.modified_on),
        "producers_total_count": producers.len(),
        "producers": producers,
        "consumers_total_count": q.consumers.len(),
        "consumers": q.consumers.iter().map(|c| consumer_view(q, c)).collect::<Vec<_>>(),
        "settings": q.settings,
    })
}

pub(crate) fn queue<'a>(a: &'a Account, id: &str) -> Result<&'a Queue, ApiError> {
    a.queues.iter().find(|q| q.id == id).ok_or_else(not_found)
}

fn queue_mut<'a>(a: &'a mut Account, id: &str) -> Result<&'a mut Queue, ApiError> {
    a.queues.iter_mut().find(|q| q.id == id).ok_or_else(not_found)
}

fn bad_settings(msg: String) -> ApiError {
    ApiError::bad_request(CODE_BAD_SETTINGS, msg)
}

fn ranged(v: &Value, key: &str, min: i64, max: i64, bad: fn(String) -> ApiError) -> Result<Option<i64>, ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => match x.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(bad(format!("{key} must be an integer between {min} and {max}, got {x}"))),
        },
    }
}

/// Queue settings with defaults: `delivery_delay` 0..86400, `delivery_paused`,
/// `message_retention_period` 60..1209600 (default 345600 = 4 days).
fn queue_settings(body: &Value, base: Option<&Value>) -> Result<Value, ApiError> {
    let empty = json!({});
    let given = body.get("settings").filter(|s| !s.is_null()).unwrap_or(&empty);
    if !given.is_object() {
        return Err(bad_settings("settings must be an object".into()));
    }
    let base = base
        .cloned()
        .unwrap_or_else(|| json!({"delivery_delay": 0, "delivery_paused": false, "message_retention_period": 345600}));
    let mut out = base;
    if let Some(d) = ranged(given, "delivery_delay", 0, 86400, bad_settings)? {
        out["delivery_delay"] = json!(d);
    }
    if let Some(r) = ranged(given, "message_retention_period", 60, 1_209_600, bad_settings)? {
        out["message_retention_period"] = json!(r);
    }
    match given.get("delivery_paused") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(p)) => out["delivery_paused"] = json!(p),
        Some(_) => return Err(bad_settings("delivery_paused must be a boolean".into())),
    }
    Ok(out)
}

fn name_of(body: &Value) -> Result<String, ApiError> {
    let name = body.get("queue_name").and_then(Value::as_str).unwrap_or_default();
    if !valid_name(name) {
        return Err(ApiError::bad_request(
            CODE_BAD_NAME,
            format!("Invalid queue name {name:?}: use lowercase letters, digits and '-', at most 63 characters"),
        ));
    }
    Ok(name.to_string())
}

fn name_taken(name: &str) -> ApiError {
    ApiError::conflict(CODE_NAME_TAKEN, format!("Queue name '{name}' is already taken. Please use a different name."))
}

async fn create_queue(
    State(app): State<SharedApp>,
    Path(account_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let name = name_of(&body)?;
    let settings = queue_settings(&body, None)?;
    let v = app.write(|s| {
        let a = account_mut(s, &account_id)?;
        if a.queues.iter().any(|q| q.name == name) {
            return Err(name_taken(&name));
        }
        let now = ids::now();
        let q = Queue { id: ids::hex32(), name, created_on: now, modified_on: now, settings, consumers: Vec::new() };
        a.queues.push(q.clone());
        Ok(view(a, &q))
    })?;
    ok(v)
}

async fn list_queues(State(app): State<SharedApp>, Path(account_id): Path<String>, params: Params) -> ApiResult {
    let (page, per_page) = params.paging(100, 1000)?;
    let names: Vec<String> = params.all("name").into_iter().map(str::to_string).collect();
    let items = app.read(|s| {
        let a = account(s, &account_id)?;
        let mut qs: Vec<&Queue> = a.queues.iter().filter(|q| names.is_empty() || names.contains(&q.name)).collect();
        qs.sort_by(|x, y| x.name.cmp(&y.name));
        Ok::<_, ApiError>(qs.into_iter().map(|q| view(a, q)).collect::<Vec<_>>())
    })?;
    let (slice, info) = paginate(&items, page, per_page);
    ok_paged(slice, info)
}

async fn get_queue(State(app): State<SharedApp>, Path((account_id, queue_id)): Path<(String, String)>) -> ApiResult {
    let v = app.read(|s| {
        let a = account(s, &account_id)?;
        queue(a, &queue_id).map(|q| view(a, q))
    })?;
    ok(v)
}

fn update(app: &SharedApp, account_id: &str, queue_id: &str, body: &Value, partial: bool) -> ApiResult {
    let new_name = match (partial, body.get("queue_name")) {
        (true, None | Some(Value::Null)) => None,
        _ => Some(name_of(body)?),
    };
    let v = app.write(|s| {
        let a = account_mut(s, account_id)?;
        let current = queue(a, queue_id)?.clone();
        if let Some(n) = &new_name
            && *n != current.name
            && a.queues.iter().any(|q| &q.name == n)
        {
            return Err(name_taken(n));
        }
        let base = if partial { Some(&current.settings) } else { None };
        let settings = queue_settings(body, base)?;
        let q = queue_mut(a, queue_id)?;
        if let Some(n) = new_name {
            q.name = n;
        }
        q.settings = settings;
        q.modified_on = ids::now_after(Some(&q.modified_on));
        let q = q.clone();
        Ok(view(a, &q))
    })?;
    ok(v)
}

async fn replace_queue(
    State(app): State<SharedApp>,
    Path((account_id, queue_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    update(&app, &account_id, &queue_id, &body, false)
}

async fn patch_queue(
    State(app): State<SharedApp>,
    Path((account_id, queue_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    update(&app, &account_id, &queue_id, &body, true)
}

async fn delete_queue(State(app): State<SharedApp>, Path((account_id, queue_id)): Path<(String, String)>) -> ApiResult {
    app.write(|s| {
        let a = account_mut(s, &account_id)?;
        queue(a, &queue_id)?;
        a.queues.retain(|q| q.id != queue_id);
        Ok(())
    })?;
    ok(Value::Null)
}

fn bad_consumer(msg: String) -> ApiError {
    ApiError::bad_request(CODE_BAD_CONSUMER, msg)
}

/// Consumer settings with the platform defaults filled in.
fn consumer_settings(body: &Value, kind: &str) -> Result<Value, ApiError> {
    let empty = json!({});
    let given = body.get("settings").filter(|s| !s.is_null()).unwrap_or(&empty);
    let mut out = json!({
        "batch_size": ranged(given, "batch_size", 1, 100, bad_consumer)?.unwrap_or(10),
        "max_retries": ranged(given, "max_retries", 0, 100, bad_consumer)?.unwrap_or(3),
        "retry_delay": ranged(given, "retry_delay", 0, 43200, bad_consumer)?.unwrap_or(0),
    });
    if kind == "worker" {
        out["max_wait_time_ms"] = json!(ranged(given, "max_wait_time_ms", 0, 60000, bad_consumer)?.unwrap_or(5000));
        out["max_concurrency"] = match ranged(given, "max_concurrency", 1, 250, bad_consumer)? {
            Some(n) => json!(n),
            None => Value::Null,
        };
    } else {
        out["visibility_timeout_ms"] =
            json!(ranged(given, "visibility_timeout_ms", 0, 43_200_000, bad_consumer)?.unwrap_or(30000));
    }
    Ok(out)
}

/// Validate a consumer body against the account; `existing` is the consumer being replaced.
fn consumer_from(
    a: &Account,
    q: &Queue,
    body: &Value,
    existing: Option<&QueueConsumer>,
) -> Result<QueueConsumer, ApiError> {
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("worker").to_string();
    let settings = consumer_settings(body, &kind)?;
    let script = match kind.as_str() {
        "worker" => {
            let s = body
                .get("script_name")
                .or_else(|| body.get("script"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad_consumer("a worker consumer needs script_name".into()))?;
            if !a.scripts.contains_key(s) {
                return Err(ApiError::script_not_found(s));
            }
            Some(s.to_string())
        }
        "http_pull" => None,
        other => return Err(bad_consumer(format!("type must be worker or http_pull, got {other:?}"))),
    };
    let others = q.consumers.iter().filter(|c| existing.is_none_or(|e| e.id != c.id));
    if let Some(taken) = others.clone().find(|c| c.kind == "worker" && kind == "worker") {
        return Err(ApiError::conflict(
            CODE_HAS_CONSUMER,
            format!(
                "Queue {} already has a consumer (Worker {}); delete it first",
                q.name,
                taken.script.as_deref().unwrap_or_default()
            ),
        ));
    }
    if others.clone().any(|c| c.kind != kind) {
        return Err(bad_consumer(format!("Queue {} cannot mix worker and http_pull consumers", q.name)));
    }
    let dlq = body.get("dead_letter_queue").and_then(Value::as_str).unwrap_or_default().to_string();
    if dlq == q.name {
        return Err(bad_consumer("a queue cannot be its own dead letter queue".into()));
    }
    if !dlq.is_empty() && !valid_name(&dlq) {
        return Err(ApiError::bad_request(CODE_BAD_NAME, format!("Invalid dead letter queue name {dlq:?}")));
    }
    Ok(QueueConsumer {
        id: existing.map(|e| e.id.clone()).unwrap_or_else(ids::hex32),
        created_on: existing.map(|e| e.created_on).unwrap_or_else(ids::now),
        kind: kind.clone(),
        script,
        dead_letter_queue: dlq,
        settings,
    })
}

fn consumer_not_found() -> ApiError {
    ApiError::not_found(CODE_NOT_FOUND, "Consumer does not exist")
}

async fn add_consumer(
    State(app): State<SharedApp>,
    Path((account_id, queue_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let v = app.write(|s| {
        let a = account_mut(s, &account_id)?;
        let q = queue(a, &queue_id)?.clone();
        let c = consumer_from(a, &q, &body, None)?;
        let q = queue_mut(a, &queue_id)?;
        q.consumers.push(c.clone());
        Ok(consumer_view(q, &c))
    })?;
    ok(v)
}

async fn list_consumers(
    State(app): State<SharedApp>,
    Path((account_id, queue_id)): Path<(String, String)>,
) -> ApiResult {
    let v = app.read(|s| {
        let q = queue(account(s, &account_id)?, &queue_id)?;
        Ok::<_, ApiError>(q.consumers.iter().map(|c| consumer_view(q, c)).collect::<Vec<_>>())
    })?;
    ok(v)
}

async fn get_consumer(
    State(app): State<SharedApp>,
    Path((account_id, queue_id, consumer_id)): Path<(String, String, String)>,
) -> ApiResult {
    let v = app.read(|s| {
        let q = queue(account(s, &account_id)?, &queue_id)?;
        q.consumers.iter().find(|c| c.id == consumer_id).map(|c| consumer_view(q, c)).ok_or_else(consumer_not_found)
    })?;
    ok(v)
}

async fn update_consumer(
    State(app): State<SharedApp>,
    Path((account_id, queue_id, consumer_id)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let v = app.write(|s| {
        let a = account_mut(s, &account_id)?;
        let q = queue(a, &queue_id)?.clone();
        let existing = q.consumers.iter().find(|c| c.id == consumer_id).cloned().ok_or_else(consumer_not_found)?;
        let c = consumer_from(a, &q, &body, Some(&existing))?;
        let q = queue_mut(a, &queue_id)?;
        if let Some(slot) = q.consumers.iter_mut().find(|x| x.id == consumer_id) {
            *slot = c.clone();
        }
        Ok(consumer_view(q, &c))
    })?;
    ok(v)
}

async fn delete_consumer(
    State(app): State<SharedApp>,
    Path((account_id, queue_id, consumer_id)): Path<(String, String, String)>,
) -> ApiResult {
    app.write(|s| {
        let q = queue_mut(account_mut(s, &account_id)?, &queue_id)?;
        if !q.consumers.iter().any(|c| c.id == consumer_id) {
            return Err(consumer_not_found());
        }
        q.consumers.retain(|c| c.id != consumer_id);
        Ok(())
    })?;
    ok(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_settings() {
        assert!(valid_name("a") && valid_name("jobs-1"));
        assert!(!valid_name("-a") && !valid_name("A") && !valid_name(&"a".repeat(64)));
        let s = queue_settings(&json!({"settings": {"delivery_delay": 5}}), None).unwrap();
        assert_eq!(s["delivery_delay"], 5);
        assert_eq!(s["message_retention_period"], 345600);
        let e = queue_settings(&json!({"settings": {"message_retention_period": 10}}), None).unwrap_err();
        assert_eq!(e.errors[0].code, CODE_BAD_SETTINGS);
        let c =
            consumer_settings(&json!({"settings": {"batch_size": 50, "max_wait_time_ms": 2000}}), "worker").unwrap();
        assert_eq!((c["batch_size"].as_i64(), c["max_wait_time_ms"].as_i64()), (Some(50), Some(2000)));
        assert_eq!(
            consumer_settings(&json!({"settings": {"batch_size": 0}}), "worker").unwrap_err().errors[0].code,
            CODE_BAD_CONSUMER
        );
    }
}
