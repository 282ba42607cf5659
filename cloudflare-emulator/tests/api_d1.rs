//! D1 over HTTP: databases, SQL semantics (atomic batches, params, errors), raw, time travel.

mod common;

use common::*;
use serde_json::{Value, json};

fn dbs() -> String {
    format!("/accounts/{A}/d1/database")
}

async fn create(api: &Api, name: &str) -> String {
    let r = api.post(&dbs(), json!({"name": name})).await;
    r.ok()["uuid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn databases_create_list_get_delete() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let r = api.post(&dbs(), json!({"name": "main-db", "primary_location_hint": "enam"})).await;
    let db = r.ok().clone();
    let uuid = db["uuid"].as_str().unwrap().to_string();
    assert!(is_uuid(&uuid));
    assert_eq!(db["name"], "main-db");
    assert_eq!(db["version"], "production");
    assert_eq!(db["created_in_region"], "ENAM");
    api.post(&dbs(), json!({"name": "main-db"})).await.err(400, 7502);
    api.post(&dbs(), json!({"name": ""})).await.err(400, 7400);
    api.post(&dbs(), json!({"name": "x", "primary_location_hint": "mars"})).await.err(400, 7400);

    // 11 more: paging must honour page/per_page (wrangler loops on full pages)
    for i in 0..11 {
        create(&api, &format!("extra-{i:02}")).await;
    }
    let p1 = api.get(&format!("{}?per_page=10&page=1", dbs())).await;
    assert_eq!(p1.ok().as_array().unwrap().len(), 10);
    let p2 = api.get(&format!("{}?per_page=10&page=2", dbs())).await;
    assert_eq!(p2.ok().as_array().unwrap().len(), 2);
    let p3 = api.get(&format!("{}?per_page=10&page=3", dbs())).await;
    assert_eq!(p3.ok(), &json!([]));
    assert_eq!(p2.body["result_info"]["total_count"], 12);
    let filtered = api.get(&format!("{}?name=main", dbs())).await;
    assert_eq!(filtered.ok().as_array().unwrap().len(), 1);
    assert_eq!(filtered.result()[0]["uuid"], uuid.as_str());

    // get by uuid and by name; fields trimming
    let by_id = api.get(&format!("{}/{uuid}", dbs())).await;
    assert_eq!(by_id.ok()["name"], "main-db");
    assert_eq!(by_id.result()["num_tables"], 0);
    let by_name = api.get(&format!("{}/main-db", dbs())).await;
    assert_eq!(by_name.ok()["uuid"], uuid.as_str());
    let trimmed = api.get(&format!("{}/{uuid}?fields=uuid,name", dbs())).await;
    assert_eq!(trimmed.ok(), &json!({"uuid": uuid, "name": "main-db"}));
    api.get(&format!("{}/nope", dbs())).await.err(404, 7404);
    let repl = api.patch(&format!("{}/{uuid}", dbs()), json!({"read_replication": {"mode": "auto"}})).await;
    assert_eq!(repl.ok()["read_replication"]["mode"], "auto");

    // delete, then a binding to it is rejected
    api.delete(&format!("{}/{uuid}", dbs())).await.ok();
    api.get(&format!("{}/{uuid}", dbs())).await.err(404, 7404);
    api.delete(&format!("{}/{uuid}", dbs())).await.err(404, 7404);
    api.put_script(A, "w", json!({"bindings": [{"type": "d1", "name": "DB", "id": uuid}]})).await.err(400, 10021);
    // another account cannot see it
    let b = Api::new(&emu, TOK_B);
    b.get(&dbs()).await.err(403, 10000);
}

#[tokio::test]
async fn query_runs_statements_atomically_with_params() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let uuid = create(&api, "sql-db").await;
    let q = format!("{}/{uuid}/query", dbs());

    let r = api
        .post(&q, json!({"sql": "CREATE TABLE users(id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT UNIQUE NOT NULL, note TEXT);\nINSERT INTO users(email, note) VALUES ('a@x', 'semi;colon');\nCREATE TRIGGER t AFTER INSERT ON users BEGIN UPDATE users SET note = 'trig;' WHERE id = NEW.id AND NEW.note IS NULL; END;"}))
        .await;
    let out = r.ok().as_array().unwrap().clone();
    assert_eq!(out.len(), 3, "one entry per statement");
    assert!(out.iter().all(|e| e["success"] == true));
    assert_eq!(out[1]["meta"]["changes"], 1);
    assert_eq!(out[1]["meta"]["last_row_id"], 1);
    assert_eq!(out[1]["meta"]["rows_written"], 1);
    assert_eq!(out[0]["meta"]["changed_db"], true);
    assert!(out[2]["meta"]["size_after"].as_u64().unwrap() > 0);
    assert!(out[2]["meta"]["duration"].is_number());

    // params of every JSON type
    let r = api
        .post(&q, json!({"sql": "INSERT INTO users(email, note) VALUES (?1, ?2) RETURNING id, email, note", "params": ["b@x", null]}))
        .await;
    assert_eq!(r.ok()[0]["results"], json!([{"id": 2, "email": "b@x", "note": null}]));
    let r = api
        .post(&q, json!({"sql": "SELECT ? AS s, ? AS i, ? AS f, ? AS b, ? AS n", "params": ["x", 42, 1.5, true, null]}))
        .await;
    assert_eq!(r.ok()[0]["results"], json!([{"s": "x", "i": 42, "f": 1.5, "b": 1, "n": null}]));
    let r = api.post(&q, json!({"sql": "SELECT note FROM users WHERE id = 2"})).await;
    assert_eq!(r.ok()[0]["results"], json!([{"note": "trig;"}]), "trigger body ran");

    // a failing statement rolls back the whole request
    let r = api
        .post(&q, json!({"sql": "INSERT INTO users(email) VALUES ('c@x'); INSERT INTO users(email) VALUES ('a@x');"}))
        .await;
    r.err(400, 7500);
    assert_eq!(r.message(), "UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT");
    let count = emu.d1_query(A, &uuid, "SELECT count(*) AS n FROM users").unwrap();
    assert_eq!(count, json!([{"n": 2}]), "c@x was rolled back");

    // batch: all or nothing too
    let r = api
        .post(
            &q,
            json!({"batch": [
            {"sql": "INSERT INTO users(email) VALUES (?)", "params": ["d@x"]},
            {"sql": "SELECT count(*) AS n FROM users"}]}),
        )
        .await;
    assert_eq!(r.ok()[1]["results"], json!([{"n": 3}]));
    let r = api
        .post(
            &q,
            json!({"batch": [
            {"sql": "INSERT INTO users(email) VALUES (?)", "params": ["e@x"]},
            {"sql": "INSERT INTO nope VALUES (1)"}]}),
        )
        .await;
    r.err(400, 7500);
    assert!(r.message().starts_with("no such table: nope"), "{}", r.message());
    assert_eq!(emu.d1_query(A, &uuid, "SELECT count(*) AS n FROM users").unwrap(), json!([{"n": 3}]));

    // syntax errors read like D1's
    let r = api.post(&q, json!({"sql": "SELEC 1"})).await;
    r.err(400, 7500);
    assert_eq!(r.message(), "near \"SELEC\": syntax error at offset 0: SQLITE_ERROR");
    api.post(&q, json!({"sql": "SELECT ?1, ?2", "params": [1]})).await.err(400, 7500);
    api.post(&q, json!({"sql": "BEGIN TRANSACTION"})).await.err(400, 7500);
    api.post(&q, json!({"params": []})).await.err(400, 7400);

    // raw: columns and rows
    let raw = api
        .post(&format!("{}/{uuid}/raw", dbs()), json!({"sql": "SELECT id, email FROM users ORDER BY id LIMIT 2"}))
        .await;
    assert_eq!(raw.ok()[0]["results"], json!({"columns": ["id", "email"], "rows": [[1, "a@x"], [2, "b@x"]]}));

    // query by database name works too; unknown database is 404 7404
    let by_name = api.post(&format!("{}/sql-db/query", dbs()), json!({"sql": "SELECT 1 AS one"})).await;
    assert_eq!(by_name.ok()[0]["results"], json!([{"one": 1}]));
    api.post(&format!("{}/00000000-0000-0000-0000-000000000000/query", dbs()), json!({"sql": "SELECT 1"}))
        .await
        .err(404, 7404);
    assert_eq!(api.get(&format!("{}/{uuid}", dbs())).await.ok()["num_tables"], 1);
}

