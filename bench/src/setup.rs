//! What the bench runs against: the example manifests (the fixture) and the stand-ins (the
//! fake Kubernetes API, whose request log is counted, and the Cloudflare emulator).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clodo_operator::cli::manifests;
use clodo_operator::crd::{CloudflareService, RouteSpec, all_crds};
use cloudflare_emulator::{Emulator, EmulatorHandle};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Args;

/// The example manifests and what the emulator must know of them.
pub(crate) struct Fixture {
    m: manifests::Manifests,
    template: CloudflareService,
    ns: String,
    account: String,
    token: String,
    zone: String,
}

impl Fixture {
    pub(crate) fn load(dir: &Path) -> anyhow::Result<Self> {
        let m = manifests::load(&[dir.to_path_buf()])
            .with_context(|| format!("loading the example manifests from {}", dir.display()))?;
        let (Some(customer), Some(template)) = (m.customers.first(), m.services.first()) else {
            bail!("{} must hold a Customer and a CloudflareService", dir.display());
        };
        let template = template.clone();
        let ns = template.namespace().unwrap_or_else(|| "default".into());
        let account = customer.spec.account_id.clone();
        let token = token_of(&m, &ns, &customer.spec.api_token_secret_ref)?;
        let zone = customer.spec.zones.first().cloned().unwrap_or_else(|| "acme.com".into());
        Ok(Self { m, template, ns, account, token, zone })
    }

    /// A copy of the example service with its own name, route and custom domain, without
    /// production tests (nothing would answer them: there is no Workers runtime behind the
    /// emulator). Sharded: labelled for its shard and bound to that shard's Customer.
    pub(crate) fn service(&self, name: &str, shard: usize, shards: usize) -> CloudflareService {
        let mut s = self.template.clone();
        let host = format!("{name}.{}", self.zone);
        s.metadata.name = Some(name.to_string());
        s.spec.body.routes = vec![RouteSpec { pattern: format!("{host}/*"), zone: None }];
        s.spec.body.custom_domains = vec![host];
        s.spec.body.production_tests = None;
        if shards > 1 {
            s.spec.customer_ref.name = sharded(&s.spec.customer_ref.name, shard);
            s.labels_mut().insert(SHARD_LABEL.into(), shard.to_string());
        }
        s
    }
}

/// The label that assigns an object to an operator replica (`--selector clodo.dev/shard=N`).
pub(crate) const SHARD_LABEL: &str = "clodo.dev/shard";

/// The name of a shard's copy of a Customer.
fn sharded(name: &str, shard: usize) -> String {
    format!("{name}-shard{shard}")
}

/// The fake Kubernetes API and the Cloudflare emulator, with a running count of the Kubernetes
/// API requests.
pub(crate) struct StandIns {
    pub(crate) emu: EmulatorHandle,
    pub(crate) fake: Arc<kube_fake_api::FakeApiServer>,
    kube_requests: KubeRequests,
    log_task: tokio::task::JoinHandle<()>,
    ns: String,
}

