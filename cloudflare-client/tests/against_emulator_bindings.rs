//! The client's KV, R2, Queues, cron, Durable Object and worker-settings endpoints against the
//! in-process `cloudflare-emulator`.

use std::time::Duration;

use bytes::Bytes;
use cloudflare_client::*;
use cloudflare_emulator::{Emulator, EmulatorHandle, Faults};
use serde_json::json;

const ACCT: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "emulator-token-bindings-1";

async fn start() -> (EmulatorHandle, CloudflareClient) {
    let emu = Emulator::builder().account(ACCT).token(TOKEN, &[ACCT]).start().await.unwrap();
    let config = ClientConfig {
        base_url: emu.base_url(),
        request_timeout: Duration::from_secs(10),
        retry_base_delay: Duration::from_millis(5),
        retry_max_delay: Duration::from_millis(50),
        ..ClientConfig::default()
    };
    let c = CloudflareClient::new(config, ApiToken::new(TOKEN), None).unwrap();
    (emu, c)
}

fn upload(bindings: Vec<Binding>, migrations: Option<serde_json::Value>) -> WorkerUpload {
    WorkerUpload::new(
        WorkerMetadata {
            main_module: Some("index.js".into()),
            compatibility_date: Some("2025-10-01".into()),
            bindings,
            migrations,
            ..WorkerMetadata::default()
        },
        vec![WorkerModule::new(
            "index.js",
            "export class Counter {}\nexport default { fetch() { return new Response('ok') }, queue() {}, scheduled() {} };\n",
        )],
    )
}

#[tokio::test]
async fn kv_namespaces_and_keys() {
    let (emu, c) = start().await;
    assert!(c.find_kv_namespace(ACCT, "cache").await.unwrap().is_none());
    let ns = c.create_kv_namespace(ACCT, &CreateKvNamespace::new("cache")).await.unwrap();
    let e = c.create_kv_namespace(ACCT, &CreateKvNamespace::new("cache")).await.unwrap_err();
    assert!(e.is_conflict() && e.has_code(10014), "{e}");
    assert_eq!(c.find_kv_namespace(ACCT, "cache").await.unwrap().unwrap().id, ns.id);
    let renamed = c.rename_kv_namespace(ACCT, &ns.id, &RenameKvNamespace { title: "cache-2".into() }).await.unwrap();
    assert_eq!(renamed.title, "cache-2");
    assert_eq!(c.get_kv_namespace(ACCT, &ns.id).await.unwrap().title, "cache-2");

    c.put_kv_value(ACCT, &ns.id, "raw/key", &PutKvValue::new(Bytes::from_static(b"\x00bin"))).await.unwrap();
    let with_meta =
        PutKvValue { metadata: Some(json!({"seeded": true})), expiration_ttl: Some(3600), ..PutKvValue::new("v") };
    c.put_kv_value(ACCT, &ns.id, "meta", &with_meta).await.unwrap();
    assert_eq!(c.get_kv_value(ACCT, &ns.id, "raw/key").await.unwrap().unwrap().as_ref(), b"\x00bin");
    assert!(c.get_kv_value(ACCT, &ns.id, "missing").await.unwrap().is_none());
    let pairs: Vec<KvPair> = (0..1500).map(|i| KvPair::text(format!("seed/{i:04}"), format!("{i}"))).collect();
    let r = c.kv_bulk_write(ACCT, &ns.id, &pairs).await.unwrap();
    assert_eq!((r.successful_key_count, r.unsuccessful_keys.len()), (Some(1500), 0));
    let keys = c.list_kv_keys(ACCT, &ns.id, Some("seed/")).await.unwrap();
    assert_eq!(keys.len(), 1500, "cursor paging across two pages");
    let all = c.list_kv_keys(ACCT, &ns.id, None).await.unwrap();
    let meta = all.iter().find(|k| k.name == "meta").unwrap();
    assert_eq!(meta.metadata, Some(json!({"seeded": true})));
    assert!(meta.expiration.is_some());
    let del: Vec<String> = (0..1000).map(|i| format!("seed/{i:04}")).collect();
    c.kv_bulk_delete(ACCT, &ns.id, &del).await.unwrap();
    c.delete_kv_value(ACCT, &ns.id, "meta").await.unwrap();
    assert_eq!(c.list_kv_keys(ACCT, &ns.id, None).await.unwrap().len(), 501);
    assert!(c.kv_bulk_write(ACCT, &ns.id, &[KvPair::text("k".repeat(600), "x")]).await.is_err(), "checked client-side");
    c.delete_kv_namespace(ACCT, &ns.id).await.unwrap();
    let gone = c.get_kv_namespace(ACCT, &ns.id).await.unwrap_err();
    assert!(gone.is_not_found() && gone.has_code(endpoints::kv::KV_NAMESPACE_NOT_FOUND));
    assert!(emu.account(ACCT).unwrap().kv_namespaces.is_empty());
}

