//! The reconcile core against the Cloudflare emulator over real HTTP (no mocks of our client).

mod common;

use clodo_operator::crd::conditions as c;
use clodo_operator::crd::{DatabaseDeletionPolicy, DeletionPolicy, Phase};
use clodo_operator::engine::Outcome;
use common::*;

#[tokio::test]
async fn fresh_deploy_then_quiet_pass_makes_no_mutation() {
    let w = World::new(1).await;
    let mut svc = w.svc();
    let (r, events) = w.pass(&mut svc).await;
    let st = svc.status.clone().unwrap();
    assert_eq!(st.phase, Some(Phase::Ready), "{:#?}", st.conditions);
    assert_eq!(cond(&svc, c::READY).status, "True");
    assert_eq!(r.outcome, Outcome::Done { requeue_after: None });
    assert_eq!(st.observed_generation, Some(1));
    for t in c::SERVICE_CONDITIONS {
        assert_eq!(cond(&svc, t).status, "True", "{t}: {:?}", cond(&svc, t));
    }
    // Databases, migrations, worker, route and domain really exist.
    assert_eq!(st.databases.len(), 1);
    let db = &st.databases[0];
    assert_eq!(db.name, "acme-data-production");
    assert_eq!(
        db.applied_migrations.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        vec!["0001_init.sql", "0002_items.sql"]
    );
    assert!(db.applied_migrations.iter().all(|m| m.checksum.starts_with("sha256:")));
    assert!(db.last_bookmark.is_none(), "fresh database needs no bookmark");
    let rows = w.emu.d1_query(&w.account, &db.id, "SELECT name FROM d1_migrations ORDER BY id").unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let worker = st.worker.as_ref().unwrap();
    assert_eq!(worker.script_name, "acme-data-production");
    assert!(worker.version_id.is_some());
    assert_eq!(st.routes.len(), 1);
    assert_eq!(st.custom_domains.len(), 1);
    assert_eq!(st.url.as_deref(), Some("https://api.acme.com"));
    assert!(events.iter().any(|e| e.reason == "UploadWorker"));

    // Second pass: zero mutating calls, at most one read.
    w.emu.clear_journal();
    let before = svc.status.clone();
    let (r2, events2) = w.pass(&mut svc).await;
    assert_eq!(r2.outcome, Outcome::Done { requeue_after: None });
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    assert!(w.emu.journal().len() <= 1, "{:?}", w.emu.journal());
    assert_eq!(svc.status, before, "a quiet pass must not change status");
    assert!(events2.is_empty(), "{events2:?}");
}

#[tokio::test]
async fn quiet_resync_read_goes_at_resync_priority() {
    use clodo_operator::cloudflare::{ApiToken, ClientConfig, ClientPool};
    use clodo_operator::engine::{Engine, EngineConfig, NoProgress};
    let w = World::new(40).await;
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    // A restarted operator: a fresh engine has nothing cached, so the quiet pass makes its drift
    // check, the one read a resync costs, and nothing else at resync priority.
    let pool = ClientPool::new(ClientConfig { base_url: w.emu.base_url(), ..Default::default() }, None);
    let engine = Engine::new(pool.clone(), w.metrics.clone(), EngineConfig::default());
    w.emu.clear_journal();
    let r = engine.reconcile(&svc, &w.source(), &NoProgress).await;
    assert_eq!(r.outcome, Outcome::Done { requeue_after: None });
    let journal = w.emu.journal();
    assert!(journal.iter().any(|j| j.path.ends_with("/deployments")), "{journal:?}");
    let client = pool.client_for(&ApiToken::new(TOKEN)).unwrap();
    let budget = client.rate_limiter().snapshot(tokio::time::Instant::now());
    assert_eq!((budget.in_window, budget.resync_in_window), (journal.len(), 1), "{journal:?}");
}

