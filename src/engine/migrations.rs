//! D1 migrations: file ordering, checksums, and what a pass must apply (DESIGN §3).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::crd::AppliedMigration;
use crate::crd::keys::MIGRATIONS_TABLE;

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFile {
    pub name: String,
    pub sql: String,
    pub checksum: String,
}

impl MigrationFile {
    pub fn new(name: impl Into<String>, sql: impl Into<String>) -> Self {
        let sql = sql.into();
        let checksum = checksum(&sql);
        Self { name: name.into(), sql, checksum }
    }
}

/// `sha256:<hex>` of a migration's text.
pub fn checksum(sql: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(sql.as_bytes())))
}

/// Why a set of files cannot be used as migrations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationSetError {
    #[error("{field}: key {key:?} is not a migration file name (expected NNNN_name.sql)")]
    BadName { field: String, key: String },
    #[error("{field}: migration {key:?} is empty")]
    Empty { field: String, key: String },
    #[error("{field}: migration {key:?} is not valid SQL: {message}")]
    Syntax { field: String, key: String, message: String },
}

/// Build the ordered migration list from ConfigMap entries. Files sort by the integer before the
/// first `_` (wrangler's order), then by name.
pub fn from_files(field: &str, files: &BTreeMap<String, String>) -> Result<Vec<MigrationFile>, MigrationSetError> {
    let mut out = Vec::with_capacity(files.len());
    for (key, sql) in files {
        if sequence_number(key).is_none() {
            return Err(MigrationSetError::BadName { field: field.to_string(), key: key.clone() });
        }
        if sql.trim().is_empty() {
            return Err(MigrationSetError::Empty { field: field.to_string(), key: key.clone() });
        }
        out.push(MigrationFile::new(key.clone(), sql.clone()));
    }
    out.sort_by(|a, b| (sequence_number(&a.name), &a.name).cmp(&(sequence_number(&b.name), &b.name)));
    if let Some((key, message)) = syntax_error(&out) {
        return Err(MigrationSetError::Syntax { field: field.to_string(), key, message });
    }
    Ok(out)
}

/// [`from_files`] on Tokio's blocking pool: the SQLite syntax check may spend up to its step
/// budget, which must not stall the async threads that run other reconciles.
pub async fn from_files_off_thread(
    field: &str,
    files: BTreeMap<String, String>,
) -> Result<Vec<MigrationFile>, MigrationSetError> {
    let owned = field.to_string();
    match tokio::task::spawn_blocking(move || from_files(&owned, &files)).await {
        Ok(result) => result,
        Err(join) => Err(MigrationSetError::Syntax {
            field: field.to_string(),
            key: String::new(),
            message: format!("the syntax check did not finish: {join}"),
        }),
    }
}

/// SQLite virtual machine steps a syntax check may spend (in units of 1000), so that a migration
/// that loops (a recursive CTE) or seeds a lot of data ends the check instead of the pass.
const SYNTAX_CHECK_BUDGET: u32 = 5_000;

/// The first syntax error in the files, found by running them in order on an empty in-memory
/// SQLite database (D1 is SQLite) before anything is sent to Cloudflare. Only syntax errors count:
/// any other failure (a table created outside these migrations, a function D1 has and this SQLite
/// lacks, the step budget) ends the check without a verdict, and D1 decides.
fn syntax_error(files: &[MigrationFile]) -> Option<(String, String)> {
    let conn = rusqlite::Connection::open_in_memory().ok()?;
    let mut steps = 0u32;
    conn.progress_handler(
        1000,
        Some(move || {
            steps += 1;
            steps > SYNTAX_CHECK_BUDGET
        }),
    );
    // Bound memory too: no string or blob above 1 MB.
    let _ = conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, 1_000_000);
    for f in files {
        let err = match conn.execute_batch(&f.sql) {
            Ok(()) => continue,
            Err(e) => e,
        };
        let message = match &err {
            rusqlite::Error::SqlInputError { msg, offset, .. } => format!("{msg} at offset {offset}"),
            rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
            _ => return None,
        };
        let syntax = message.contains("syntax error")
            || message.starts_with("incomplete input")
            || message.starts_with("unrecognized token");
        return syntax.then(|| (f.name.clone(), message));
    }
    None
}

fn sequence_number(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".sql")?;
    let (num, rest) = stem.split_once('_')?;
    if rest.is_empty() || num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
        return None;
    }
    num.parse().ok()
}

