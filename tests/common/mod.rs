//! Shared fixtures for the integration tests: an emulator, manifests and an engine over them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use clodo_operator::cli::manifests::{ManifestSource, Manifests};
use clodo_operator::cloudflare::{ClientConfig, ClientMetrics, ClientPool};
use clodo_operator::crd::*;
use clodo_operator::engine::{Engine, EngineConfig, PassEvent, PassResult, Progress};
use clodo_operator::metrics::Metrics;
use cloudflare_emulator::{Emulator, EmulatorHandle};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::ObjectMeta;

pub const TOKEN: &str = "cf-test-token-9f8e7d6c5b4a39281706f5e4d3c2b1a0";
pub mod service_double;

pub const STRONG: &str = "kq3R9vXw2LmZ8tYp4NcB7sDf1GhJ6aEu";

pub const WORKER_JS: &str = r#"export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/health") return new Response("ok");
    return new Response("hello from " + env.PUBLIC_URL);
  },
};
"#;

/// A unique 32-hex account id per test.
pub fn account(n: u8) -> String {
    format!("{:02x}", n).repeat(16)
}

pub struct World {
    pub emu: EmulatorHandle,
    pub account: String,
    pub ns: String,
    pub manifests: Manifests,
    pub metrics: Arc<Metrics>,
    pub engine: Engine,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub scripts: usize,
    pub routes: usize,
    pub custom_domains: usize,
    pub databases: usize,
}

pub struct Recorder(pub Mutex<Vec<PassEvent>>);

impl Progress for Recorder {
    fn event(&self, ev: &PassEvent) {
        self.0.lock().unwrap().push(ev.clone());
    }
}

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), generation: Some(1), ..Default::default() }
}

pub fn config_map(ns: &str, name: &str, files: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(ns, name),
        data: Some(files.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        ..Default::default()
    }
}

pub fn secret(ns: &str, name: &str, key: &str, value: &str) -> Secret {
    Secret {
        metadata: meta(ns, name),
        data: Some(BTreeMap::from([(key.to_string(), ByteString(value.as_bytes().to_vec()))])),
        ..Default::default()
    }
}

pub fn customer(ns: &str, account: &str) -> Customer {
    let mut c = Customer::new(
        "acme",
        CustomerSpec {
            display_name: Some("Acme".into()),
            account_id: account.into(),
            api_token_secret_ref: SecretKeyRef { name: "acme-cloudflare".into(), key: "token".into() },
            zones: vec!["acme.com".into()],
            vars: BTreeMap::from([("SUPPORT_EMAIL".into(), "ops@acme.com".into())]),
            environments: Environments {
                production: Some(EnvironmentSettings { domain: Some("api.acme.com".into()), ..Default::default() }),
                ..Default::default()
            },
        },
    );
    c.metadata.namespace = Some(ns.into());
    c
}

pub fn service(ns: &str) -> CloudflareService {
    let mut s = CloudflareService::new(
        "data",
        CloudflareServiceSpec {
            customer_ref: LocalObjectRef { name: "acme".into() },
            environment: Environment::Production,
            body: ServiceBody {
                service_type: ServiceType::DataService,
                worker: WorkerSpec {
                    main_module: "index.js".into(),
                    source: WorkerSource::config_map("data-code"),
                    compatibility_date: "2025-10-01".into(),
                    compatibility_flags: vec![],
                    vars: BTreeMap::from([
                        ("PUBLIC_URL".into(), "https://{{DOMAIN}}".into()),
                        ("LOG_LEVEL".into(), "info".into()),
                    ]),
                    secrets: vec![SecretSpec {
                        name: "JWT_SECRET".into(),
                        value_from: Some(ValueFrom {
                            secret_key_ref: SecretKeyRef { name: "acme-secrets".into(), key: "jwt".into() },
                        }),
                        generate: None,
                    }],
                },
                d1_databases: vec![D1DatabaseSpec {
                    binding: "DB".into(),
                    name: None,
                    migrations: Some(ConfigMapSource {
                        config_map_ref: LocalObjectRef { name: "data-migrations".into() },
                    }),
                    deletion_policy: DatabaseDeletionPolicy::Retain,
                }],
                routes: vec![RouteSpec { pattern: "api.acme.com/*".into(), zone: None }],
                custom_domains: vec!["api.acme.com".into()],
                rollback_on_failure: true,
                ..Default::default()
            },
        },
    );
    s.metadata.namespace = Some(ns.into());
    s.metadata.generation = Some(1);
    s
}

