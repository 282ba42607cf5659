//! Customer and Portfolio controllers end to end: the real operator against the in-process fake
//! Kubernetes API (or the cluster named by KUBECONFIG) and the Cloudflare emulator.
//!
//! - tenants in two namespaces with two accounts never see each other's resources;
//! - a revoked token (at Cloudflare, or a Secret switched to a rejected token) turns the Customer
//!   and its services `CredentialsValid=False` and stops their Cloudflare calls;
//! - a portfolio of 6 services across 2 domains deploys wave by wave, never more than
//!   `maxConcurrent` at once (proved from the emulator's journal), dependencies first;
//! - a dependency cycle is rejected with the cycle named and nothing created;
//! - removing a service from a portfolio deletes its child and cleans Cloudflare up.

mod common;
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use clodo_operator::cli::RunArgs;
use clodo_operator::crd::conditions as c;
use clodo_operator::crd::*;
use cloudflare_emulator::{Emulator, EmulatorHandle, Faults, JournalEntry};
use harness::{OperatorHandle, apply, install_crds, is_ready, service_passes, spawn_operator, wait_for, wait_until};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};

const TOKEN_A: &str = "cf-tenant-a-token-1f2e3d4c5b6a79880716253a4b5c6d7e";
const TOKEN_B: &str = "cf-tenant-b-token-8e7d6c5b4a3928170f1e2d3c4b5a6978";
const UNKNOWN_TOKEN: &str = "cf-revoked-token-00112233445566778899aabbccddeeff";
const WAIT: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------------------------------------
// Environment

struct World {
    client: Client,
    _fake: Option<kube_fake_api::FakeApiServer>,
    emu: EmulatorHandle,
}

/// Fake API with the CRDs, and an emulator with the given accounts (each with its own token,
/// scoped to that account only) and zones (name, account).
async fn world(accounts: &[(&str, &str)], zones: &[(&str, &str)], latency: Duration) -> World {
    let (client, fake) = if std::env::var_os("KUBECONFIG").is_some() {
        (Client::try_default().await.expect("KUBECONFIG cluster reachable"), None)
    } else {
        let fake = kube_fake_api::FakeApiServer::start().await.expect("fake API starts");
        (fake.client(), Some(fake))
    };
    install_crds(&client).await;
    let mut b = Emulator::builder().latency(latency);
    for (account, token) in accounts {
        b = b.account(*account).token(*token, &[*account]);
    }
    for (zone, account) in zones {
        b = b.zone(*zone, *account);
    }
    let emu = b.start().await.expect("emulator starts");
    World { client, _fake: fake, emu }
}

impl World {
    async fn namespace(&self, prefix: &str) -> String {
        let ns = format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let api: Api<Namespace> = Api::all(self.client.clone());
        let _ = api
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: ObjectMeta { name: Some(ns.clone()), ..Default::default() },
                    ..Default::default()
                },
            )
            .await;
        ns
    }

    async fn operator(&self, namespaces: &[&str]) -> OperatorHandle {
        let args = RunArgs {
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            leader_election: false,
            lease_name: "clodo-operator".into(),
            lease_namespace: namespaces[0].to_string(),
            pod_name: Some("op".into()),
            lease_duration_seconds: 15,
            renew_deadline_seconds: 10,
            retry_period_seconds: 2,
            watch_namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
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

    fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), ns)
    }

    /// A tenant: token Secret and Customer.
    async fn tenant(&self, ns: &str, customer: Customer, token: &str) {
        let r = customer.spec.api_token_secret_ref.clone();
        apply(&self.api::<Secret>(ns), common::secret(ns, &r.name, &r.key, token)).await;
        apply(&self.api::<Customer>(ns), customer).await;
    }

    fn token_id(&self, token: &str) -> String {
        self.emu.token_id(token).expect("configured token")
    }
}

fn account(n: u8) -> String {
    common::account(n)
}

fn customer(ns: &str, name: &str, account: &str, zones: &[&str], domain: &str) -> Customer {
    let mut c = Customer::new(
        name,
        CustomerSpec {
            display_name: Some(format!("{name} corp")),
            account_id: account.into(),
            api_token_secret_ref: SecretKeyRef { name: format!("{name}-cloudflare"), key: "token".into() },
            zones: zones.iter().map(|z| z.to_string()).collect(),
            vars: BTreeMap::from([("SUPPORT_EMAIL".into(), format!("ops@{name}.example"))]),
            environments: Environments {
                production: Some(EnvironmentSettings { domain: Some(domain.into()), ..Default::default() }),
                ..Default::default()
            },
        },
    );
    c.metadata.namespace = Some(ns.into());
    c
}

/// A Worker-only service (served on workers.dev) using the code ConfigMap `code`.
fn small_service(ns: &str, name: &str, customer: &str) -> CloudflareService {
    let mut s = CloudflareService::new(
        name,
        CloudflareServiceSpec {
            customer_ref: LocalObjectRef { name: customer.into() },
            environment: Environment::Production,
            body: small_body(),
        },
    );
    s.metadata.namespace = Some(ns.into());
    s
}

fn small_body() -> ServiceBody {
    ServiceBody {
        worker: WorkerSpec {
            main_module: "index.js".into(),
            source: WorkerSource::config_map("code"),
            compatibility_date: "2025-10-01".into(),
            vars: BTreeMap::from([
                ("PUBLIC_URL".into(), "https://{{DOMAIN}}".into()),
                ("SUPPORT".into(), "{{SUPPORT_EMAIL}}".into()),
            ]),
            ..Default::default()
        },
        rollback_on_failure: true,
        ..Default::default()
    }
}

fn code(ns: &str) -> ConfigMap {
    common::config_map(ns, "code", &[("index.js", common::WORKER_JS)])
}