#[tokio::test]
async fn r2_buckets_with_jurisdictions() {
    let (emu, c) = start().await;
    let eu = CreateR2Bucket {
        location_hint: Some("weur".into()),
        jurisdiction: Some("eu".into()),
        ..CreateR2Bucket::new("files")
    };
    let b = c.create_r2_bucket(ACCT, &eu).await.unwrap();
    assert_eq!((b.name.as_str(), b.jurisdiction.as_deref()), ("files", Some("eu")));
    assert!(c.create_r2_bucket(ACCT, &eu).await.unwrap_err().is_conflict());
    c.create_r2_bucket(ACCT, &CreateR2Bucket::new("files")).await.unwrap();
    for i in 0..25 {
        c.create_r2_bucket(ACCT, &CreateR2Bucket::new(format!("b-{i:02}"))).await.unwrap();
    }
    assert_eq!(c.list_r2_buckets(ACCT, None, None).await.unwrap().len(), 26);
    assert_eq!(c.list_r2_buckets(ACCT, Some("eu"), None).await.unwrap().len(), 1);
    assert_eq!(c.list_r2_buckets(ACCT, None, Some("fil")).await.unwrap().len(), 1);
    assert!(c.get_r2_bucket(ACCT, "files", Some("eu")).await.is_ok());
    c.delete_r2_bucket(ACCT, "files", Some("eu")).await.unwrap();
    assert!(c.get_r2_bucket(ACCT, "files", Some("eu")).await.unwrap_err().is_not_found());
    assert!(c.get_r2_bucket(ACCT, "files", None).await.is_ok());
    assert!(c.create_r2_bucket(ACCT, &CreateR2Bucket::new("No_Good")).await.unwrap_err().to_string().contains("name"));
    assert_eq!(emu.account(ACCT).unwrap().r2_buckets.len(), 26);
}