#[tokio::test]
async fn code_change_uploads_exactly_once() {
    let mut w = World::new(2).await;
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    let v1 = svc.status.as_ref().unwrap().worker.as_ref().unwrap().version_id.clone();
    w.set_config_map("data-code", &[("index.js", "export default { fetch() { return new Response('v2') } };")]);
    w.emu.clear_journal();
    w.pass(&mut svc).await;
    let muts = w.mutations();
    assert_eq!(muts.len(), 1, "{muts:?}");
    assert!(muts[0].starts_with("PUT ") && muts[0].contains("/workers/scripts/acme-data-production"), "{muts:?}");
    let worker = svc.status.as_ref().unwrap().worker.clone().unwrap();
    assert_ne!(worker.version_id, v1);
    assert_eq!(worker.previous_version_id, v1);
    assert_eq!(cond(&svc, c::READY).status, "True");
    assert_eq!(svc.status.as_ref().unwrap().history.len(), 2);
}

#[tokio::test]
async fn new_migration_is_the_only_one_applied_with_a_bookmark() {
    let mut w = World::new(3).await;
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    w.set_config_map(
        "data-migrations",
        &[
            ("0001_init.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"),
            (
                "0002_items.sql",
                "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO items (name) VALUES ('first');",
            ),
            ("0003_orders.sql", "CREATE TABLE orders (id INTEGER PRIMARY KEY);"),
        ],
    );
    w.emu.clear_journal();
    w.pass(&mut svc).await;
    let muts = w.mutations();
    assert_eq!(muts.len(), 1, "only the new migration query mutates: {muts:?}");
    assert!(muts[0].ends_with("/query"), "{muts:?}");
    let st = svc.status.as_ref().unwrap();
    let db = &st.databases[0];
    assert_eq!(db.applied_migrations.len(), 3);
    assert!(db.last_bookmark.is_some(), "production migration must record a bookmark");
    let rows = w.emu.d1_query(&w.account, &db.id, "SELECT name FROM d1_migrations ORDER BY id").unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3);
    let items = w.emu.d1_query(&w.account, &db.id, "SELECT COUNT(*) AS n FROM items").unwrap();
    assert_eq!(items[0]["n"], 1, "0002 must not run twice");
    assert_eq!(cond(&svc, c::READY).status, "True");
}

#[tokio::test]
async fn modified_applied_migration_is_a_checksum_mismatch_and_nothing_deploys() {
    let mut w = World::new(4).await;
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    w.set_config_map(
        "data-migrations",
        &[
            ("0001_init.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, extra TEXT);"),
            (
                "0002_items.sql",
                "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO items (name) VALUES ('first');",
            ),
        ],
    );
    w.set_config_map("data-code", &[("index.js", "export default { fetch() { return new Response('changed') } };")]);
    w.emu.clear_journal();
    let (r, _) = w.pass(&mut svc).await;
    assert_eq!(r.outcome, Outcome::Terminal);
    let m = cond(&svc, c::MIGRATIONS_APPLIED);
    assert_eq!((m.status.as_str(), m.reason.as_str()), ("False", "ChecksumMismatch"));
    assert!(m.message.contains("0001_init.sql"), "{}", m.message);
    assert_eq!(cond(&svc, c::READY).status, "False");
    assert_eq!(svc.status.as_ref().unwrap().phase, Some(Phase::Failed));
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
}

#[tokio::test]
async fn failing_migration_reports_the_sql_error_and_leaves_the_worker_alone() {
    let mut w = World::new(5).await;
    w.manifests.config_maps.retain(|c| c.metadata.name.as_deref() != Some("data-migrations"));
    w.set_config_map(
        "data-migrations",
        // Valid SQL that fails on D1 (a syntax error is caught before any call: see tests/bad_input.rs).
        &[("0001_init.sql", "CREATE TABLE ok (id INTEGER);"), ("0002_bad.sql", "INSERT INTO missing (id) VALUES (1);")],
    );
    let mut svc = w.svc();
    let (r, _) = w.pass(&mut svc).await;
    assert_eq!(r.outcome, Outcome::Terminal);
    let m = cond(&svc, c::MIGRATIONS_APPLIED);
    assert_eq!((m.status.as_str(), m.reason.as_str()), ("False", "MigrationFailed"));
    assert!(m.message.contains("0002_bad.sql") && m.message.contains("no such table: missing"), "{}", m.message);
    let st = svc.status.as_ref().unwrap();
    assert_eq!(st.databases[0].applied_migrations.len(), 1, "0001 applied and recorded");
    assert!(st.worker.is_none());
    assert!(!w.mutations().iter().any(|m| m.contains("/workers/")), "{:?}", w.mutations());
    let rows = w.emu.d1_query(&w.account, &st.databases[0].id, "SELECT name FROM d1_migrations").unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "the failed migration left no record");
}

