//! End-to-end flows of the client against the in-process `cloudflare-emulator`.

use std::collections::BTreeMap;
use std::time::Duration;

use cloudflare_client::*;
use cloudflare_emulator::{Emulator, EmulatorHandle, Faults};
use serde_json::json;

const ACCT: &str = "0123456789abcdef0123456789abcdef";
const OTHER_ACCT: &str = "ffffffffffffffffffffffffffffffff";
const TOKEN: &str = "emulator-token-abcdef123456";

async fn start() -> EmulatorHandle {
    Emulator::builder()
        .account(ACCT)
        .token(TOKEN, &[ACCT])
        .token("other-token-zzz", &[OTHER_ACCT])
        .zone("example.com", ACCT)
        .workers_subdomain(ACCT, "acme")
        .start()
        .await
        .unwrap()
}

fn config(emu: &EmulatorHandle) -> ClientConfig {
    ClientConfig {
        base_url: emu.base_url(),
        request_timeout: Duration::from_secs(10),
        retry_base_delay: Duration::from_millis(5),
        retry_max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(2),
        ..ClientConfig::default()
    }
}

fn client(emu: &EmulatorHandle) -> CloudflareClient {
    CloudflareClient::new(config(emu), ApiToken::new(TOKEN), None).unwrap()
}

fn upload(message: &str, db_id: &str, body: &str) -> WorkerUpload {
    WorkerUpload::new(
        WorkerMetadata {
            main_module: Some("index.js".into()),
            compatibility_date: Some("2025-10-01".into()),
            compatibility_flags: vec!["nodejs_compat".into()],
            bindings: vec![
                Binding::plain_text("MODE", "prod"),
                Binding::d1("DB", db_id),
                Binding::secret_text("INLINE_SECRET", SecretString::new("inline-secret-value-123456")),
            ],
            annotations: Some(Annotations::new(Some(message), Some("content-hash-1"))),
            ..WorkerMetadata::default()
        }
        .keep_secrets(),
        vec![
            WorkerModule::new(
                "index.js",
                format!(
                    "import m from './lib/msg.js';\nexport default {{ fetch() {{ return new Response(m + '{body}') }} }};\n"
                ),
            ),
            WorkerModule::new("lib/msg.js", "export default 'hello ';\n"),
        ],
    )
}

#[tokio::test]
async fn token_zone_and_subdomain() {
    let emu = start().await;
    let c = client(&emu);
    let status = c.verify_token(Some(ACCT)).await.unwrap();
    assert!(status.is_active());
    assert_eq!(Some(status.id.clone()), emu.token_id(TOKEN));
    assert!(c.verify_token(None).await.unwrap().is_active());
    // a valid token scoped to another account is refused on this account's path, no fallback
    let other = CloudflareClient::new(config(&emu), ApiToken::new("other-token-zzz"), None).unwrap();
    let e = other.verify_token(Some(ACCT)).await.unwrap_err();
    assert!(e.is_auth_error(), "{e}");

    let zone = c.find_zone_for_hostname(ACCT, "*.api.eu.example.com/*").await.unwrap().unwrap();
    assert_eq!(Some(zone.id.clone()), emu.zone_id("example.com"));
    assert_eq!(c.get_zone(&zone.id).await.unwrap().name, "example.com");
    assert!(c.find_zone_for_hostname(ACCT, "api.unknown.org").await.unwrap().is_none());
    assert_eq!(c.get_account_subdomain(ACCT).await.unwrap().as_deref(), Some("acme"));

    let bad = CloudflareClient::new(config(&emu), ApiToken::new("wrong-token"), None).unwrap();
    let e = bad.verify_token(Some(ACCT)).await.unwrap_err();
    assert!(e.is_auth_error(), "{e}");
    assert!(!e.is_retryable());
    // the journal identifies tokens by id, never by value
    assert!(emu.journal().iter().all(|j| j.token_id.as_deref() != Some(TOKEN)));
}