fn cond<'a>(
    conds: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    t: &str,
) -> Option<(&'a str, &'a str, &'a str)> {
    c::find(conds, t).map(|x| (x.status.as_str(), x.reason.as_str(), x.message.as_str()))
}

fn svc_cond(s: &CloudflareService, t: &str) -> Option<(String, String, String)> {
    let st = s.status.as_ref()?;
    cond(&st.conditions, t).map(|(a, b, m)| (a.to_string(), b.to_string(), m.to_string()))
}

fn cust_cond(cu: &Customer, t: &str) -> Option<(String, String, String)> {
    let st = cu.status.as_ref()?;
    cond(&st.conditions, t).map(|(a, b, m)| (a.to_string(), b.to_string(), m.to_string()))
}

fn binding_text(emu: &EmulatorHandle, account: &str, script: &str, name: &str) -> Option<String> {
    let s = emu.script(account, script)?;
    let v = s.latest_version()?;
    v.binding(name).and_then(|b| b.get("text")).and_then(|t| t.as_str()).map(str::to_string)
}

fn scripts(emu: &EmulatorHandle, account: &str) -> BTreeSet<String> {
    emu.scripts(account).into_iter().map(|s| s.name).collect()
}

fn mutating_since(emu: &EmulatorHandle, seq: u64) -> Vec<String> {
    emu.journal()
        .into_iter()
        .filter(|e| e.seq > seq && e.mutating)
        .map(|e| format!("{} {} -> {}", e.method, e.path, e.status))
        .collect()
}

