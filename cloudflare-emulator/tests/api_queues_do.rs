//! Queues, consumers, cron triggers, Durable Object migrations and namespaces, every binding
//! type in upload metadata, script settings and the `{name, type}` settings PATCH over HTTP.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn queues() -> String {
    format!("/accounts/{A}/queues")
}

fn scripts() -> String {
    format!("/accounts/{A}/workers/scripts")
}

#[tokio::test]
async fn queues_and_consumers() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let q = api.post(&queues(), json!({"queue_name": "jobs", "settings": {"delivery_delay": 5}})).await.ok().clone();
    let qid = q["queue_id"].as_str().unwrap().to_string();
    assert!(is_hex32(&qid));
    assert_eq!(q["settings"]["delivery_delay"], 5);
    assert_eq!(q["consumers"], json!([]));
    api.post(&queues(), json!({"queue_name": "jobs"})).await.err(409, 11009);
    api.post(&queues(), json!({"queue_name": "Bad Name"})).await.err(400, 11003);
    api.post(&queues(), json!({"queue_name": "x", "settings": {"message_retention_period": 5}})).await.err(400, 100128);
    api.post(&queues(), json!({"queue_name": "jobs-dlq"})).await.ok();
    let by_name = api.get(&format!("{}?page=1&name=jobs", queues())).await;
    assert_eq!(by_name.ok().as_array().unwrap().len(), 1);
    assert_eq!(api.get(&queues()).await.ok().as_array().unwrap().len(), 2);

    // a producer binding needs the queue; the queue then lists the producer
    api.put_script(A, "producer", json!({"bindings": [{"type": "queue", "name": "Q", "queue_name": "nope"}]}))
        .await
        .err(400, 10021);
    api.put_script(
        A,
        "producer",
        json!({"bindings": [{"type": "queue", "name": "Q", "queue_name": "jobs", "delivery_delay": 0}]}),
    )
    .await
    .ok();
    let got = api.get(&format!("{}/{qid}", queues())).await;
    assert_eq!(got.ok()["producers"], json!([{"type": "worker", "script": "producer"}]));

    // consumers: script must exist, settings validated, one worker consumer per queue
    let consumers = format!("{}/{qid}/consumers", queues());
    let body = json!({"type": "worker", "script_name": "consumer", "dead_letter_queue": "jobs-dlq",
        "settings": {"batch_size": 20, "max_retries": 5, "max_wait_time_ms": 2000, "retry_delay": 10}});
    api.post(&consumers, body.clone()).await.err(404, 10007);
    api.put_script(A, "consumer", json!({})).await.ok();
    let c = api.post(&consumers, body.clone()).await.ok().clone();
    let cid = c["consumer_id"].as_str().unwrap().to_string();
    assert_eq!((c["script_name"].as_str(), c["script"].as_str()), (Some("consumer"), Some("consumer")));
    assert_eq!(c["settings"]["batch_size"], 20);
    assert_eq!(c["dead_letter_queue"], "jobs-dlq");
    api.post(&consumers, json!({"type": "worker", "script_name": "producer"})).await.err(409, 11004);
    api.post(&consumers, json!({"type": "worker", "script_name": "consumer", "settings": {"batch_size": 500}}))
        .await
        .err(400, 100127);
    let embedded = api.get(&format!("{}?name=jobs", queues())).await;
    assert_eq!(embedded.ok()[0]["consumers"][0]["script"], "consumer");
    let updated = api
        .put(
            &format!("{consumers}/{cid}"),
            json!({"type": "worker", "script_name": "consumer", "settings": {"batch_size": 1}}),
        )
        .await;
    assert_eq!(
        (updated.ok()["consumer_id"].as_str(), updated.result()["settings"]["batch_size"].as_i64()),
        (Some(cid.as_str()), Some(1))
    );
    assert_eq!(updated.result()["dead_letter_queue"], "");
    assert_eq!(api.get(&consumers).await.ok().as_array().unwrap().len(), 1);
    api.delete(&format!("{consumers}/{cid}")).await.ok();
    api.delete(&format!("{consumers}/{cid}")).await.err(404, 11000);
    let patched = api.patch(&format!("{}/{qid}", queues()), json!({"settings": {"delivery_paused": true}})).await;
    assert_eq!(
        (
            patched.ok()["settings"]["delivery_paused"].as_bool(),
            patched.result()["settings"]["delivery_delay"].as_i64()
        ),
        (Some(true), Some(5))
    );
    api.delete(&format!("{}/{qid}", queues())).await.ok();
    api.get(&format!("{}/{qid}", queues())).await.err(404, 11000);
}

