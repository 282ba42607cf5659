//! `POST /__emulator/runtime/d1/{uuid}`: the D1 engine for Worker bindings (called by the
//! D1 shim inside workerd). Not part of the Cloudflare API: no API token, not journaled, not
//! rate limited; it requires the per-emulator runtime key, which only the generated workerd
//! configs carry, and exists only while a Workers runtime is configured.
//!
//! Body: `{"mode": "batch" | "exec", "statements": [{"sql", "params"}]}`. Parameters are JSON
//! null, booleans (0/1), numbers, strings, or `{"blob": [bytes]}`.
//! - `batch`: every statement in one transaction (all or nothing). Answer
//!   `{"success": true, "results": [[statement result, …] per item]}` or
//!   `{"success": false, "error": "…"}`.
//! - `exec`: each item in its own transaction, stopping at the first failure. Answer
//!   `{"success", "results", "error"?, "index"?}` (`index` = failing item).
//!
//! A statement result is `{"columns": [...], "rows": [[...]], "meta": {...}}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rusqlite::types::Value as SqlValue;
use serde_json::{Value, json};

use super::RUNTIME_KEY_HEADER;
use crate::app::SharedApp;
use crate::d1::{D1Error, Outcome, SqlStatement};

fn failure(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"success": false, "error": message.into()}))).into_response()
}

fn param(v: &Value) -> Result<SqlValue, String> {
    Ok(match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Object(o) => match o.get("blob").and_then(Value::as_array) {
            Some(bytes) => SqlValue::Blob(
                bytes
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()).ok_or("blob bytes must be 0..255"))
                    .collect::<Result<Vec<u8>, _>>()?,
            ),
            None => return Err("object parameters must be {\"blob\": [bytes]}".into()),
        },
        Value::Array(_) => return Err("array parameters must be sent as {\"blob\": [bytes]}".into()),
    })
}

fn statements(body: &Value) -> Result<Vec<SqlStatement>, String> {
    let items = body.get("statements").and_then(Value::as_array).ok_or("statements must be a list")?;
    items
        .iter()
        .map(|item| {
            let sql = item.get("sql").and_then(Value::as_str).ok_or("every statement needs sql")?.to_string();
            let params = match item.get("params") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(p)) => p.iter().map(param).collect::<Result<_, _>>()?,
                Some(_) => return Err("params must be a list".to_string()),
            };
            Ok(SqlStatement { sql, params })
        })
        .collect()
}

/// Statement results grouped per request item.
fn grouped(out: &Outcome) -> Vec<Value> {
    let mut rest = out.statements.iter();
    out.per_item
        .iter()
        .map(|n| {
            Value::Array(
                rest.by_ref()
                    .take(*n)
                    .map(|s| {
                        json!({
                            "columns": s.columns,
                            "rows": s.rows,
                            "meta": crate::routes::d1::meta(&s.meta),
                        })
                    })
                    .collect(),
            )
        })
        .collect()
}

pub(crate) async fn handle(
    State(app): State<SharedApp>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(rt) = app.runtime.as_ref() else {
        return failure(StatusCode::NOT_FOUND, "no Workers runtime is configured");
    };
    let key = headers.get(RUNTIME_KEY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if key.is_empty() || key != rt.key() {
        return failure(StatusCode::FORBIDDEN, "missing or wrong runtime key");
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return failure(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    let items = match statements(&body) {
        Ok(i) => i,
        Err(e) => return failure(StatusCode::BAD_REQUEST, e),
    };
    let exists = app.read(|s| s.accounts.values().any(|a| a.d1_databases.contains_key(&uuid)));
    if !exists {
        return failure(StatusCode::NOT_FOUND, format!("The database {uuid} could not be found"));
    }
    let db = match app.d1.get(&uuid) {
        Ok(db) => db,
        Err(e) => return failure(StatusCode::INTERNAL_SERVER_ERROR, format!("D1 storage error: {e}")),
    };
    let mode = body.get("mode").and_then(Value::as_str).unwrap_or("batch").to_string();
    let answer = tokio::task::spawn_blocking(move || match mode.as_str() {
        "exec" => {
            let mut results = Vec::new();
            for (index, item) in items.into_iter().enumerate() {
                match db.execute(std::slice::from_ref(&item)) {
                    Ok(out) => results.extend(grouped(&out)),
                    Err(f) => {
                        return json!({"success": false, "results": results, "error": message(f.error), "index": index});
                    }
                }
            }
            json!({"success": true, "results": results})
        }
        _ => match db.execute(&items) {
            Ok(out) => json!({"success": true, "results": grouped(&out)}),
            Err(f) => json!({"success": false, "error": message(f.error)}),
        },
    })
    .await;
    match answer {
        Ok(v) => Json(v).into_response(),
        Err(e) => failure(StatusCode::INTERNAL_SERVER_ERROR, format!("D1 worker failed: {e}")),
    }
}

fn message(e: D1Error) -> String {
    match e {
        D1Error::Sql { message } => message,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_decode_blobs_and_reject_other_shapes() {
        assert_eq!(param(&json!({"blob": [0, 255]})).unwrap(), SqlValue::Blob(vec![0, 255]));
        assert_eq!(param(&json!(true)).unwrap(), SqlValue::Integer(1));
        assert_eq!(param(&json!(1.5)).unwrap(), SqlValue::Real(1.5));
        assert!(param(&json!({"blob": [256]})).is_err());
        assert!(param(&json!([1, 2])).is_err());
        assert!(param(&json!({"a": 1})).is_err());
    }
}