fn last_seq(emu: &EmulatorHandle) -> u64 {
    emu.journal().last().map(|e| e.seq).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Tenancy

/// Two tenants in two namespaces with two accounts: each tenant's services land only in its own
/// account, with its own token, rendered from its own Customer; a service cannot reach another
/// namespace's Customer, and a Customer cannot use another namespace's Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_in_two_namespaces_never_see_each_other() {
    let (acct_a, acct_b) = (account(0xa1), account(0xb2));
    let w = world(
        &[(&acct_a, TOKEN_A), (&acct_b, TOKEN_B)],
        &[("acme.com", &acct_a), ("beta.dev", &acct_b)],
        Duration::ZERO,
    )
    .await;
    let (ns_a, ns_b) = (w.namespace("tenant-a").await, w.namespace("tenant-b").await);
    let op = w.operator(&[&ns_a, &ns_b]).await;

    // Tenant A: the shared fixture (D1 + migrations, route and custom domain on acme.com).
    let base = common::base_manifests(&ns_a, &acct_a);
    apply(&w.api::<Secret>(&ns_a), common::secret(&ns_a, "acme-cloudflare", "token", TOKEN_A)).await;
    apply(&w.api::<Secret>(&ns_a), common::secret(&ns_a, "acme-secrets", "jwt", common::STRONG)).await;
    for cm in base.config_maps.clone() {
        apply(&w.api::<ConfigMap>(&ns_a), cm).await;
    }
    apply(&w.api::<Customer>(&ns_a), base.customers[0].clone()).await;
    apply(&w.api::<CloudflareService>(&ns_a), base.services[0].clone()).await;

    // Tenant B: its own account, zone and environment settings, a service of the same name.
    let mut beta = customer(&ns_b, "beta", &acct_b, &["beta.dev"], "api.beta.dev");
    if let Some(p) = beta.spec.environments.production.as_mut() {
        p.vars.insert("SUPPORT_EMAIL".into(), "prod-oncall@beta.dev".into());
    }
    // Development tightened to strict: a dummy secret is blocked there, not merely warned about.
    beta.spec.environments.development =
        Some(EnvironmentSettings { policy: Some(PolicyLevel::Strict), ..Default::default() });
    w.tenant(&ns_b, beta, TOKEN_B).await;
    apply(&w.api::<ConfigMap>(&ns_b), code(&ns_b)).await;
    apply(&w.api::<Secret>(&ns_b), common::secret(&ns_b, "beta-secrets", "jwt", "changeme")).await;
    let mut web_b = small_service(&ns_b, "data", "beta");
    web_b.spec.body.routes = vec![RouteSpec { pattern: "api.beta.dev/*".into(), zone: None }];
    apply(&w.api::<CloudflareService>(&ns_b), web_b).await;
    let mut weak = small_service(&ns_b, "weak", "beta");
    weak.spec.environment = Environment::Development;
    weak.spec.body.worker.secrets = vec![SecretSpec {
        name: "JWT_SECRET".into(),
        value_from: Some(ValueFrom { secret_key_ref: SecretKeyRef { name: "beta-secrets".into(), key: "jwt".into() } }),
        generate: None,
    }];
    apply(&w.api::<CloudflareService>(&ns_b), weak).await;
    // Reaching across the boundary: a service naming A's Customer, a Customer naming A's Secret
    // (absent from B), and a Customer pointing B's token at A's account.
    apply(&w.api::<CloudflareService>(&ns_b), small_service(&ns_b, "intruder", "acme")).await;
    let mut thief = customer(&ns_b, "thief", &acct_a, &["acme.com"], "api.acme.com");
    thief.spec.api_token_secret_ref = SecretKeyRef { name: "acme-cloudflare".into(), key: "token".into() };
    apply(&w.api::<Customer>(&ns_b), thief).await;
    let mut snoop = customer(&ns_b, "snoop", &acct_a, &["acme.com"], "api.acme.com");
    snoop.spec.api_token_secret_ref = SecretKeyRef { name: "beta-cloudflare".into(), key: "token".into() };
    apply(&w.api::<Customer>(&ns_b), snoop).await;

    let svc_a: Api<CloudflareService> = w.api(&ns_a);
    let svc_b: Api<CloudflareService> = w.api(&ns_b);
    let data_a = wait_for(&svc_a, "data", Duration::from_secs(60), is_ready).await;
    let data_b = wait_for(&svc_b, "data", WAIT, is_ready).await;
    let script_a = data_a.status.unwrap().worker.unwrap().script_name;
    let script_b = data_b.status.unwrap().worker.unwrap().script_name;
    assert_eq!((script_a.as_str(), script_b.as_str()), ("acme-data-production", "beta-data-production"));

    // The service naming a Customer of another namespace: MissingReference, no Cloudflare call.
    let intruder = wait_for(&svc_b, "intruder", WAIT, |s| svc_cond(s, c::CONFIG_VALID).is_some()).await;
    let (st, why, msg) = svc_cond(&intruder, c::CONFIG_VALID).unwrap();
    assert_eq!((st.as_str(), why.as_str()), ("False", "MissingReference"), "{msg}");
    assert!(msg.contains("spec.customerRef.name") && msg.contains(&ns_b), "{msg}");
    assert_eq!(intruder.status.as_ref().unwrap().phase, Some(Phase::Failed));
    // The strict development policy the Customer asked for blocks the dummy secret.
    let weak = wait_for(&svc_b, "weak", WAIT, |s| svc_cond(s, c::SECURITY_VALIDATED).is_some()).await;
    let (st, why, msg) = svc_cond(&weak, c::SECURITY_VALIDATED).unwrap();
    assert_eq!((st.as_str(), why.as_str()), ("False", "PolicyViolation"), "{msg}");
    assert!(msg.contains("JWT_SECRET") && !msg.contains("changeme"), "{msg}");

    // Customers: each counts only its own namespace's services; the cross-namespace ones fail.
    let cust_a: Api<Customer> = w.api(&ns_a);
    let cust_b: Api<Customer> = w.api(&ns_b);
    let a = wait_for(&cust_a, "acme", WAIT, |c| {
        c.status.as_ref().is_some_and(|s| c::is_true(&s.conditions, c::READY) && s.services == 1)
    })
    .await;
    assert_eq!(a.status.as_ref().unwrap().zones[0].id, w.emu.zone_id("acme.com").unwrap());
    let b = wait_for(&cust_b, "beta", WAIT, |c| {
        c.status.as_ref().is_some_and(|s| c::is_true(&s.conditions, c::READY) && s.services == 2)
    })
    .await;
    assert_eq!(b.status.as_ref().unwrap().zones[0].id, w.emu.zone_id("beta.dev").unwrap());
    let thief = wait_for(&cust_b, "thief", WAIT, |c| cust_cond(c, c::CREDENTIALS_VALID).is_some()).await;
    let (st, why, msg) = cust_cond(&thief, c::CREDENTIALS_VALID).unwrap();
    assert_eq!((st.as_str(), why.as_str()), ("False", "TokenMissing"), "{msg}");
    assert!(msg.contains(&ns_b), "{msg}");
    let snoop = wait_for(&cust_b, "snoop", WAIT, |c| cust_cond(c, c::CREDENTIALS_VALID).is_some()).await;
    let (st, why, msg) = cust_cond(&snoop, c::CREDENTIALS_VALID).unwrap();
    assert_eq!((st.as_str(), why.as_str()), ("False", "TokenInvalid"), "{msg}");
    assert_eq!(cust_cond(&snoop, c::ZONES_RESOLVED).unwrap().0, "Unknown");
    assert!(snoop.status.as_ref().unwrap().zones.is_empty(), "no zone of account A leaks to B");

    // Cloudflare: each account holds exactly its tenant's objects.
    assert_eq!(scripts(&w.emu, &acct_a), BTreeSet::from([script_a.clone()]));
    assert_eq!(scripts(&w.emu, &acct_b), BTreeSet::from([script_b.clone()]));
    assert_eq!(w.emu.d1_databases(&acct_a).len(), 1);
    assert!(w.emu.d1_databases(&acct_b).is_empty());
    assert!(w.emu.routes("acme.com").iter().all(|r| r.script.as_deref() == Some(script_a.as_str())));
    assert_eq!(
        w.emu.routes("beta.dev").iter().map(|r| r.script.as_deref().unwrap_or_default()).collect::<Vec<_>>(),
        [script_b.as_str()]
    );
    assert!(w.emu.custom_domains(&acct_b).is_empty());
    // ... rendered from its own Customer (environment domain and environment vars).
    assert_eq!(binding_text(&w.emu, &acct_b, &script_b, "PUBLIC_URL").as_deref(), Some("https://api.beta.dev"));
    assert_eq!(binding_text(&w.emu, &acct_b, &script_b, "SUPPORT").as_deref(), Some("prod-oncall@beta.dev"));
    assert_eq!(binding_text(&w.emu, &acct_a, &script_a, "PUBLIC_URL").as_deref(), Some("https://api.acme.com"));

    // Journal: every call that touched an account or zone used that tenant's own token, and
    // nothing was ever done for the intruder or the weak service.
    let (id_a, id_b) = (w.token_id(TOKEN_A), w.token_id(TOKEN_B));
    let zone_a = w.emu.zone_id("acme.com").unwrap();
    let zone_b = w.emu.zone_id("beta.dev").unwrap();
    let owner = |e: &JournalEntry| -> Option<&str> {
        if e.path.contains(&format!("/accounts/{acct_a}")) || e.path.contains(&format!("/zones/{zone_a}")) {
            Some("A")
        } else if e.path.contains(&format!("/accounts/{acct_b}")) || e.path.contains(&format!("/zones/{zone_b}")) {
            Some("B")
        } else {
            None
        }
    };
    let journal = w.emu.journal();
    for e in &journal {
        let tok = e.token_id.as_deref();
        match owner(e) {
            Some("A") if e.status < 400 => assert_eq!(tok, Some(id_a.as_str()), "{e:?}"),
            Some("B") => assert_eq!(tok, Some(id_b.as_str()), "{e:?}"),
            _ => {}
        }
        assert!(!e.path.contains("intruder") && !e.path.contains("weak"), "{e:?}");
    }
    // The only calls of token B on account A are the snoop Customer's rejected verifications.
    let cross: Vec<&JournalEntry> =
        journal.iter().filter(|e| owner(e) == Some("A") && e.token_id.as_deref() == Some(id_b.as_str())).collect();
    assert!(
        !cross.is_empty() && cross.iter().all(|e| e.status == 403 && !e.mutating && e.path.ends_with("/tokens/verify")),
        "{cross:#?}"
    );
    op.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Token revocation

async fn two_services(w: &World, ns: &str, acct: &str) -> (Api<Customer>, Api<CloudflareService>) {
    w.tenant(ns, customer(ns, "acme", acct, &["acme.com"], "api.acme.com"), TOKEN_A).await;
    apply(&w.api::<ConfigMap>(ns), code(ns)).await;
    for name in ["web", "api"] {
        apply(&w.api::<CloudflareService>(ns), small_service(ns, name, "acme")).await;
    }
    let services: Api<CloudflareService> = w.api(ns);
    for name in ["web", "api"] {
        wait_for(&services, name, WAIT, is_ready).await;
    }
    let customers: Api<Customer> = w.api(ns);
    wait_for(&customers, "acme", WAIT, |c| {
        c.status.as_ref().is_some_and(|s| c::is_true(&s.conditions, c::READY) && s.services == 2)
    })
    .await;
    (customers, services)
}

/// Change a var of a service (a new generation that would need an upload).
async fn bump(services: &Api<CloudflareService>, ns: &str, name: &str, value: &str) -> i64 {
    let mut s = small_service(ns, name, "acme");
    s.spec.body.worker.vars.insert("RELEASE".into(), value.into());
    apply(services, s).await;
    services.get(name).await.unwrap().metadata.generation.unwrap()
}

fn creds_false(s: &CloudflareService) -> bool {
    svc_cond(s, c::CREDENTIALS_VALID).is_some_and(|(st, why, _)| st == "False" && why == "TokenInvalid")
        && s.status.as_ref().is_some_and(|st| st.observed_generation == s.metadata.generation)
}

/// The token is revoked at Cloudflare while its Secret stays the same: the first service call
/// that Cloudflare rejects makes the Customer re-verify at once (not after its hour of cache);
/// the Customer and every service turn `CredentialsValid=False`, and services stop calling.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_revoked_at_cloudflare_stops_every_service_of_the_customer() {
    let acct = account(0xc3);
    let w = world(&[(&acct, TOKEN_A)], &[("acme.com", &acct)], Duration::ZERO).await;
    let ns = w.namespace("revoke-cf").await;
    let op = w.operator(&[&ns]).await;
    let (customers, services) = two_services(&w, &ns, &acct).await;
    let verifies =
        |since: u64| w.emu.journal().iter().filter(|e| e.seq > since && e.path.ends_with("/tokens/verify")).count();
    // Quiet: the Customer's verdict is cached; nothing verifies the token again.
    let seq0 = last_seq(&w.emu);
    let before = service_passes(&op.metrics);
    bump(&services, &ns, "api", "1").await;
    wait_for(&services, "api", WAIT, is_ready).await;
    assert!(service_passes(&op.metrics) > before);
    assert_eq!(verifies(seq0), 0, "a cached verdict is not re-verified");

    // Revoke at Cloudflare: every call for the account now answers 401.
    w.emu.set_faults(Faults { path_prefix_failures: vec![(format!("/accounts/{acct}"), 401)], ..Faults::default() });
    let seq = last_seq(&w.emu);
    let g = bump(&services, &ns, "web", "2").await;
    let web = wait_for(&services, "web", WAIT, |s| {
        creds_false(s) && s.status.as_ref().unwrap().observed_generation == Some(g)
    })
    .await;
    let (_, _, msg) = svc_cond(&web, c::CREDENTIALS_VALID).unwrap();
    assert!(msg.contains("401") || msg.contains("Customer reports"), "{msg}");
    let cust = wait_for(&customers, "acme", WAIT, |c| {
        cust_cond(c, c::CREDENTIALS_VALID).is_some_and(|(st, _, _)| st == "False")
    })
    .await;
    let (_, why, msg) = cust_cond(&cust, c::CREDENTIALS_VALID).unwrap();
    assert_eq!(why, "TokenInvalid");
    assert!(msg.contains("Cloudflare rejected the token") && msg.contains("401"), "{msg}");
    assert!(!msg.contains(TOKEN_A));
    assert_eq!(cust.status.as_ref().unwrap().token.as_ref().unwrap().status, "invalid");
    assert!(verifies(seq) >= 1);
    // The other service, untouched, takes the Customer's verdict.
    let api = wait_for(&services, "api", WAIT, |s| {
        svc_cond(s, c::CREDENTIALS_VALID).is_some_and(|(st, _, m)| st == "False" && m.starts_with("Customer reports"))
    })
    .await;
    assert_eq!(svc_cond(&api, c::READY).unwrap().0, "False");
    wait_for(&services, "web", WAIT, |s| {
        svc_cond(s, c::CREDENTIALS_VALID).is_some_and(|(st, _, m)| st == "False" && m.starts_with("Customer reports"))
    })
    .await;
    assert_eq!(mutating_since(&w.emu, seq), Vec::<String>::new());

    // Further changes make no Cloudflare call at all for these services.
    let seq = last_seq(&w.emu);
    for (name, v) in [("api", "3"), ("web", "3")] {
        let g = bump(&services, &ns, name, v).await;
        wait_for(&services, name, WAIT, |s| {
            creds_false(s) && s.status.as_ref().unwrap().observed_generation == Some(g)
        })
        .await;
    }
    let calls: Vec<JournalEntry> = w.emu.journal().into_iter().filter(|e| e.seq > seq).collect();
    assert!(calls.iter().all(|e| !e.path.contains("/workers/")), "{calls:#?}");
    assert_eq!(mutating_since(&w.emu, seq), Vec::<String>::new());

    // A new token in the Secret is verified at once and the services catch up.
    w.emu.set_faults(Faults::default());
    let secrets: Api<Secret> = w.api(&ns);
    apply(&secrets, common::secret(&ns, "acme-cloudflare", "token", TOKEN_B)).await;
    // (TOKEN_B is unknown to this emulator: still rejected, at once.)
    wait_for(&customers, "acme", WAIT, |c| {
        cust_cond(c, c::CREDENTIALS_VALID).is_some_and(|(st, _, m)| st == "False" && m.contains("1000"))
    })
    .await;
    apply(&secrets, common::secret(&ns, "acme-cloudflare", "token", TOKEN_A)).await;
    wait_for(&customers, "acme", WAIT, |c| c.status.as_ref().is_some_and(|s| c::is_true(&s.conditions, c::READY)))
        .await;
    for name in ["web", "api"] {
        let s = wait_for(&services, name, WAIT, is_ready).await;
        let script = s.status.unwrap().worker.unwrap().script_name;
        assert_eq!(binding_text(&w.emu, &acct, &script, "RELEASE").as_deref(), Some("3"));
    }
    op.stop().await;
}

