//! D1 databases: create, list (page-array), get, delete, query/raw, Time Travel.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;
use crate::pagination::{Page, collect_pages};
use crate::retry::RetryMode;

pub const EP_D1_DATABASES: &str = "/accounts/:account/d1/database";
pub const EP_D1_DATABASE: &str = "/accounts/:account/d1/database/:database";
pub const EP_D1_QUERY: &str = "/accounts/:account/d1/database/:database/query";
pub const EP_D1_RAW: &str = "/accounts/:account/d1/database/:database/raw";
pub const EP_D1_BOOKMARK: &str = "/accounts/:account/d1/database/:database/time_travel/bookmark";
pub const EP_D1_RESTORE: &str = "/accounts/:account/d1/database/:database/time_travel/restore";

/// Name already exists.
pub const CODE_D1_NAME_EXISTS: u32 = 7502;
/// Account database limit.
pub const CODE_D1_LIMIT: u32 = 7406;

const D1_PER_PAGE: u32 = 100;

/// A D1 database (list item or full get).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct D1Database {
    #[serde(alias = "id", default, deserialize_with = "de::lenient_string")]
    pub uuid: String,
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub name: String,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub version: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub file_size: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub num_tables: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub jurisdiction: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub running_in_region: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub created_in_region: Option<String>,
    #[serde(default)]
    pub read_replication: Option<Value>,
}

/// Body of `POST .../d1/database`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CreateD1Database {
    pub name: String,
    /// `wnam|enam|weur|eeur|apac|oc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_location_hint: Option<String>,
    /// `eu|fedramp|us`; overrides the location hint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
}

impl CreateD1Database {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }
}

/// One SQL statement with positional parameters (`?1`, `?2`, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct D1Statement {
    pub sql: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Value>,
}

/// Body of `/query` and `/raw`: one SQL string (may hold several `;`-separated statements) or a
/// batch.
#[derive(Debug, Clone, PartialEq)]
pub struct D1Query {
    body: D1QueryBody,
    idempotent: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
enum D1QueryBody {
    Single(D1Statement),
    Batch { batch: Vec<D1Statement> },
}

impl D1Query {
    pub fn sql(sql: impl Into<String>) -> Self {
        Self { body: D1QueryBody::Single(D1Statement { sql: sql.into(), params: Vec::new() }), idempotent: false }
    }

    pub fn with_params(sql: impl Into<String>, params: Vec<Value>) -> Self {
        Self { body: D1QueryBody::Single(D1Statement { sql: sql.into(), params }), idempotent: false }
    }

    pub fn batch(statements: Vec<D1Statement>) -> Self {
        Self { body: D1QueryBody::Batch { batch: statements }, idempotent: false }
    }

    /// Mark the query safe to repeat (reads, `CREATE TABLE IF NOT EXISTS`): it is then retried
    /// on 5xx and timeouts like other calls. By default a query is retried only when it surely
    /// did not run (connection refused, 429), because a lost answer to a write followed by a
    /// retry would apply it twice.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    fn retry_mode(&self) -> RetryMode {
        if self.idempotent { RetryMode::Full } else { RetryMode::Safe }
    }
}

/// Execution metadata of one statement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct D1Meta {
    #[serde(default)]
    pub changed_db: Option<bool>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub changes: Option<u64>,
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub last_row_id: Option<i64>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub rows_read: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub rows_written: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub size_after: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub served_by_region: Option<String>,
}

fn lenient_meta<'de, D: serde::Deserializer<'de>>(d: D) -> Result<D1Meta, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

/// Result of one statement of `/query`: rows as objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct D1QueryResult {
    #[serde(default = "yes", deserialize_with = "bool_or_true")]
    pub success: bool,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub results: Vec<Map<String, Value>>,
    #[serde(default, deserialize_with = "lenient_meta")]
    pub meta: D1Meta,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub error: Option<String>,
}

/// Columns and rows of one statement of `/raw`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct D1RawRows {
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub columns: Vec<String>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub rows: Vec<Vec<Value>>,
}

fn lenient_raw_rows<'de, D: serde::Deserializer<'de>>(d: D) -> Result<D1RawRows, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct D1RawResult {
    #[serde(default = "yes", deserialize_with = "bool_or_true")]
    pub success: bool,
    #[serde(default, deserialize_with = "lenient_raw_rows")]
    pub results: D1RawRows,
    #[serde(default, deserialize_with = "lenient_meta")]
    pub meta: D1Meta,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub error: Option<String>,
}

