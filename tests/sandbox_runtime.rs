//! The sandbox runs the deployed Worker code on workerd: the example service's production tests
//! pass against the running Worker, the Worker reads and writes D1 through its binding and sees
//! its secrets, a split deployment splits traffic by its percentages, and a rollback switches
//! the version that serves.
//!
//! Needs a workerd binary (`WORKERD_BIN`, `PATH` or `node_modules`; `.ci/run` installs it with
//! npm). Without one the workerd tests print `SKIPPED: workerd not found`; with `CI` set they
//! fail instead. The NoLocalRuntime test runs everywhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clodo_operator::cli::deploy::{Sandbox, start_sandbox};
use clodo_operator::cli::manifests::{self, ManifestSource, Manifests};
use clodo_operator::cloudflare::{ClientConfig, ClientPool};
use clodo_operator::crd::conditions as c;
use clodo_operator::crd::{CloudflareService, Phase};
use clodo_operator::engine::{Engine, EngineConfig, NoProgress};
use clodo_operator::metrics::Metrics;
use cloudflare_emulator::{VERSION_KEY_HEADER, VERSION_OVERRIDES_HEADER, Workerd};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_clodo-operator");
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "sandbox-token-acme-3f9c1e7a";
const HOST: &str = "api.acme.com";
const SCRIPT: &str = "acme-data-service-production";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// The workerd binary, or `None` (test skipped) when it is not installed and CI is not set.
fn workerd() -> Option<Workerd> {
    let explicit = std::env::var_os("WORKERD_BIN").map(PathBuf::from);
    match Workerd::discover(explicit.as_deref()) {
        Ok(Some((w, _))) => Some(w),
        Ok(None) if std::env::var_os("CI").is_some() => {
            panic!("workerd not found but CI is set: .ci/run installs it with npm and exports WORKERD_BIN")
        }
        Ok(None) => {
            println!("SKIPPED: workerd not found (set WORKERD_BIN or run `npm install workerd`)");
            None
        }
        Err(e) => panic!("WORKERD_BIN is set but unusable: {e}"),
    }
}

/// The quickstart's sandbox (examples/ seeded into the emulator, running Workers on workerd)
/// with an engine whose production tests go to the sandbox's edge.
struct World {
    sandbox: Sandbox,
    manifests: Manifests,
    engine: Engine,
    http: reqwest::Client,
    _state: tempfile::TempDir,
    secrets_file: PathBuf,
}

impl World {
    async fn start() -> Option<World> {
        let workerd = workerd()?;
        let manifests = manifests::load(&[examples()]).expect("examples load");
        let state = tempfile::tempdir().unwrap();
        let secrets_file = state.path().join("generated-secrets.json");
        let source = ManifestSource::new(manifests.clone(), Some(secrets_file.clone())).unwrap();
        let sandbox = start_sandbox(&manifests, &source, Some(workerd)).await.expect("sandbox starts");
        let edge = sandbox.handle.edge_url().expect("the sandbox has an edge listener when workerd is found");
        let metrics = Metrics::new().unwrap();
        let pool = ClientPool::new(ClientConfig { base_url: sandbox.handle.base_url(), ..Default::default() }, None);
        let engine = Engine::new(pool, metrics, EngineConfig { no_local_runtime: false, edge_url: Some(edge) });
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Some(World { sandbox, manifests, engine, http, _state: state, secrets_file })
    }

    fn service(&self) -> CloudflareService {
        let mut svc = self.manifests.services[0].clone();
        svc.metadata.generation = Some(1);
        svc
    }

    /// One reconcile pass; the status lands on `svc`.
    async fn pass(&self, svc: &mut CloudflareService) {
        let source = ManifestSource::new(self.manifests.clone(), Some(self.secrets_file.clone())).unwrap();
        let r = self.engine.reconcile(svc, &source, &NoProgress).await;
        svc.status = Some(r.status);
    }

    /// Replace one module of the Worker's code ConfigMap.
    fn set_module(&mut self, name: &str, text: &str) {
        let cm: &mut ConfigMap = self
            .manifests
            .config_maps
            .iter_mut()
            .find(|c| c.metadata.name.as_deref() == Some("data-service-code"))
            .expect("code ConfigMap");
        cm.data.get_or_insert_with(BTreeMap::new).insert(name.to_string(), text.to_string());
    }

    fn edge(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let edge = self.sandbox.handle.edge_url().unwrap();
        self.http.request(method, format!("{edge}{path}")).header(reqwest::header::HOST, HOST)
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.edge(reqwest::Method::GET, path).send().await.expect("edge request");
        (r.status().as_u16(), r.text().await.unwrap())
    }

    fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(
                method,
                format!("{}/accounts/{ACCOUNT}/workers/scripts/{SCRIPT}{path}", self.sandbox.handle.base_url()),
            )
            .bearer_auth(TOKEN)
    }

    /// Deploy `versions` (id, percentage) through the API.
    async fn deploy(&self, versions: &[(&str, u32)]) {
        let body = json!({
            "strategy": "percentage",
            "versions": versions.iter().map(|(v, p)| json!({"version_id": v, "percentage": p})).collect::<Vec<_>>(),
        });
        let r = self.api(reqwest::Method::POST, "/deployments").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// Upload a version of the script (not deployed) whose every response is `marker`.
    async fn upload_marker_version(&self, marker: &str) -> String {
        let code = format!("export default {{ fetch() {{ return new Response({marker:?}); }} }};");
        let meta = json!({"main_module": "index.js", "compatibility_date": "2025-10-01"});
        let form = reqwest::multipart::Form::new().text("metadata", meta.to_string()).part(
            "index.js",
            reqwest::multipart::Part::bytes(code.into_bytes())
                .file_name("index.js")
                .mime_str("application/javascript+module")
                .unwrap(),
        );
        let r = self.api(reqwest::Method::POST, "/versions").multipart(form).send().await.unwrap();
        let body: Value = r.json().await.unwrap();
        body["result"]["id"].as_str().unwrap_or_else(|| panic!("upload failed: {body}")).to_string()
    }

    /// Send `n` requests (10 at a time) and count the bodies.
    async fn tally(&self, n: usize, headers: &[(&str, &str)]) -> BTreeMap<String, usize> {
        let bodies: Vec<String> = futures::stream::iter(0..n)
            .map(|_| {
                let mut rb = self.edge(reqwest::Method::GET, "/");
                for (k, v) in headers {
                    rb = rb.header(*k, *v);
                }
                async move {
                    let r = rb.send().await.expect("edge request");
                    assert_eq!(r.status(), 200);
                    r.text().await.unwrap()
                }
            })
            .buffer_unordered(10)
            .collect()
            .await;
        let mut counts = BTreeMap::new();
        for b in bodies {
            *counts.entry(b).or_insert(0) += 1;
        }
        counts
    }
}

fn status_of(svc: &CloudflareService) -> &clodo_operator::crd::CloudflareServiceStatus {
    svc.status.as_ref().expect("status")
}

fn condition<'a>(svc: &'a CloudflareService, t: &str) -> (&'a str, &'a str, &'a str) {
    let cond = status_of(svc).conditions.iter().find(|x| x.type_ == t).unwrap_or_else(|| panic!("no {t} condition"));
    (cond.status.as_str(), cond.reason.as_str(), cond.message.as_str())
}

/// Deploy the examples and wait out any propagation requeue; the service must end Ready.
async fn deploy_examples(w: &World) -> CloudflareService {
    let mut svc = w.service();
    for _ in 0..5 {
        w.pass(&mut svc).await;
        if status_of(&svc).phase == Some(Phase::Ready) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let st = status_of(&svc);
    assert_eq!(st.phase, Some(Phase::Ready), "{:#?}", st.conditions);
    svc
}

#[tokio::test]
async fn example_production_tests_pass_and_the_worker_writes_d1_through_its_binding() {
    let Some(w) = World::start().await else { return };
    let svc = deploy_examples(&w).await;
    let (status, reason, message) = condition(&svc, c::PRODUCTION_TESTS_PASSED);
    assert_eq!((status, reason), ("True", "TestsPassed"), "{message}");
    let run = status_of(&svc).last_test_run.as_ref().expect("a test run");
    assert_eq!((run.passed, run.failed), (3, 0), "{run:?}");
    assert!(run.results.iter().any(|r| r.suite == "database" && r.passed));

    // Reads the migrated and seeded table through the D1 binding.
    let (code, body) = w.get("/health/db").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"ok": true, "users": 2}));

    // Writes through the binding land in the database the API (and migrations) use.
    let r = w.edge(reqwest::Method::POST, "/api/users").json(&json!({"email": "Linus@Acme.com"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created, json!({"id": 3, "email": "linus@acme.com"}));
    let db_id = &status_of(&svc).databases[0].id;
    let rows = w.sandbox.handle.d1_query(ACCOUNT, db_id, "SELECT email FROM users ORDER BY id").unwrap();
    assert_eq!(rows, json!([{"email": "ada@acme.com"}, {"email": "grace@acme.com"}, {"email": "linus@acme.com"}]));
    // And a SQL error in the Worker comes back as D1 reports it (UNIQUE constraint).
    let r = w.edge(reqwest::Method::POST, "/api/users").json(&json!({"email": "linus@acme.com"})).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let (_, body) = w.get("/api/users").await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["items"].as_array().unwrap().len(), 3);

    // A quiet resync reruns the tests against the Worker without any mutating API call.
    w.sandbox.handle.clear_journal();
    let mut again = svc.clone();
    w.pass(&mut again).await;
    assert_eq!(condition(&again, c::READY).0, "True");
    assert!(w.sandbox.handle.journal().iter().all(|j| !j.mutating), "{:?}", w.sandbox.handle.journal());
    w.sandbox.handle.shutdown().await;
}