#[tokio::test]
async fn weak_production_secret_is_blocked_without_any_call() {
    let mut w = World::new(6).await;
    w.manifests.secrets.retain(|s| s.metadata.name.as_deref() != Some("acme-secrets"));
    w.manifests.secrets.push(secret(&w.ns, "acme-secrets", "jwt", "changeme"));
    let mut svc = w.svc();
    let (r, events) = w.pass(&mut svc).await;
    assert_eq!(r.outcome, Outcome::Terminal);
    let s = cond(&svc, c::SECURITY_VALIDATED);
    assert_eq!((s.status.as_str(), s.reason.as_str()), ("False", "PolicyViolation"));
    assert!(s.message.contains("spec.worker.secrets.JWT_SECRET"), "{}", s.message);
    assert!(!s.message.contains("changeme"));
    assert!(events.iter().all(|e| !e.note.contains("changeme")));
    assert!(w.emu.journal().is_empty(), "no Cloudflare call may be made: {:?}", w.emu.journal());
}

#[tokio::test]
async fn unresolved_placeholder_is_a_config_error_naming_the_field() {
    let mut w = World::new(7).await;
    w.manifests.services[0].spec.body.worker.vars.insert("API".into(), "https://{{NOT_DEFINED}}/v1".into());
    let mut svc = w.svc();
    let (r, _) = w.pass(&mut svc).await;
    assert_eq!(r.outcome, Outcome::Terminal);
    let cv = cond(&svc, c::CONFIG_VALID);
    assert_eq!((cv.status.as_str(), cv.reason.as_str()), ("False", "UnresolvedPlaceholder"));
    assert!(cv.message.contains("spec.worker.vars.API") && cv.message.contains("NOT_DEFINED"), "{}", cv.message);
    assert!(w.emu.journal().is_empty());
}

#[tokio::test]
async fn script_owned_by_another_resource_is_a_conflict() {
    let w = World::new(8).await;
    let mut first = w.svc();
    w.pass(&mut first).await;
    // A second resource (another name) claiming the same script name.
    let mut other = w.svc();
    other.metadata.name = Some("intruder".into());
    other.spec.body.script_name = Some("acme-data-production".into());
    other.spec.body.d1_databases.clear();
    other.spec.body.routes.clear();
    other.spec.body.custom_domains.clear();
    w.emu.clear_journal();
    let (r, _) = w.pass(&mut other).await;
    assert_eq!(r.outcome, Outcome::Terminal);
    let wd = cond(&other, c::WORKER_DEPLOYED);
    assert_eq!((wd.status.as_str(), wd.reason.as_str()), ("False", "Conflict"));
    assert!(wd.message.contains("owned by ns8/data"), "{}", wd.message);
    assert_eq!(cond(&other, c::READY).reason, "Conflict");
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
}

#[tokio::test]
async fn deletion_policies() {
    // Delete: script, route, domain gone; Retain database kept.
    let w = World::new(9).await;
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    let (events, res) = w.engine.cleanup(&svc, &w.source(), &clodo_operator::engine::NoProgress).await;
    res.unwrap();
    assert!(events.iter().any(|e| e.reason == "WorkerDeleted"), "{events:?}");
    let state = w.summary();
    assert_eq!(state.scripts, 0, "{state:?}");
    assert_eq!(state.routes, 0);
    assert_eq!(state.custom_domains, 0);
    assert_eq!(state.databases, 1, "Retain keeps the database");

    // Delete with a database that says Delete.
    let mut w = World::new(10).await;
    w.manifests.services[0].spec.body.d1_databases[0].deletion_policy = DatabaseDeletionPolicy::Delete;
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    let (_, res) = w.engine.cleanup(&svc, &w.source(), &clodo_operator::engine::NoProgress).await;
    res.unwrap();
    assert_eq!(w.summary().databases, 0);

    // Orphan leaves everything, even a Delete database.
    w.manifests.services[0].spec.body.deletion_policy = DeletionPolicy::Orphan;
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    let before = w.summary();
    let (_, res) = w.engine.cleanup(&svc, &w.source(), &clodo_operator::engine::NoProgress).await;
    res.unwrap();
    assert_eq!(w.summary(), before);
    assert_eq!(before.scripts, 1);
}

