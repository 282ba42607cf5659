//! D1 export (`POST .../d1/database/:db/export`, polling) and the signed download URL
//! (`GET /__emulator/d1-export/{token}`, no auth: the token is the credential, valid 1 hour).
//!
//! The first call answers `status: "active"` with `at_bookmark`; polling with
//! `current_bookmark` produces the SQL dump (`CREATE` statements, then one `INSERT` per row,
//! then indexes, triggers and views) and answers `status: "complete"` with
//! `result: {filename, signed_url}`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::d1::find_db;
use super::{JsonBody, account};
use crate::app::SharedApp;
use crate::d1::{D1Db, SqlStatement};
use crate::envelope::{ApiError, ApiResult, ok};

const URL_TTL: Duration = Duration::from_secs(3600);

/// Finished dumps by download token.
#[derive(Default)]
pub(crate) struct Exports {
    inner: Mutex<HashMap<String, (Instant, String, String)>>,
}

impl Exports {
    fn put(&self, filename: String, sql: String) -> String {
        let token = crate::ids::hex32();
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (at, _, _)| at.elapsed() < URL_TTL);
        m.insert(token.clone(), (Instant::now(), filename, sql));
        token
    }

    fn get(&self, token: &str) -> Option<(String, String)> {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.get(token).filter(|(at, _, _)| at.elapsed() < URL_TTL).map(|(_, f, s)| (f.clone(), s.clone()))
    }
}

fn rows(db: &D1Db, sql: &str) -> Result<Vec<Value>, ApiError> {
    let out = db
        .execute(&[SqlStatement { sql: sql.to_string(), params: Vec::new() }])
        .map_err(|e| ApiError::bad_request(7500, format!("export failed: {}", e.error)))?;
    Ok(out.statements.first().map(|s| s.row_objects()).unwrap_or_default())
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn lit(name: &str) -> String {
    format!("'{}'", name.replace('\'', "''"))
}

/// The SQL dump of `db`, limited to `tables` when not empty.
fn dump(db: &D1Db, tables: &[String], no_schema: bool, no_data: bool) -> Result<String, ApiError> {
    let objects = rows(
        db,
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' \
         ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, rowid",
    )?;
    let wanted = |t: &str| tables.is_empty() || tables.iter().any(|x| x == t);
    let mut out = String::from("PRAGMA defer_foreign_keys=TRUE;\n");
    let mut later = String::new();
    for o in &objects {
        let (Some(kind), Some(name), Some(table), Some(sql)) =
            (o["type"].as_str(), o["name"].as_str(), o["tbl_name"].as_str(), o["sql"].as_str())
        else {
            continue;
        };
        if !wanted(table) {
            continue;
        }
        if kind != "table" {
            if !no_schema {
                later.push_str(&format!("{sql};\n"));
            }
            continue;
        }
        if !no_schema {
            out.push_str(&format!("{sql};\n"));
        }
        if no_data {
            continue;
        }
        let cols = rows(db, &format!("SELECT name FROM pragma_table_info({})", lit(name)))?;
        let quoted: Vec<String> =
            cols.iter().filter_map(|c| c["name"].as_str()).map(|c| format!("quote({})", ident(c))).collect();
        if quoted.is_empty() {
            continue;
        }
        let select = format!(
            "SELECT 'INSERT INTO {} VALUES(' || {} || ');' AS stmt FROM {}",
            ident(name).replace('\'', "''"),
            quoted.join(" || ',' || "),
            ident(name)
        );
        for r in rows(db, &select)? {
            if let Some(s) = r["stmt"].as_str() {
                out.push_str(s);
                out.push('\n');
            }
        }
    }
    out.push_str(&later);
    Ok(out)
}

fn string_list(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect()
}

pub(crate) async fn export(
    State(app): State<SharedApp>,
    Path((account_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    if body.get("output_format").and_then(Value::as_str) != Some("polling") {
        return Err(ApiError::bad_request(7400, "output_format must be \"polling\""));
    }
    let uuid = app.read(|s| {
        account(s, &account_id)?;
        find_db(s, &account_id, &id).map(|d| d.uuid.clone())
    })?;
    let db = app.d1.get(&uuid).map_err(|e| ApiError::internal(e.to_string()))?;
    let Some(current) = body.get("current_bookmark").and_then(Value::as_str).map(str::to_string) else {
        let at = tokio::task::spawn_blocking({
            let db = db.clone();
            move || db.bookmark(None)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
        return ok(json!({
            "success": true, "type": "export", "at_bookmark": at, "status": "active",
            "messages": [format!("Generating {uuid}-{at}.sql")],
        }));
    };
    let opts = body.get("dump_options").cloned().unwrap_or(Value::Null);
    let tables = string_list(&opts["tables"]);
    let (no_schema, no_data) = (opts["no_schema"] == true, opts["no_data"] == true);
    let sql = tokio::task::spawn_blocking(move || dump(&db, &tables, no_schema, no_data))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let filename = format!("{uuid}-{current}.sql");
    let token = app.exports.put(filename.clone(), sql);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    ok(json!({
        "success": true, "type": "export", "at_bookmark": current, "status": "complete",
        "messages": [format!("Uploaded part 1 of {filename}")],
        "result": {"filename": filename, "signed_url": format!("http://{host}/__emulator/d1-export/{token}")},
    }))
}

/// `GET /__emulator/d1-export/{token}`: the dump as `application/sql`.
pub(crate) async fn download(State(app): State<SharedApp>, Path(token): Path<String>) -> Response {
    match app.exports.get(&token) {
        Some((filename, sql)) => {
            let mut r = sql.into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sql"));
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        None => (StatusCode::NOT_FOUND, "export not found or expired").into_response(),
    }
}