#[tokio::test]
async fn queues_consumers_crons_and_settings() {
    let (emu, c) = start().await;
    let q = c.create_queue(ACCT, &CreateQueue::new("jobs")).await.unwrap();
    c.create_queue(ACCT, &CreateQueue::new("jobs-dlq")).await.unwrap();
    assert!(c.create_queue(ACCT, &CreateQueue::new("jobs")).await.unwrap_err().is_conflict());
    let found = c.find_queue(ACCT, "jobs").await.unwrap().unwrap();
    assert_eq!(found.queue_id, q.queue_id);
    assert_eq!(c.list_queues(ACCT).await.unwrap().len(), 2);

    c.upload_script(ACCT, "worker", &upload(vec![Binding::queue("JOBS", "jobs")], None)).await.unwrap();
    let settings = ConsumerSettings {
        batch_size: Some(25),
        max_retries: Some(2),
        max_wait_time_ms: Some(1000),
        ..Default::default()
    };
    let consumer = WorkerConsumer::new("worker", settings).with_dead_letter_queue("jobs-dlq");
    let added = c.add_queue_consumer(ACCT, &q.queue_id, &consumer).await.unwrap();
    assert_eq!((added.worker(), added.dead_letter()), (Some("worker"), Some("jobs-dlq")));
    let q2 = c.get_queue(ACCT, &q.queue_id).await.unwrap();
    assert_eq!(q2.producers[0].script.as_deref(), Some("worker"));
    let embedded = q2.consumer_of("worker").unwrap();
    assert_eq!(embedded.settings.batch_size, Some(25));
    let changed = WorkerConsumer::new("worker", ConsumerSettings { batch_size: Some(5), ..Default::default() });
    let updated = c.update_queue_consumer(ACCT, &q.queue_id, &added.consumer_id, &changed).await.unwrap();
    assert_eq!((updated.settings.batch_size, updated.dead_letter()), (Some(5), None));
    assert_eq!(c.list_queue_consumers(ACCT, &q.queue_id).await.unwrap().len(), 1);
    c.delete_queue_consumer(ACCT, &q.queue_id, &added.consumer_id).await.unwrap();
    assert!(c.list_queue_consumers(ACCT, &q.queue_id).await.unwrap().is_empty());

    // crons replace the set
    let set = c.put_cron_triggers(ACCT, "worker", &["*/5 * * * *".into(), "0 3 * * *".into()]).await.unwrap();
    assert_eq!(set.len(), 2);
    c.put_cron_triggers(ACCT, "worker", &["0 3 * * *".into()]).await.unwrap();
    let got = c.get_cron_triggers(ACCT, "worker").await.unwrap();
    assert_eq!(got.iter().map(|t| t.cron.as_str()).collect::<Vec<_>>(), ["0 3 * * *"]);
    assert!(c.put_cron_triggers(ACCT, "worker", &["bad".into()]).await.is_err());
    c.put_cron_triggers(ACCT, "worker", &[]).await.unwrap();
    assert!(c.get_cron_triggers(ACCT, "worker").await.unwrap().is_empty());

    // versioned settings: observability, placement, limits, tail consumers
    let patch = WorkerSettingsPatch {
        observability: Some(Observability { enabled: true, head_sampling_rate: Some(1.0), logs: None }),
        placement: Some(Placement::smart()),
        limits: Some(WorkerLimits { cpu_ms: Some(60_000) }),
        logpush: Some(true),
        tail_consumers: Some(vec![TailConsumer { service: "worker".into(), ..Default::default() }]),
        ..Default::default()
    };
    let s = c.patch_worker_settings(ACCT, "worker", &patch).await.unwrap();
    assert_eq!(s.observability.unwrap()["enabled"], true);
    assert_eq!(s.limits.unwrap()["cpu_ms"], 60000);
    assert_eq!(s.logpush, Some(true));
    assert!(s.bindings.iter().any(|b| *b == Binding::queue("JOBS", "jobs")), "bindings kept");
    c.set_script_subdomain(ACCT, "worker", false, false).await.unwrap();
    assert!(!c.get_script_subdomain(ACCT, "worker").await.unwrap().enabled);
    c.delete_queue(ACCT, &q.queue_id).await.unwrap();
    assert!(c.get_queue(ACCT, &q.queue_id).await.unwrap_err().is_not_found());
    assert_eq!(emu.account(ACCT).unwrap().queues.len(), 1);
}

