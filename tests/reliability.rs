//! Reliability of the controllers against a misbehaving Cloudflare: a fleet converges under
//! injected 5xx, timeouts, 429s and latency, and survives being killed at random points of its
//! passes, without duplicating anything in Cloudflare, applying a migration twice, or logging a
//! secret. Each test is bounded (timeouts everywhere) so the suite cannot hang.

mod common;
mod harness;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use cloudflare_emulator::Faults;
use harness::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use rand::{Rng, SeedableRng};

/// Log lines of every thread of this test binary (a global subscriber: spawned tasks run on
/// other threads, and the killable operators on runtimes of their own).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,clodo_operator=trace,cloudflare_client=trace,hyper=info,hyper_util=info,h2=info,tower=info,rustls=info",
            ))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// No secret value (nor its base64 form) in the captured logs: the API tokens, the Secret-backed
/// Worker secret and every generated secret of the fleet.
async fn assert_no_secret_in_logs(env: &TestEnv, names: &[String], logs: &Arc<Mutex<Vec<u8>>>) {
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let mut values = vec![common::TOKEN.to_string(), ROTATED_TOKEN.to_string(), common::STRONG.to_string()];
    for n in names {
        let s = secrets.get(&format!("{n}-generated")).await.expect("generated secret exists");
        let v = s.data.unwrap_or_default().get("API_KEY").map(|b| String::from_utf8(b.0.clone()).unwrap());
        values.push(v.expect("API_KEY generated"));
    }
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(text.contains("cloudflare request"), "the capture holds the operator's request logs");
    for v in &values {
        let b64 = base64::engine::general_purpose::STANDARD.encode(v);
        assert!(!text.contains(v.as_str()), "a secret value ({} chars) appears in the logs", v.len());
        assert!(!text.contains(&b64), "a secret value's base64 form appears in the logs");
    }
}

