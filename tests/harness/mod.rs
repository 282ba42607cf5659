//! Test environment for controller-level tests: fake Kubernetes API (or the cluster named by
//! KUBECONFIG), the Cloudflare emulator, and in-process operator instances.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clodo_operator::cli::RunArgs;
use clodo_operator::cli::run::run_operator;
use clodo_operator::crd::conditions as c;
use clodo_operator::crd::{CloudflareService, all_crds};
use clodo_operator::metrics::Metrics;
use cloudflare_emulator::{Emulator, EmulatorHandle};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::common;

pub const ROTATED_TOKEN: &str = "cf-rotated-token-0a1b2c3d4e5f60718293a4b5c6d7e8f9";

pub struct TestEnv {
    pub client: Client,
    pub fake: Option<kube_fake_api::FakeApiServer>,
    pub emu: EmulatorHandle,
    pub account: String,
    pub ns: String,
    pub rotated_token_id: String,
}

pub struct OperatorHandle {
    pub metrics: Arc<Metrics>,
    pub admin_addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl OperatorHandle {
    /// Graceful stop: in-flight passes finish, the lease is released.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

impl TestEnv {
    /// Fake API (or KUBECONFIG cluster) with our CRDs installed, an emulator seeded with a
    /// per-test account, and a per-test namespace.
    pub async fn start(n: u8) -> TestEnv {
        Self::start_with(n, |b| b).await
    }

    /// Start an operator instance in-process.
    pub async fn start_operator(&self, name: &str, leader_election: bool) -> OperatorHandle {
        let args = RunArgs {
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            leader_election,
            lease_name: format!("clodo-operator-{}", self.ns),
            lease_namespace: self.ns.clone(),
            pod_name: Some(name.to_string()),
            lease_duration_seconds: 15,
            renew_deadline_seconds: 10,
            retry_period_seconds: 2,
            watch_namespaces: vec![self.ns.clone()],
            selector: None,
            resync_seconds: 600,
            concurrency: 4,
            cloudflare_api_base_url: Some(self.emu.base_url()),
            rate_limit: "1200/300".parse().unwrap(),
            resync_budget_share: Default::default(),
            artifacts: Default::default(),
        };
        spawn_operator(self.client.clone(), args).await
    }

    /// Apply the example objects: Customer, Secrets, ConfigMaps, CloudflareService.
    pub async fn apply_base(&self) {
        let m = common::base_manifests(&self.ns, &self.account);
        for s in m.secrets {
            apply(&Api::namespaced(self.client.clone(), &self.ns), s).await;
        }
        for cm in m.config_maps {
            apply(&Api::namespaced(self.client.clone(), &self.ns), cm).await;
        }
        for cu in m.customers {
            apply(&Api::namespaced(self.client.clone(), &self.ns), cu).await;
        }
        for s in m.services {
            apply(&Api::namespaced(self.client.clone(), &self.ns), s).await;
        }
    }

    pub fn emu_scripts(&self) -> usize {
        self.emu.scripts(&self.account).len()
    }
}

/// Install (or update) the operator's CRDs the way a user would.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in all_crds() {
        let name = crd.name_any();
        let mut body = serde_json::to_value(&crd).unwrap();
        body["apiVersion"] = "apiextensions.k8s.io/v1".into();
        body["kind"] = "CustomResourceDefinition".into();
        api.patch(&name, &PatchParams::apply("clodo-tests").force(), &Patch::Apply(&body)).await.expect("CRD applies");
    }
    // Wait until the API serves them.
    let services: Api<CloudflareService> = Api::all(client.clone());
    wait_until_async(Duration::from_secs(30), || async { services.list(&Default::default()).await.is_ok() }).await;
}

/// Server-side apply of a typed object (like `kubectl apply --server-side`).
pub async fn apply<K>(api: &Api<K>, obj: K)
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.name_any();
    let mut body = serde_json::to_value(&obj).unwrap();
    body["apiVersion"] = K::api_version(&()).to_string().into();
    body["kind"] = K::kind(&()).to_string().into();
    if let Some(m) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        m.remove("generation");
        m.remove("resourceVersion");
    }
    if let Some(o) = body.as_object_mut() {
        o.remove("status");
    }
    api.patch(&name, &PatchParams::apply("clodo-tests").force(), &Patch::Apply(&body))
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

