//! D1: databases (create, list, get by uuid or name, delete, replication mode),
//! `/query`, `/raw` and Time Travel.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{JsonBody, Params, account, account_mut};
use crate::app::SharedApp;
use crate::d1::{D1Db, D1Error, Failure, Outcome, SqlStatement, json_param};
use crate::envelope::{ApiError, ApiResult, ok, ok_paged, paginate};
use crate::ids;
use crate::model::{D1Database, State as Model};
use crate::server::ReadOnlyCall;
use crate::views;

pub(crate) fn router() -> Router<SharedApp> {
    let db = "/accounts/{account_id}/d1/database/{database_id}";
    Router::new()
        .route("/accounts/{account_id}/d1/database", get(list_databases).post(create_database))
        .route(db, get(get_database).delete(delete_database).put(update_database).patch(update_database))
        .route(&format!("{db}/query"), post(query))
        .route(&format!("{db}/raw"), post(raw))
        .route(&format!("{db}/time_travel/bookmark"), get(bookmark))
        .route(&format!("{db}/time_travel/restore"), post(restore))
        .route(&format!("{db}/export"), post(super::d1_export::export))
}

const LOCATIONS: &[&str] = &["wnam", "enam", "weur", "eeur", "apac", "oc"];
const JURISDICTIONS: &[&str] = &["eu", "fedramp", "us"];

fn db_not_found(id: &str) -> ApiError {
    ApiError::not_found(7404, format!("The database {id} could not be found"))
}

/// Find a database by uuid or by name.
pub(crate) fn find_db<'a>(s: &'a Model, account_id: &str, id_or_name: &str) -> Result<&'a D1Database, ApiError> {
    let a = account(s, account_id)?;
    a.d1_databases
        .get(id_or_name)
        .or_else(|| a.d1_databases.values().find(|d| d.name == id_or_name))
        .ok_or_else(|| db_not_found(id_or_name))
}

fn storage_error(e: D1Error) -> ApiError {
    ApiError::internal(format!("D1 storage error: {e}"))
}

fn view(app: &SharedApp, db: &D1Database) -> Result<Value, ApiError> {
    let handle = app.d1.get(&db.uuid).map_err(storage_error)?;
    Ok(views::d1_database(db, handle.file_size(), handle.num_tables()))
}

fn valid_db_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn create_database(
    State(app): State<SharedApp>,
    Path(account_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    if !valid_db_name(&name) {
        return Err(ApiError::bad_request(
            7400,
            format!("Invalid database name {name:?}: use letters, digits, '-' and '_' (at most 64)"),
        ));
    }
    let hint = body.get("primary_location_hint").and_then(Value::as_str).map(str::to_ascii_lowercase);
    if let Some(h) = &hint
        && !LOCATIONS.contains(&h.as_str())
    {
        return Err(ApiError::bad_request(7400, format!("Invalid location hint {h:?}")));
    }
    let jurisdiction = body.get("jurisdiction").and_then(Value::as_str).map(str::to_ascii_lowercase);
    if let Some(j) = &jurisdiction
        && !JURISDICTIONS.contains(&j.as_str())
    {
        return Err(ApiError::bad_request(7400, format!("Invalid jurisdiction {j:?}")));
    }
    let mode = replication_mode(&body)?.unwrap_or_else(|| "disabled".to_string());
    let db = app.write(|s| {
        let a = account_mut(s, &account_id)?;
        if a.d1_databases.values().any(|d| d.name == name) {
            return Err(ApiError::bad_request(7502, format!("A database with that name already exists: {name}")));
        }
        let db = D1Database {
            uuid: ids::uuid(),
            name: name.clone(),
            created_at: ids::now(),
            primary_location_hint: if jurisdiction.is_some() { None } else { hint.clone() },
            jurisdiction: jurisdiction.clone(),
            read_replication_mode: mode.clone(),
        };
        app.d1.get(&db.uuid).map_err(storage_error)?;
        a.d1_databases.insert(db.uuid.clone(), db.clone());
        Ok(db)
    })?;
    ok(view(&app, &db)?)
}

fn replication_mode(body: &Value) -> Result<Option<String>, ApiError> {
    match body.get("read_replication") {
        None | Some(Value::Null) => Ok(None),
        Some(r) => match r.get("mode").and_then(Value::as_str) {
            Some(m @ ("auto" | "disabled")) => Ok(Some(m.to_string())),
            _ => Err(ApiError::bad_request(7400, "read_replication.mode must be \"auto\" or \"disabled\"")),
        },
    }
}

async fn list_databases(State(app): State<SharedApp>, Path(account_id): Path<String>, params: Params) -> ApiResult {
    let (page, per_page) = params.paging(1000, 10_000)?;
    let name = params.get("name").map(str::to_lowercase);
    let mut dbs: Vec<D1Database> = app.read(|s| {
        account(s, &account_id).map(|a| {
            a.d1_databases
                .values()
                .filter(|d| name.as_ref().is_none_or(|n| d.name.to_lowercase().contains(n)))
                .cloned()
                .collect()
        })
    })?;
    dbs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name)));
    let (slice, info) = paginate(&dbs, page, per_page);
    let items = slice.iter().map(|d| view(&app, d)).collect::<Result<Vec<_>, _>>()?;
    ok_paged(items, info)
}