/// The Secret is switched to a token Cloudflare rejects (revoked and replaced by a wrong one):
/// the Customer re-verifies at once, everything turns `CredentialsValid=False` with a clear
/// message, and no service makes a mutating call until a valid token is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secret_switched_to_a_rejected_token_stops_mutations_until_fixed() {
    let acct = account(0xd4);
    let w = world(&[(&acct, TOKEN_A)], &[("acme.com", &acct)], Duration::ZERO).await;
    let ns = w.namespace("revoke-secret").await;
    let op = w.operator(&[&ns]).await;
    let (customers, services) = two_services(&w, &ns, &acct).await;
    let versions_before: BTreeMap<String, usize> =
        w.emu.scripts(&acct).into_iter().map(|s| (s.name.clone(), s.versions.len())).collect();

    let seq = last_seq(&w.emu);
    let secrets: Api<Secret> = w.api(&ns);
    apply(&secrets, common::secret(&ns, "acme-cloudflare", "token", UNKNOWN_TOKEN)).await;
    let cust = wait_for(&customers, "acme", Duration::from_secs(15), |c| {
        cust_cond(c, c::CREDENTIALS_VALID).is_some_and(|(st, _, _)| st == "False")
    })
    .await;
    let (_, why, msg) = cust_cond(&cust, c::CREDENTIALS_VALID).unwrap();
    assert_eq!(why, "TokenInvalid");
    assert!(msg.contains("Cloudflare rejected the token") && msg.contains("Invalid API Token"), "{msg}");
    assert!(!msg.contains(UNKNOWN_TOKEN));
    let (_, why, _) = cust_cond(&cust, c::READY).unwrap();
    assert_eq!(why, "TokenInvalid");
    for name in ["web", "api"] {
        wait_for(&services, name, WAIT, |s| {
            svc_cond(s, c::CREDENTIALS_VALID)
                .is_some_and(|(st, _, m)| st == "False" && m.starts_with("Customer reports"))
                && svc_cond(s, c::READY).is_some_and(|(st, _, _)| st == "False")
        })
        .await;
    }
    // Changes to the services are not deployed.
    for name in ["web", "api"] {
        let g = bump(&services, &ns, name, "blocked").await;
        wait_for(&services, name, WAIT, |s| {
            creds_false(s) && s.status.as_ref().unwrap().observed_generation == Some(g)
        })
        .await;
    }
    assert_eq!(mutating_since(&w.emu, seq), Vec::<String>::new());
    let versions_now: BTreeMap<String, usize> =
        w.emu.scripts(&acct).into_iter().map(|s| (s.name.clone(), s.versions.len())).collect();
    assert_eq!(versions_now, versions_before);

    // A valid token again: verified at once, the pending changes deploy with it.
    let seq = last_seq(&w.emu);
    apply(&secrets, common::secret(&ns, "acme-cloudflare", "token", TOKEN_A)).await;
    for name in ["web", "api"] {
        let s = wait_for(&services, name, WAIT, is_ready).await;
        let script = s.status.unwrap().worker.unwrap().script_name;
        assert_eq!(binding_text(&w.emu, &acct, &script, "RELEASE").as_deref(), Some("blocked"));
    }
    let id = w.token_id(TOKEN_A);
    let after: Vec<JournalEntry> = w.emu.journal().into_iter().filter(|e| e.seq > seq && e.mutating).collect();
    assert!(!after.is_empty() && after.iter().all(|e| e.token_id.as_deref() == Some(id.as_str())), "{after:#?}");
    op.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Portfolio