#[tokio::test]
async fn durable_object_migrations_and_retries() {
    let (emu, c) = start().await;
    let counter = Binding::durable_object("COUNTER", "Counter", None);
    let v1 = DoMigrations {
        old_tag: None,
        new_tag: "v1".into(),
        steps: vec![MigrationStep { new_sqlite_classes: vec!["Counter".into()], ..Default::default() }],
    };
    // a fault on the first attempt is retried through the one send path
    emu.set_faults(Faults { fail_next: 1, ..Faults::default() });
    let s = c.upload_script(ACCT, "do", &upload(vec![counter.clone()], Some(v1.to_value().unwrap()))).await.unwrap();
    assert_eq!(s.migration_tag.as_deref(), Some("v1"));
    let ns = c.list_do_namespaces(ACCT).await.unwrap();
    assert_eq!((ns.len(), ns[0].class_name.as_deref(), ns[0].use_sqlite), (1, Some("Counter"), Some(true)));
    let settings = c.get_script_settings(ACCT, "do").await.unwrap();
    assert!(
        matches!(&settings.bindings[0], Binding::DurableObjectNamespace { namespace_id: Some(id), .. } if *id == ns[0].id)
    );

    // replaying v1 (stale tag read) is a tag mismatch
    let e =
        c.upload_script(ACCT, "do", &upload(vec![counter.clone()], Some(v1.to_value().unwrap()))).await.unwrap_err();
    assert!(e.is_migration_tag_mismatch(), "{e}");
    assert!(!e.is_retryable());
    let v2 = DoMigrations {
        old_tag: Some("v1".into()),
        new_tag: "v2".into(),
        steps: vec![MigrationStep { new_sqlite_classes: vec!["Counter".into()], ..Default::default() }],
    };
    let e =
        c.upload_script(ACCT, "do", &upload(vec![counter.clone()], Some(v2.to_value().unwrap()))).await.unwrap_err();
    assert!(e.has_code(CODE_DO_MIGRATION_STEP), "{e}");
    let service = c.get_service(ACCT, "do").await.unwrap();
    assert_eq!(service.default_environment.unwrap().script.unwrap().migration_tag.as_deref(), Some("v1"));
    // a binding to a class nobody migrated
    let e = c
        .upload_script(ACCT, "other", &upload(vec![Binding::durable_object("X", "Nope", Some("do".into()))], None))
        .await
        .unwrap_err();
    assert!(e.has_code(10061), "{e}");
    c.upload_script(ACCT, "other", &upload(vec![Binding::durable_object("X", "Counter", Some("do".into()))], None))
        .await
        .unwrap();
    // plain declarations
    let decl = vec![
        Binding::service("DO", "do", Some("Admin".into())),
        Binding::AnalyticsEngine { name: "AE".into(), dataset: "events".into() },
        Binding::Ai { name: "AI".into() },
        Binding::Browser { name: "B".into() },
        Binding::Hyperdrive { name: "HD".into(), id: "0123456789abcdef0123456789abcdef".into() },
        Binding::VersionMetadata { name: "V".into() },
    ];
    c.upload_script(ACCT, "decl", &upload(decl.clone(), None)).await.unwrap();
    assert_eq!(c.get_script_settings(ACCT, "decl").await.unwrap().bindings, decl);
}

#[tokio::test]
async fn d1_export_polls_to_a_signed_url_and_time_travel_restores() {
    let (_emu, c) = start().await;
    let db = c.create_d1_database(ACCT, &CreateD1Database::new("exp")).await.unwrap();
    c.query_d1(ACCT, &db.uuid, &D1Query::sql("CREATE TABLE t (x); INSERT INTO t VALUES (1)")).await.unwrap();
    let before = c.d1_bookmark(ACCT, &db.uuid, None).await.unwrap();
    let (at, file) = c.export_d1(ACCT, &db.uuid, None).await.unwrap();
    assert!(!at.is_empty() && file.filename.ends_with(".sql"));
    let sql = reqwest::get(&file.signed_url).await.unwrap().text().await.unwrap();
    assert!(sql.contains("INSERT INTO \"t\" VALUES(1);"), "{sql}");
    let schema_only = D1DumpOptions { no_data: true, ..Default::default() };
    let (_, f2) = c.export_d1(ACCT, &db.uuid, Some(&schema_only)).await.unwrap();
    let sql2 = reqwest::get(&f2.signed_url).await.unwrap().text().await.unwrap();
    assert!(sql2.contains("CREATE TABLE t") && !sql2.contains("INSERT"), "{sql2}");
    c.query_d1(ACCT, &db.uuid, &D1Query::sql("DELETE FROM t")).await.unwrap();
    let restored = c.d1_restore(ACCT, &db.uuid, &RestoreTarget::Bookmark(before)).await.unwrap();
    assert!(restored.previous_bookmark.is_some());
    let rows = c.query_d1(ACCT, &db.uuid, &D1Query::sql("SELECT count(*) AS n FROM t")).await.unwrap();
    assert_eq!(rows[0].results[0]["n"], 1);
}