#[tokio::test]
async fn cron_triggers_replace_the_set() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    api.put(&format!("{}/w/schedules", scripts()), json!([{"cron": "* * * * *"}])).await.err(404, 10007);
    api.put_script(A, "w", json!({})).await.ok();
    let s =
        api.put(&format!("{}/w/schedules", scripts()), json!([{"cron": "*/5 * * * *"}, {"cron": "0 0 * * MON"}])).await;
    assert_eq!(s.ok()["schedules"].as_array().unwrap().len(), 2);
    api.put(&format!("{}/w/schedules", scripts()), json!([{"cron": "nonsense"}])).await.err(400, 10100);
    let s = api.put(&format!("{}/w/schedules", scripts()), json!([{"cron": "0 0 * * MON"}])).await;
    assert_eq!(s.ok()["schedules"][0]["cron"], "0 0 * * MON");
    let got = api.get(&format!("{}/w/schedules", scripts())).await;
    assert_eq!(got.ok()["schedules"].as_array().unwrap().len(), 1);
    api.put(&format!("{}/w/schedules", scripts()), json!([])).await.ok();
    assert_eq!(api.get(&format!("{}/w/schedules", scripts())).await.ok()["schedules"], json!([]));
}

#[tokio::test]
async fn durable_object_migrations_and_bindings() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let bind = json!([{"type": "durable_object_namespace", "name": "COUNTER", "class_name": "Counter"}]);
    // binding a class without a migration
    api.put_script(A, "do", json!({"bindings": bind})).await.err(400, 10061);
    let m1 = json!({"new_tag": "v1", "steps": [{"new_sqlite_classes": ["Counter"]}, {"new_classes": ["Legacy"]}]});
    let r = api.put_script(A, "do", json!({"bindings": bind, "migrations": m1})).await;
    assert_eq!(r.ok()["migration_tag"], "v1");
    let svc = api.get(&format!("/accounts/{A}/workers/services/do")).await;
    assert_eq!(svc.ok()["default_environment"]["script"]["migration_tag"], "v1");
    let settings = api.get(&format!("{}/do/settings", scripts())).await;
    let b = &settings.ok()["bindings"][0];
    assert_eq!(b["class_name"], "Counter");
    assert!(is_hex32(b["namespace_id"].as_str().unwrap()));
    let ns = api.get(&format!("/accounts/{A}/workers/durable_objects/namespaces")).await;
    let list = ns.ok().as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|n| n["class"] == "Counter" && n["use_sqlite"] == true && n["script"] == "do"));

    // a wrong or missing old_tag is refused with 10079; a replayed step with 10074; nothing changes
    let stale = json!({"new_tag": "v2", "deleted_classes": ["Legacy"]});
    let e = api.put_script(A, "do", json!({"bindings": bind, "migrations": stale})).await;
    e.err(400, 10079);
    assert!(e.message().starts_with("Migration tag precondition failed; current tag is v1"), "{}", e.message());
    let replay = json!({"old_tag": "v1", "new_tag": "v2", "steps": [{"new_classes": ["Legacy"]}]});
    api.put_script(A, "do", json!({"bindings": bind, "migrations": replay})).await.err(400, 10074);
    assert_eq!(emu.account(A).unwrap().do_namespaces.len(), 2);
    // no migrations: tag kept; then rename + delete
    api.put_script(A, "do", json!({"bindings": bind})).await.ok();
    let m2 = json!({"old_tag": "v1", "new_tag": "v2", "steps": [
        {"renamed_classes": [{"from": "Counter", "to": "Tally"}]}, {"deleted_classes": ["Legacy"]}]});
    let bind2 = json!([{"type": "durable_object_namespace", "name": "COUNTER", "class_name": "Tally"}]);
    assert_eq!(api.put_script(A, "do", json!({"bindings": bind2, "migrations": m2})).await.ok()["migration_tag"], "v2");
    let names = emu.account(A).unwrap().do_namespaces;
    assert_eq!((names.len(), names[0].class.as_str()), (1, "Tally"));
    // another Worker binds the class by script_name
    let cross = json!([{"type": "durable_object_namespace", "name": "T", "class_name": "Tally", "script_name": "do"}]);
    api.put_script(A, "user", json!({"bindings": cross})).await.ok();
    let wrong = json!([{"type": "durable_object_namespace", "name": "T", "class_name": "Nope", "script_name": "do"}]);
    api.put_script(A, "user", json!({"bindings": wrong})).await.err(400, 10061);
}