fn template(svc: &str) -> ServiceBody {
    let mut b = small_body();
    b.worker.vars.insert("PUBLIC_URL".into(), format!("https://{svc}.{{{{DOMAIN}}}}"));
    b.routes = vec![RouteSpec { pattern: format!("{svc}.{{{{DOMAIN}}}}/*"), zone: None }];
    b
}

fn portfolio(ns: &str, name: &str, max: u32, services: Vec<PortfolioService>) -> Portfolio {
    let mut p = Portfolio::new(
        name,
        PortfolioSpec {
            customer_ref: LocalObjectRef { name: "acme".into() },
            environment: Environment::Production,
            max_concurrent: max,
            domains: vec!["acme.com".into(), "acme.io".into()],
            services,
        },
    );
    p.metadata.namespace = Some(ns.into());
    p
}

fn member(name: &str, deps: &[&str]) -> PortfolioService {
    PortfolioService {
        name: name.into(),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        template: template(name),
    }
}

fn pf_cond(p: &Portfolio, t: &str) -> Option<(String, String, String)> {
    let st = p.status.as_ref()?;
    cond(&st.conditions, t).map(|(a, b, m)| (a.to_string(), b.to_string(), m.to_string()))
}

/// Per script: from the start of its first mutating call to the end of its last one.
fn busy_intervals(journal: &[JournalEntry], scripts: &[String]) -> BTreeMap<String, (DateTime<Utc>, DateTime<Utc>)> {
    let mut out: BTreeMap<String, (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    for e in journal.iter().filter(|e| e.mutating) {
        let segs: Vec<&str> = e.path.split('/').collect();
        let Some(script) = segs.windows(2).find(|w| w[0] == "scripts").map(|w| w[1]) else { continue };
        if !scripts.iter().any(|s| s == script) {
            continue;
        }
        let end = e.at + chrono::Duration::milliseconds(e.duration_ms as i64);
        let iv = out.entry(script.to_string()).or_insert((e.at, end));
        iv.0 = iv.0.min(e.at);
        iv.1 = iv.1.max(end);
    }
    out
}

/// Most intervals open at one instant (an interval ending exactly when another starts does not
/// overlap it).
fn max_overlap(intervals: &BTreeMap<String, (DateTime<Utc>, DateTime<Utc>)>) -> usize {
    let mut edges: Vec<(DateTime<Utc>, i32)> = Vec::new();
    for (start, end) in intervals.values() {
        edges.push((*start, 1));
        edges.push((*end, -1));
    }
    edges.sort();
    let (mut open, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        open += d;
        max = max.max(open);
    }
    max as usize
}

/// Six services (auth, data, api × acme.com, acme.io), api depending on auth and data,
/// `maxConcurrent: 2`: never more than two children deploying at once, api only after every
/// auth and data child is Ready; children are owned, labelled and stamped per domain; removing
/// a service deletes its children and their Workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn portfolio_deploys_six_services_in_waves_within_max_concurrent() {
    let acct = account(0xe5);
    // Latency makes every pass take a while, so passes that ran at once would overlap visibly.
    let w = world(&[(&acct, TOKEN_A)], &[("acme.com", &acct), ("acme.io", &acct)], Duration::from_millis(15)).await;
    let ns = w.namespace("portfolio").await;
    let op = w.operator(&[&ns]).await;
    w.tenant(&ns, customer(&ns, "acme", &acct, &["acme.com", "acme.io"], "api.acme.com"), TOKEN_A).await;
    apply(&w.api::<ConfigMap>(&ns), code(&ns)).await;
    let pfs: Api<Portfolio> = w.api(&ns);
    apply(
        &pfs,
        portfolio(&ns, "suite", 2, vec![member("api", &["auth", "data"]), member("auth", &[]), member("data", &[])]),
    )
    .await;

    let pf = wait_for(&pfs, "suite", Duration::from_secs(60), |p| {
        pf_cond(p, c::READY).is_some_and(|(st, _, _)| st == "True")
    })
    .await;
    let st = pf.status.clone().unwrap();
    assert_eq!(st.ready_services.as_deref(), Some("6/6"));
    assert_eq!(st.observed_generation, pf.metadata.generation);
    assert_eq!(pf_cond(&pf, c::PROGRESSING).unwrap().0, "False");
    assert_eq!(pf_cond(&pf, c::DEGRADED).unwrap().0, "False");
    let listed: Vec<(String, Option<String>, String, bool)> =
        st.services.iter().map(|s| (s.name.clone(), s.domain.clone(), s.service.clone(), s.ready)).collect();
    let mut expected = Vec::new();
    for svc in ["auth", "data", "api"] {
        for (d, slug) in [("acme.com", "acme-com"), ("acme.io", "acme-io")] {
            expected.push((svc.to_string(), Some(d.to_string()), format!("suite-{svc}-{slug}"), true));
        }
    }
    assert_eq!(listed, expected, "services[] in deployment order");
    assert!(st.services.iter().all(|s| s.phase.as_deref() == Some("Ready")));

    // Children: owned by the portfolio, labelled, stamped per domain.
    let services: Api<CloudflareService> = w.api(&ns);
    let uid = pf.uid().unwrap();
    let mut scripts_by_child = BTreeMap::new();
    for (svc, _, child, _) in &expected {
        let s = services.get(child).await.unwrap();
        let o = &s.owner_references()[0];
        assert_eq!(
            (o.kind.as_str(), o.name.as_str(), o.uid.as_str(), o.controller),
            ("Portfolio", "suite", uid.as_str(), Some(true))
        );
        assert_eq!(s.labels().get("clodo.dev/portfolio").map(String::as_str), Some("suite"));
        assert_eq!(s.metadata.generation, Some(1), "children are applied once, not on every pass");
        let domain = if child.ends_with("acme-com") { "acme.com" } else { "acme.io" };
        assert_eq!(s.spec.body.routes[0].pattern, format!("{svc}.{domain}/*"));
        let script = s.status.unwrap().worker.unwrap().script_name;
        assert_eq!(binding_text(&w.emu, &acct, &script, "PUBLIC_URL"), Some(format!("https://{svc}.{domain}")));
        assert!(
            w.emu
                .routes(domain)
                .iter()
                .any(|r| r.pattern == format!("{svc}.{domain}/*") && r.script.as_deref() == Some(script.as_str()))
        );
        scripts_by_child.insert(child.clone(), script);
    }

    // The journal: at most 2 children deploying at any instant; api after all of auth and data.
    let journal = w.emu.journal();
    let all: Vec<String> = scripts_by_child.values().cloned().collect();
    let iv = busy_intervals(&journal, &all);
    assert_eq!(iv.len(), 6, "every child made mutating calls: {iv:#?}");
    let overlap = max_overlap(&iv);
    assert!(overlap <= 2, "{overlap} children deployed at once: {iv:#?}");
    let script = |c: &str| scripts_by_child[c].clone();
    let deps_done = ["suite-auth-acme-com", "suite-auth-acme-io", "suite-data-acme-com", "suite-data-acme-io"]
        .iter()
        .map(|c| iv[&script(c)].1)
        .max()
        .unwrap();
    for api in ["suite-api-acme-com", "suite-api-acme-io"] {
        assert!(iv[&script(api)].0 >= deps_done, "{api} started before its dependencies were done: {iv:#?}");
    }

    // Remove "api": its two children go, with their Workers and routes.
    let seq = last_seq(&w.emu);
    apply(&pfs, portfolio(&ns, "suite", 2, vec![member("auth", &[]), member("data", &[])])).await;
    for child in ["suite-api-acme-com", "suite-api-acme-io"] {
        harness::wait_gone(&services, child, WAIT).await;
    }
    wait_until(WAIT, || scripts(&w.emu, &acct).len() == 4).await;
    assert!(!scripts(&w.emu, &acct).iter().any(|s| s.contains("-api-")));
    assert!(w.emu.routes("acme.com").iter().all(|r| !r.pattern.starts_with("api.")));
    let pf = wait_for(&pfs, "suite", WAIT, |p| {
        p.status.as_ref().is_some_and(|s| {
            s.ready_services.as_deref() == Some("4/4") && s.observed_generation == p.metadata.generation
        }) && pf_cond(p, c::READY).is_some_and(|(st, _, _)| st == "True")
    })
    .await;
    assert_eq!(pf.status.unwrap().services.len(), 4);
    // Only the removed children's Workers were touched.
    for e in w.emu.journal().iter().filter(|e| e.seq > seq && e.mutating && e.path.contains("/workers/scripts/")) {
        assert!(e.path.contains("-api-"), "{e:?}");
    }
    op.stop().await;
}