async fn get_database(
    State(app): State<SharedApp>,
    Path((account_id, id)): Path<(String, String)>,
    params: Params,
) -> ApiResult {
    let db = app.read(|s| find_db(s, &account_id, &id).cloned())?;
    let mut v = view(&app, &db)?;
    if let Some(fields) = params.get("fields") {
        let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
        if let Some(obj) = v.as_object_mut() {
            obj.retain(|k, _| wanted.contains(&k.as_str()));
        }
    }
    ok(v)
}

async fn delete_database(State(app): State<SharedApp>, Path((account_id, id)): Path<(String, String)>) -> ApiResult {
    let uuid = app.write(|s| {
        let uuid = find_db(s, &account_id, &id)?.uuid.clone();
        account_mut(s, &account_id)?.d1_databases.remove(&uuid);
        Ok(uuid)
    })?;
    app.d1.remove(&uuid);
    ok(Value::Null)
}

async fn update_database(
    State(app): State<SharedApp>,
    Path((account_id, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let mode = replication_mode(&body)?;
    let db = app.write(|s| {
        let uuid = find_db(s, &account_id, &id)?.uuid.clone();
        let a = account_mut(s, &account_id)?;
        let db = a.d1_databases.get_mut(&uuid).ok_or_else(|| db_not_found(&id))?;
        if let Some(m) = mode {
            db.read_replication_mode = m;
        }
        Ok(db.clone())
    })?;
    ok(view(&app, &db)?)
}

/// Parse a query body: `{sql, params}`, `{batch: [{sql, params}]}` or a bare list.
fn statements(body: &Value) -> Result<Vec<SqlStatement>, ApiError> {
    fn one(v: &Value) -> Result<SqlStatement, ApiError> {
        let sql = v
            .get("sql")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request(7400, "sql is required"))?
            .to_string();
        let params = match v.get("params") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(p)) => p.iter().map(json_param).collect(),
            Some(_) => return Err(ApiError::bad_request(7400, "params must be a list")),
        };
        Ok(SqlStatement { sql, params })
    }
    match body {
        Value::Array(items) => items.iter().map(one).collect(),
        Value::Object(o) => match o.get("batch") {
            Some(Value::Array(items)) => items.iter().map(one).collect(),
            Some(_) => Err(ApiError::bad_request(7400, "batch must be a list")),
            None => Ok(vec![one(body)?]),
        },
        _ => Err(ApiError::bad_request(7400, "expected {sql, params} or {batch}")),
    }
}

