//! What the operator may touch and delete (issue "Safety of the trust surface"), checked against
//! the Cloudflare emulator over real HTTP: databases it does not own, databases whose creation
//! was interrupted, cleanup by ownership only, stale zone ids, and generated secrets that a CLI
//! run from a fresh checkout must not rotate.

mod common;

use std::process::Command;

use clodo_operator::crd::conditions as c;
use clodo_operator::crd::{DatabaseDeletionPolicy, DatabaseStatus, Ownership, ZoneStatus};
use clodo_operator::engine::NoProgress;
use common::*;

/// Create a D1 database the way another tool would (not through the operator).
async fn create_foreign_database(w: &World, name: &str) -> String {
    let resp: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/accounts/{}/d1/database", w.emu.base_url(), w.account))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["success"], true, "{resp}");
    resp["result"]["uuid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn adopt_foreign_database_is_a_conflict_and_nothing_is_sent_to_it() {
    let mut w = World::new(41).await;
    let foreign = create_foreign_database(&w, "acme-data-production").await;
    w.emu.clear_journal();

    let mut svc = w.svc();
    w.pass(&mut svc).await;
    let db = cond(&svc, c::DATABASES_READY);
    assert_eq!((db.status.as_str(), db.reason.as_str()), ("False", "Conflict"), "{db:?}");
    assert!(db.message.contains("clodo.dev/adopt"), "{}", db.message);
    assert_eq!(cond(&svc, c::READY).status, "False");
    assert!(w.mutations().is_empty(), "nothing may change: {:?}", w.mutations());
    let touched: Vec<String> =
        w.emu.journal().into_iter().filter(|e| e.path.contains(&foreign)).map(|e| e.path).collect();
    assert!(touched.is_empty(), "no query may reach a database of unknown origin: {touched:?}");
    assert!(svc.status.as_ref().unwrap().databases.is_empty(), "a conflict records no ownership");

    // Explicit adoption: migrated, recorded as Adopted.
    w.manifests.services[0]
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("clodo.dev/adopt".into(), "true".into());
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    assert_eq!(cond(&svc, c::READY).status, "True", "{:#?}", svc.status.as_ref().unwrap().conditions);
    let st = svc.status.as_ref().unwrap();
    assert_eq!(st.databases[0].id, foreign);
    assert_eq!(st.databases[0].ownership, Some(Ownership::Adopted));
    assert_eq!(st.databases[0].applied_migrations.len(), 2);
}

#[tokio::test]
async fn adopt_database_created_by_this_resource_is_recorded_as_created() {
    let w = World::new(42).await;
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    let st = svc.status.as_ref().unwrap();
    assert_eq!(st.databases[0].ownership, Some(Ownership::Created));
    assert!(!st.databases[0].id.is_empty());
}

#[tokio::test]
async fn adopt_interrupted_creation_is_recognised_after_a_crash() {
    // A pass recorded that it is creating the database, created it, and died before it could
    // record the id: the next pass must claim that database, not call it foreign or make another.
    let w = World::new(43).await;
    let id = create_foreign_database(&w, "acme-data-production").await;
    let mut svc = w.svc();
    svc.status = Some(clodo_operator::crd::CloudflareServiceStatus {
        databases: vec![DatabaseStatus {
            binding: "DB".into(),
            name: "acme-data-production".into(),
            id: String::new(),
            ownership: Some(Ownership::Created),
            applied_migrations: vec![],
            last_bookmark: None,
        }],
        ..Default::default()
    });
    w.pass(&mut svc).await;
    assert_eq!(cond(&svc, c::READY).status, "True", "{:#?}", svc.status.as_ref().unwrap().conditions);
    let st = svc.status.as_ref().unwrap();
    assert_eq!((st.databases[0].id.as_str(), st.databases[0].ownership), (id.as_str(), Some(Ownership::Created)));
    assert_eq!(w.emu.d1_databases(&w.account).len(), 1, "no second database");
}

#[tokio::test]
async fn cleanup_never_deletes_a_database_it_does_not_own() {
    let mut w = World::new(44).await;
    w.manifests.services[0].spec.body.d1_databases[0].deletion_policy = DatabaseDeletionPolicy::Delete;
    let foreign = create_foreign_database(&w, "acme-data-production").await;
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    assert_eq!(cond(&svc, c::DATABASES_READY).reason, "Conflict");
    let (events, res) = w.engine.cleanup(&svc, &w.source(), &NoProgress).await;
    res.unwrap();
    let dbs = w.emu.d1_databases(&w.account);
    assert_eq!(dbs.len(), 1, "the foreign database stays");
    assert_eq!(dbs[0].uuid, foreign);
    assert!(events.iter().any(|e| e.reason == "DatabaseKept"), "{events:?}");

    // One this resource created (and records) is deleted as its policy says.
    let mut w = World::new(45).await;
    w.manifests.services[0].spec.body.d1_databases[0].deletion_policy = DatabaseDeletionPolicy::Delete;
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    let (_, res) = w.engine.cleanup(&svc, &w.source(), &NoProgress).await;
    res.unwrap();
    assert!(w.emu.d1_databases(&w.account).is_empty());
}

#[tokio::test]
async fn cleanup_is_blocked_not_skipped_without_credentials() {
    let mut w = World::new(46).await;
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    // The Customer goes away: nothing can reach Cloudflare, and nothing may be orphaned silently.
    w.manifests.customers.clear();
    let (events, res) = w.engine.cleanup(&svc, &w.source(), &NoProgress).await;
    let err = res.unwrap_err();
    assert_eq!(err.reason(), "CustomerNotFound");
    assert!(err.to_string().contains("deletionPolicy"), "{err}");
    assert!(events.iter().any(|e| e.warning && e.reason == c::CLEANUP_BLOCKED), "{events:?}");
    assert_eq!(w.emu.scripts(&w.account).len(), 1, "the Worker is still there");

    // The token Secret missing is the same.
    let mut w = World::new(47).await;
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    w.manifests.secrets.retain(|s| s.metadata.name.as_deref() != Some("acme-cloudflare"));
    let (_, res) = w.engine.cleanup(&svc, &w.source(), &NoProgress).await;
    assert_eq!(res.unwrap_err().reason(), "TokenMissing");
}

#[tokio::test]
async fn stale_zone_id_is_looked_up_again() {
    let mut w = World::new(48).await;
    // The Customer's status (or a CLI state file) remembers an id the zone no longer has.
    let stale = "f".repeat(32);
    let cust = &mut w.manifests.customers[0];
    let mut st = cust.status.clone().unwrap_or_default();
    st.zones = vec![ZoneStatus { name: "acme.com".into(), id: stale.clone(), status: "active".into() }];
    cust.status = Some(st);
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    assert_eq!(cond(&svc, c::READY).status, "True", "{:#?}", svc.status.as_ref().unwrap().conditions);
    let route = &svc.status.as_ref().unwrap().routes[0];
    assert_ne!(route.zone_id, stale, "the route is recorded with the zone's current id");
    assert_eq!(w.emu.routes("acme.com").len(), 1);
}

/// The example-like manifests of a service with a generated secret and no production tests (a
/// real run would call the public URL), pointed at `account`.
fn cli_manifests(dir: &std::path::Path, account: &str) {
    let yaml = format!(
        r#"apiVersion: clodo.dev/v1alpha1
kind: Customer
metadata: {{ name: acme, namespace: acme }}
spec:
  accountId: "{account}"
  apiTokenSecretRef: {{ name: acme-cloudflare, key: token }}
  zones: [acme.com]
---
apiVersion: v1
kind: Secret
metadata: {{ name: acme-cloudflare, namespace: acme }}
stringData: {{ token: {TOKEN} }}
---
apiVersion: v1
kind: ConfigMap
metadata: {{ name: code, namespace: acme }}
data:
  index.js: "export default {{ fetch() {{ return new Response('ok') }} }};"
---
apiVersion: clodo.dev/v1alpha1
kind: CloudflareService
metadata: {{ name: api, namespace: acme }}
spec:
  customerRef: {{ name: acme }}
  environment: production
  worker:
    mainModule: index.js
    source: {{ configMapRef: {{ name: code }} }}
    compatibilityDate: "2025-10-01"
    secrets:
      - name: INTERNAL_API_KEY
        generate: {{ length: 48 }}
  routes: [ {{ pattern: "api.acme.com/*" }} ]
"#
    );
    std::fs::write(dir.join("service.yaml"), yaml).unwrap();
}

fn cli_deploy(workdir: &std::path::Path, manifests: &std::path::Path, api: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_clodo-operator"))
        .current_dir(workdir)
        .args(["deploy", "-f", manifests.to_str().unwrap(), "--cloudflare-api-base-url", api])
        .env_remove("CLOUDFLARE_API_TOKEN")
        .output()
        .expect("binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "deploy failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_generated_secret_is_not_rotated_by_a_fresh_checkout() {
    let w = World::new(49).await;
    let manifests = tempfile::tempdir().unwrap();
    cli_manifests(manifests.path(), &w.account);
    let api = w.emu.base_url();

    // First pipeline run: creates everything and sets the generated secret once.
    let first = tempfile::tempdir().unwrap();
    let (dir1, m, a) = (first.path().to_path_buf(), manifests.path().to_path_buf(), api.clone());
    let out1 = tokio::task::spawn_blocking(move || cli_deploy(&dir1, &m, &a)).await.unwrap();
    assert!(out1.contains("generated secret INTERNAL_API_KEY"), "{out1}");
    let ignore = std::fs::read_to_string(first.path().join(".clodo/.gitignore")).expect(".clodo/.gitignore written");
    assert!(ignore.lines().any(|l| l.trim() == "*"), "{ignore}");
    let scripts = w.emu.scripts(&w.account);
    assert_eq!(scripts.len(), 1);

    // Second run from another empty checkout: nothing to change, so nothing is sent that mutates.
    w.emu.clear_journal();
    let second = tempfile::tempdir().unwrap();
    let (dir2, m, a) = (second.path().to_path_buf(), manifests.path().to_path_buf(), api.clone());
    let out2 = tokio::task::spawn_blocking(move || cli_deploy(&dir2, &m, &a)).await.unwrap();
    assert!(w.mutations().is_empty(), "second run mutated: {:?}\n{out2}", w.mutations());
    assert!(!out2.contains("generated secret INTERNAL_API_KEY;"), "no new value was made:\n{out2}");
}