/// Wait until the operator's /readyz answers 200.
pub async fn wait_ready(h: &OperatorHandle) {
    let url = format!("http://{}/readyz", h.admin_addr);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn is_ready(s: &CloudflareService) -> bool {
    s.status
        .as_ref()
        .is_some_and(|st| st.observed_generation == s.metadata.generation && c::is_true(&st.conditions, c::READY))
}

/// Poll an object until `pred` holds (timeout panics with the last state).
pub async fn wait_for<K>(api: &Api<K>, name: &str, timeout: Duration, pred: impl Fn(&K) -> bool) -> K
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok(Some(o)) = api.get_opt(name).await {
            if pred(&o) {
                return o;
            }
            last = Some(o);
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {name}; last state: {last:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_gone<K>(api: &Api<K>, name: &str, timeout: Duration)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while api.get_opt(name).await.ok().flatten().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "{name} still exists");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_until(timeout: Duration, pred: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !pred() {
        assert!(tokio::time::Instant::now() < deadline, "condition not reached in {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_until_async<F: Future<Output = bool>>(timeout: Duration, pred: impl Fn() -> F) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !pred().await {
        assert!(tokio::time::Instant::now() < deadline, "condition not reached in {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Fleets, operator options and killable operator instances (reliability and bad-input tests).

/// Settings of an in-process operator instance.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    pub leader_election: bool,
    pub concurrency: u16,
    /// Client-side Cloudflare budget, REQUESTS/SECONDS.
    pub rate_limit: &'static str,
    pub resync_seconds: u64,
    /// Lease duration, renew deadline and retry period, in seconds.
    pub lease: (u64, u64, u64),
}

impl Default for OperatorOptions {
    fn default() -> Self {
        Self { leader_election: false, concurrency: 4, rate_limit: "1200/300", resync_seconds: 600, lease: (15, 10, 2) }
    }
}

impl TestEnv {
    /// Like [`TestEnv::start`], with the emulator builder adjusted by `configure` (rate limit,
    /// latency, more zones).
    pub async fn start_with(
        n: u8,
        configure: impl FnOnce(cloudflare_emulator::EmulatorBuilder) -> cloudflare_emulator::EmulatorBuilder,
    ) -> TestEnv {
        let (client, fake) = if std::env::var_os("KUBECONFIG").is_some() {
            (Client::try_default().await.expect("KUBECONFIG cluster reachable"), None)
        } else {
            let fake = kube_fake_api::FakeApiServer::start().await.expect("fake API starts");
            (fake.client(), Some(fake))
        };
        install_crds(&client).await;
        let account = common::account(n);
        let builder = Emulator::builder()
            .account(&account)
            .token(common::TOKEN, &[account.as_str()])
            .token(ROTATED_TOKEN, &[account.as_str()])
            .zone("acme.com", &account);
        let emu = configure(builder).start().await.expect("emulator starts");
        let rotated_token_id = emu.token_id(ROTATED_TOKEN).expect("token id");
        let ns = format!("clodo-e2e-{n}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let nss: Api<Namespace> = Api::all(client.clone());
        let _ = nss
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: ObjectMeta { name: Some(ns.clone()), ..Default::default() },
                    ..Default::default()
                },
            )
            .await;
        TestEnv { client, fake, emu, account, ns, rotated_token_id }
    }

    /// `run` arguments for an instance watching this test's namespace.
    pub fn run_args(&self, name: &str, opts: &OperatorOptions) -> RunArgs {
        RunArgs {
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            leader_election: opts.leader_election,
            lease_name: format!("clodo-operator-{}", self.ns),
            lease_namespace: self.ns.clone(),
            pod_name: Some(name.to_string()),
            lease_duration_seconds: opts.lease.0,
            renew_deadline_seconds: opts.lease.1,
            retry_period_seconds: opts.lease.2,
            watch_namespaces: vec![self.ns.clone()],
            selector: None,
            resync_seconds: opts.resync_seconds,
            concurrency: opts.concurrency,
            cloudflare_api_base_url: Some(self.emu.base_url()),
            rate_limit: opts.rate_limit.parse().unwrap(),
            resync_budget_share: Default::default(),
            artifacts: Default::default(),
        }
    }

    /// Start an operator instance in its own Tokio runtime, so that it can be killed like a
    /// process: every task it spawned (controllers, watches, in-flight Cloudflare calls) stops
    /// where it is. (Aborting the task of `run_operator` alone would leave its spawned controller
    /// tasks running.)
    pub async fn start_isolated_operator(&self, name: &str, opts: &OperatorOptions) -> IsolatedOperator {
        let url = self.fake.as_ref().map(|f| f.url().to_string());
        self.start_isolated_operator_at(name, opts, url).await
    }

    /// [`TestEnv::start_isolated_operator`] talking to the Kubernetes API at `url`; `None` = the
    /// KUBECONFIG cluster. Its requests carry `x-clodo-test-replica: <name>`, so that faults can
    /// target one replica.
    pub async fn start_isolated_operator_at(
        &self,
        name: &str,
        opts: &OperatorOptions,
        url: Option<String>,
    ) -> IsolatedOperator {
        let args = self.run_args(name, opts);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("op-{name}"))
            .enable_all()
            .build()
            .expect("operator runtime");
        let (stop, stop_rx) = watch::channel(false);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let replica = name.to_string();
        let task = runtime.spawn(async move {
            // A client of this runtime: its connection tasks die with the instance.
            let mut config = match url {
                Some(u) => kube::Config::new(u.parse().expect("fake API URL")),
                None => kube::Config::infer().await.expect("KUBECONFIG cluster reachable"),
            };
            config.headers.push((
                axum::http::HeaderName::from_static("x-clodo-test-replica"),
                axum::http::HeaderValue::from_str(&replica).expect("replica name"),
            ));
            let client = Client::try_from(config).expect("client");
            run_operator(args, client, stop_rx, Some(tx)).await
        });
        let h = rx.await.expect("operator started");
        IsolatedOperator {
            runtime: Some(runtime),
            metrics: h.metrics,
            admin_addr: h.admin_addr,
            stop,
            task: Some(task),
        }
    }

    /// Apply the Customer, Secrets and ConfigMaps of the base manifests, then `n` fleet services.
    pub async fn apply_fleet(&self, n: usize) -> Vec<String> {
        let m = common::base_manifests(&self.ns, &self.account);
        for s in m.secrets {
            apply(&Api::namespaced(self.client.clone(), &self.ns), s).await;
        }
        for cm in m.config_maps {
            apply(&Api::namespaced(self.client.clone(), &self.ns), cm).await;
        }
        for cu in m.customers {
            apply(&Api::namespaced(self.client.clone(), &self.ns), cu).await;
        }
        let api: Api<CloudflareService> = Api::namespaced(self.client.clone(), &self.ns);
        let mut names = Vec::new();
        for i in 0..n {
            let s = fleet_service(&self.ns, i);
            names.push(s.name_any());
            apply(&api, s).await;
        }
        names
    }

    pub fn services(&self) -> Api<CloudflareService> {
        Api::namespaced(self.client.clone(), &self.ns)
    }
}

/// Fleet service `i`: the base service with its own name (so its own script and database), its
/// own route and custom domain, and a generated secret next to the Secret-backed one.
pub fn fleet_service(ns: &str, i: usize) -> CloudflareService {
    let mut s = common::service(ns);
    let name = format!("svc-{i:03}");
    let host = format!("{name}.acme.com");
    s.metadata.name = Some(name);
    s.metadata.generation = None;
    s.spec.body.routes = vec![clodo_operator::crd::RouteSpec { pattern: format!("{host}/*"), zone: None }];
    s.spec.body.custom_domains = vec![host];
    s.spec.body.worker.secrets.push(clodo_operator::crd::SecretSpec {
        name: "API_KEY".into(),
        value_from: None,
        generate: Some(clodo_operator::crd::GenerateSpec { length: 48 }),
    });
    s
}

/// Service passes (ok + error) an instance finished.
pub fn service_passes(m: &Metrics) -> u64 {
    m.reconcile_total.with_label_values(&["service", "ok"]).get()
        + m.reconcile_total.with_label_values(&["service", "error"]).get()
}

/// Wait until every named service is Ready for its generation; on timeout, panic naming the
/// services that are not, with their Ready condition.
pub async fn wait_all_ready(
    api: &Api<CloudflareService>,
    names: &[String],
    timeout: Duration,
) -> Vec<CloudflareService> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let items = api.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
        let ready: Vec<CloudflareService> =
            items.iter().filter(|s| names.contains(&s.name_any()) && is_ready(s)).cloned().collect();
        if ready.len() == names.len() {
            return ready;
        }
        if tokio::time::Instant::now() > deadline {
            let waiting: Vec<String> = items
                .iter()
                .filter(|s| names.contains(&s.name_any()) && !is_ready(s))
                .map(|s| {
                    let ready = s.status.as_ref().and_then(|st| c::find(&st.conditions, c::READY));
                    format!("{}: {:?}", s.name_any(), ready.map(|r| (&r.reason, &r.message)))
                })
                .collect();
            panic!("{} of {} services Ready after {timeout:?}; waiting: {waiting:#?}", ready.len(), names.len());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An operator instance in its own runtime (see [`TestEnv::start_isolated_operator`]).
pub struct IsolatedOperator {
    runtime: Option<tokio::runtime::Runtime>,
    pub metrics: Arc<Metrics>,
    pub admin_addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl IsolatedOperator {
    /// Kill the instance: no pass finishes, no status is written, nothing is released.
    pub fn kill(mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    /// Graceful stop: in-flight passes finish, then the runtime goes.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for IsolatedOperator {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// What the emulator holds for a converged fleet, checked object by object: exactly one script,
/// D1 database, route and custom domain per declared one (each owned by the right service), and
/// every migration applied exactly once (by the `d1_migrations` table and by its data).
pub fn assert_fleet_in_cloudflare(env: &TestEnv, names: &[String]) {
    use std::collections::BTreeSet;
    let script_of = |n: &str| format!("acme-{n}-production");
    let want_scripts: BTreeSet<String> = names.iter().map(|n| script_of(n)).collect();

    let scripts = env.emu.scripts(&env.account);
    let got: Vec<String> = scripts.iter().map(|s| s.name.clone()).collect();
    assert_eq!(got.len(), names.len(), "one script per service: {got:?}");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want_scripts, "script names");
    for s in &scripts {
        let service = s.name.trim_start_matches("acme-").trim_end_matches("-production");
        let owner = clodo_operator::crd::keys::owner_tag(&env.ns, service);
        assert!(s.tags.contains(&owner), "script {} carries {owner}: {:?}", s.name, s.tags);
    }

    let dbs = env.emu.d1_databases(&env.account);
    let db_names: Vec<String> = dbs.iter().map(|d| d.name.clone()).collect();
    assert_eq!(db_names.len(), names.len(), "one database per service: {db_names:?}");
    assert_eq!(db_names.iter().cloned().collect::<BTreeSet<_>>(), want_scripts, "database names");

    let routes = env.emu.routes("acme.com");
    assert_eq!(routes.len(), names.len(), "one route per service: {routes:?}");
    for n in names {
        let pattern = format!("{n}.acme.com/*");
        let matching: Vec<_> = routes.iter().filter(|r| r.pattern == pattern).collect();
        assert_eq!(matching.len(), 1, "route {pattern}: {routes:?}");
        assert_eq!(matching[0].script.as_deref(), Some(script_of(n).as_str()), "route {pattern} target");
    }

    let domains = env.emu.custom_domains(&env.account);
    assert_eq!(domains.len(), names.len(), "one custom domain per service: {domains:?}");
    for n in names {
        let host = format!("{n}.acme.com");
        let matching: Vec<_> = domains.iter().filter(|d| d.hostname == host).collect();
        assert_eq!(matching.len(), 1, "custom domain {host}: {domains:?}");
        assert_eq!(matching[0].service, script_of(n), "custom domain {host} target");
    }

    for db in &dbs {
        let rows = env.emu.d1_query(&env.account, &db.uuid, "SELECT name FROM d1_migrations ORDER BY id").unwrap();
        let applied: Vec<&str> = rows.as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
        assert_eq!(applied, vec!["0001_init.sql", "0002_items.sql"], "d1_migrations of {}", db.name);
        let items = env.emu.d1_query(&env.account, &db.uuid, "SELECT COUNT(*) AS n FROM items").unwrap();
        assert_eq!(items[0]["n"], 1, "0002_items.sql ran exactly once on {}", db.name);
    }
}

/// Every service's status records its two migrations, its route and its domain.
pub fn assert_fleet_status(services: &[CloudflareService]) {
    for s in services {
        let st = s.status.as_ref().expect("status");
        assert_eq!(st.databases.len(), 1, "{}: {:?}", s.name_any(), st.databases);
        let names: Vec<&str> = st.databases[0].applied_migrations.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["0001_init.sql", "0002_items.sql"], "{}", s.name_any());
        assert_eq!(st.routes.len(), 1, "{}", s.name_any());
        assert_eq!(st.custom_domains.len(), 1, "{}", s.name_any());
        assert!(st.worker.as_ref().and_then(|w| w.version_id.as_ref()).is_some(), "{}", s.name_any());
    }
}

/// Run an operator instance in-process with these arguments; returns once it serves /metrics.
pub async fn spawn_operator(client: Client, args: RunArgs) -> OperatorHandle {
    let (stop, stop_rx) = watch::channel(false);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move { run_operator(args, client, stop_rx, Some(tx)).await });
    let h = rx.await.expect("operator started");
    OperatorHandle { metrics: h.metrics, admin_addr: h.admin_addr, stop, task }
}