fn yes() -> bool {
    true
}

fn bool_or_true<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| v.as_bool()).unwrap_or(true))
}

/// Time Travel restore target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreTarget {
    Bookmark(String),
    Timestamp(DateTime<Utc>),
}

/// Result of a Time Travel restore. `previous_bookmark` undoes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreResult {
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub bookmark: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub previous_bookmark: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub message: Option<String>,
}

#[derive(Deserialize)]
struct BookmarkResult {
    #[serde(default, deserialize_with = "de::lenient_string")]
    bookmark: String,
}

fn db_path(account: &str, database: &str) -> String {
    format!("/accounts/{}/d1/database/{}", enc(account), enc(database))
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl CloudflareClient {
    /// `POST .../d1/database`.
    ///
    /// Not idempotent: an existing name fails with code 7502 ([`CODE_D1_NAME_EXISTS`],
    /// `is_conflict()`). The request is still retried on 5xx and timeouts, so a retry after a
    /// lost answer can report 7502 for a database this call created: callers find-by-name first
    /// and, on 7502, look the database up again with [`CloudflareClient::find_d1_database`].
    pub async fn create_d1_database(
        &self,
        account_id: &str,
        body: &CreateD1Database,
    ) -> Result<D1Database, CloudflareError> {
        let req = Request::post(EP_D1_DATABASES, format!("/accounts/{}/d1/database", enc(account_id))).json(body)?;
        self.call(req).await
    }

    /// One page of `GET .../d1/database`.
    pub async fn list_d1_databases_page(
        &self,
        account_id: &str,
        name: Option<&str>,
        page: u32,
        per_page: u32,
    ) -> Result<Page<D1Database>, CloudflareError> {
        let req = Request::get(EP_D1_DATABASES, format!("/accounts/{}/d1/database", enc(account_id)))
            .query_opt("name", name)
            .query("page", page)
            .query("per_page", per_page);
        self.page_array(req).await
    }

    /// All databases (every page), optionally filtered by `name` (the API may match loosely).
    pub async fn list_d1_databases(
        &self,
        account_id: &str,
        name: Option<&str>,
    ) -> Result<Vec<D1Database>, CloudflareError> {
        collect_pages(D1_PER_PAGE, |page| self.list_d1_databases_page(account_id, name, page, D1_PER_PAGE)).await
    }

    /// The database named exactly `name`, if any (list with the name filter, then exact match).
    pub async fn find_d1_database(&self, account_id: &str, name: &str) -> Result<Option<D1Database>, CloudflareError> {
        Ok(self.list_d1_databases(account_id, Some(name)).await?.into_iter().find(|d| d.name == name))
    }

    /// `GET .../d1/database/:database`; the path accepts the UUID or the name.
    pub async fn get_d1_database(&self, account_id: &str, id_or_name: &str) -> Result<D1Database, CloudflareError> {
        self.call(Request::get(EP_D1_DATABASE, db_path(account_id, id_or_name))).await
    }

    /// `DELETE .../d1/database/:database`. Unknown: `is_not_found()` (code 7404).
    pub async fn delete_d1_database(&self, account_id: &str, database_id: &str) -> Result<(), CloudflareError> {
        self.call_unit(Request::delete(EP_D1_DATABASE, db_path(account_id, database_id))).await
    }

    /// `POST .../query`: one result per statement, rows as objects. SQL errors fail the call
    /// (`is_sql_error()`, code 7500). See [`D1Query::idempotent`] for the retry rule.
    pub async fn query_d1(
        &self,
        account_id: &str,
        database_id: &str,
        query: &D1Query,
    ) -> Result<Vec<D1QueryResult>, CloudflareError> {
        let req = Request::post(EP_D1_QUERY, format!("{}/query", db_path(account_id, database_id)))
            .json(&query.body)?
            .retry_mode(query.retry_mode());
        let r: Option<Vec<D1QueryResult>> = self.call(req).await?;
        Ok(r.unwrap_or_default())
    }

    /// `POST .../raw`: like [`Self::query_d1`] with rows as arrays plus column names.
    pub async fn raw_d1(
        &self,
        account_id: &str,
        database_id: &str,
        query: &D1Query,
    ) -> Result<Vec<D1RawResult>, CloudflareError> {
        let req = Request::post(EP_D1_RAW, format!("{}/raw", db_path(account_id, database_id)))
            .json(&query.body)?
            .retry_mode(query.retry_mode());
        let r: Option<Vec<D1RawResult>> = self.call(req).await?;
        Ok(r.unwrap_or_default())
    }

    /// Time Travel bookmark at `timestamp` (current one when `None`).
    pub async fn d1_bookmark(
        &self,
        account_id: &str,
        database_id: &str,
        timestamp: Option<DateTime<Utc>>,
    ) -> Result<String, CloudflareError> {
        let req = Request::get(EP_D1_BOOKMARK, format!("{}/time_travel/bookmark", db_path(account_id, database_id)))
            .query_opt("timestamp", timestamp.as_ref().map(rfc3339));
        let r: BookmarkResult = self.call(req).await?;
        if r.bookmark.is_empty() {
            return Err(CloudflareError::Decode {
                method: reqwest::Method::GET,
                endpoint: EP_D1_BOOKMARK,
                detail: "response has no bookmark".into(),
            });
        }
        Ok(r.bookmark)
    }

    /// Restore the database to a bookmark or point in time (query parameters, no body).
    pub async fn d1_restore(
        &self,
        account_id: &str,
        database_id: &str,
        target: &RestoreTarget,
    ) -> Result<RestoreResult, CloudflareError> {
        let req = Request::post(EP_D1_RESTORE, format!("{}/time_travel/restore", db_path(account_id, database_id)));
        let req = match target {
            RestoreTarget::Bookmark(b) => req.query("bookmark", b),
            RestoreTarget::Timestamp(t) => req.query("timestamp", rfc3339(t)),
        };
        self.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_bodies() {
        assert_eq!(serde_json::to_value(&D1Query::sql("SELECT 1").body).unwrap(), json!({"sql": "SELECT 1"}));
        assert_eq!(
            serde_json::to_value(
                &D1Query::with_params("SELECT ?1, ?2, ?3", vec![json!("x"), json!(2), Value::Null]).body
            )
            .unwrap(),
            json!({"sql": "SELECT ?1, ?2, ?3", "params": ["x", 2, null]})
        );
        let batch = D1Query::batch(vec![
            D1Statement { sql: "INSERT INTO t VALUES (?1)".into(), params: vec![json!(1)] },
            D1Statement { sql: "SELECT * FROM t".into(), params: vec![] },
        ]);
        assert_eq!(
            serde_json::to_value(&batch.body).unwrap(),
            json!({"batch": [{"sql": "INSERT INTO t VALUES (?1)", "params": [1]}, {"sql": "SELECT * FROM t"}]})
        );
        assert_eq!(batch.retry_mode(), RetryMode::Safe);
        assert_eq!(D1Query::sql("SELECT 1").idempotent().retry_mode(), RetryMode::Full);
    }

    #[test]
    fn results_parse() {
        let r: Vec<D1QueryResult> = serde_json::from_value(json!([
            {"success": true, "results": [{"id": 1, "name": "a"}],
             "meta": {"changed_db": false, "changes": 0, "duration": 0.21, "last_row_id": 0, "rows_read": 1,
                      "rows_written": 0, "size_after": 16384, "served_by_region": "WEUR", "timings": {"sql_duration_ms": 0.2}}},
            {"results": null, "meta": null}
        ]))
        .unwrap();
        assert_eq!(r[0].results[0]["name"], "a");
        assert_eq!(r[0].meta.rows_read, Some(1));
        assert!(r[1].success && r[1].results.is_empty());
        let raw: Vec<D1RawResult> = serde_json::from_value(
            json!([{"success": true, "results": {"columns": ["id"], "rows": [[1], [2]]}, "meta": {}}]),
        )
        .unwrap();
        assert_eq!(raw[0].results.columns, ["id"]);
        assert_eq!(raw[0].results.rows.len(), 2);
        let db: D1Database =
            serde_json::from_value(json!({"uuid": "u-1", "name": "n", "file_size": 12, "num_tables": null})).unwrap();
        assert_eq!((db.uuid.as_str(), db.file_size, db.num_tables), ("u-1", Some(12), None));
        let db: D1Database = serde_json::from_value(json!({"id": "u-2", "name": "n"})).unwrap();
        assert_eq!(db.uuid, "u-2");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = DateTime::parse_from_rfc3339("2025-05-01T10:00:00+02:00").unwrap().with_timezone(&Utc);
        assert_eq!(rfc3339(&t), "2025-05-01T08:00:00Z");
    }
}