#[tokio::test]
async fn read_only_queries_are_not_mutating_in_the_journal() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let uuid = create(&api, "j-db").await;
    let q = format!("{}/{uuid}/query", dbs());
    api.post(&q, json!({"sql": "CREATE TABLE t(a)"})).await.ok();
    emu.clear_journal();
    api.post(&q, json!({"sql": "SELECT * FROM t"})).await.ok();
    api.post(&format!("{}/{uuid}/raw", dbs()), json!({"sql": "SELECT count(*) FROM t; SELECT 1"})).await.ok();
    api.post(&q, json!({"sql": "INSERT INTO t VALUES (1)"})).await.ok();
    api.post(&q, json!({"sql": "SELECT 1; INSERT INTO t VALUES (2)"})).await.ok();
    api.get(&dbs()).await.ok();
    let mutating: Vec<bool> = emu.journal().iter().map(|e| e.mutating).collect();
    assert_eq!(mutating, vec![false, false, true, true, false]);
}

#[tokio::test]
async fn time_travel_bookmarks_restore_data() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let uuid = create(&api, "tt-db").await;
    let base = format!("{}/{uuid}", dbs());
    api.post(&format!("{base}/query"), json!({"sql": "CREATE TABLE t(a); INSERT INTO t VALUES (1);"})).await.ok();
    let b = api.get(&format!("{base}/time_travel/bookmark")).await;
    let bookmark = b.ok()["bookmark"].as_str().unwrap().to_string();
    assert_eq!(bookmark.split('-').count(), 4);
    api.post(&format!("{base}/query"), json!({"sql": "INSERT INTO t VALUES (2); DROP TABLE t; CREATE TABLE u(x);"}))
        .await
        .ok();
    let r = api.post(&format!("{base}/time_travel/restore?bookmark={bookmark}"), Value::Null).await;
    let res = r.ok().clone();
    assert!(res["message"].is_string());
    let previous = res["previous_bookmark"].as_str().unwrap().to_string();
    assert_ne!(res["bookmark"], bookmark.as_str());
    assert_eq!(emu.d1_query(A, &uuid, "SELECT a FROM t").unwrap(), json!([{"a": 1}]));
    // undo the restore
    api.post(&format!("{base}/time_travel/restore?bookmark={previous}"), Value::Null).await.ok();
    assert_eq!(
        emu.d1_query(A, &uuid, "SELECT count(*) AS n FROM sqlite_master WHERE name = 'u'").unwrap(),
        json!([{"n": 1}])
    );
    // timestamp lookups and errors
    let now = chrono::Utc::now().to_rfc3339();
    let at = api.get(&format!("{base}/time_travel/bookmark?timestamp={}", now.replace('+', "%2B"))).await;
    assert!(at.ok()["bookmark"].is_string());
    api.get(&format!("{base}/time_travel/bookmark?timestamp=2000-01-01T00:00:00Z")).await.err(400, 7400);
    api.post(&format!("{base}/time_travel/restore?bookmark=garbage"), Value::Null).await.err(400, 7400);
    api.post(&format!("{base}/time_travel/restore"), Value::Null).await.err(400, 7400);
}
