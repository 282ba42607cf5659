//! D1 on real SQLite: one database file (or in-memory database) per D1 uuid.
//!
//! A query request (one `sql` string with any number of statements, or a `batch`) runs in
//! one transaction: all statements commit, or none. Statements are prepared one at a time
//! from the remaining SQL text (SQLite's own tokenizer decides where a statement ends), so
//! semicolons inside strings, comments and trigger bodies are handled correctly.
//!
//! Time travel: every committed write bumps the database's write version; a bookmark names
//! a write version. Snapshots (SQLite backups) are taken after each write (the most recent
//! [`AUTO_SNAPSHOTS`] are kept) and whenever a bookmark is requested, so restoring to those
//! bookmarks really restores the data. Snapshots live in memory only.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::backup::Backup;
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Batch, Connection, StatementStatus};
use serde_json::{Map, Number, Value};

/// Automatic snapshots kept per database (explicitly bookmarked ones are kept as well).
pub const AUTO_SNAPSHOTS: usize = 32;

/// A failure in the D1 layer.
#[derive(Debug, thiserror::Error)]
pub enum D1Error {
    /// A SQL error; the message is formatted the way D1 reports it
    /// (`near "SELEC": syntax error at offset 0: SQLITE_ERROR`).
    #[error("{message}")]
    Sql { message: String },
    #[error("invalid bookmark: {0}")]
    BadBookmark(String),
    #[error("{0}")]
    NoSnapshot(String),
    #[error("cannot open database file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("storage error: {0}")]
    Storage(String),
}

/// One SQL text plus its positional parameters (see [`json_param`] for the API's JSON values).
#[derive(Clone, Debug, Default)]
pub struct SqlStatement {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

/// The outcome of one statement.
#[derive(Clone, Debug)]
pub struct StatementResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub meta: StatementMeta,
}

impl StatementResult {
    /// Rows as objects keyed by column name (the `/query` shape).
    pub fn row_objects(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|row| {
                let mut obj = Map::new();
                for (c, v) in self.columns.iter().zip(row) {
                    obj.insert(c.clone(), v.clone());
                }
                Value::Object(obj)
            })
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StatementMeta {
    pub changes: u64,
    pub last_row_id: i64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub changed_db: bool,
    pub size_after: u64,
    pub duration_ms: f64,
    pub read_only: bool,
}

/// All statements of one committed request.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub statements: Vec<StatementResult>,
    /// How many of `statements` each request item (one SQL text) produced, in order.
    pub per_item: Vec<usize>,
    /// Every statement was read-only (`sqlite3_stmt_readonly`).
    pub read_only: bool,
}

/// A failed request: nothing was committed.
#[derive(Debug)]
pub struct Failure {
    pub error: D1Error,
    /// Whether every statement prepared before the failure was read-only.
    pub read_only: bool,
}

/// Open databases by uuid, file-backed under `dir` or in memory.
pub(crate) struct D1Store {
    dir: Option<PathBuf>,
    dbs: Mutex<HashMap<String, Arc<D1Db>>>,
}

impl D1Store {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        Self { dir, dbs: Mutex::new(HashMap::new()) }
    }

    fn path_for(&self, uuid: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{uuid}.sqlite")))
    }

    /// The database for `uuid`, opened (or created) on first use.
    pub(crate) fn get(&self, uuid: &str) -> Result<Arc<D1Db>, D1Error> {
        let mut dbs = lock(&self.dbs);
        if let Some(db) = dbs.get(uuid) {
            return Ok(db.clone());
        }
        let conn = match self.path_for(uuid) {
            Some(path) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| D1Error::Storage(format!("{}: {e}", parent.display())))?;
                }
                Connection::open(&path).map_err(|source| D1Error::Open { path, source })?
            }
            None => Connection::open_in_memory()
                .map_err(|source| D1Error::Open { path: PathBuf::from(":memory:"), source })?,
        };
        conn.execute_batch("PRAGMA foreign_keys = ON;").map_err(|e| D1Error::Storage(e.to_string()))?;
        let db = Arc::new(D1Db { conn: Mutex::new(conn), tt: Mutex::new(TimeTravel::new()) });
        dbs.insert(uuid.to_string(), db.clone());
        Ok(db)
    }

    /// Close and delete the database.
    pub(crate) fn remove(&self, uuid: &str) {
        lock(&self.dbs).remove(uuid);
        if let Some(path) = self.path_for(uuid) {
            remove_db_files(&path);
        }
    }

    /// Close and delete every database.
    pub(crate) fn clear(&self) {
        let uuids: Vec<String> = lock(&self.dbs).keys().cloned().collect();
        for uuid in uuids {
            self.remove(&uuid);
        }
        if let Some(dir) = &self.dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "sqlite") {
                    remove_db_files(&p);
                }
            }
        }
    }
}