pub fn base_manifests(ns: &str, account: &str) -> Manifests {
    Manifests {
        customers: vec![customer(ns, account)],
        services: vec![service(ns)],
        portfolios: vec![],
        secrets: vec![secret(ns, "acme-cloudflare", "token", TOKEN), secret(ns, "acme-secrets", "jwt", STRONG)],
        config_maps: vec![
            config_map(ns, "data-code", &[("index.js", WORKER_JS)]),
            config_map(
                ns,
                "data-migrations",
                &[
                    ("0001_init.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"),
                    (
                        "0002_items.sql",
                        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO items (name) VALUES ('first');",
                    ),
                ],
            ),
        ],
    }
}

impl World {
    pub async fn new(n: u8) -> World {
        let account = account(n);
        let emu = Emulator::builder()
            .account(&account)
            .token(TOKEN, &[account.as_str()])
            .zone("acme.com", &account)
            .start()
            .await
            .expect("emulator starts");
        let ns = format!("ns{n}");
        let manifests = base_manifests(&ns, &account);
        let metrics = Metrics::new().unwrap();
        let cfg = ClientConfig { base_url: emu.base_url(), ..Default::default() };
        let pool = ClientPool::new(cfg, Some(ClientMetrics::register(&metrics.registry).unwrap()));
        let engine = Engine::new(pool, metrics.clone(), EngineConfig::default());
        World { emu, account, ns, manifests, metrics, engine }
    }

    pub fn source(&self) -> ManifestSource {
        ManifestSource::new(self.manifests.clone(), None).unwrap()
    }

    pub fn svc(&self) -> CloudflareService {
        self.manifests.services[0].clone()
    }

    /// Run one pass for `svc`, store the status on it, return the pass. Every pass checks that
    /// it ran exactly the steps it planned (see [`assert_ran_its_plan`]).
    pub async fn pass(&self, svc: &mut CloudflareService) -> (PassResult, Vec<PassEvent>) {
        self.pass_on(&self.engine, svc).await
    }

    /// [`World::pass`] on another engine (e.g. a restarted operator with nothing cached).
    pub async fn pass_on(&self, engine: &Engine, svc: &mut CloudflareService) -> (PassResult, Vec<PassEvent>) {
        let rec = Recorder(Mutex::new(Vec::new()));
        let r = engine.reconcile(svc, &self.source(), &rec).await;
        assert_ran_its_plan(svc, &r);
        svc.status = Some(r.status.clone());
        let events = rec.0.into_inner().unwrap();
        (r, events)
    }

    /// A new engine on the same emulator and metrics, with nothing cached.
    pub fn fresh_engine(&self) -> Engine {
        let cfg = ClientConfig { base_url: self.emu.base_url(), ..Default::default() };
        Engine::new(ClientPool::new(cfg, None), self.metrics.clone(), self.engine.config.clone())
    }

    pub fn set_config_map(&mut self, name: &str, files: &[(&str, &str)]) {
        let ns = self.ns.clone();
        self.manifests.config_maps.retain(|c| c.metadata.name.as_deref() != Some(name));
        self.manifests.config_maps.push(config_map(&ns, name, files));
    }

    /// Counts of what the account holds in the emulator.
    pub fn summary(&self) -> Summary {
        Summary {
            scripts: self.emu.scripts(&self.account).len(),
            routes: self.emu.routes("acme.com").len(),
            custom_domains: self.emu.custom_domains(&self.account).len(),
            databases: self.emu.d1_databases(&self.account).len(),
        }
    }

    pub fn mutations(&self) -> Vec<String> {
        self.emu.journal().into_iter().filter(|e| e.mutating).map(|e| format!("{} {}", e.method, e.path)).collect()
    }
}

/// A pass runs the steps it planned, in order: all of them when it completes (outcome `Done`,
/// not a dry run), else the first ones, up to where it stopped. No step runs unplanned.
pub fn assert_ran_its_plan(svc: &CloudflareService, r: &PassResult) {
    let kinds = |s: &[clodo_operator::engine::plan::Step]| s.iter().map(|x| x.kind()).collect::<Vec<_>>();
    assert!(
        r.planned.starts_with(&r.executed),
        "ran steps the plan did not list:\nplanned {:?}\nran     {:?}",
        r.planned,
        r.executed
    );
    if !svc.spec.body.dry_run && matches!(r.outcome, clodo_operator::engine::Outcome::Done { .. }) {
        assert_eq!(kinds(&r.executed), kinds(&r.planned), "a completed pass runs its whole plan");
        assert_eq!(r.executed, r.planned);
    }
}

pub fn cond<'a>(svc: &'a CloudflareService, t: &str) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let st = svc.status.as_ref().expect("status");
    st.conditions.iter().find(|c| c.type_ == t).unwrap_or_else(|| panic!("condition {t} missing: {:#?}", st.conditions))
}