/// A dependency cycle (or an unknown dependency): `Ready=False, InvalidDependencies` naming the
/// cycle, nothing created and no Cloudflare call. Then a dependency that fails: its dependents are
/// never created, the portfolio is Degraded and blocked, and it completes once the failure is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn portfolio_rejects_cycles_and_holds_dependents_of_a_failed_service() {
    let acct = account(0xf6);
    let w = world(&[(&acct, TOKEN_A)], &[("acme.com", &acct), ("acme.io", &acct)], Duration::ZERO).await;
    let ns = w.namespace("cycle").await;
    let op = w.operator(&[&ns]).await;
    w.tenant(&ns, customer(&ns, "acme", &acct, &["acme.com", "acme.io"], "api.acme.com"), TOKEN_A).await;
    apply(&w.api::<ConfigMap>(&ns), code(&ns)).await;
    // Let the Customer settle first, so every later call to the account is the portfolio's.
    let customers: Api<Customer> = w.api(&ns);
    wait_for(&customers, "acme", WAIT, |c| c.status.as_ref().is_some_and(|s| c::is_true(&s.conditions, c::READY)))
        .await;
    let seq = last_seq(&w.emu);

    let pfs: Api<Portfolio> = w.api(&ns);
    let cyclic =
        vec![member("web", &[]), member("auth", &["data"]), member("data", &["api"]), member("api", &["auth"])];
    apply(&pfs, portfolio(&ns, "loop", 2, cyclic)).await;
    let pf = wait_for(&pfs, "loop", WAIT, |p| pf_cond(p, c::READY).is_some()).await;
    let (st, why, msg) = pf_cond(&pf, c::READY).unwrap();
    assert_eq!((st.as_str(), why.as_str()), ("False", "InvalidDependencies"));
    assert_eq!(msg, "dependency cycle: auth -> data -> api -> auth");
    assert_eq!(pf_cond(&pf, c::PROGRESSING).unwrap().0, "False");
    assert_eq!(pf_cond(&pf, c::DEGRADED).unwrap().0, "True");
    assert_eq!(pf.status.as_ref().unwrap().observed_generation, pf.metadata.generation);
    // Nothing created, not even the service outside the cycle.
    let services: Api<CloudflareService> = w.api(&ns);
    assert!(services.list(&Default::default()).await.unwrap().items.is_empty());
    // An unknown dependency is rejected the same way.
    apply(&pfs, portfolio(&ns, "loop", 2, vec![member("web", &["ghost"])])).await;
    let pf = wait_for(&pfs, "loop", WAIT, |p| {
        p.status.as_ref().is_some_and(|s| s.observed_generation == p.metadata.generation)
    })
    .await;
    assert_eq!(pf_cond(&pf, c::READY).unwrap().2, "service web depends on unknown service ghost");
    assert!(services.list(&Default::default()).await.unwrap().items.is_empty());
    assert!(w.emu.journal().iter().all(|e| e.seq <= seq), "no Cloudflare call while dependencies are invalid");

    // Fixed, but auth cannot deploy (its code ConfigMap is missing): auth's children fail and
    // web, which depends on auth, is not created.
    let mut auth = member("auth", &[]);
    auth.template.worker.source = WorkerSource::config_map("auth-code");
    apply(&pfs, portfolio(&ns, "loop", 2, vec![member("web", &["auth"]), auth])).await;
    // Wait for the whole condition asserted below: both of auth's children failed (they fail
    // one after the other) and web blocked behind them.
    let pf = wait_for(&pfs, "loop", WAIT, |p| {
        pf_cond(p, c::DEGRADED).is_some_and(|(st, why, m)| {
            st == "True"
                && why == "ServicesFailed"
                && m.contains("loop-auth-acme-com")
                && m.contains("loop-auth-acme-io")
        }) && pf_cond(p, c::PROGRESSING)
            .is_some_and(|(st, why, m)| st == "False" && why == "Blocked" && m.contains("loop-web-acme-com"))
    })
    .await;
    let (_, why, msg) = pf_cond(&pf, c::DEGRADED).unwrap();
    assert_eq!(why, "ServicesFailed");
    assert!(msg.contains("loop-auth-acme-com") && msg.contains("loop-auth-acme-io"), "{msg}");
    let (st, why, msg) = pf_cond(&pf, c::PROGRESSING).unwrap();
    assert_eq!((st.as_str(), why.as_str()), ("False", "Blocked"), "{msg}");
    assert!(msg.contains("loop-web-acme-com"), "{msg}");
    assert_eq!(pf_cond(&pf, c::READY).unwrap().1, "ServicesFailed");
    let names: BTreeSet<String> =
        services.list(&Default::default()).await.unwrap().items.iter().map(|s| s.name_any()).collect();
    assert_eq!(names, BTreeSet::from(["loop-auth-acme-com".to_string(), "loop-auth-acme-io".to_string()]));
    assert!(scripts(&w.emu, &acct).is_empty());

    // The missing ConfigMap appears: auth deploys, then web.
    apply(&w.api::<ConfigMap>(&ns), common::config_map(&ns, "auth-code", &[("index.js", common::WORKER_JS)])).await;
    let pf = wait_for(&pfs, "loop", WAIT, |p| pf_cond(p, c::READY).is_some_and(|(st, _, _)| st == "True")).await;
    assert_eq!(pf.status.as_ref().unwrap().ready_services.as_deref(), Some("4/4"));
    assert_eq!(pf_cond(&pf, c::DEGRADED).unwrap().0, "False");
    op.stop().await;
}

