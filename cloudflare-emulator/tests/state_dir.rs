//! `--state-dir`: state and D1 data survive a restart.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn state_and_d1_files_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let emu = builder().state_dir(Some(dir.path().to_path_buf())).start().await.unwrap();
    let api = Api::new(&emu, TOK_A);
    let uuid = api.post(&format!("/accounts/{A}/d1/database"), json!({"name": "keep"})).await.ok()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(
        &format!("/accounts/{A}/d1/database/{uuid}/query"),
        json!({"sql": "CREATE TABLE t(a); INSERT INTO t VALUES ('persisted')"}),
    )
    .await
    .ok();
    api.put_script(A, "w", json!({"bindings": [{"type": "d1", "name": "DB", "id": uuid}, {"type": "secret_text", "name": "S", "text": "v"}]})).await.ok();
    let zid = emu.zone_id("example.com").unwrap();
    api.post(&format!("/zones/{zid}/workers/routes"), json!({"pattern": "a.example.com/*", "script": "w"})).await.ok();
    api.post(&format!("/zones/{zid}/dns_records"), json!({"type": "TXT", "name": "k", "content": "v", "ttl": 1}))
        .await
        .ok();
    let tag = emu.script(A, "w").unwrap().tag;
    emu.shutdown().await;
    assert!(dir.path().join("state.json").exists());
    assert!(dir.path().join("d1").join(format!("{uuid}.sqlite")).exists());

    let emu = builder().state_dir(Some(dir.path().to_path_buf())).start().await.unwrap();
    assert_eq!(emu.zone_id("example.com").unwrap(), zid, "zone ids are stable across restarts");
    let script = emu.script(A, "w").expect("script restored");
    assert_eq!(script.tag, tag);
    assert_eq!(script.latest_version().unwrap().binding("S").unwrap()["text"], "v");
    assert_eq!(emu.routes("example.com").len(), 1);
    assert_eq!(emu.dns_records("example.com").len(), 1);
    assert_eq!(emu.d1_query(A, &uuid, "SELECT a FROM t").unwrap(), json!([{"a": "persisted"}]));
    let api = Api::new(&emu, TOK_A);
    let got = api.get(&format!("/accounts/{A}/d1/database/keep")).await;
    assert_eq!(got.ok()["num_tables"], 1);
    // reset wipes the persisted state too
    emu.reset();
    assert!(emu.d1_databases(A).is_empty());
    emu.shutdown().await;
    let emu = builder().state_dir(Some(dir.path().to_path_buf())).start().await.unwrap();
    assert!(emu.script(A, "w").is_none());
    assert!(!dir.path().join("d1").join(format!("{uuid}.sqlite")).exists());
    emu.shutdown().await;
}

#[tokio::test]
async fn in_memory_without_state_dir() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    api.post(&format!("/accounts/{A}/d1/database"), json!({"name": "mem"})).await.ok();
    emu.shutdown().await;
    let emu = start().await;
    assert!(emu.d1_databases(A).is_empty());
}