/// A fresh instance resyncs every service once: returns (requests, mutating requests, passes).
async fn quiet_resync(env: &TestEnv, n: usize, opts: &OperatorOptions) -> (usize, usize, u64) {
    env.emu.clear_journal();
    let op = env.start_isolated_operator("op-resync", opts).await;
    wait_until(Duration::from_secs(60), || service_passes(&op.metrics) >= n as u64).await;
    // Let anything the initial watch events trigger after the first passes run too.
    let mut seen = service_passes(&op.metrics);
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = service_passes(&op.metrics);
        if now == seen {
            break;
        }
        seen = now;
    }
    op.stop().await;
    let journal = env.emu.journal();
    (journal.len(), journal.iter().filter(|e| e.mutating).count(), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_converges_under_faults_without_duplicates() {
    const N: usize = 50;
    let logs = captured_logs();
    // A tight server-side limit (the client's own budget is looser, so it meets real 429s).
    let env =
        TestEnv::start_with(41, |b| b.rate_limit(40, Duration::from_secs(1)).latency(Duration::from_millis(2))).await;
    env.emu.set_faults(Faults {
        error_rate: 0.2,
        error_status: 500,
        timeout_rate: 0.05,
        timeout_ms: 250,
        added_latency_ms: 5,
        ..Faults::default()
    });
    let names = env.apply_fleet(N).await;
    let opts = OperatorOptions { concurrency: 8, rate_limit: "1200/1", ..Default::default() };
    let op = env.start_isolated_operator("op-soak", &opts).await;
    let services = wait_all_ready(&env.services(), &names, Duration::from_secs(150)).await;
    op.stop().await;
    env.emu.set_faults(Faults::default());

    // The faults really happened, and were absorbed.
    let journal = env.emu.journal();
    let count = |status: u16| journal.iter().filter(|e| e.status == status).count();
    let (e500, e504, e429) = (count(500), count(504), count(429));
    eprintln!("soak: {} requests, {e500} x 500, {e504} x 504 (timeouts), {e429} x 429", journal.len());
    assert!(e500 > 20 && e504 > 0 && e429 > 0, "faults injected: 500={e500} 504={e504} 429={e429}");

    assert_fleet_in_cloudflare(&env, &names);
    assert_fleet_status(&services);

    // Converged state is stable: a full resync by a fresh instance changes nothing and reads once
    // per service. (Its client-side budget matches the server's; a 429 can still meet a fresh
    // instance whose predecessor used the same window, and is retried: not counted as a read.)
    let matched = OperatorOptions { rate_limit: "40/1", ..opts };
    let (requests, mutations, passes) = quiet_resync(&env, N, &matched).await;
    eprintln!("soak: resync made {requests} requests ({mutations} mutating) in {passes} passes");
    assert_eq!(mutations, 0, "{:?}", env.emu.journal().iter().filter(|e| e.mutating).collect::<Vec<_>>());
    let other: Vec<String> = env
        .emu
        .journal()
        .iter()
        .filter(|e| !(e.method == "GET" && e.path.ends_with("/deployments")))
        .map(|e| format!("{} {} {}", e.method, e.path, e.status))
        .collect();
    assert!(other.is_empty(), "a quiet resync only checks deployments: {other:?}");
    let reads = env.emu.journal().iter().filter(|e| e.status == 200).count();
    assert!(reads <= N, "at most one read per service on a quiet resync: {reads} ({requests} with 429s)");

    assert_no_secret_in_logs(&env, &names, &logs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_pass_and_restarted_duplicates_nothing() {
    const N: usize = 12;
    const KILLS: usize = 10;
    let logs = captured_logs();
    let seed: u64 =
        std::env::var("CLODO_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| rand::rng().random());
    eprintln!("crash-restart seed {seed} (rerun with CLODO_CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let env = TestEnv::start_with(42, |b| b.latency(Duration::from_millis(3))).await;
    // A few failures too, so that some passes end early and record partial progress in status.
    env.emu.set_faults(Faults { error_rate: 0.05, ..Faults::default() });
    let names = env.apply_fleet(N).await;
    let services = env.services();
    let opts = OperatorOptions { concurrency: 4, ..Default::default() };

    let ready_count = || async {
        services.list(&Default::default()).await.map(|l| l.items.iter().filter(|s| is_ready(s)).count()).unwrap_or(0)
    };
    let mut kills = 0;
    for round in 0..KILLS {
        if ready_count().await == N {
            break;
        }
        let at = env.emu.journal().len() + rng.random_range(1..=40);
        let op = env.start_isolated_operator(&format!("op-{round}"), &opts).await;
        // Until the journal reaches `at`, or the instance has nothing left to do.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let (mut last_len, mut last_change) = (env.emu.journal().len(), tokio::time::Instant::now());
        while tokio::time::Instant::now() < deadline && last_change.elapsed() < Duration::from_secs(3) {
            let len = env.emu.journal().len();
            if len >= at {
                break;
            }
            if len != last_len {
                (last_len, last_change) = (len, tokio::time::Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        op.kill();
        kills += 1;
        eprintln!("crash-restart: round {round} killed at journal entry {at}; {}/{N} Ready", ready_count().await);
    }
    assert!(kills >= 3, "the operator was killed mid-convergence only {kills} times");

    let op = env.start_isolated_operator("op-final", &opts).await;
    let converged = wait_all_ready(&services, &names, Duration::from_secs(120)).await;
    op.stop().await;
    env.emu.set_faults(Faults::default());

    assert_fleet_in_cloudflare(&env, &names);
    assert_fleet_status(&converged);
    let (_, mutations, _) = quiet_resync(&env, N, &opts).await;
    assert_eq!(mutations, 0, "{:?}", env.emu.journal().iter().filter(|e| e.mutating).collect::<Vec<_>>());
    assert_no_secret_in_logs(&env, &names, &logs).await;
}

/// A pass that applied a migration and died before writing status: the next pass, whose status
/// records only the earlier migrations, reads the tracking table and does not apply it again.
#[tokio::test]
async fn migration_applied_by_a_pass_that_died_is_not_applied_again() {
    use clodo_operator::engine::migrations::{MigrationFile, apply_sql};
    let init = ("0001_init.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);");
    let items = (
        "0002_items.sql",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO items (name) VALUES ('first');",
    );
    let mut w = common::World::new(43).await;
    w.set_config_map("data-migrations", &[init]);
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    assert_eq!(common::cond(&svc, "Ready").status, "True", "{:#?}", svc.status);
    let db = svc.status.as_ref().unwrap().databases[0].id.clone();

    // The dead pass: 0002 went through D1 (with its tracking row), status never heard of it.
    w.emu.d1_query(&w.account, &db, &apply_sql(&MigrationFile::new(items.0, items.1))).unwrap();
    w.set_config_map("data-migrations", &[init, items]);
    w.emu.clear_journal();
    w.pass(&mut svc).await;

    assert_eq!(common::cond(&svc, "Ready").status, "True", "{:#?}", svc.status);
    let queries: Vec<_> = w.emu.journal().into_iter().filter(|e| e.path.ends_with("/query")).collect();
    assert!(queries.iter().all(|e| !e.mutating), "no migration query was sent: {queries:?}");
    let rows = w.emu.d1_query(&w.account, &db, "SELECT name FROM d1_migrations ORDER BY id").unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let n = w.emu.d1_query(&w.account, &db, "SELECT COUNT(*) AS n FROM items").unwrap();
    assert_eq!(n[0]["n"], 1, "0002 ran once");
    let applied: Vec<String> =
        svc.status.as_ref().unwrap().databases[0].applied_migrations.iter().map(|m| m.name.clone()).collect();
    assert_eq!(applied, vec!["0001_init.sql", "0002_items.sql"], "status learns about 0002");
}

/// A new script carries the owner tag from its very first upload: no later call can fail (or
/// the process die) between creating the script and claiming it, which would leave a script of
/// ours that the next pass must treat as someone else's.
#[tokio::test]
async fn a_new_script_is_claimed_by_its_upload() {
    let w = common::World::new(44).await;
    // Any separate tagging call would fail.
    w.emu.set_faults(Faults {
        path_prefix_failures: vec![(
            format!("/accounts/{}/workers/scripts/acme-data-production/script-settings", w.account),
            400,
        )],
        ..Faults::default()
    });
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    assert_eq!(common::cond(&svc, "Ready").status, "True", "{:#?}", svc.status);
    let script = w.emu.script(&w.account, "acme-data-production").expect("script");
    assert_eq!(script.tags, vec![format!("clodo-owner={}.data", w.ns)]);
    assert!(w.emu.journal().iter().all(|e| !e.path.ends_with("/script-settings")), "{:?}", w.emu.journal());
}
