//! KV, Queue producer/consumer, cron (`scheduled`) and Durable Object bindings of Workers
//! running on the real workerd through the emulator.
//!
//! Needs a workerd binary (`WORKERD_BIN`, `PATH` or `node_modules`). Without one each test
//! prints `SKIPPED: workerd not found`; with `CI` set it fails instead.

mod common;

use std::time::{Duration, Instant};

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

async fn edge(emu: &EmulatorHandle, script: &str, path: &str) -> (u16, String) {
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(format!("{}{path}", emu.edge_url().expect("edge listener")))
        .header("host", format!("{script}.acme-sub.workers.dev"))
        .send()
        .await
        .expect("edge request");
    (r.status().as_u16(), r.text().await.unwrap())
}

const APP: &str = r#"
import { DurableObject } from "cloudflare:workers";
export class Counter extends DurableObject {
  async fetch() {
    const n = ((await this.ctx.storage.get("n")) ?? 0) + 1;
    await this.ctx.storage.put("n", n);
    return new Response(String(n));
  }
}
export default {
  async fetch(request, env) {
    const path = new URL(request.url).pathname;
    if (path === "/kv") {
      await env.CACHE.put("from-worker", "w-value", { metadata: { by: "worker" } });
      const seeded = await env.CACHE.get("seeded");
      const json = await env.CACHE.get("obj", "json");
      const meta = await env.CACHE.getWithMetadata("from-worker");
      const list = await env.CACHE.list({ prefix: "from" });
      await env.CACHE.delete("gone");
      return Response.json({ seeded, json, meta, names: list.keys.map((k) => k.name), complete: list.list_complete, missing: await env.CACHE.get("nope") });
    }
    if (path === "/send") {
      await env.JOBS.send({ n: 1 });
      await env.JOBS.sendBatch([{ body: "two", contentType: "text" }, { body: { n: 3 } }]);
      return new Response("sent");
    }
    if (path === "/count") {
      const stub = env.COUNTER.get(env.COUNTER.idFromName("a"));
      return stub.fetch("https://do/");
    }
    return new Response("app");
  },
  async scheduled(controller, env) {
    await env.CACHE.put("cron-ran", controller.cron);
  },
};
"#;

const CONSUMER: &str = r#"
export default {
  async fetch() { return new Response("consumer"); },
  async queue(batch, env) {
    for (const m of batch.messages) {
      if (m.body === "two" && m.attempts < 2) { m.retry(); continue; }
      await env.OUT.put(`msg-${JSON.stringify(m.body)}`, String(m.attempts));
      m.ack();
    }
  },
};
"#;

async fn put_worker(api: &Api, name: &str, src: &str, meta: Value) {
    let mut m = json!({"main_module": "index.js", "compatibility_date": "2025-01-01"});
    for (k, v) in meta.as_object().unwrap() {
        m[k] = v.clone();
    }
    let r = api.upload(Method::PUT, &format!("/accounts/{A}/workers/scripts/{name}"), m, &[("index.js", src)]).await;
    r.ok();
    api.post(&format!("/accounts/{A}/workers/scripts/{name}/subdomain"), json!({"enabled": true})).await.ok();
}

fn kv_value(emu: &EmulatorHandle, key: &str) -> Option<String> {
    emu.account(A).unwrap().kv_namespaces[0].keys.get(key).map(|e| String::from_utf8_lossy(&e.value).into_owned())
}

/// Wait (bounded) until `f` holds.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_queues_cron_and_durable_objects_run_on_workerd() {
    let Some(w) = workerd() else { return };
    let emu = builder().workers_subdomain(A, "acme-sub").workerd(w).start().await.expect("start emulator");
    let api = Api::new(&emu, TOK_A);
    let ns = api.post(&format!("/accounts/{A}/storage/kv/namespaces"), json!({"title": "cache"})).await.ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bulk = json!([{"key": "seeded", "value": "from-api"}, {"key": "obj", "value": "{\"a\":1}"}, {"key": "gone", "value": "x"}]);
    api.put(&format!("/accounts/{A}/storage/kv/namespaces/{ns}/bulk"), bulk).await.ok();
    api.post(&format!("/accounts/{A}/queues"), json!({"queue_name": "jobs"})).await.ok();
    let kv = json!({"type": "kv_namespace", "name": "CACHE", "namespace_id": ns});
    let app_meta = json!({
        "bindings": [kv, {"type": "queue", "name": "JOBS", "queue_name": "jobs"},
                     {"type": "durable_object_namespace", "name": "COUNTER", "class_name": "Counter"}],
        "migrations": {"new_tag": "v1", "new_sqlite_classes": ["Counter"]}
    });
    put_worker(&api, "app", APP, app_meta).await;
    put_worker(
        &api,
        "consumer",
        CONSUMER,
        json!({"bindings": [{"type": "kv_namespace", "name": "OUT", "namespace_id": ns}]}),
    )
    .await;
    let qid =
        api.get(&format!("/accounts/{A}/queues?name=jobs")).await.ok()[0]["queue_id"].as_str().unwrap().to_string();
    api.post(
        &format!("/accounts/{A}/queues/{qid}/consumers"),
        json!({"type": "worker", "script_name": "consumer", "settings": {"max_retries": 3}}),
    )
    .await
    .ok();

    // KV: values written through the API are read by the Worker and the other way round
    let (status, body) = edge(&emu, "app", "/kv").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["seeded"], "from-api");
    assert_eq!(v["json"], json!({"a": 1}));
    assert_eq!(v["meta"], json!({"value": "w-value", "metadata": {"by": "worker"}}));
    assert_eq!(
        (v["names"].clone(), v["complete"].clone(), v["missing"].clone()),
        (json!(["from-worker"]), json!(true), Value::Null)
    );
    assert_eq!(kv_value(&emu, "from-worker").as_deref(), Some("w-value"));
    assert!(kv_value(&emu, "gone").is_none());

    // Durable Object: storage persists across requests
    assert_eq!(edge(&emu, "app", "/count").await, (200, "1".to_string()));
    assert_eq!(edge(&emu, "app", "/count").await, (200, "2".to_string()));

    // Queue: producer -> consumer's queue(); a retried message comes back with attempts 2
    assert_eq!(edge(&emu, "app", "/send").await.0, 200);
    eventually("3 consumed messages", || {
        ["msg-{\"n\":1}", "msg-\"two\"", "msg-{\"n\":3}"].iter().all(|k| kv_value(&emu, k).is_some())
    })
    .await;
    assert_eq!(kv_value(&emu, "msg-\"two\"").as_deref(), Some("2"));
    assert_eq!(kv_value(&emu, "msg-{\"n\":1}").as_deref(), Some("1"));

    // Cron: the control endpoint runs scheduled() with the script's cron
    api.put(&format!("/accounts/{A}/workers/scripts/app/schedules"), json!([{"cron": "*/5 * * * *"}])).await.ok();
    let r = reqwest::Client::new()
        .post(format!("{}/__emulator/scheduled/{A}/app", emu.root_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(kv_value(&emu, "cron-ran").as_deref(), Some("*/5 * * * *"));
    let r = reqwest::Client::new()
        .post(format!("{}/__emulator/scheduled/{A}/consumer", emu.root_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500, "no scheduled() handler");
    // the runtime endpoints refuse callers without the runtime key
    let r = reqwest::Client::new()
        .post(format!("{}/__emulator/runtime/kv/{ns}", emu.root_url()))
        .json(&json!({"op": "get", "key": "seeded"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    emu.shutdown().await;
}