impl StandIns {
    pub(crate) async fn start(args: &Args, fx: &Fixture) -> anyhow::Result<Self> {
        let emu = Emulator::builder()
            .account(&fx.account)
            .token(&fx.token, &[fx.account.as_str()])
            .zone(&fx.zone, &fx.account)
            .rate_limit(args.rate_limit.requests, Duration::from_secs(args.rate_limit.seconds))
            .latency(Duration::from_millis(args.latency_ms))
            .start()
            .await
            .context("starting the Cloudflare emulator")?;
        // The fake API keeps a watch history and a log of every request; neither is what is
        // measured, so both are kept small.
        let fake = Arc::new(
            kube_fake_api::FakeApiServer::builder()
                .watch_history(2000)
                .start()
                .await
                .context("starting the fake Kubernetes API")?,
        );
        let kube_requests = KubeRequests::default();
        let log_task = {
            let (counts, fake) = (kube_requests.clone(), fake.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    count_kube_requests(&fake, &counts);
                }
            })
        };
        Ok(Self { emu, fake, kube_requests, log_task, ns: fx.ns.clone() })
    }

    /// The CRDs, the example's Secrets and ConfigMaps, its Customers (one copy per shard when
    /// sharded) and `n` services spread over the shards.
    pub(crate) async fn apply_fixture(&self, fx: &Fixture, n: usize, shards: usize) -> anyhow::Result<()> {
        let client = self.fake.client();
        install_crds(&client).await?;
        for s in &fx.m.secrets {
            apply(&Api::namespaced(client.clone(), &fx.ns), s.clone()).await?;
        }
        for cm in &fx.m.config_maps {
            apply(&Api::namespaced(client.clone(), &fx.ns), cm.clone()).await?;
        }
        for cu in &fx.m.customers {
            for shard in 0..shards {
                let mut cu = cu.clone();
                if shards > 1 {
                    cu.metadata.name = Some(sharded(&cu.name_any(), shard));
                    cu.labels_mut().insert(SHARD_LABEL.into(), shard.to_string());
                }
                apply(&Api::namespaced(client.clone(), &fx.ns), cu).await?;
            }
        }
        let services = self.services();
        let objects: Vec<CloudflareService> =
            (0..n).map(|i| fx.service(&format!("svc-{i:05}"), i % shards, shards)).collect();
        futures::stream::iter(objects.into_iter().map(|s| apply(&services, s)))
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Apply one more service (the resync storm's).
    pub(crate) async fn apply_service(&self, svc: CloudflareService) -> anyhow::Result<()> {
        apply(&self.services(), svc).await
    }

    /// The services' API.
    pub(crate) fn services(&self) -> Api<CloudflareService> {
        Api::namespaced(self.fake.client(), &self.ns)
    }

    /// Kubernetes API requests so far (the request log drained first).
    pub(crate) fn kube_total(&self) -> usize {
        count_kube_requests(&self.fake, &self.kube_requests);
        self.kube_requests.lock().map(|c| c.values().sum()).unwrap_or_default()
    }

    /// Print the Kubernetes request total (and with CLODO_BENCH_KUBE_LOG set, the breakdown).
    pub(crate) fn report_kube_requests(&self) {
        let total = self.kube_total();
        eprintln!("clodo-bench: {total} Kubernetes API requests in all (set CLODO_BENCH_KUBE_LOG=1 for the breakdown)");
        if std::env::var_os("CLODO_BENCH_KUBE_LOG").is_some()
            && let Ok(counts) = self.kube_requests.lock()
        {
            for (k, n) in counts.iter() {
                eprintln!("  {n:>7}  {k}");
            }
        }
    }

    pub(crate) async fn shutdown(self) {
        self.log_task.abort();
        let _ = self.log_task.await;
        if let Ok(fake) = Arc::try_unwrap(self.fake) {
            fake.shutdown().await;
        }
        self.emu.shutdown().await;
    }
}

/// The token the Customer's Secret holds.
fn token_of(m: &manifests::Manifests, ns: &str, r: &clodo_operator::crd::SecretKeyRef) -> anyhow::Result<String> {
    let secret = m
        .secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(r.name.as_str()) && s.namespace().as_deref() == Some(ns))
        .with_context(|| format!("Secret {ns}/{} not in the examples", r.name))?;
    let bytes = secret.data.as_ref().and_then(|d| d.get(&r.key)).with_context(|| format!("key {} missing", r.key))?;
    Ok(String::from_utf8(bytes.0.clone())?.trim_end().to_string())
}

/// Install the CRDs the way `kubectl apply -f crds/` would.
async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in all_crds() {
        let name = crd.name_any();
        let mut body = serde_json::to_value(&crd)?;
        body["apiVersion"] = "apiextensions.k8s.io/v1".into();
        body["kind"] = "CustomResourceDefinition".into();
        api.patch(&name, &PatchParams::apply("clodo-bench").force(), &Patch::Apply(&body)).await?;
    }
    Ok(())
}

/// Server-side apply of a typed object.
async fn apply<K>(api: &Api<K>, obj: K) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.name_any();
    let mut body = serde_json::to_value(&obj)?;
    body["apiVersion"] = K::api_version(&()).to_string().into();
    body["kind"] = K::kind(&()).to_string().into();
    if let Some(m) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        m.remove("generation");
        m.remove("resourceVersion");
    }
    if let Some(o) = body.as_object_mut() {
        o.remove("status");
    }
    api.patch(&name, &PatchParams::apply("clodo-bench").force(), &Patch::Apply(&body))
        .await
        .with_context(|| format!("applying {} {name}", K::kind(&())))?;
    Ok(())
}

type KubeRequests = Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>;

/// Move the fake API's request log into per-verb counts (the log would otherwise grow for the
/// whole run).
fn count_kube_requests(fake: &kube_fake_api::FakeApiServer, counts: &KubeRequests) {
    let log = fake.request_log();
    fake.clear_request_log();
    let Ok(mut counts) = counts.lock() else { return };
    for r in log {
        let resource = r
            .target
            .as_ref()
            .map(|t| format!("{}{}", t.plural, t.subresource.as_deref().map(|s| format!("/{s}")).unwrap_or_default()))
            .unwrap_or_default();
        *counts.entry(format!("{} {resource}", r.verb)).or_default() += 1;
    }
}