/// Run the statements on the blocking pool; mark the response read-only when it was.
async fn run(
    app: &SharedApp,
    account_id: &str,
    id: &str,
    body: &Value,
    render: fn(&Outcome) -> Vec<Value>,
) -> Result<Response, ApiError> {
    let items = statements(body)?;
    let uuid = app.read(|s| find_db(s, account_id, id).map(|d| d.uuid.clone()))?;
    let db: Arc<D1Db> = app.d1.get(&uuid).map_err(storage_error)?;
    let outcome = tokio::task::spawn_blocking(move || db.execute(&items))
        .await
        .map_err(|e| ApiError::internal(format!("D1 worker failed: {e}")))?;
    match outcome {
        Ok(out) => {
            let mut resp = ok(render(&out))?;
            if out.read_only {
                resp.extensions_mut().insert(ReadOnlyCall);
            }
            Ok(resp)
        }
        Err(Failure { error, read_only }) => {
            let mut resp = match error {
                D1Error::Sql { message } => ApiError::bad_request(7500, message),
                other => storage_error(other),
            }
            .into_response();
            if read_only {
                resp.extensions_mut().insert(ReadOnlyCall);
            }
            Ok(resp)
        }
    }
}

/// The `meta` object of one statement's result.
pub(crate) fn meta(m: &crate::d1::StatementMeta) -> Value {
    json!({
        "changed_db": m.changed_db,
        "changes": m.changes,
        "duration": m.duration_ms,
        "last_row_id": m.last_row_id,
        "rows_read": m.rows_read,
        "rows_written": m.rows_written,
        "size_after": m.size_after,
        "served_by_region": "WEUR",
        "served_by_primary": true,
        "served_by_colo": "EMU",
        "timings": {"sql_duration_ms": m.duration_ms},
    })
}

fn render_objects(out: &Outcome) -> Vec<Value> {
    out.statements.iter().map(|s| json!({"success": true, "results": s.row_objects(), "meta": meta(&s.meta)})).collect()
}

fn render_raw(out: &Outcome) -> Vec<Value> {
    out.statements
        .iter()
        .map(|s| {
            json!({
                "success": true,
                "results": {"columns": s.columns, "rows": s.rows},
                "meta": meta(&s.meta),
            })
        })
        .collect()
}

async fn query(
    State(app): State<SharedApp>,
    Path((account_id, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run(&app, &account_id, &id, &body, render_objects).await
}

async fn raw(
    State(app): State<SharedApp>,
    Path((account_id, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run(&app, &account_id, &id, &body, render_raw).await
}

fn parse_timestamp(t: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| t.parse::<i64>().ok().and_then(|secs| DateTime::from_timestamp(secs, 0)).ok_or(()))
        .map_err(|_| ApiError::bad_request(7400, format!("Invalid timestamp {t:?}")))
}

fn tt_error(e: D1Error) -> ApiError {
    match e {
        D1Error::BadBookmark(_) | D1Error::NoSnapshot(_) => ApiError::bad_request(7400, e.to_string()),
        other => storage_error(other),
    }
}

async fn bookmark(
    State(app): State<SharedApp>,
    Path((account_id, id)): Path<(String, String)>,
    params: Params,
) -> ApiResult {
    let at = params.get("timestamp").map(parse_timestamp).transpose()?;
    let uuid = app.read(|s| find_db(s, &account_id, &id).map(|d| d.uuid.clone()))?;
    let db = app.d1.get(&uuid).map_err(storage_error)?;
    let b = tokio::task::spawn_blocking(move || db.bookmark(at))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(tt_error)?;
    ok(json!({"bookmark": b}))
}

async fn restore(
    State(app): State<SharedApp>,
    Path((account_id, id)): Path<(String, String)>,
    params: Params,
) -> ApiResult {
    let uuid = app.read(|s| find_db(s, &account_id, &id).map(|d| d.uuid.clone()))?;
    let db = app.d1.get(&uuid).map_err(storage_error)?;
    let target = match (params.get("bookmark"), params.get("timestamp")) {
        (Some(b), _) => b.to_string(),
        (None, Some(t)) => {
            let at = parse_timestamp(t)?;
            let db = db.clone();
            tokio::task::spawn_blocking(move || db.bookmark(Some(at)))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(tt_error)?
        }
        (None, None) => {
            return Err(ApiError::bad_request(7400, "restore needs a bookmark or timestamp query parameter"));
        }
    };
    let (bookmark, previous) = tokio::task::spawn_blocking(move || db.restore(&target))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(tt_error)?;
    ok(json!({
        "bookmark": bookmark,
        "previous_bookmark": previous,
        "message": "Database restored to the requested bookmark",
    }))
}