fn remove_db_files(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One D1 database.
pub(crate) struct D1Db {
    conn: Mutex<Connection>,
    tt: Mutex<TimeTravel>,
}

struct TimeTravel {
    version: u64,
    /// (write version, time it became current), oldest first.
    history: Vec<(u64, DateTime<Utc>)>,
    snapshots: BTreeMap<u64, Connection>,
    auto: VecDeque<u64>,
    pinned: Vec<u64>,
}

impl TimeTravel {
    fn new() -> Self {
        Self {
            version: 0,
            history: vec![(0, crate::ids::now())],
            snapshots: BTreeMap::new(),
            auto: VecDeque::new(),
            pinned: Vec::new(),
        }
    }
}

impl D1Db {
    /// Run statements in one transaction (all or nothing).
    pub(crate) fn execute(&self, items: &[SqlStatement]) -> Result<Outcome, Failure> {
        let mut conn = lock(&self.conn);
        let mut read_only = true;
        let result = run_transaction(&mut conn, items, &mut read_only);
        match result {
            Ok((statements, per_item)) => {
                if statements.iter().any(|s| s.meta.changed_db) {
                    self.record_write(&conn);
                }
                Ok(Outcome { statements, per_item, read_only })
            }
            Err(error) => Err(Failure { error, read_only }),
        }
    }

    fn record_write(&self, conn: &Connection) {
        let mut tt = lock(&self.tt);
        tt.version += 1;
        let v = tt.version;
        let at = crate::ids::now_after(tt.history.last().map(|h| &h.1));
        tt.history.push((v, at));
        if let Ok(snap) = snapshot(conn) {
            tt.snapshots.insert(v, snap);
            tt.auto.push_back(v);
            while tt.auto.len() > AUTO_SNAPSHOTS {
                if let Some(old) = tt.auto.pop_front()
                    && !tt.pinned.contains(&old)
                {
                    tt.snapshots.remove(&old);
                }
            }
        }
    }

    /// Bookmark of the current state (a snapshot is kept for it), or of the state at `at`.
    pub(crate) fn bookmark(&self, at: Option<DateTime<Utc>>) -> Result<String, D1Error> {
        let conn = lock(&self.conn);
        let mut tt = lock(&self.tt);
        let version = match at {
            None => tt.version,
            Some(at) => {
                let first = tt.history.first().map(|h| h.1);
                if first.is_some_and(|f| at < f) {
                    return Err(D1Error::BadBookmark(format!("timestamp {at} is before the database was created")));
                }
                tt.history.iter().rev().find(|(_, t)| *t <= at).map(|(v, _)| *v).unwrap_or(tt.version)
            }
        };
        if version == tt.version && !tt.snapshots.contains_key(&version) {
            let snap = snapshot(&conn).map_err(|e| D1Error::Storage(e.to_string()))?;
            tt.snapshots.insert(version, snap);
        }
        if !tt.pinned.contains(&version) {
            tt.pinned.push(version);
        }
        Ok(format_bookmark(version))
    }

    /// Restore to a bookmark. Returns `(new bookmark, previous bookmark)`; the previous
    /// bookmark undoes the restore.
    pub(crate) fn restore(&self, bookmark: &str) -> Result<(String, String), D1Error> {
        let target = parse_bookmark(bookmark)?;
        let mut conn = lock(&self.conn);
        let mut tt = lock(&self.tt);
        if target > tt.version {
            return Err(D1Error::BadBookmark(format!("bookmark {bookmark} is in the future of this database")));
        }
        if !tt.snapshots.contains_key(&target) {
            return Err(D1Error::NoSnapshot(format!(
                "the emulator kept no snapshot for bookmark {bookmark} (it keeps the last {AUTO_SNAPSHOTS} writes and every bookmark it handed out)"
            )));
        }
        // Keep the current state so the restore can be undone.
        let current = tt.version;
        if let std::collections::btree_map::Entry::Vacant(slot) = tt.snapshots.entry(current) {
            slot.insert(snapshot(&conn).map_err(|e| D1Error::Storage(e.to_string()))?);
        }
        if !tt.pinned.contains(&current) {
            tt.pinned.push(current);
        }
        if let Some(src) = tt.snapshots.get(&target) {
            copy_db(src, &mut conn).map_err(|e| D1Error::Storage(e.to_string()))?;
        }
        tt.version += 1;
        let v = tt.version;
        let at = crate::ids::now_after(tt.history.last().map(|h| &h.1));
        tt.history.push((v, at));
        let snap = snapshot(&conn).map_err(|e| D1Error::Storage(e.to_string()))?;
        tt.snapshots.insert(v, snap);
        tt.pinned.push(v);
        Ok((format_bookmark(v), format_bookmark(current)))
    }

    /// Database size in bytes.
    pub(crate) fn file_size(&self) -> u64 {
        size_of(&lock(&self.conn))
    }

    /// Number of user tables.
    pub(crate) fn num_tables(&self) -> u64 {
        lock(&self.conn)
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .unwrap_or(0)
    }
}

fn snapshot(conn: &Connection) -> rusqlite::Result<Connection> {
    let mut dst = Connection::open_in_memory()?;
    copy_db(conn, &mut dst)?;
    Ok(dst)
}

fn copy_db(src: &Connection, dst: &mut Connection) -> rusqlite::Result<()> {
    let backup = Backup::new(src, dst)?;
    backup.run_to_completion(i32::MAX, Duration::ZERO, None)
}

fn size_of(conn: &Connection) -> u64 {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap_or(0);
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap_or(0);
    (pages.max(0) as u64) * (size.max(0) as u64)
}

/// Bookmarks look like D1's: `0000000a-00000000-00004e3f-<32 hex>`; the first field is the
/// write version.
fn format_bookmark(version: u64) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("d1-bookmark-{version}").as_bytes());
    format!("{:08x}-00000000-00004e3f-{}", version, hex::encode(&digest[..16]))
}

