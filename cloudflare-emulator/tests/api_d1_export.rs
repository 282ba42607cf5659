//! D1 export over HTTP: polling shape, signed URL, dump options.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn export_polls_then_serves_a_dump_that_restores() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let dbs = format!("/accounts/{A}/d1/database");
    let uuid = api.post(&dbs, json!({"name": "exp"})).await.ok()["uuid"].as_str().unwrap().to_string();
    let sql = "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, b BLOB); INSERT INTO t (s, b) VALUES ('it''s', x'00ff'); CREATE INDEX t_s ON t(s); CREATE TABLE u (x);";
    api.post(&format!("{dbs}/{uuid}/query"), json!({"sql": sql})).await.ok();
    let export = format!("{dbs}/{uuid}/export");
    api.post(&export, json!({"output_format": "file"})).await.err(400, 7400);
    let first = api.post(&export, json!({"output_format": "polling"})).await.ok().clone();
    assert_eq!((first["type"].as_str(), first["status"].as_str()), (Some("export"), Some("active")));
    let at = first["at_bookmark"].as_str().unwrap().to_string();
    let done = api
        .post(&export, json!({"output_format": "polling", "current_bookmark": at, "dump_options": {"tables": ["t"]}}))
        .await
        .ok()
        .clone();
    assert_eq!(done["status"], "complete");
    assert_eq!(done["at_bookmark"], at.as_str());
    assert!(done["result"]["filename"].as_str().unwrap().ends_with(".sql"));
    let url = done["result"]["signed_url"].as_str().unwrap();
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert!(text.contains("CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, b BLOB);"), "{text}");
    assert!(text.contains("INSERT INTO \"t\" VALUES(1,'it''s',X'00FF');"), "{text}");
    assert!(text.contains("CREATE INDEX t_s ON t(s);"), "{text}");
    assert!(!text.contains("CREATE TABLE u"), "only the requested table: {text}");
    // the dump loads into a fresh database and gives the same rows
    let copy = api.post(&dbs, json!({"name": "exp-copy"})).await.ok()["uuid"].as_str().unwrap().to_string();
    api.post(&format!("{dbs}/{copy}/query"), json!({"sql": text})).await.ok();
    let rows = emu.d1_query(A, &copy, "SELECT s, hex(b) AS h FROM t").unwrap();
    assert_eq!(rows, json!([{"s": "it's", "h": "00FF"}]));
    let r = reqwest::get(format!("{}/__emulator/d1-export/nope", emu.root_url())).await.unwrap();
    assert_eq!(r.status(), 404);
}
