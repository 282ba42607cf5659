//! Deployed Workers running on the real workerd: the D1 binding's client API, edge routing
//! by Host header, startup errors, and process cleanup.
//!
//! Needs a workerd binary (`WORKERD_BIN`, `PATH` or `node_modules`; CI installs it with npm).
//! Without one each test prints `SKIPPED: workerd not found`; with `CI` set it fails instead.

mod common;

use std::time::Duration;

use cloudflare_emulator::{EmulatorHandle, Workerd};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn workerd() -> Option<Workerd> {
    let explicit = std::env::var_os("WORKERD_BIN").map(std::path::PathBuf::from);
    match Workerd::discover(explicit.as_deref()) {
        Ok(Some((w, _))) => Some(w),
        Ok(None) if std::env::var_os("CI").is_some() => {
            panic!("workerd not found but CI is set: install it (npm install workerd) and set WORKERD_BIN")
        }
        Ok(None) => {
            println!("SKIPPED: workerd not found (set WORKERD_BIN or npm install workerd)");
            None
        }
        Err(e) => panic!("WORKERD_BIN is set but unusable: {e}"),
    }
}

async fn start_with_runtime() -> Option<EmulatorHandle> {
    let w = workerd()?;
    Some(builder().workers_subdomain(A, "acme-sub").workerd(w).start().await.expect("start emulator"))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// GET `path` on the edge with `host` in the Host header.
async fn edge(emu: &EmulatorHandle, host: &str, path: &str) -> (u16, String) {
    let r = http()
        .get(format!("{}{path}", emu.edge_url().expect("edge listener")))
        .header("host", host)
        .send()
        .await
        .expect("edge request");
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn edge_json(emu: &EmulatorHandle, host: &str, path: &str) -> Value {
    let (status, body) = edge(emu, host, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
}

const D1_WORKER: &str = r#"
const json = (v, status = 200) => new Response(JSON.stringify(v), { status, headers: { "content-type": "application/json" } });
async function attempt(f) { try { return { ok: await f() }; } catch (e) { return { error: e.message, cause: String(e.cause ?? "") }; } }

export default {
  async fetch(request, env) {
    const db = env.DB;
    const path = new URL(request.url).pathname;
    switch (path) {
      case "/setup":
        return json(await db.exec("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT, flag INTEGER, data BLOB)\nDELETE FROM notes"));
      case "/insert": {
        const r = await db.prepare("INSERT INTO notes (body, flag, data) VALUES (?1, ?2, ?3)").bind("hello", true, new Uint8Array([1, 2, 255])).run();
        return json(r);
      }
      case "/read": {
        const stmt = db.prepare("SELECT id, body, flag, data FROM notes WHERE body = ?");
        return json({
          first: await stmt.bind("hello").first(),
          firstCol: await stmt.bind("hello").first("body"),
          none: await stmt.bind("absent").first(),
          noneCol: await stmt.bind("absent").first("body"),
          missingCol: await attempt(() => stmt.bind("hello").first("nope")),
          all: await stmt.bind("hello").all(),
          raw: await stmt.bind("hello").raw(),
          rawCols: await stmt.bind("hello").raw({ columnNames: true }),
        });
      }
      case "/batch": {
        const ok = await db.batch([
          db.prepare("INSERT INTO notes (body) VALUES (?)").bind("b1"),
          db.prepare("SELECT count(*) AS n FROM notes"),
        ]);
        const failed = await attempt(() => db.batch([
          db.prepare("INSERT INTO notes (body) VALUES ('never')"),
          db.prepare("INSERT INTO missing_table VALUES (1)"),
        ]));
        const never = await db.prepare("SELECT count(*) AS n FROM notes WHERE body = 'never'").first("n");
        return json({ ok, failed, never });
      }
      case "/errors":
        return json({
          table: await attempt(() => db.prepare("SELECT * FROM nope").all()),
          syntax: await attempt(() => db.prepare("SELEC 1").run()),
          type: await attempt(() => db.prepare("SELECT ?").bind(undefined).all()),
          exec: await attempt(() => db.exec("INSERT INTO notes (body) VALUES ('x1')\nINSERT INTO nope VALUES (1)")),
        });
      default:
        return json({ url: request.url, ip: request.headers.get("cf-connecting-ip"), method: request.method });
    }
  },
};
"#;

#[tokio::test]
async fn d1_binding_implements_the_client_api_on_the_same_sqlite() {
    let Some(emu) = start_with_runtime().await else { return };
    let api = Api::new(&emu, TOK_A);
    let db = api.post(&format!("/accounts/{A}/d1/database"), json!({"name": "notes-db"})).await.ok()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let meta = json!({
        "main_module": "index.js",
        "compatibility_date": "2025-01-01",
        "bindings": [{"type": "d1", "name": "DB", "id": db}],
    });
    api.upload(Method::PUT, &format!("/accounts/{A}/workers/scripts/notes"), meta, &[("index.js", D1_WORKER)])
        .await
        .ok();
    api.put(&format!("/accounts/{A}/workers/domains"), json!({"hostname": "notes.example.com", "service": "notes"}))
        .await
        .ok();
    let host = "notes.example.com";

    let setup = edge_json(&emu, host, "/setup").await;
    assert_eq!(setup["count"], 2, "{setup}");
    let ins = edge_json(&emu, host, "/insert").await;
    assert_eq!(ins["success"], true);
    assert_eq!(ins["meta"]["changes"], 1, "{ins}");
    assert_eq!(ins["meta"]["last_row_id"], 1);
    assert_eq!(ins["meta"]["changed_db"], true);
    assert_eq!(ins["results"], json!([]));

    // The row is in the database the REST API sees.
    let rows = emu.d1_query(A, &db, "SELECT body, flag, hex(data) AS data FROM notes").unwrap();
    assert_eq!(rows, json!([{"body": "hello", "flag": 1, "data": "0102FF"}]));

    let r = edge_json(&emu, host, "/read").await;
    let row = json!({"id": 1, "body": "hello", "flag": 1, "data": [1, 2, 255]});
    assert_eq!(r["first"], row);
    assert_eq!(r["firstCol"], "hello");
    assert_eq!(r["none"], Value::Null);
    assert_eq!(r["noneCol"], Value::Null);
    assert_eq!(r["missingCol"]["error"], "D1_COLUMN_NOTFOUND");
    assert_eq!(r["missingCol"]["cause"], "Column not found (nope)");
    assert_eq!(r["all"]["success"], true);
    assert_eq!(r["all"]["results"], json!([row]));
    assert!(r["all"]["meta"]["duration"].is_number());
    assert_eq!(r["all"]["meta"]["rows_read"], 1);
    assert_eq!(r["raw"], json!([[1, "hello", 1, [1, 2, 255]]]));
    assert_eq!(r["rawCols"], json!([["id", "body", "flag", "data"], [1, "hello", 1, [1, 2, 255]]]));

    let b = edge_json(&emu, host, "/batch").await;
    assert_eq!(b["ok"][0]["meta"]["changes"], 1, "{b}");
    assert_eq!(b["ok"][1]["results"], json!([{"n": 2}]));
    let msg = b["failed"]["error"].as_str().unwrap();
    assert!(msg.starts_with("D1_ERROR: no such table: missing_table"), "{msg}");
    assert_eq!(b["never"], 0, "a failed batch leaves nothing behind");

    let e = edge_json(&emu, host, "/errors").await;
    assert_eq!(e["table"]["error"], "D1_ERROR: no such table: nope: SQLITE_ERROR");
    assert_eq!(e["syntax"]["error"], "D1_ERROR: near \"SELEC\": syntax error at offset 0: SQLITE_ERROR");
    assert_eq!(e["type"]["error"], "D1_TYPE_ERROR: Type 'undefined' not supported for value 'undefined'");
    let exec = e["exec"]["error"].as_str().unwrap();
    assert!(
        exec.starts_with("D1_EXEC_ERROR: Error in line 2: INSERT INTO nope VALUES (1): no such table: nope"),
        "{exec}"
    );
    // exec runs line by line: the first line stays.
    assert_eq!(emu.d1_query(A, &db, "SELECT count(*) AS n FROM notes WHERE body = 'x1'").unwrap(), json!([{"n": 1}]));

    // Worker traffic is not API traffic: nothing in the journal from the binding.
    assert!(emu.journal().iter().all(|j| !j.path.contains("/query")), "{:?}", emu.journal());
    emu.shutdown().await;
}

#[tokio::test]
async fn edge_routes_by_host_to_the_right_worker() {
    let Some(emu) = start_with_runtime().await else { return };
    let api = Api::new(&emu, TOK_A);
    let worker = |name: &str| {
        format!(
            "export default {{ fetch(req) {{ return new Response(JSON.stringify({{ w: {name:?}, url: req.url, ip: req.headers.get('cf-connecting-ip') }})); }} }};"
        )
    };
    for name in ["apex", "api", "wild"] {
        let meta = json!({"main_module": "index.js", "compatibility_date": "2025-01-01"});
        api.upload(Method::PUT, &format!("/accounts/{A}/workers/scripts/{name}"), meta, &[("index.js", &worker(name))])
            .await
            .ok();
    }
    let zone = emu.zone_id("example.com").unwrap();
    api.post(&format!("/zones/{zone}/workers/routes"), json!({"pattern": "*.example.com/*", "script": "wild"}))
        .await
        .ok();
    api.post(&format!("/zones/{zone}/workers/routes"), json!({"pattern": "api.example.com/v1/*", "script": "api"}))
        .await
        .ok();
    api.post(&format!("/zones/{zone}/workers/routes"), json!({"pattern": "api.example.com/static/*"})).await.ok();
    api.put(&format!("/accounts/{A}/workers/domains"), json!({"hostname": "example.com", "service": "apex"}))
        .await
        .ok();
    api.post(&format!("/accounts/{A}/workers/scripts/api/subdomain"), json!({"enabled": true})).await.ok();

    let v = edge_json(&emu, "api.example.com", "/v1/users?x=1").await;
    assert_eq!(v["w"], "api");
    assert_eq!(v["url"], "https://api.example.com/v1/users?x=1");
    assert_eq!(v["ip"], "127.0.0.1");
    assert_eq!(edge_json(&emu, "api.example.com", "/other").await["w"], "wild");
    assert_eq!(edge_json(&emu, "www.example.com:443", "/").await["w"], "wild");
    assert_eq!(edge_json(&emu, "example.com", "/anything").await["w"], "apex", "custom domain");
    assert_eq!(edge_json(&emu, "api.acme-sub.workers.dev", "/").await["w"], "api");
    let (status, body) = edge(&emu, "api.example.com", "/static/logo.png").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("origin"), "{body}");
    let (status, body) = edge(&emu, "unknown.org", "/").await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = edge(&emu, "wild.acme-sub.workers.dev", "/").await;
    assert_eq!(status, 404, "workers.dev is off for this script");
    emu.shutdown().await;
}

#[tokio::test]
async fn startup_errors_are_reported_without_secret_values() {
    let Some(emu) = start_with_runtime().await else { return };
    let api = Api::new(&emu, TOK_A);
    let secret = "super-secret-value-0f9e8d7c";
    let meta = json!({
        "main_module": "index.js",
        "compatibility_date": "2025-01-01",
        "bindings": [{"type": "secret_text", "name": "KEY", "text": secret}],
    });
    let broken = format!("export default {{ fetch() {{ return new Response('{secret}') }} ;;; syntax error here");
    api.upload(Method::PUT, &format!("/accounts/{A}/workers/scripts/broken"), meta, &[("index.js", &broken)])
        .await
        .ok();
    api.put(&format!("/accounts/{A}/workers/domains"), json!({"hostname": "broken.example.com", "service": "broken"}))
        .await
        .ok();
    let (status, body) = edge(&emu, "broken.example.com", "/").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("did not start on workerd") && body.contains("SyntaxError"), "{body}");
    assert!(!body.contains(secret), "secret value leaked: {body}");
    emu.shutdown().await;
}

/// The process exists and is not a zombie (Linux).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

#[tokio::test]
async fn processes_follow_deployments_and_stop_with_the_emulator() {
    let Some(emu) = start_with_runtime().await else { return };
    let api = Api::new(&emu, TOK_A);
    for name in ["one", "two"] {
        api.put_script(A, name, json!({})).await.ok();
    }
    // Deployed versions are started without waiting for traffic.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let procs = loop {
        let p = emu.worker_processes();
        if p.len() == 2 || std::time::Instant::now() > deadline {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(procs.iter().map(|p| p.script.as_str()).collect::<Vec<_>>(), vec!["one", "two"]);
    let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    if cfg!(target_os = "linux") {
        assert!(pids.iter().all(|p| alive(*p)));
    }
    // Deleting a script stops its process.
    api.delete(&format!("/accounts/{A}/workers/scripts/one")).await.ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while emu.worker_processes().len() != 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(emu.worker_processes().iter().map(|p| p.script.as_str()).collect::<Vec<_>>(), vec!["two"]);
    emu.shutdown().await;
    if cfg!(target_os = "linux") {
        for pid in pids {
            assert!(!alive(pid), "workerd {pid} outlived the emulator");
        }
    }
}

#[tokio::test]
async fn dropping_the_handle_kills_workerd() {
    let Some(emu) = start_with_runtime().await else { return };
    let api = Api::new(&emu, TOK_A);
    api.put_script(A, "w", json!({})).await.ok();
    api.put(&format!("/accounts/{A}/workers/domains"), json!({"hostname": "w.example.com", "service": "w"})).await.ok();
    let (status, body) = edge(&emu, "w.example.com", "/").await;
    assert_eq!((status, body.as_str()), (200, "hi"));
    let pids: Vec<u32> = emu.worker_processes().iter().map(|p| p.pid).collect();
    assert_eq!(pids.len(), 1);
    drop(emu);
    if cfg!(target_os = "linux") {
        assert!(!alive(pids[0]), "workerd outlived the dropped handle");
    }
}

#[tokio::test]
async fn bindings_modules_and_service_worker_scripts_reach_workerd() {
    let Some(emu) = start_with_runtime().await else { return };
    let api = Api::new(&emu, TOK_A);
    // ES modules: a second JS module, a text module, vars, secrets, JSON and version metadata.
    let meta = json!({
        "main_module": "index.js",
        "compatibility_date": "2025-01-01",
        "compatibility_flags": ["nodejs_compat"],
        "bindings": [
            {"type": "plain_text", "name": "MODE", "text": "prod ✓"},
            {"type": "secret_text", "name": "KEY", "text": "k-\"quoted\"\\n-ünïcode"},
            {"type": "json", "name": "CFG", "json": {"limits": [1, 2]}},
            {"type": "version_metadata", "name": "VERSION"},
        ],
        "annotations": {"workers/tag": "release-7"},
    });
    let index = r#"import { greet } from "./lib/greet.js";
import banner from "./banner.txt";
import { Buffer } from "node:buffer";
export default {
  fetch(req, env) {
    return Response.json({ greet: greet(env.MODE), banner, key: env.KEY, cfg: env.CFG, version: env.VERSION,
                           b64: Buffer.from("hi").toString("base64") });
  },
};"#;
    let form = reqwest::multipart::Form::new()
        .text("metadata", meta.to_string())
        .part(
            "index.js",
            reqwest::multipart::Part::bytes(index.as_bytes().to_vec())
                .file_name("index.js")
                .mime_str("application/javascript+module")
                .unwrap(),
        )
        .part(
            "lib/greet.js",
            reqwest::multipart::Part::bytes(b"export const greet = (m) => `hello from ${m}`;".to_vec())
                .file_name("lib/greet.js")
                .mime_str("application/javascript+module")
                .unwrap(),
        )
        .part(
            "banner.txt",
            reqwest::multipart::Part::bytes("== banner ==".as_bytes().to_vec())
                .file_name("banner.txt")
                .mime_str("text/plain")
                .unwrap(),
        );
    let r = reqwest::Client::new()
        .put(format!("{}/accounts/{A}/workers/scripts/mods", emu.base_url()))
        .bearer_auth(TOK_A)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    api.put(&format!("/accounts/{A}/workers/domains"), json!({"hostname": "mods.example.com", "service": "mods"}))
        .await
        .ok();
    let version = emu.script(A, "mods").unwrap().latest_version().unwrap().id.clone();
    let v = edge_json(&emu, "mods.example.com", "/").await;
    assert_eq!(v["greet"], "hello from prod ✓");
    assert_eq!(v["banner"], "== banner ==");
    assert_eq!(v["key"], "k-\"quoted\"\\n-ünïcode");
    assert_eq!(v["cfg"], json!({"limits": [1, 2]}));
    assert_eq!(v["version"]["id"], version.as_str());
    assert_eq!(v["version"]["tag"], "release-7");
    assert_eq!(v["b64"], "aGk=");

    // Service-worker syntax: bindings are globals.
    let meta = json!({
        "body_part": "worker.js",
        "compatibility_date": "2025-01-01",
        "bindings": [{"type": "plain_text", "name": "GREETING", "text": "hello sw"}],
    });
    let form = reqwest::multipart::Form::new().text("metadata", meta.to_string()).part(
        "worker.js",
        reqwest::multipart::Part::bytes(
            b"addEventListener('fetch', (e) => e.respondWith(new Response(GREETING)));".to_vec(),
        )
        .file_name("worker.js")
        .mime_str("application/javascript")
        .unwrap(),
    );
    let r = reqwest::Client::new()
        .put(format!("{}/accounts/{A}/workers/scripts/sw", emu.base_url()))
        .bearer_auth(TOK_A)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    api.put(&format!("/accounts/{A}/workers/domains"), json!({"hostname": "sw.example.com", "service": "sw"}))
        .await
        .ok();
    assert_eq!(edge(&emu, "sw.example.com", "/").await, (200, "hello sw".to_string()));
    emu.shutdown().await;
}

/// Children of `pid` (Linux), from `/proc/*/stat`.
#[cfg(target_os = "linux")]
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn workerd_dies_with_a_killed_emulator_binary() {
    use std::io::{BufRead, BufReader};
    let Some(w) = workerd() else { return };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cloudflare-emulator"))
        .args(["--listen", "127.0.0.1:0", "--account", A, "--token", TOK_A, "--zone", "example.com"])
        .arg("--workerd")
        .arg(w.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let api_url = lines.next().unwrap().unwrap().strip_prefix("listening on ").unwrap().to_string();
    let edge_url = lines.next().unwrap().unwrap().strip_prefix("edge listening on ").unwrap().to_string();
    let api = Api { client: reqwest::Client::new(), base: format!("{api_url}/client/v4"), token: Some(TOK_A.into()) };
    api.put_script(A, "w", json!({})).await.ok();
    api.put(&format!("/accounts/{A}/workers/domains"), json!({"hostname": "w.example.com", "service": "w"})).await.ok();
    let r = http().get(&edge_url).header("host", "w.example.com").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "hi");
    let workers = children_of(pid);
    assert!(!workers.is_empty(), "the binary runs workerd as a child");
    child.kill().unwrap(); // SIGKILL: no destructor runs in the emulator
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while workers.iter().any(|p| alive(*p)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for p in workers {
        assert!(!alive(p), "workerd {p} outlived the killed emulator");
    }
}