fn parse_bookmark(bookmark: &str) -> Result<u64, D1Error> {
    let head = bookmark.split('-').next().unwrap_or_default();
    if bookmark.split('-').count() != 4 || head.len() != 8 {
        return Err(D1Error::BadBookmark(bookmark.to_string()));
    }
    let v = u64::from_str_radix(head, 16).map_err(|_| D1Error::BadBookmark(bookmark.to_string()))?;
    if format_bookmark(v) != bookmark {
        return Err(D1Error::BadBookmark(bookmark.to_string()));
    }
    Ok(v)
}

fn run_transaction(
    conn: &mut Connection,
    items: &[SqlStatement],
    read_only: &mut bool,
) -> Result<(Vec<StatementResult>, Vec<usize>), D1Error> {
    let tx = conn.transaction().map_err(sql_error)?;
    let mut results = Vec::new();
    let mut per_item = Vec::with_capacity(items.len());
    for item in items {
        let mut batch = Batch::new(&tx, &item.sql);
        let mut in_item = 0usize;
        let mut first_param_count = 0usize;
        let mut pending: Vec<StatementResult> = Vec::new();
        loop {
            let started = Instant::now();
            let Some(mut stmt) = batch.next().map_err(sql_error)? else {
                break;
            };
            in_item += 1;
            let text = stmt.expanded_sql().unwrap_or_default();
            if let Some(kw) = transaction_keyword(&text) {
                return Err(D1Error::Sql {
                    message: format!(
                        "not authorized to use {kw}: D1 runs each request in its own transaction: SQLITE_AUTH"
                    ),
                });
            }
            let stmt_read_only = stmt.readonly();
            *read_only &= stmt_read_only;
            let count = stmt.parameter_count();
            if in_item == 1 {
                first_param_count = count;
            }
            if count > item.params.len() {
                return Err(D1Error::Sql {
                    message: format!(
                        "Wrong number of parameter bindings for SQL query: expected {count}, got {}: SQLITE_RANGE",
                        item.params.len()
                    ),
                });
            }
            for (i, p) in item.params.iter().take(count).enumerate() {
                stmt.raw_bind_parameter(i + 1, p).map_err(sql_error)?;
            }
            let schema_before = schema_version(&tx);
            let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
            let mut rows_out = Vec::new();
            {
                let mut rows = stmt.raw_query();
                while let Some(row) = rows.next().map_err(sql_error)? {
                    let mut vals = Vec::with_capacity(columns.len());
                    for i in 0..columns.len() {
                        vals.push(value_to_json(row.get_ref(i).map_err(sql_error)?));
                    }
                    rows_out.push(vals);
                }
            }
            let changes = if stmt_read_only { 0 } else { tx.changes() };
            let scanned = stmt.get_status(StatementStatus::FullscanStep).max(0) as u64;
            let schema_changed = !stmt_read_only && schema_version(&tx) != schema_before;
            let meta = StatementMeta {
                changes,
                last_row_id: if stmt_read_only { 0 } else { tx.last_insert_rowid() },
                rows_read: (rows_out.len() as u64).max(scanned),
                rows_written: changes,
                changed_db: !stmt_read_only && (changes > 0 || schema_changed),
                size_after: size_of(&tx),
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                read_only: stmt_read_only,
            };
            pending.push(StatementResult { columns, rows: rows_out, meta });
        }
        if in_item == 1 && item.params.len() != first_param_count {
            return Err(D1Error::Sql {
                message: format!(
                    "Wrong number of parameter bindings for SQL query: expected {first_param_count}, got {}: SQLITE_RANGE",
                    item.params.len()
                ),
            });
        }
        per_item.push(pending.len());
        results.extend(pending);
    }
    if results.is_empty() {
        return Err(D1Error::Sql { message: "No SQL statements detected.".to_string() });
    }
    tx.commit().map_err(sql_error)?;
    Ok((results, per_item))
}