#[tokio::test]
async fn secrets_are_visible_to_the_worker() {
    let Some(w) = World::start().await else { return };
    deploy_examples(&w).await;
    // The generated INTERNAL_API_KEY, as the engine uploaded it.
    let script = w.sandbox.handle.script(ACCOUNT, SCRIPT).expect("script");
    let key = script.primary_version().unwrap().binding("INTERNAL_API_KEY").unwrap()["text"]
        .as_str()
        .expect("secret value stored with the version")
        .to_string();
    assert_eq!(key.len(), 48);
    let private = |auth: Option<String>| {
        let mut rb = w.edge(reqwest::Method::GET, "/api/private");
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        async move {
            let r = rb.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(private(None).await.0, 401);
    assert_eq!(private(Some("Bearer wrong-key".into())).await.0, 401);
    let (code, body) = private(Some(format!("Bearer {key}"))).await;
    assert_eq!((code, body.as_str()), (200, r#"{"secret":"visible with credentials"}"#));

    // A secret written through the API (a new version) reaches the Worker too.
    let r = w
        .api(reqwest::Method::PUT, "/secrets")
        .json(&json!({"name": "INTERNAL_API_KEY", "text": "rotated-key-7c1d9e2f4a6b8c0d", "type": "secret_text"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(private(Some(format!("Bearer {key}"))).await.0, 401, "the old key no longer works");
    assert_eq!(private(Some("Bearer rotated-key-7c1d9e2f4a6b8c0d".into())).await.0, 200);
    w.sandbox.handle.shutdown().await;
}

#[tokio::test]
async fn split_deployment_serves_versions_by_percentage_and_honours_overrides() {
    let Some(w) = World::start().await else { return };
    deploy_examples(&w).await;
    let stable = w.upload_marker_version("stable").await;
    let canary = w.upload_marker_version("canary").await;
    w.deploy(&[(canary.as_str(), 30), (stable.as_str(), 70)]).await;

    let counts = w.tally(200, &[]).await;
    let n_canary = counts.get("canary").copied().unwrap_or(0);
    let n_stable = counts.get("stable").copied().unwrap_or(0);
    assert_eq!(n_canary + n_stable, 200, "{counts:?}");
    // Binomial(200, 0.3): mean 60, sd 6.5; 30..=90 is more than 4.5 sd either side.
    assert!((30..=90).contains(&n_canary), "canary served {n_canary} of 200 at 30%: {counts:?}");

    // The override header pins a request to a version of the deployment.
    let pin = format!("{SCRIPT}=\"{canary}\"");
    assert_eq!(w.tally(20, &[(VERSION_OVERRIDES_HEADER, &pin)]).await, BTreeMap::from([("canary".into(), 20)]));
    let pin = format!("{SCRIPT}=\"{stable}\"");
    assert_eq!(w.tally(20, &[(VERSION_OVERRIDES_HEADER, &pin)]).await, BTreeMap::from([("stable".into(), 20)]));
    // A version key keeps a client on one version.
    assert_eq!(w.tally(20, &[(VERSION_KEY_HEADER, "user-1234")]).await.len(), 1);

    // At 0% the canary gets no traffic but can still be smoke-tested through the override.
    w.deploy(&[(canary.as_str(), 0), (stable.as_str(), 100)]).await;
    assert_eq!(w.tally(40, &[]).await, BTreeMap::from([("stable".into(), 40)]));
    let pin = format!("{SCRIPT}=\"{canary}\"");
    assert_eq!(w.tally(10, &[(VERSION_OVERRIDES_HEADER, &pin)]).await, BTreeMap::from([("canary".into(), 10)]));
    // Once the version has left the deployment the override no longer applies (as on Cloudflare).
    w.deploy(&[(stable.as_str(), 100)]).await;
    assert_eq!(w.tally(10, &[(VERSION_OVERRIDES_HEADER, &pin)]).await, BTreeMap::from([("stable".into(), 10)]));
    w.sandbox.handle.shutdown().await;
}

#[tokio::test]
async fn rollback_switches_the_served_version() {
    let Some(mut w) = World::start().await else { return };
    let mut svc = deploy_examples(&w).await;
    let good = status_of(&svc).worker.as_ref().unwrap().version_id.clone().unwrap();
    assert_eq!(w.get("/health").await, (200, "ok".to_string()));

    // A release whose health check fails: the production tests run against it and the engine
    // rolls back to the previous version.
    let code = w
        .manifests
        .config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("data-service-code"))
        .and_then(|c| c.data.as_ref()?.get("index.js").cloned())
        .unwrap();
    let broken = code.replace(
        r#"return new Response("ok", { headers: { "content-type": "text/plain" } });"#,
        r#"return new Response("broken release", { status: 500 });"#,
    );
    assert_ne!(broken, code, "the example's /health handler changed; update this test");
    w.set_module("index.js", &broken);
    for _ in 0..5 {
        w.pass(&mut svc).await;
        if status_of(&svc).phase == Some(Phase::RolledBack) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let st = status_of(&svc);
    assert_eq!(st.phase, Some(Phase::RolledBack), "{:#?}", st.conditions);
    let run = st.last_test_run.as_ref().unwrap();
    let health = run.results.iter().find(|r| r.suite == "health").unwrap();
    assert!(!health.passed && health.message.contains("got 500"), "{health:?}");
    assert_eq!(w.get("/health").await, (200, "ok".to_string()), "the good version serves again");
    let script = w.sandbox.handle.script(ACCOUNT, SCRIPT).unwrap();
    let bad = script.latest_version().unwrap().id.clone();
    assert_ne!(bad, good);
    assert_eq!(script.active_deployment().unwrap().versions[0].version_id, good);

    // Rolling forward and back by hand switches what the edge serves each time.
    w.deploy(&[(bad.as_str(), 100)]).await;
    assert_eq!(w.get("/health").await, (500, "broken release".to_string()));
    w.deploy(&[(good.as_str(), 100)]).await;
    assert_eq!(w.get("/health").await, (200, "ok".to_string()));
    w.sandbox.handle.shutdown().await;
}

/// Run the binary in an empty directory with only `env` added.
fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let empty_path = dir.path().join("empty-path");
    std::fs::create_dir_all(&empty_path).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir.path())
        .env_remove("CLOUDFLARE_API_TOKEN")
        .env_remove("WORKERD_BIN")
        .env("PATH", &empty_path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn quickstart_deploy_runs_the_production_tests_against_the_worker() {
    let Some(w) = workerd() else { return };
    let examples = examples();
    let (code, out) = run_cli(
        &["deploy", "-f", examples.to_str().unwrap(), "--sandbox"],
        &[("WORKERD_BIN", w.path().to_str().unwrap())],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sandbox: Worker code runs on workerd"), "{out}");
    assert!(out.contains("reason: TestsPassed") && out.contains("type: ProductionTestsPassed"), "{out}");
    assert!(out.contains("phase: Ready"), "{out}");
    assert!(!out.contains("NoLocalRuntime"), "{out}");
    assert!(!out.contains(TOKEN), "the token was printed:\n{out}");
}

#[test]
fn quickstart_without_workerd_reports_no_local_runtime_and_still_succeeds() {
    let examples = examples();
    let (code, out) = run_cli(&["deploy", "-f", examples.to_str().unwrap(), "--sandbox"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sandbox: workerd not found"), "{out}");
    assert!(out.contains("npm install --no-save workerd@"), "the output says how to install it:\n{out}");
    assert!(out.contains("reason: NoLocalRuntime"), "{out}");
    assert!(!out.contains("reason: TestsPassed"), "nothing pretends to pass:\n{out}");
    let unknown = out
        .split("- lastTransitionTime")
        .find(|block| block.contains("type: ProductionTestsPassed"))
        .unwrap_or_else(|| panic!("no ProductionTestsPassed condition:\n{out}"));
    assert!(unknown.contains("status: Unknown"), "{unknown}");
}

#[test]
fn an_unusable_workerd_flag_is_an_error() {
    let (code, out) =
        run_cli(&["deploy", "-f", examples().to_str().unwrap(), "--sandbox", "--workerd", "/nonexistent/workerd"], &[]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("/nonexistent/workerd") && out.contains("not a usable workerd"), "{out}");
}

#[test]
fn ci_and_the_readme_install_the_pinned_workerd() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pin = cloudflare_emulator::WORKERD_NPM_VERSION;
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(ci.contains(&format!("WORKERD_VERSION={pin}\n")), ".ci/run must install workerd@{pin}");
    assert!(ci.contains("export WORKERD_BIN="), ".ci/run must export WORKERD_BIN");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let quickstart = readme.split("## Quickstart").nth(1).and_then(|s| s.split("\n## ").next()).unwrap_or_default();
    assert!(
        quickstart.contains(&format!("npm install --no-save workerd@{pin}")),
        "the README quickstart must install workerd@{pin}"
    );
}