/// Result of comparing declared files with what the database has applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// Applied migrations with the checksum to record (known from status, or the current file).
    pub applied: Vec<AppliedMigration>,
    /// Files still to apply, in order.
    pub pending: Vec<MigrationFile>,
}

/// A migration already applied whose file content changed since.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("migration {name} was changed after it was applied (applied {recorded}, file now {current})")]
pub struct ChecksumMismatch {
    pub name: String,
    pub recorded: String,
    pub current: String,
}

/// Compare files with the migrations recorded in status and the names present in the database's
/// tracking table (`applied_in_db`, when it was read this pass).
pub fn compare(
    files: &[MigrationFile],
    recorded: &[AppliedMigration],
    applied_in_db: Option<&[String]>,
) -> Result<MigrationState, ChecksumMismatch> {
    let mut applied = Vec::new();
    let mut pending = Vec::new();
    for file in files {
        let in_status = recorded.iter().find(|r| r.name == file.name);
        if let Some(r) = in_status
            && !r.checksum.is_empty()
            && r.checksum != file.checksum
        {
            return Err(ChecksumMismatch {
                name: file.name.clone(),
                recorded: short(&r.checksum),
                current: short(&file.checksum),
            });
        }
        let is_applied = match applied_in_db {
            Some(names) => names.iter().any(|n| n == &file.name),
            None => in_status.is_some(),
        };
        if is_applied {
            applied.push(AppliedMigration {
                name: file.name.clone(),
                checksum: file.checksum.clone(),
                applied_at: in_status.and_then(|r| r.applied_at.clone()),
            });
        } else {
            pending.push(file.clone());
        }
    }
    // Keep records of migrations applied earlier whose files were since removed from the ConfigMap:
    // the database still has them.
    for r in recorded {
        if !files.iter().any(|f| f.name == r.name) {
            applied.push(r.clone());
        }
    }
    Ok(MigrationState { applied, pending })
}

fn short(checksum: &str) -> String {
    checksum.chars().take(19).collect()
}

/// SQL that creates the tracking table exactly as wrangler does.
pub fn create_table_sql() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}(\n\tid INTEGER PRIMARY KEY AUTOINCREMENT,\n\tname TEXT UNIQUE,\n\tapplied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL\n);"
    )
}

/// The one query that applies a migration atomically: tracking table, the file, its record.
pub fn apply_sql(file: &MigrationFile) -> String {
    format!(
        "{}\n{}\nINSERT INTO {MIGRATIONS_TABLE} (name) values ('{}');",
        create_table_sql(),
        file.sql.trim_end(),
        file.name.replace('\'', "''")
    )
}

/// Read-only query telling whether the tracking table exists.
pub fn table_exists_sql() -> String {
    format!("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '{MIGRATIONS_TABLE}'")
}