fn schema_version(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA schema_version", [], |r| r.get(0)).unwrap_or(0)
}

/// First keyword of a statement if it is transaction control (D1 forbids those).
fn transaction_keyword(sql: &str) -> Option<String> {
    let kw = first_keyword(sql).to_ascii_uppercase();
    match kw.as_str() {
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" => Some(kw),
        _ => None,
    }
}

fn first_keyword(sql: &str) -> &str {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map(|(_, r)| r).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map(|(_, r)| r).unwrap_or("");
        } else {
            break;
        }
    }
    let end = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
    &rest[..end]
}

/// A query parameter from the API's JSON: booleans become 0/1, objects and arrays JSON text.
pub(crate) fn json_param(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

fn value_to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Number(i.into()),
        ValueRef::Real(f) => Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Array(b.iter().map(|x| Value::Number((*x).into())).collect()),
    }
}

/// Format a SQLite error the way D1 reports it: message, then the primary result code name.
fn sql_error(e: rusqlite::Error) -> D1Error {
    let message = match &e {
        rusqlite::Error::SqlInputError { error, msg, offset, .. } => {
            format!("{msg} at offset {offset}: {}", code_name(error.extended_code))
        }
        rusqlite::Error::SqliteFailure(error, Some(msg)) => {
            format!("{msg}: {}", code_name(error.extended_code))
        }
        rusqlite::Error::SqliteFailure(error, None) => {
            format!("{error}: {}", code_name(error.extended_code))
        }
        other => format!("{other}: SQLITE_ERROR"),
    };
    D1Error::Sql { message }
}

