//! Script secrets. Every write makes a new version and deploys it at 100%; refused with
//! 10215 while the newest version is not the deployed one.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, patch};
use serde_json::{Map, Value, json};

use super::{JsonBody, account, account_mut, script, script_mut, source_of};
use crate::app::SharedApp;
use crate::envelope::{ApiError, ApiResult, ok};
use crate::workers;

pub(crate) fn router() -> Router<SharedApp> {
    let s = "/accounts/{account_id}/workers/scripts/{script_name}";
    Router::new()
        .route(&format!("{s}/secrets"), get(list_secrets).put(put_secret))
        .route(&format!("{s}/secrets/{{secret_name}}"), get(get_secret).delete(delete_secret))
        .route(&format!("{s}/secrets-bulk"), patch(bulk_secrets))
}

fn current_secrets(app: &SharedApp, account_id: &str, name: &str) -> Result<Vec<Value>, ApiError> {
    app.read(|s| {
        let sc = script(account(s, account_id)?, name)?;
        Ok(sc.latest_version().map(workers::secrets_of).unwrap_or_default())
    })
}

async fn list_secrets(State(app): State<SharedApp>, Path((account_id, name)): Path<(String, String)>) -> ApiResult {
    ok(current_secrets(&app, &account_id, &name)?)
}

fn secret_not_found(name: &str) -> ApiError {
    ApiError::not_found(10056, format!("Secret {name} not found"))
}

async fn get_secret(
    State(app): State<SharedApp>,
    Path((account_id, name, secret)): Path<(String, String, String)>,
) -> ApiResult {
    let found = current_secrets(&app, &account_id, &name)?
        .into_iter()
        .find(|s| s["name"] == secret.as_str())
        .ok_or_else(|| secret_not_found(&secret))?;
    ok(found)
}

async fn put_secret(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let secret_name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    let binding = workers::secret_binding(&secret_name, &body)?;
    let source = source_of(&headers);
    let kind = binding["type"].clone();
    app.write(|s| {
        let sc = script_mut(account_mut(s, &account_id)?, &name)?;
        let mut updated = sc.clone();
        workers::write_secrets(&mut updated, vec![(secret_name.clone(), Some(binding))], source)?;
        *sc = updated;
        Ok(())
    })?;
    ok(json!({"name": secret_name, "type": kind}))
}

async fn delete_secret(
    State(app): State<SharedApp>,
    Path((account_id, name, secret)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let source = source_of(&headers);
    app.write(|s| {
        let sc = script_mut(account_mut(s, &account_id)?, &name)?;
        let mut updated = sc.clone();
        workers::write_secrets(&mut updated, vec![(secret.clone(), None)], source)?;
        *sc = updated;
        Ok(())
    })?;
    ok(Value::Null)
}

/// `PATCH .../secrets-bulk`: JSON merge patch of secrets (object = set, null = delete),
/// one version for all changes.
async fn bulk_secrets(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let Some(map) = body.get("secrets").and_then(Value::as_object) else {
        return Err(ApiError::invalid_body("expected {\"secrets\": {NAME: {...} | null}}"));
    };
    let mut changes = Vec::new();
    for (secret, value) in map {
        match value {
            Value::Null => changes.push((secret.clone(), None)),
            v => changes.push((secret.clone(), Some(workers::secret_binding(secret, v)?))),
        }
    }
    let source = source_of(&headers);
    let result = app.write(|s| {
        let sc = script_mut(account_mut(s, &account_id)?, &name)?;
        let mut updated = sc.clone();
        // Deleting a secret that does not exist is a no-op in a merge patch.
        let present: Vec<String> = updated
            .latest_version()
            .map(workers::secrets_of)
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s["name"].as_str().map(str::to_string))
            .collect();
        let changes: Vec<_> = changes.iter().filter(|(n, v)| v.is_some() || present.contains(n)).cloned().collect();
        if !changes.is_empty() {
            workers::write_secrets(&mut updated, changes, source)?;
        }
        *sc = updated;
        let mut out = Map::new();
        for s in sc.latest_version().map(workers::secrets_of).unwrap_or_default() {
            if let Some(n) = s["name"].as_str() {
                out.insert(n.to_string(), s.clone());
            }
        }
        Ok(Value::Object(out))
    })?;
    ok(result)
}