/// Read-only query listing applied migration names in order.
pub fn list_applied_sql() -> String {
    format!("SELECT name, applied_at FROM {MIGRATIONS_TABLE} ORDER BY id")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn syntax_check_runs_on_the_blocking_pool() {
        // A migration whose check takes a while: a recursive CTE counting to a large number.
        let heavy = files(&[(
            "0001_a.sql",
            "CREATE TABLE t(x); INSERT INTO t WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c LIMIT 300000) SELECT n FROM c;",
        )]);
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        // On a single-threaded runtime this task can only run while the check is off-thread.
        let other = tokio::spawn(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
        let result = from_files_off_thread("m", heavy).await;
        assert!(ran.load(std::sync::atomic::Ordering::SeqCst), "the async thread was blocked by the check");
        other.await.unwrap();
        assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn sorts_by_sequence_number_like_wrangler() {
        let f = from_files(
            "m",
            &files(&[("10_c.sql", "SELECT 1;"), ("2_b.sql", "SELECT 2;"), ("0001_a.sql", "SELECT 3;")]),
        )
        .unwrap();
        let names: Vec<_> = f.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["0001_a.sql", "2_b.sql", "10_c.sql"]);
    }

    #[test]
    fn rejects_bad_names_and_empty_files() {
        for bad in ["init.sql", "0001.sql", "0001_x.txt", "abc_def.sql", "0001_x y.sql"] {
            let err = from_files("d1Databases[0].migrations", &files(&[(bad, "select 1")])).unwrap_err();
            assert!(matches!(err, MigrationSetError::BadName { .. }), "{bad}");
            assert!(err.to_string().starts_with("d1Databases[0].migrations: key"));
        }
        assert!(matches!(
            from_files("m", &files(&[("0001_a.sql", "  \n")])).unwrap_err(),
            MigrationSetError::Empty { .. }
        ));
    }

    #[test]
    fn syntax_errors_are_found_before_anything_is_sent() {
        let bad = files(&[("0001_ok.sql", "CREATE TABLE t (id INTEGER);"), ("0002_bad.sql", "CREATE TABLEE u (id);")]);
        let err = from_files("m", &bad).unwrap_err();
        assert!(matches!(&err, MigrationSetError::Syntax { key, .. } if key == "0002_bad.sql"), "{err}");
        assert!(err.to_string().contains("near \"TABLEE\": syntax error"), "{err}");
        let err = from_files("m", &files(&[("0001_a.sql", "SELECT 'unterminated")])).unwrap_err();
        assert!(matches!(err, MigrationSetError::Syntax { .. }), "{err}");
    }

    #[test]
    fn only_syntax_errors_block_the_check_gives_no_verdict_otherwise() {
        // Tables created outside these migrations, later statements depending on them, a loop
        // that exceeds the step budget: not ours to judge.
        for sql in [
            "INSERT INTO made_by_wrangler (x) VALUES (1);",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;",
            "CREATE VIRTUAL TABLE docs USING no_such_module(body);",
        ] {
            let ok = files(&[("0001_a.sql", sql), ("0002_b.sql", "CREATE TABLE t (id INTEGER);")]);
            assert!(from_files("m", &ok).is_ok(), "{sql}");
        }
        // Files run in order, so later ones see the tables of earlier ones.
        let seq = files(&[("0001_a.sql", "CREATE TABLE t (id INTEGER);"), ("0002_b.sql", "INSERT INTO t VALUES (1);")]);
        assert!(from_files("m", &seq).is_ok());
    }

    #[test]
    fn pending_are_those_not_recorded() {
        let f = from_files("m", &files(&[("0001_a.sql", "SELECT 'A';"), ("0002_b.sql", "SELECT 'B';")])).unwrap();
        let recorded =
            vec![AppliedMigration { name: "0001_a.sql".into(), checksum: checksum("SELECT 'A';"), applied_at: None }];
        let state = compare(&f, &recorded, None).unwrap();
        assert_eq!(state.applied.len(), 1);
        assert_eq!(state.pending.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), vec!["0002_b.sql"]);
    }

    #[test]
    fn database_table_wins_over_status_when_read() {
        let f = from_files("m", &files(&[("0001_a.sql", "SELECT 'A';"), ("0002_b.sql", "SELECT 'B';")])).unwrap();
        let in_db = vec!["0001_a.sql".to_string(), "0002_b.sql".to_string()];
        let state = compare(&f, &[], Some(&in_db)).unwrap();
        assert!(state.pending.is_empty());
        assert_eq!(state.applied[1].checksum, checksum("SELECT 'B';"));
    }

    #[test]
    fn changed_applied_file_is_a_mismatch() {
        let f = from_files("m", &files(&[("0001_a.sql", "SELECT 'A changed';")])).unwrap();
        let recorded =
            vec![AppliedMigration { name: "0001_a.sql".into(), checksum: checksum("SELECT 'A';"), applied_at: None }];
        let err = compare(&f, &recorded, None).unwrap_err();
        assert_eq!(err.name, "0001_a.sql");
        assert!(err.to_string().contains("changed after it was applied"));
    }

    #[test]
    fn removed_files_stay_recorded() {
        let recorded =
            vec![AppliedMigration { name: "0001_a.sql".into(), checksum: checksum("SELECT 'A';"), applied_at: None }];
        let state = compare(&[], &recorded, None).unwrap();
        assert_eq!(state.applied, recorded);
    }

    #[test]
    fn apply_sql_records_the_migration_in_the_same_query() {
        let sql = apply_sql(&MigrationFile::new("0001_it's.sql", "CREATE TABLE t(x);\n"));
        assert!(sql.starts_with("CREATE TABLE IF NOT EXISTS d1_migrations("));
        assert!(sql.contains("CREATE TABLE t(x);\nINSERT INTO d1_migrations (name) values ('0001_it''s.sql');"));
    }
}