fn code_name(extended: std::os::raw::c_int) -> &'static str {
    match extended & 0xff {
        1 => "SQLITE_ERROR",
        2 => "SQLITE_INTERNAL",
        3 => "SQLITE_PERM",
        4 => "SQLITE_ABORT",
        5 => "SQLITE_BUSY",
        6 => "SQLITE_LOCKED",
        7 => "SQLITE_NOMEM",
        8 => "SQLITE_READONLY",
        9 => "SQLITE_INTERRUPT",
        10 => "SQLITE_IOERR",
        11 => "SQLITE_CORRUPT",
        12 => "SQLITE_NOTFOUND",
        13 => "SQLITE_FULL",
        14 => "SQLITE_CANTOPEN",
        15 => "SQLITE_PROTOCOL",
        16 => "SQLITE_EMPTY",
        17 => "SQLITE_SCHEMA",
        18 => "SQLITE_TOOBIG",
        19 => "SQLITE_CONSTRAINT",
        20 => "SQLITE_MISMATCH",
        21 => "SQLITE_MISUSE",
        22 => "SQLITE_NOLFS",
        23 => "SQLITE_AUTH",
        24 => "SQLITE_FORMAT",
        25 => "SQLITE_RANGE",
        26 => "SQLITE_NOTADB",
        _ => "SQLITE_ERROR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db() -> Arc<D1Db> {
        D1Store::new(None).get("x").unwrap()
    }

    fn sql(s: &str) -> SqlStatement {
        SqlStatement { sql: s.into(), params: vec![] }
    }

    fn message(f: Failure) -> String {
        f.error.to_string()
    }

    #[test]
    fn splits_statements_with_sqlite_tokenizer() {
        let d = db();
        let out = d
            .execute(&[sql("CREATE TABLE t(a TEXT); -- a comment; with semicolon\n\
                 INSERT INTO t VALUES ('x;y'); \
                 CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO t SELECT 'trig' WHERE NEW.a <> 'trig'; END; \
                 INSERT INTO t VALUES ('z'); SELECT a FROM t ORDER BY rowid;")])
            .unwrap();
        assert_eq!(out.statements.len(), 5);
        assert!(!out.read_only);
        let rows = out.statements[4].row_objects();
        assert_eq!(rows, vec![json!({"a":"x;y"}), json!({"a":"z"}), json!({"a":"trig"})]);
        assert_eq!(out.statements[1].meta.changes, 1);
        assert!(out.statements[0].meta.changed_db, "DDL changes the db");
        assert!(!out.statements[4].meta.changed_db);
        assert!(out.statements[4].meta.read_only);
    }

    #[test]
    fn failure_rolls_back_everything() {
        let d = db();
        d.execute(&[sql("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT UNIQUE)")]).unwrap();
        let err = d.execute(&[sql("INSERT INTO t(b) VALUES ('1'); INSERT INTO t(b) VALUES ('1');")]).unwrap_err();
        assert_eq!(message(err), "UNIQUE constraint failed: t.b: SQLITE_CONSTRAINT");
        let out = d.execute(&[sql("SELECT count(*) AS n FROM t")]).unwrap();
        assert_eq!(out.statements[0].row_objects(), vec![json!({"n": 0})]);
        assert!(out.read_only);
    }

    #[test]
    fn syntax_errors_read_like_d1() {
        let d = db();
        let err = d.execute(&[sql("SELEC 1")]).unwrap_err();
        assert_eq!(message(err), "near \"SELEC\": syntax error at offset 0: SQLITE_ERROR");
        let err = d.execute(&[sql("SELECT * FROM nope")]).unwrap_err();
        assert!(message(err).starts_with("no such table: nope"));
        let err = d.execute(&[sql("BEGIN TRANSACTION")]).unwrap_err();
        assert!(message(err).ends_with("SQLITE_AUTH"));
        let err = d.execute(&[sql("  -- only a comment\n")]).unwrap_err();
        assert_eq!(message(err), "No SQL statements detected.");
    }

    #[test]
    fn params_bind_all_json_types() {
        let d = db();
        d.execute(&[sql("CREATE TABLE p(s TEXT, i INTEGER, r REAL, n, b INTEGER)")]).unwrap();
        let out = d
            .execute(&[
                SqlStatement {
                    sql: "INSERT INTO p VALUES (?1, ?2, ?3, ?4, ?5)".into(),
                    params: [json!("x"), json!(7), json!(1.5), Value::Null, json!(true)]
                        .iter()
                        .map(json_param)
                        .collect(),
                },
                SqlStatement { sql: "SELECT * FROM p WHERE s = ?".into(), params: vec![json_param(&json!("x"))] },
            ])
            .unwrap();
        assert_eq!(out.statements[0].meta.last_row_id, 1);
        assert_eq!(out.statements[1].row_objects(), vec![json!({"s":"x","i":7,"r":1.5,"n":null,"b":1})]);
        let err =
            d.execute(&[SqlStatement { sql: "SELECT ?1, ?2".into(), params: vec![SqlValue::Integer(1)] }]).unwrap_err();
        assert!(message(err).contains("Wrong number of parameter bindings"));
    }

    #[test]
    fn bookmarks_restore_data() {
        let d = db();
        d.execute(&[sql("CREATE TABLE t(a); INSERT INTO t VALUES (1)")]).unwrap();
        let b = d.bookmark(None).unwrap();
        d.execute(&[sql("INSERT INTO t VALUES (2)")]).unwrap();
        let (_new, prev) = d.restore(&b).unwrap();
        let count = |d: &D1Db| {
            d.execute(&[sql("SELECT count(*) AS n FROM t")]).unwrap().statements[0].row_objects()[0]["n"].clone()
        };
        assert_eq!(count(&d), json!(1));
        d.restore(&prev).unwrap();
        assert_eq!(count(&d), json!(2));
        assert!(matches!(d.restore("garbage"), Err(D1Error::BadBookmark(_))));
        assert!(d.bookmark(Some(Utc::now() - chrono::Duration::days(1))).is_err());
    }
}