/// `examples/portfolio/portfolio.yaml` with the example Customer (`examples/01-customer.yaml`) deploys
/// through the operator: 6 Ready services, Customer vars rendered, one generated secret each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_portfolio_example_deploys() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut m =
        clodo_operator::cli::manifests::load(&[dir.join("01-customer.yaml"), dir.join("portfolio/portfolio.yaml")])
            .expect("examples parse");
    assert_eq!((m.customers.len(), m.portfolios.len()), (1, 1));
    let acct = m.customers[0].spec.account_id.clone();
    let r = m.customers[0].spec.api_token_secret_ref.clone();
    let secret = m.secrets.iter().find(|s| s.metadata.name.as_deref() == Some(r.name.as_str())).expect("token Secret");
    let token = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .map(|b| String::from_utf8(b.0.clone()).unwrap())
        .or_else(|| secret.string_data.as_ref().and_then(|d| d.get(&r.key)).cloned())
        .expect("token in the Secret");
    let w = world(&[(&acct, &token)], &[("acme.com", &acct)], Duration::ZERO).await;
    let ns = w.namespace("example").await;
    let op = w.operator(&[&ns]).await;
    for s in &mut m.secrets {
        s.metadata.namespace = Some(ns.clone());
        apply(&w.api::<Secret>(&ns), s.clone()).await;
    }
    for cm in &mut m.config_maps {
        cm.metadata.namespace = Some(ns.clone());
        apply(&w.api::<ConfigMap>(&ns), cm.clone()).await;
    }
    let mut cust = m.customers[0].clone();
    cust.metadata.namespace = Some(ns.clone());
    apply(&w.api::<Customer>(&ns), cust).await;
    let mut pf = m.portfolios[0].clone();
    pf.metadata.namespace = Some(ns.clone());
    let name = pf.name_any();
    apply(&w.api::<Portfolio>(&ns), pf).await;

    let pfs: Api<Portfolio> = w.api(&ns);
    let pf =
        wait_for(&pfs, &name, Duration::from_secs(60), |p| pf_cond(p, c::READY).is_some_and(|(st, _, _)| st == "True"))
            .await;
    assert_eq!(pf.status.as_ref().unwrap().ready_services.as_deref(), Some("6/6"));
    let services: Api<CloudflareService> = w.api(&ns);
    let s = services.get("acme-suite-api-acme-io").await.unwrap();
    let script = s.status.unwrap().worker.unwrap().script_name;
    assert_eq!(script, "acme-acme-suite-api-acme-io-production");
    assert_eq!(binding_text(&w.emu, &acct, &script, "AUTH_URL").as_deref(), Some("https://auth.acme.io"));
    assert_eq!(binding_text(&w.emu, &acct, &script, "SUPPORT_EMAIL").as_deref(), Some("ops@acme.com"));
    let auth = w.emu.script(&acct, "acme-acme-suite-auth-acme-com-production").unwrap();
    let key = auth.latest_version().unwrap().binding("SESSION_KEY").unwrap().clone();
    assert_eq!(key.get("type").and_then(|t| t.as_str()), Some("secret_text"));
    assert_eq!(scripts(&w.emu, &acct).len(), 6);
    op.stop().await;
}
