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
        let (client, fake) = if std::env::var_os("KUBECONFIG").is_some() {
            (Client::try_default().await.expect("KUBECONFIG cluster reachable"), None)
        } else {
            let fake = kube_fake_api::FakeApiServer::start().await.expect("fake API starts");
            (fake.client(), Some(fake))
        };
        install_crds(&client).await;
        let account = common::account(n);
        let emu = Emulator::builder()
            .account(&account)
            .token(common::TOKEN, &[account.as_str()])
            .token(ROTATED_TOKEN, &[account.as_str()])
            .zone("acme.com", &account)
            .start()
            .await
            .expect("emulator starts");
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

    /// Start an operator instance in-process.
    pub async fn start_operator(&self, name: &str, leader_election: bool) -> OperatorHandle {
        let args = RunArgs {
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            leader_election,
            lease_name: format!("clodo-operator-{}", self.ns),
            lease_namespace: self.ns.clone(),
            pod_name: Some(name.to_string()),
            watch_namespaces: vec![self.ns.clone()],
            selector: None,
            resync_seconds: 600,
            concurrency: 4,
            cloudflare_api_base_url: Some(self.emu.base_url()),
            rate_limit: "1200/300".parse().unwrap(),
        };
        let (stop, stop_rx) = watch::channel(false);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let client = self.client.clone();
        let task = tokio::spawn(async move { run_operator(args, client, stop_rx, Some(tx)).await });
        let h = rx.await.expect("operator started");
        OperatorHandle { metrics: h.metrics, admin_addr: h.admin_addr, stop, task }
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