#[tokio::test]
async fn every_binding_type_is_accepted_and_shown_back() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    api.put_script(A, "auth", json!({})).await.ok();
    let bindings = json!([
        {"type": "service", "name": "AUTH", "service": "auth", "entrypoint": "Admin"},
        {"type": "analytics_engine", "name": "AE", "dataset": "events"},
        {"type": "ai", "name": "AI"},
        {"type": "browser", "name": "BROWSER"},
        {"type": "hyperdrive", "name": "HD", "id": "0123456789abcdef0123456789abcdef"},
        {"type": "version_metadata", "name": "VERSION"},
        {"type": "plain_text", "name": "GREETING", "text": "hello"},
        {"type": "images", "name": "IMG"}
    ]);
    let r = api.put_script(A, "app", json!({"bindings": bindings})).await;
    r.ok();
    let got = api.get(&format!("{}/app/settings", scripts())).await;
    assert_eq!(got.ok()["bindings"], bindings, "stored and shown back verbatim");
    for (bad, code) in [
        (json!({"type": "service", "name": "S", "service": "missing"}), 10143),
        (json!({"type": "analytics_engine", "name": "AE"}), 10021),
        (json!({"type": "hyperdrive", "name": "HD"}), 10021),
        (json!({"type": "durable_object_namespace", "name": "D"}), 10021),
    ] {
        api.put_script(A, "app2", json!({"bindings": [bad]})).await.err(400, code);
    }

    // wrangler `secret bulk`: PATCH settings with the existing bindings as {name, type}
    let form = reqwest::multipart::Form::new().text(
        "settings",
        json!({"bindings": [
            {"type": "plain_text", "name": "GREETING"}, {"type": "service", "name": "AUTH"},
            {"type": "secret_text", "name": "API_KEY", "text": "s3cret"}]})
        .to_string(),
    );
    let rb = api.client.request(Method::PATCH, format!("{}{}/app/settings", api.base, scripts())).bearer_auth(TOK_A);
    let patched = api.send(rb.multipart(form)).await;
    let shown = patched.ok()["bindings"].as_array().unwrap().clone();
    assert_eq!(shown.len(), 3);
    assert!(shown.iter().any(|b| b["name"] == "GREETING" && b["text"] == "hello"));
    assert!(shown.iter().any(|b| b["name"] == "AUTH" && b["entrypoint"] == "Admin"));
    assert!(shown.iter().any(|b| b["name"] == "API_KEY" && b.get("text").is_none()));

    // script settings: observability, logpush, tail consumers; settings PATCH: placement, limits
    let ss = api
        .patch(
            &format!("{}/app/script-settings", scripts()),
            json!({
        "observability": {"enabled": true, "head_sampling_rate": 0.1}, "logpush": true,
        "tail_consumers": [{"service": "auth"}]}),
        )
        .await;
    assert_eq!(ss.ok()["observability"]["enabled"], true);
    let form = reqwest::multipart::Form::new()
        .text("settings", json!({"placement": {"mode": "smart"}, "limits": {"cpu_ms": 50000}}).to_string());
    let rb = api.client.request(Method::PATCH, format!("{}{}/app/settings", api.base, scripts())).bearer_auth(TOK_A);
    let s = api.send(rb.multipart(form)).await;
    assert_eq!(
        (s.ok()["placement"]["mode"].as_str(), s.result()["limits"]["cpu_ms"].as_i64()),
        (Some("smart"), Some(50000))
    );
    assert_eq!(s.result()["logpush"], true);
    assert_eq!(s.result()["tail_consumers"], json!([{"service": "auth"}]));
    // workers.dev off and on
    let sub = api.post(&format!("{}/app/subdomain", scripts()), json!({"enabled": false})).await;
    assert_eq!(sub.ok()["enabled"], false);
    let sub = api.post(&format!("{}/app/subdomain", scripts()), json!({"enabled": true})).await;
    assert_eq!(sub.ok()["enabled"], true);
    let _: Value = api.get(&format!("{}/app/subdomain", scripts())).await.ok().clone();
}