#[tokio::test]
async fn crash_after_database_creation_then_rerun_duplicates_nothing() {
    let w = World::new(11).await;
    // Every Worker upload fails: the pass dies after the database and migrations.
    w.emu.set_faults(cloudflare_emulator::Faults {
        path_prefix_failures: vec![(format!("/client/v4/accounts/{}/workers/scripts", w.account), 500)],
        ..Default::default()
    });
    let mut svc = w.svc();
    // The pass that "crashed" leaves no status behind (as if the process died before writing it).
    let (r, _) = w.pass(&mut svc).await;
    assert!(matches!(r.outcome, Outcome::Retry(_)), "{:?}", r.outcome);
    svc.status = None;
    w.emu.set_faults(cloudflare_emulator::Faults::default());
    w.pass(&mut svc).await;
    assert_eq!(cond(&svc, c::READY).status, "True", "{:#?}", svc.status);
    let state = w.summary();
    assert_eq!(state.databases, 1, "{state:?}");
    let db = &svc.status.as_ref().unwrap().databases[0];
    let rows = w.emu.d1_query(&w.account, &db.id, "SELECT name FROM d1_migrations").unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "migrations applied exactly once");
}

#[tokio::test]
async fn token_never_appears_in_status_events_or_metrics() {
    let w = World::new(12).await;
    let mut svc = w.svc();
    let (_, events) = w.pass(&mut svc).await;
    let status = serde_json::to_string(&svc.status).unwrap();
    assert!(!status.contains(TOKEN) && !status.contains(STRONG));
    for e in &events {
        assert!(!e.note.contains(TOKEN) && !e.note.contains(STRONG));
    }
    let metrics = w.metrics.render();
    assert!(!metrics.contains(TOKEN));
    assert!(metrics.contains("clodo_cloudflare_requests_total"));
}

fn kinds(steps: &[clodo_operator::engine::plan::Step]) -> Vec<&'static str> {
    steps.iter().map(|s| s.kind()).collect()
}

/// `plan` (a dry run) lists exactly the steps `deploy` then runs, for a fresh service, a quiet
/// resync and a code change; every pass of every engine scenario also runs exactly its plan
/// (`common::assert_ran_its_plan`).
#[tokio::test]
async fn plan_lists_exactly_the_steps_deploy_runs() {
    let mut w = World::new(46).await;
    let mut svc = w.svc();

    // Fresh: the dry run on one restarted operator, the deploy on another (both verify the token).
    for (change, expected) in [
        (
            false,
            vec!["VerifyToken", "CreateDatabase", "ApplyMigrations", "UploadWorker", "CreateRoute", "AttachDomain"],
        ),
        (true, vec!["VerifyToken", "UploadWorker"]),
    ] {
        if change {
            w.set_config_map("data-code", &[("index.js", "export default { fetch() { return new Response('v2') } };")]);
        }
        let mut dry = svc.clone();
        dry.spec.body.dry_run = true;
        w.emu.clear_journal();
        let (plan, _) = w.pass_on(&w.fresh_engine(), &mut dry).await;
        assert!(w.mutations().is_empty(), "a dry run changes nothing: {:?}", w.mutations());
        assert_eq!(kinds(&plan.planned), expected);
        assert_eq!(kinds(&plan.executed), vec!["VerifyToken"], "a dry run runs only the reads");
        let listed = dry.status.as_ref().unwrap().plan.clone();
        let (deploy, _) = w.pass_on(&w.fresh_engine(), &mut svc).await;
        assert_eq!(cond(&svc, c::READY).status, "True", "{:#?}", svc.status);
        assert_eq!(deploy.executed, plan.planned);
        let d = listed.len();
        assert_eq!(d, deploy.executed.len());
        assert!(listed.iter().any(|l| l.starts_with("upload")), "{listed:?}");
    }

    // Quiet resync: the plan is the drift check, and that is all the pass does.
    w.pass(&mut svc).await;
    let (quiet, _) = w.pass(&mut svc).await;
    let version = svc.status.as_ref().unwrap().worker.as_ref().unwrap().version_id.clone().unwrap();
    assert_eq!(quiet.planned, vec![clodo_operator::engine::plan::Step::DriftCheck { version }]);
    assert_eq!(quiet.executed, quiet.planned);
}
