//! Runtime endpoints for Worker bindings and triggers (not part of the Cloudflare API; not
//! journaled, not rate limited):
//!
//! - `POST /__emulator/runtime/kv/{namespace}` (runtime key): the KV binding's get, put,
//!   delete and list on the same keys the REST API serves.
//! - `POST /__emulator/runtime/queue/{queue}` (runtime key): a producer's messages; delivered
//!   to the consumer Worker's `queue()` handler, retried up to `max_retries`, then sent to the
//!   dead letter queue (or dropped with a warning).
//! - `POST /__emulator/scheduled/{account}/{script}` (test control, no key): run the deployed
//!   version's `scheduled()` handler with `{cron?, scheduledTime?}`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::RUNTIME_KEY_HEADER;
use crate::app::SharedApp;
use crate::model::{KvEntry, State as Model};
use crate::routes::kv::{check_key, check_metadata, expiration_of, list_page, now_secs};

/// Deliveries of one message before it goes to the dead letter queue, when the consumer
/// does not say.
const DEFAULT_MAX_RETRIES: u64 = 3;

fn failure(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"success": false, "error": message.into()}))).into_response()
}

/// An authorized runtime call's JSON body, or the answer to send instead.
fn authorized_json(app: &SharedApp, headers: &HeaderMap, body: &[u8]) -> Result<Value, Box<Response>> {
    if let Err((status, message)) = authorized(app, headers) {
        return Err(Box::new(failure(status, message)));
    }
    serde_json::from_slice(body).map_err(|e| Box::new(failure(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}"))))
}

fn authorized(app: &SharedApp, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
    let Some(rt) = app.runtime.as_ref() else {
        return Err((StatusCode::NOT_FOUND, "no Workers runtime is configured"));
    };
    let key = headers.get(RUNTIME_KEY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if key.is_empty() || key != rt.key() {
        return Err((StatusCode::FORBIDDEN, "missing or wrong runtime key"));
    }
    Ok(())
}

fn kv_op(s: &mut Model, ns_id: &str, body: &Value) -> Result<Value, String> {
    let ns = s
        .accounts
        .values_mut()
        .flat_map(|a| a.kv_namespaces.iter_mut())
        .find(|n| n.id == ns_id)
        .ok_or_else(|| format!("KV namespace {ns_id} not found"))?;
    let now = now_secs();
    let key = body.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
    let api = |e: crate::envelope::ApiError| e.errors.first().map(|m| m.message.clone()).unwrap_or_default();
    match body.get("op").and_then(Value::as_str).unwrap_or_default() {
        "get" => Ok(match ns.keys.get(&key).filter(|e| e.live(now)) {
            None => Value::Null,
            Some(e) => json!({"value": STANDARD.encode(&e.value), "metadata": e.metadata, "expiration": e.expiration}),
        }),
        "put" => {
            check_key(&key).map_err(api)?;
            let value = STANDARD
                .decode(body.get("value").and_then(Value::as_str).unwrap_or_default())
                .map_err(|e| format!("value is not base64: {e}"))?;
            let int = |k: &str| body.get(k).and_then(Value::as_i64);
            let expiration = expiration_of(int("expiration"), int("expiration_ttl"), now).map_err(api)?;
            let metadata = body.get("metadata").filter(|m| !m.is_null()).cloned();
            if let Some(m) = &metadata {
                check_metadata(m).map_err(api)?;
            }
            ns.keys.insert(key, KvEntry { value, expiration, metadata });
            Ok(Value::Null)
        }
        "delete" => {
            ns.keys.remove(&key);
            Ok(Value::Null)
        }
        "list" => {
            let prefix = body.get("prefix").and_then(Value::as_str).unwrap_or_default();
            let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(1000).clamp(1, 1000) as usize;
            let cursor = body.get("cursor").and_then(Value::as_str);
            let (keys, next) = list_page(ns, prefix, limit, cursor, now).map_err(api)?;
            Ok(json!({"keys": keys, "cursor": next}))
        }
        other => Err(format!("unknown KV operation {other:?}")),
    }
}

pub(crate) async fn kv_endpoint(
    State(app): State<SharedApp>,
    Path(ns_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match authorized_json(&app, &headers, &body) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let mutating = body.get("op").and_then(Value::as_str).is_some_and(|op| op == "put" || op == "delete");
    let out = if mutating {
        app.write(|s| kv_op(s, &ns_id, &body).map_err(|e| crate::envelope::ApiError::bad_request(0, e)))
            .map_err(|e| e.errors.first().map(|m| m.message.clone()).unwrap_or_default())
    } else {
        let mut copy = app.read(|s| s.clone());
        kv_op(&mut copy, &ns_id, &body)
    };
    match out {
        Ok(result) => Json(json!({"success": true, "result": result})).into_response(),
        Err(e) => failure(StatusCode::BAD_REQUEST, e),
    }
}

/// POST `body` to `path` of the running version of `script`; the JSON answer.
async fn call_worker(app: &SharedApp, account: &str, script: &str, path: &str, body: &Value) -> Result<Value, String> {
    let rt = app.runtime.clone().ok_or("no Workers runtime is configured")?;
    let version = app
        .read(|s| {
            s.accounts.get(account).and_then(|a| a.scripts.get(script)).and_then(|sc| sc.primary_version().cloned())
        })
        .ok_or_else(|| format!("Worker {script} does not exist or has no version"))?;
    let socket = rt.socket_for(account, script, &version).await?;
    let stream = tokio::net::UnixStream::connect(&socket).await.map_err(|e| format!("cannot reach workerd: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with workerd failed: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = axum::http::Request::post(path)
        .header(header::HOST, "emulator.internal")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .map_err(|e| e.to_string())?;
    let key = HeaderValue::from_str(rt.key()).map_err(|e| e.to_string())?;
    req.headers_mut().insert(RUNTIME_KEY_HEADER, key);
    let resp = sender.send_request(req).await.map_err(|e| format!("request to workerd failed: {e}"))?;
    let bytes = axum::body::to_bytes(Body::new(resp.into_body()), 16 * 1024 * 1024)
        .await
        .map_err(|e| format!("reading the Worker's answer: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|_| format!("the Worker answered: {}", String::from_utf8_lossy(&bytes)))
}

/// `POST /__emulator/scheduled/{account}/{script}`.
pub(crate) async fn scheduled_trigger(
    State(app): State<SharedApp>,
    Path((account, script)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let given: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let cron = given
        .get("cron")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            app.read(|s| s.accounts.get(&account)?.scripts.get(&script)?.schedules.first().map(|c| c.cron.clone()))
        })
        .unwrap_or_default();
    let time =
        given.get("scheduledTime").and_then(Value::as_i64).unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    match call_worker(&app, &account, &script, "/__emulator/scheduled", &json!({"cron": cron, "scheduledTime": time}))
        .await
    {
        Ok(v) if v["success"] == true => {
            Json(json!({"success": true, "cron": cron, "noRetry": v["noRetry"]})).into_response()
        }
        Ok(v) => failure(StatusCode::INTERNAL_SERVER_ERROR, v["error"].as_str().unwrap_or("scheduled() failed")),
        Err(e) => failure(StatusCode::BAD_GATEWAY, e),
    }
}

/// The consumer of `queue`: (script, max_retries, dead letter queue).
fn consumer_of(app: &SharedApp, account: &str, queue: &str) -> Option<(String, u64, String)> {
    app.read(|s| {
        let q = s.accounts.get(account)?.queues.iter().find(|q| q.name == queue)?;
        let c = q.consumers.iter().find(|c| c.kind == "worker")?;
        let retries = c.settings["max_retries"].as_u64().unwrap_or(DEFAULT_MAX_RETRIES);
        Some((c.script.clone()?, retries, c.dead_letter_queue.clone()))
    })
}

/// Deliver `messages` to the consumer of `queue`: retried messages go again (attempts + 1)
/// until `max_retries`, then to the dead letter queue.
async fn deliver(app: SharedApp, account: String, queue: String, mut messages: Vec<Value>, depth: u8) {
    let Some((script, max_retries, dlq)) = consumer_of(&app, &account, &queue) else {
        tracing::warn!(queue, count = messages.len(), "queue has no Worker consumer; messages dropped");
        return;
    };
    let mut attempt = 1u64;
    loop {
        for m in &mut messages {
            m["attempts"] = json!(attempt);
        }
        let batch = json!({"queue": queue, "messages": messages});
        let retried: Vec<String> = match call_worker(&app, &account, &script, "/__emulator/queue", &batch).await {
            Ok(v) if v["success"] == true => {
                v["retried"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect()
            }
            Ok(v) => {
                tracing::warn!(queue, script, error = %v["error"], "queue() failed; the batch is retried");
                messages.iter().filter_map(|m| m["id"].as_str().map(str::to_string)).collect()
            }
            Err(e) => {
                tracing::warn!(queue, script, error = %e, "queue delivery failed; the batch is retried");
                messages.iter().filter_map(|m| m["id"].as_str().map(str::to_string)).collect()
            }
        };
        messages.retain(|m| m["id"].as_str().is_some_and(|id| retried.iter().any(|r| r == id)));
        if messages.is_empty() {
            return;
        }
        if attempt > max_retries {
            break;
        }
        attempt += 1;
    }
    if dlq.is_empty() || depth > 0 {
        tracing::warn!(queue, count = messages.len(), "messages exhausted their retries and were dropped");
        return;
    }
    Box::pin(deliver(app, account, dlq, messages, depth + 1)).await;
}

/// `POST /__emulator/runtime/queue/{queue}`: `{account, messages: [{body, contentType}]}`.
pub(crate) async fn queue_endpoint(
    State(app): State<SharedApp>,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match authorized_json(&app, &headers, &body) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let account = body["account"].as_str().unwrap_or_default().to_string();
    let exists = app.read(|s| s.accounts.get(&account).is_some_and(|a| a.queues.iter().any(|q| q.name == queue)));
    if !exists {
        return failure(StatusCode::NOT_FOUND, format!("Queue {queue} does not exist"));
    }
    let now = chrono::Utc::now().timestamp_millis();
    let messages: Vec<Value> = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| json!({"id": crate::ids::hex32(), "timestamp": now, "body": m["body"], "contentType": m["contentType"], "attempts": 1}))
        .collect();
    if messages.is_empty() || messages.len() > 100 {
        return failure(StatusCode::BAD_REQUEST, "a send carries 1 to 100 messages");
    }
    tokio::spawn(deliver(app.clone(), account, queue, messages, 0));
    Json(json!({"success": true})).into_response()
}