#[tokio::test]
async fn d1_lifecycle_and_queries() {
    let emu = start().await;
    let c = client(&emu);
    let name = "acme-data-production";
    assert!(c.find_d1_database(ACCT, name).await.unwrap().is_none());
    let db = c.create_d1_database(ACCT, &CreateD1Database::new(name)).await.unwrap();
    assert_eq!(db.name, name);
    assert_eq!(db.uuid.len(), 36, "D1 ids are hyphenated UUIDs");
    let dup = c.create_d1_database(ACCT, &CreateD1Database::new(name)).await.unwrap_err();
    assert!(dup.is_conflict() && dup.has_code(7502), "{dup}");
    assert_eq!(c.find_d1_database(ACCT, name).await.unwrap().unwrap().uuid, db.uuid);
    assert_eq!(c.get_d1_database(ACCT, &db.uuid).await.unwrap().name, name);
    assert_eq!(c.get_d1_database(ACCT, name).await.unwrap().uuid, db.uuid, "path accepts the name");

    let bookmark = c.d1_bookmark(ACCT, &db.uuid, None).await.unwrap();
    assert!(!bookmark.is_empty());

    // wrangler-style migration: the file plus its tracking insert in one query
    let migration = "CREATE TABLE IF NOT EXISTS d1_migrations(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);\n\
                     CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
                     INSERT INTO d1_migrations (name) values ('0001_init.sql');";
    let r = c.query_d1(ACCT, &db.uuid, &D1Query::sql(migration)).await.unwrap();
    assert_eq!(r.len(), 3, "one result per statement");
    c.query_d1(
        ACCT,
        &db.uuid,
        &D1Query::with_params("INSERT INTO users (name) VALUES (?1), (?2)", vec![json!("ada"), json!("bob")]),
    )
    .await
    .unwrap();
    let rows = c
        .query_d1(
            ACCT,
            &db.uuid,
            &D1Query::with_params("SELECT name FROM users WHERE id >= ?1 ORDER BY id", vec![json!(1)]).idempotent(),
        )
        .await
        .unwrap();
    let names: Vec<&str> = rows[0].results.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ada", "bob"]);
    let applied = c
        .query_d1(ACCT, &db.uuid, &D1Query::sql("SELECT name FROM d1_migrations ORDER BY id").idempotent())
        .await
        .unwrap();
    assert_eq!(applied[0].results[0]["name"], "0001_init.sql");
    let raw = c.raw_d1(ACCT, &db.uuid, &D1Query::sql("SELECT id, name FROM users ORDER BY id")).await.unwrap();
    assert_eq!(raw[0].results.columns, ["id", "name"]);
    assert_eq!(raw[0].results.rows.len(), 2);
    let batch = c
        .query_d1(
            ACCT,
            &db.uuid,
            &D1Query::batch(vec![
                D1Statement { sql: "INSERT INTO users (name) VALUES (?1)".into(), params: vec![json!("cy")] },
                D1Statement { sql: "SELECT COUNT(*) AS n FROM users".into(), params: vec![] },
            ]),
        )
        .await
        .unwrap();
    assert_eq!(batch[1].results[0]["n"], 3);

    let bad = c.query_d1(ACCT, &db.uuid, &D1Query::sql("SELEC nonsense")).await.unwrap_err();
    assert!(bad.is_sql_error() && !bad.is_retryable(), "{bad}");
    assert_eq!(bad.reason(), "SqlError");

    let restored = c.d1_restore(ACCT, &db.uuid, &RestoreTarget::Bookmark(bookmark.clone())).await.unwrap();
    assert!(restored.previous_bookmark.is_some());
    let after = c
        .query_d1(ACCT, &db.uuid, &D1Query::sql("SELECT name FROM sqlite_master WHERE name = 'users'").idempotent())
        .await
        .unwrap();
    assert!(after[0].results.is_empty(), "restore went back to before the migration");

    let listed = c.list_d1_databases(ACCT, None).await.unwrap();
    assert!(listed.iter().any(|d| d.uuid == db.uuid));
    c.delete_d1_database(ACCT, &db.uuid).await.unwrap();
    let gone = c.get_d1_database(ACCT, &db.uuid).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
    assert!(c.delete_d1_database(ACCT, &db.uuid).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn d1_listing_pages_through_many_databases() {
    let emu = start().await;
    let c = client(&emu);
    for i in 0..105 {
        c.create_d1_database(ACCT, &CreateD1Database::new(format!("db-{i:03}"))).await.unwrap();
    }
    let all = c.list_d1_databases(ACCT, None).await.unwrap();
    assert_eq!(all.len(), 105);
    let mut names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 105, "no duplicates across pages");
    assert_eq!(c.find_d1_database(ACCT, "db-104").await.unwrap().unwrap().name, "db-104");
}

#[tokio::test]
async fn worker_upload_versions_deployments_and_rollback() {
    let emu = start().await;
    let c = client(&emu);
    let db = c.create_d1_database(ACCT, &CreateD1Database::new("acme-db")).await.unwrap();
    let script = "acme-api-production";

    let first = c.upload_script(ACCT, script, &upload("first deploy", &db.uuid, "v1")).await.unwrap();
    assert_eq!(first.id, script);
    let v1 = first.version_id().expect("upload reports the new version").to_string();

    let settings = c.get_script_settings(ACCT, script).await.unwrap();
    assert!(settings.bindings.contains(&Binding::plain_text("MODE", "prod")));
    assert!(settings.bindings.contains(&Binding::d1("DB", &db.uuid)));
    assert!(
        settings
            .bindings
            .iter()
            .any(|b| matches!(b, Binding::SecretText { name, text: None } if name == "INLINE_SECRET")),
        "secret bindings come back without their value: {:?}",
        settings.bindings
    );
    assert_eq!(settings.compatibility_date.as_deref(), Some("2025-10-01"));

    // ownership tag via script-settings, visible on the service and in script lists
    let tags = vec!["clodo:acme/api".to_string()];
    let patched = c
        .patch_script_settings(ACCT, script, &ScriptLevelSettings { tags: Some(tags.clone()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(patched.tags.as_deref(), Some(tags.as_slice()));
    let svc = c.get_service(ACCT, script).await.unwrap();
    assert_eq!(svc.script_tags(), tags.as_slice());
    assert!(svc.script_tag().is_some_and(|t| !t.is_empty()));
    assert!(c.list_scripts(ACCT, None).await.unwrap().iter().any(|s| s.id == script));

    // secrets: put, bulk, list, delete
    c.put_secret(ACCT, script, "JWT_SECRET", &SecretString::new("jwt-secret-value-0123456789abcdef")).await.unwrap();
    let changes: BTreeMap<String, Option<SecretString>> = [
        ("API_KEY".to_string(), Some(SecretString::new("api-key-value-0123456789abcdef01"))),
        ("JWT_SECRET".to_string(), None),
    ]
    .into_iter()
    .collect();
    c.bulk_patch_secrets(ACCT, script, &changes).await.unwrap();
    let mut secret_names: Vec<String> =
        c.list_secrets(ACCT, script).await.unwrap().into_iter().map(|s| s.name).collect();
    secret_names.sort();
    assert!(
        secret_names.contains(&"API_KEY".to_string()) && !secret_names.contains(&"JWT_SECRET".to_string()),
        "{secret_names:?}"
    );
    assert_eq!(c.get_secret(ACCT, script, "API_KEY").await.unwrap().secret_type, "secret_text");
    c.delete_secret(ACCT, script, "API_KEY").await.unwrap();
    assert!(c.delete_secret(ACCT, script, "API_KEY").await.unwrap_err().is_not_found());

    // canary: upload a version without deploying, then split 10/90
    let active = c.active_deployment(ACCT, script).await.unwrap().unwrap();
    let stable = active.sole_version().unwrap().to_string();
    let v2 = c.upload_version(ACCT, script, &upload("canary", &db.uuid, "v2")).await.unwrap();
    assert_ne!(v2.id, stable);
    let still = c.active_deployment(ACCT, script).await.unwrap().unwrap();
    assert_eq!(still.sole_version(), Some(stable.as_str()), "version upload does not deploy");
    let got = c.get_version(ACCT, script, &v2.id).await.unwrap();
    assert_eq!(got.id, v2.id);
    assert!(got.bindings().iter().any(|b| b.name() == Some("DB")));
    let versions = c.list_versions(ACCT, script).await.unwrap();
    assert!(versions.iter().any(|v| v.id == v2.id) && versions.iter().any(|v| v.id == stable));

    let split = c
        .create_deployment(ACCT, script, &CreateDeployment::split(&v2.id, 10.0, &stable, Some("canary 10%")), false)
        .await
        .unwrap();
    assert_eq!(split.traffic(), vec![(v2.id.clone(), 10), (stable.clone(), 90)]);
    let deployments = c.list_deployments(ACCT, script).await.unwrap();
    assert_eq!(deployments[0].id, split.id, "newest first");

    // roll back to the stable version
    let rb =
        c.create_deployment(ACCT, script, &CreateDeployment::single(&stable, Some("rollback")), false).await.unwrap();
    assert_eq!(rb.sole_version(), Some(stable.as_str()));
    assert_eq!(c.active_deployment(ACCT, script).await.unwrap().unwrap().id, rb.id);
    let _ = v1;

    // workers.dev
    let on = c.set_script_subdomain(ACCT, script, true, false).await.unwrap();
    assert!(on.enabled);
    assert!(c.get_script_subdomain(ACCT, script).await.unwrap().enabled);

    // delete
    c.delete_script(ACCT, script, true).await.unwrap();
    assert!(c.get_script_settings(ACCT, script).await.unwrap_err().is_not_found());
    assert!(c.delete_script(ACCT, script, true).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn strict_inherit_failure_is_a_terminal_api_error() {
    let emu = start().await;
    let c = client(&emu);
    let mut bad = upload("bad", "00000000-0000-0000-0000-000000000000", "x");
    bad.metadata.bindings = vec![Binding::Inherit { name: "GONE".into(), old_name: None, version_id: None }];
    bad.strict_inherit = true;
    let e = c.upload_script(ACCT, "broken", &bad).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert!(e.has_code(10057), "{e}");
    assert!(!e.is_retryable());
    assert_eq!(e.reason(), "InvalidRequest");
    let j = emu.journal();
    let last = j.last().unwrap();
    assert_eq!(last.query.as_deref(), Some("bindings_inherit=strict"));
    // without strict the unresolvable inherit is dropped and the upload succeeds
    bad.strict_inherit = false;
    c.upload_script(ACCT, "broken", &bad).await.unwrap();
}

#[tokio::test]
async fn routes_domains_and_dns() {
    let emu = start().await;
    let c = client(&emu);
    let zone = emu.zone_id("example.com").unwrap();
    c.upload_script(
        ACCT,
        "w",
        &WorkerUpload::new(
            WorkerMetadata {
                main_module: Some("index.js".into()),
                compatibility_date: Some("2025-10-01".into()),
                ..Default::default()
            },
            vec![WorkerModule::new("index.js", "export default { fetch() { return new Response('ok') } };")],
        ),
    )
    .await
    .unwrap();

    // routes
    let r = c.create_route(&zone, &RouteSpec::new("api.example.com/*", "w")).await.unwrap();
    let dup = c.create_route(&zone, &RouteSpec::new("api.example.com/*", "w")).await.unwrap_err();
    assert!(dup.has_code(10020) && dup.is_conflict(), "{dup}");
    let listed = c.list_routes(&zone).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].script.as_deref(), Some("w"));
    let updated = c.update_route(&zone, &r.id, &RouteSpec::new("api.example.com/v2/*", "w")).await.unwrap();
    assert_eq!(updated.pattern, "api.example.com/v2/*");
    assert_eq!(c.get_route(&zone, &r.id).await.unwrap().pattern, "api.example.com/v2/*");
    c.delete_route(&zone, &r.id).await.unwrap();
    assert!(c.get_route(&zone, &r.id).await.unwrap_err().is_not_found());

    // custom domains
    let d = c.attach_domain(ACCT, &AttachDomain::new("app.example.com", "w").zone_id(&zone)).await.unwrap();
    assert_eq!((d.hostname.as_str(), d.service.as_str()), ("app.example.com", "w"));
    let again = c.attach_domain(ACCT, &AttachDomain::new("app.example.com", "w").zone_id(&zone)).await.unwrap();
    assert_eq!(again.id, d.id, "re-attach is idempotent");
    let found = c.list_domains(ACCT, &DomainFilter { service: Some("w".into()), ..Default::default() }).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        c.list_domains(ACCT, &DomainFilter { hostname: Some("nope.example.com".into()), ..Default::default() })
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(c.get_domain(ACCT, &d.id).await.unwrap().hostname, "app.example.com");
    c.detach_domain(ACCT, &d.id).await.unwrap();
    assert!(c.list_domains(ACCT, &DomainFilter::default()).await.unwrap().is_empty());

    // DNS
    let rec = c
        .create_dns_record(
            &zone,
            &DnsRecordInput::new("A", "x.example.com", "192.0.2.1").proxied(true).comment("clodo"),
        )
        .await
        .unwrap();
    assert_eq!(rec.record_type, "A");
    assert_eq!(rec.id.len(), 32);
    let dup = c
        .create_dns_record(&zone, &DnsRecordInput::new("A", "x.example.com", "192.0.2.1").proxied(true))
        .await
        .unwrap_err();
    assert!(dup.is_conflict(), "{dup}");
    let filtered = c
        .list_dns_records(
            &zone,
            &DnsFilter { record_type: Some("A".into()), name: Some("x.example.com".into()), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(filtered.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [rec.id.as_str()]);
    assert!(
        c.list_dns_records(&zone, &DnsFilter { record_type: Some("CNAME".into()), ..Default::default() })
            .await
            .unwrap()
            .iter()
            .all(|r| r.record_type == "CNAME")
    );
    let put =
        c.update_dns_record(&zone, &rec.id, &DnsRecordInput::new("A", "x.example.com", "192.0.2.2")).await.unwrap();
    assert_eq!(put.content.as_deref(), Some("192.0.2.2"));
    let patched = c
        .patch_dns_record(&zone, &rec.id, &DnsRecordPatch { content: Some("192.0.2.3".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(patched.content.as_deref(), Some("192.0.2.3"));
    assert_eq!(c.get_dns_record(&zone, &rec.id).await.unwrap().content.as_deref(), Some("192.0.2.3"));
    c.delete_dns_record(&zone, &rec.id).await.unwrap();
    assert!(c.get_dns_record(&zone, &rec.id).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn injected_faults_are_retried() {
    let emu = start().await;
    let c = client(&emu);
    emu.clear_journal();
    emu.set_faults(Faults { fail_next: 2, error_status: 503, ..Faults::default() });
    let zone = c.find_zone_by_name(Some(ACCT), "example.com").await.unwrap();
    assert!(zone.is_some());
    let j = emu.journal();
    assert_eq!(j.iter().map(|e| e.status).collect::<Vec<_>>(), [503, 503, 200]);

    emu.set_faults(Faults { fail_next: 10, error_status: 500, ..Faults::default() });
    let e = c.list_routes(&emu.zone_id("example.com").unwrap()).await.unwrap_err();
    assert_eq!((e.status(), e.reason()), (Some(500), "ServerError"));
    emu.set_faults(Faults::default());
}

#[tokio::test]
async fn emulator_429_is_honoured() {
    let emu = Emulator::builder()
        .account(ACCT)
        .token(TOKEN, &[ACCT])
        .zone("example.com", ACCT)
        .rate_limit(3, Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let c = client(&emu);
    for _ in 0..3 {
        c.get_account_subdomain(ACCT).await.unwrap();
    }
    // The emulator blocks for about the rest of the window: longer than max_retry_after, so the
    // client gives up at once with the server's hint instead of hammering.
    let e = c.get_account_subdomain(ACCT).await.unwrap_err();
    assert!(e.is_rate_limited(), "{e}");
    assert!(e.retry_after().is_some_and(|d| d > Duration::from_secs(2)), "{e:?}");
    let before = emu.journal().len();
    assert!(c.get_account_subdomain(ACCT).await.unwrap_err().is_rate_limited());
    assert_eq!(emu.journal().len(), before, "the token stays paused client-side");
}
