//! Bad input, end to end. Malformed objects never get in: the API server (the in-process fake,
//! or the cluster named by KUBECONFIG) rejects them at admission with the CRD's schema and CEL
//! rules. Well-formed objects that cannot work (a missing Secret key, an empty or oversized code
//! ConfigMap, invalid SQL, a zone the account does not have, a route outside the Customer's zones)
//! get a condition that names the field and the problem, a Warning Event, and no Cloudflare
//! mutation at all.

mod common;
mod harness;

use std::time::Duration;

use clodo_operator::crd::conditions as c;
use clodo_operator::crd::{CloudflareService, Customer, Phase, Portfolio, RouteSpec, WorkerSource};
use harness::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Admission

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "clodo.dev/v1alpha1",
        "kind": "CloudflareService",
        "metadata": { "name": name },
        "spec": {
            "customerRef": { "name": "acme" },
            "environment": "production",
            "scriptName": "acme-svc",
            "worker": {
                "mainModule": "index.js",
                "source": { "configMapRef": { "name": "code" } },
                "compatibilityDate": "2025-10-01",
                "vars": { "LOG_LEVEL": "info" },
                "secrets": [
                    { "name": "JWT", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } },
                    { "name": "API_KEY", "generate": { "length": 48 } }
                ]
            },
            "d1Databases": [ { "binding": "DB", "name": "acme-db" } ],
            "routes": [ { "pattern": "api.acme.com/*" } ],
            "customDomains": [ "api.acme.com" ],
            "productionTests": { "timeoutSeconds": 10, "health": { "path": "/health" } },
            "rollout": { "strategy": "Canary", "canary": { "steps": [10, 50] } }
        }
    })
}

fn customer(name: &str) -> Value {
    json!({
        "apiVersion": "clodo.dev/v1alpha1",
        "kind": "Customer",
        "metadata": { "name": name },
        "spec": {
            "accountId": "0123456789abcdef0123456789abcdef",
            "apiTokenSecretRef": { "name": "t", "key": "token" },
            "zones": ["acme.com"],
            "environments": { "production": { "domain": "api.acme.com", "policy": "strict" } }
        }
    })
}

fn portfolio(name: &str) -> Value {
    let template = service("x")["spec"].clone();
    let mut template = template.as_object().unwrap().clone();
    template.remove("customerRef");
    template.remove("environment");
    template.remove("scriptName");
    json!({
        "apiVersion": "clodo.dev/v1alpha1",
        "kind": "Portfolio",
        "metadata": { "name": name },
        "spec": {
            "customerRef": { "name": "acme" },
            "environment": "staging",
            "maxConcurrent": 2,
            "domains": ["acme.com"],
            "services": [
                { "name": "auth", "template": template.clone() },
                { "name": "data", "dependsOn": ["auth"], "template": template }
            ]
        }
    })
}

/// `v` with the field at `pointer` set (`Value::Null` removes it).
fn with(mut v: Value, pointer: &str, new: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let obj = v.pointer_mut(parent).and_then(Value::as_object_mut).unwrap_or_else(|| panic!("no object at {parent}"));
    if new.is_null() {
        assert!(obj.remove(key).is_some(), "nothing to remove at {pointer}");
    } else {
        obj.insert(key.to_string(), new);
    }
    v
}

/// Create through the API server; the error message when it refuses.
async fn create(client: &Client, ns: &str, ar: &ApiResource, obj: Value) -> Result<(), (u16, String)> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) => Err((e.code, e.message)),
        Err(e) => panic!("unexpected client error: {e}"),
    }
}

/// Each case is refused with 422 and a message holding the expected text; the valid object is
/// accepted; none of the refused ones is stored.
async fn check_admission(env: &TestEnv, ar: &ApiResource, valid: Value, cases: Vec<(&str, Value, &str)>) {
    create(&env.client, &env.ns, ar, valid)
        .await
        .unwrap_or_else(|e| panic!("{}: valid object refused: {e:?}", ar.kind));
    let mut wrong = Vec::new();
    for (i, (what, obj, want)) in cases.into_iter().enumerate() {
        let obj = with(obj, "/metadata/name", json!(format!("bad-{i}")));
        match create(&env.client, &env.ns, ar, obj).await {
            Ok(()) => wrong.push(format!("{what}: accepted")),
            Err((code, msg)) if code != 422 || !msg.contains(want) => {
                wrong.push(format!("{what}: {code} {msg:?} does not contain {want:?}"))
            }
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{} admission:\n  {}", ar.kind, wrong.join("\n  "));
    let stored: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.ns, ar);
    let names: Vec<String> =
        stored.list(&Default::default()).await.unwrap().items.iter().map(|o| o.name_any()).collect();
    assert!(names.iter().all(|n| !n.starts_with("bad-")), "refused objects were stored: {names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_services_are_refused_at_admission() {
    let env = TestEnv::start(51).await;
    let s = || service("x");
    let cases: Vec<(&str, Value, &str)> = vec![
        ("unknown environment", with(s(), "/spec/environment", json!("prod")), "Unsupported value: \"prod\""),
        ("unknown service type", with(s(), "/spec/serviceType", json!("frontend")), "Unsupported value: \"frontend\""),
        ("missing worker", with(s(), "/spec/worker", Value::Null), "spec.worker: Required value"),
        ("missing customerRef", with(s(), "/spec/customerRef", Value::Null), "spec.customerRef: Required value"),
        ("empty customer name", with(s(), "/spec/customerRef/name", json!("")), "name must not be empty"),
        (
            "script name with capitals",
            with(s(), "/spec/scriptName", json!("Acme_Svc")),
            "spec.scriptName in body should match",
        ),
        (
            "script name too long",
            with(s(), "/spec/scriptName", json!("a".repeat(64))),
            "spec.scriptName in body should match",
        ),
        ("empty main module", with(s(), "/spec/worker/mainModule", json!("")), "worker.mainModule must not be empty"),
        (
            "malformed compatibility date",
            with(s(), "/spec/worker/compatibilityDate", json!("Oct 2025")),
            "compatibilityDate in body should match",
        ),
        (
            "var name not an identifier",
            with(s(), "/spec/worker/vars", json!({ "log-level": "x" })),
            "names must be JavaScript identifiers",
        ),
        (
            "secret with two sources",
            with(s(), "/spec/worker/secrets/1/valueFrom", json!({ "secretKeyRef": { "name": "s", "key": "k" } })),
            "exactly one of valueFrom or generate must be set",
        ),
        (
            "secret with no source",
            with(s(), "/spec/worker/secrets/1/generate", Value::Null),
            "exactly one of valueFrom or generate must be set",
        ),
        (
            "duplicate secret names",
            with(s(), "/spec/worker/secrets/1/name", json!("JWT")),
            "worker.secrets: names must be unique",
        ),
        (
            "generated secret too short",
            with(s(), "/spec/worker/secrets/1/generate/length", json!(8)),
            "greater than or equal to 32",
        ),
        (
            "secret key ref without key",
            with(s(), "/spec/worker/secrets/0/valueFrom/secretKeyRef/key", json!("")),
            "key must not be empty",
        ),
        (
            "duplicate d1 bindings",
            with(s(), "/spec/d1Databases", json!([{ "binding": "DB" }, { "binding": "DB" }])),
            "d1Databases: binding names must be unique",
        ),
        (
            "d1 binding shadows a var",
            with(s(), "/spec/d1Databases", json!([{ "binding": "LOG_LEVEL" }])),
            "d1Databases: a binding name is also used by worker.vars",
        ),
        (
            "d1 name with spaces",
            with(s(), "/spec/d1Databases/0/name", json!("acme db")),
            "spec.d1Databases[0].name in body should match",
        ),
        (
            "more than 20 databases",
            with(
                s(),
                "/spec/d1Databases",
                json!((0..21).map(|i| json!({ "binding": format!("DB{i}") })).collect::<Vec<_>>()),
            ),
            "must have at most 20 items",
        ),
        (
            "unknown database deletion policy",
            with(s(), "/spec/d1Databases/0/deletionPolicy", json!("Keep")),
            "Unsupported value: \"Keep\"",
        ),
        (
            "route with a scheme",
            with(s(), "/spec/routes/0/pattern", json!("https://api.acme.com/*")),
            "must not contain a scheme",
        ),
        (
            "duplicate routes",
            with(s(), "/spec/routes", json!([{ "pattern": "a.acme.com/*" }, { "pattern": "a.acme.com/*" }])),
            "routes: patterns must be unique",
        ),
        (
            "hostname with capitals",
            with(s(), "/spec/customDomains", json!(["API.acme.com"])),
            "each entry must be a lowercase hostname",
        ),
        (
            "hostname without a dot",
            with(s(), "/spec/customDomains", json!(["localhost"])),
            "each entry must be a lowercase hostname",
        ),
        (
            "duplicate custom domains",
            with(s(), "/spec/customDomains", json!(["a.acme.com", "a.acme.com"])),
            "customDomains: hostnames must be unique",
        ),
        (
            "unknown rollout strategy",
            with(s(), "/spec/rollout/strategy", json!("BlueGreen")),
            "Unsupported value: \"BlueGreen\"",
        ),
        (
            "canary without steps",
            with(s(), "/spec/rollout/canary", Value::Null),
            "rollout.canary is required when strategy is Canary",
        ),
        (
            "canary step of 100%",
            with(s(), "/spec/rollout/canary/steps", json!([10, 100])),
            "each step must be between 1 and 99",
        ),
        (
            "canary step of 0%",
            with(s(), "/spec/rollout/canary/steps", json!([0, 50])),
            "each step must be between 1 and 99",
        ),
        (
            "canary steps descending",
            with(s(), "/spec/rollout/canary/steps", json!([50, 10])),
            "steps must be strictly ascending",
        ),
        (
            "production test timeout 0",
            with(s(), "/spec/productionTests/timeoutSeconds", json!(0)),
            "greater than or equal to 1",
        ),
        ("unknown deletion policy", with(s(), "/spec/deletionPolicy", json!("Keep")), "Unsupported value: \"Keep\""),
        (
            "dryRun not a boolean",
            with(s(), "/spec/dryRun", json!("yes")),
            "spec.dryRun in body must be of type boolean",
        ),
    ];
    check_admission(&env, &ApiResource::erase::<CloudflareService>(&()), s(), cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_customers_are_refused_at_admission() {
    let env = TestEnv::start(52).await;
    let cu = || customer("x");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "account id not 32 hex",
            with(cu(), "/spec/accountId", json!("acme-account")),
            "spec.accountId in body should match",
        ),
        (
            "account id in capitals",
            with(cu(), "/spec/accountId", json!("0123456789ABCDEF0123456789ABCDEF")),
            "spec.accountId in body should match",
        ),
        ("missing account id", with(cu(), "/spec/accountId", Value::Null), "spec.accountId: Required value"),
        (
            "missing token reference",
            with(cu(), "/spec/apiTokenSecretRef", Value::Null),
            "spec.apiTokenSecretRef: Required value",
        ),
        ("token reference without key", with(cu(), "/spec/apiTokenSecretRef/key", json!("")), "key must not be empty"),
        (
            "token reference without name",
            with(cu(), "/spec/apiTokenSecretRef/name", json!("")),
            "name must not be empty",
        ),
        (
            "zone in capitals",
            with(cu(), "/spec/zones", json!(["Acme.COM"])),
            "each entry must be a lowercase domain name",
        ),
        (
            "zone with a scheme",
            with(cu(), "/spec/zones", json!(["https://acme.com"])),
            "each entry must be a lowercase domain name",
        ),
        (
            "unknown policy",
            with(cu(), "/spec/environments/production/policy", json!("lax")),
            "Unsupported value: \"lax\"",
        ),
        ("no spec", with(cu(), "/spec", Value::Null), "spec: Required value"),
    ];
    check_admission(&env, &ApiResource::erase::<Customer>(&()), cu(), cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_portfolios_are_refused_at_admission() {
    let env = TestEnv::start(53).await;
    let p = || portfolio("x");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "duplicate service names",
            with(p(), "/spec/services/1/name", json!("auth")),
            "services: names must be unique",
        ),
        ("no services", with(p(), "/spec/services", json!([])), "should have at least 1 items"),
        (
            "service name with capitals",
            with(p(), "/spec/services/0/name", json!("Auth_1")),
            "spec.services[0].name in body should match",
        ),
        ("maxConcurrent 0", with(p(), "/spec/maxConcurrent", json!(0)), "greater than or equal to 1"),
        (
            "duplicate domains",
            with(p(), "/spec/domains", json!(["acme.com", "acme.com"])),
            "domains: entries must be unique",
        ),
        ("unknown environment", with(p(), "/spec/environment", json!("qa")), "Unsupported value: \"qa\""),
        ("missing customerRef", with(p(), "/spec/customerRef", Value::Null), "spec.customerRef: Required value"),
        (
            "template with duplicate routes",
            with(
                p(),
                "/spec/services/0/template/routes",
                json!([{ "pattern": "a.acme.com/*" }, { "pattern": "a.acme.com/*" }]),
            ),
            "routes: patterns must be unique",
        ),
        (
            "template secret with two sources",
            with(
                p(),
                "/spec/services/1/template/worker/secrets/1/valueFrom",
                json!({ "secretKeyRef": { "name": "s", "key": "k" } }),
            ),
            "exactly one of valueFrom or generate must be set",
        ),
        (
            "template canary step out of range",
            with(p(), "/spec/services/0/template/rollout/canary/steps", json!([5, 150])),
            "each step must be between 1 and 99",
        ),
        (
            "template without worker",
            with(p(), "/spec/services/1/template/worker", Value::Null),
            "spec.services[1].template.worker: Required value",
        ),
    ];
    check_admission(&env, &ApiResource::erase::<Portfolio>(&()), p(), cases).await;
}

// ---------------------------------------------------------------------------------------------
// Semantic errors

/// One well-formed service that cannot work, and what its status must say.
struct Case {
    name: &'static str,
    service: CloudflareService,
    condition: &'static str,
    reason: &'static str,
    /// Texts the condition message must contain (the field, and the problem).
    message: &'static [&'static str],
}

fn base(ns: &str, name: &str) -> CloudflareService {
    let mut s = common::service(ns);
    s.metadata.name = Some(name.to_string());
    s.metadata.generation = None;
    let host = format!("{name}.acme.com");
    s.spec.body.routes = vec![RouteSpec { pattern: format!("{host}/*"), zone: None }];
    s.spec.body.custom_domains = vec![host];
    s
}

fn semantic_cases(ns: &str) -> Vec<Case> {
    let mut cases = Vec::new();

    let mut s = base(ns, "missing-key");
    s.spec.body.worker.secrets[0].value_from.as_mut().unwrap().secret_key_ref.key = "nope".into();
    cases.push(Case {
        name: "missing-key",
        service: s,
        condition: c::CONFIG_VALID,
        reason: "MissingReference",
        message: &["spec.worker.secrets[0].valueFrom.secretKeyRef", "Secret \"acme-secrets\" has no key \"nope\""],
    });

    let mut s = base(ns, "missing-code");
    s.spec.body.worker.source = WorkerSource::config_map("no-such-code");
    cases.push(Case {
        name: "missing-code",
        service: s,
        condition: c::CONFIG_VALID,
        reason: "MissingReference",
        message: &["spec.worker.source.configMapRef.name", "ConfigMap \"no-such-code\" not found"],
    });

    let mut s = base(ns, "empty-code");
    s.spec.body.worker.source = WorkerSource::config_map("empty-code");
    cases.push(Case {
        name: "empty-code",
        service: s,
        condition: c::CONFIG_VALID,
        reason: "InvalidSpec",
        message: &["spec.worker.source.configMapRef.name", "ConfigMap \"empty-code\" has no files"],
    });

    let mut s = base(ns, "oversized");
    s.spec.body.worker.source = WorkerSource::config_map("big-code");
    cases.push(Case {
        name: "oversized",
        service: s,
        condition: c::CONFIG_VALID,
        reason: "InvalidSpec",
        message: &["spec.worker.source.configMapRef.name", "over the 10485760-byte Worker size limit"],
    });

    let mut s = base(ns, "bad-sql");
    s.spec.body.d1_databases[0].migrations.as_mut().unwrap().config_map_ref.name = "bad-sql".into();
    cases.push(Case {
        name: "bad-sql",
        service: s,
        condition: c::CONFIG_VALID,
        reason: "InvalidSpec",
        message: &[
            "spec.d1Databases[0].migrations.configMapRef.name",
            "migration \"0002_bad.sql\" is not valid SQL",
            "near \"TABLEE\": syntax error",
        ],
    });

    let mut s = base(ns, "empty-migrations");
    s.spec.body.d1_databases[0].migrations.as_mut().unwrap().config_map_ref.name = "empty-migrations".into();
    cases.push(Case {
        name: "empty-migrations",
        service: s,
        condition: c::CONFIG_VALID,
        reason: "InvalidSpec",
        message: &["spec.d1Databases[0].migrations.configMapRef.name", "has no migration files"],
    });

    let mut s = base(ns, "foreign-zone");
    s.spec.body.routes = vec![RouteSpec { pattern: "foreign-zone.acme.com/*".into(), zone: Some("acme.io".into()) }];
    cases.push(Case {
        name: "foreign-zone",
        service: s,
        condition: c::CONFIG_VALID,
        reason: "InvalidSpec",
        message: &["spec.routes[0].zone", "zone \"acme.io\" is not one of the customer's zones"],
    });

    let mut s = base(ns, "route-outside");
    s.spec.body.routes = vec![RouteSpec { pattern: "api.example.org/*".into(), zone: None }];
    cases.push(Case {
        name: "route-outside",
        service: s,
        condition: c::CONFIG_VALID,
        reason: "InvalidSpec",
        message: &["spec.routes[0].pattern", "host \"api.example.org\" is not in any of the customer's zones"],
    });

    let mut s = base(ns, "domain-outside");
    s.spec.body.custom_domains = vec!["www.example.org".into()];
    cases.push(Case {
        name: "domain-outside",
        service: s,
        condition: c::CONFIG_VALID,
        reason: "InvalidSpec",
        message: &["spec.customDomains[0]", "hostname \"www.example.org\" is not in any of the customer's zones"],
    });

    // The Customer lists ghost.com, but the Cloudflare account has no such zone.
    let mut s = base(ns, "unknown-zone");
    s.spec.customer_ref.name = "ghost".into();
    s.spec.body.routes = vec![RouteSpec { pattern: "api.ghost.com/*".into(), zone: None }];
    s.spec.body.custom_domains = vec![];
    cases.push(Case {
        name: "unknown-zone",
        service: s,
        condition: c::ROUTES_CONFIGURED,
        reason: "ZoneNotFound",
        message: &["zone ghost.com", "is not in account"],
    });
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_errors_give_a_clear_condition_and_change_nothing_in_cloudflare() {
    let env = TestEnv::start(54).await;
    let ns = env.ns.clone();
    // The base Customer, Secrets and ConfigMaps, a second Customer with a zone the account lacks,
    // and the broken ConfigMaps.
    let m = common::base_manifests(&ns, &env.account);
    for s in m.secrets {
        apply(&Api::<Secret>::namespaced(env.client.clone(), &ns), s).await;
    }
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    for cm in m.config_maps {
        apply(&cms, cm).await;
    }
    apply(&cms, ConfigMap { metadata: meta(&ns, "empty-code"), ..Default::default() }).await;
    apply(&cms, ConfigMap { metadata: meta(&ns, "empty-migrations"), ..Default::default() }).await;
    let big = "x".repeat(10 * 1024 * 1024);
    apply(&cms, common::config_map(&ns, "big-code", &[("index.js", common::WORKER_JS), ("blob.js", &big)])).await;
    apply(
        &cms,
        common::config_map(
            &ns,
            "bad-sql",
            &[("0001_init.sql", "CREATE TABLE ok (id INTEGER);"), ("0002_bad.sql", "CREATE TABLEE broken (id);")],
        ),
    )
    .await;
    let customers: Api<Customer> = Api::namespaced(env.client.clone(), &ns);
    for cu in m.customers {
        apply(&customers, cu).await;
    }
    let mut ghost = common::customer(&ns, &env.account);
    ghost.metadata.name = Some("ghost".into());
    ghost.spec.zones = vec!["acme.com".into(), "ghost.com".into()];
    ghost.spec.environments = Default::default();
    apply(&customers, ghost).await;

    let op = env.start_isolated_operator("op-bad", &OperatorOptions::default()).await;
    let cases = semantic_cases(&ns);
    let services = env.services();
    for case in &cases {
        apply(&services, case.service.clone()).await;
    }

    let mut wrong = Vec::new();
    for case in &cases {
        let svc = wait_for(&services, case.name, Duration::from_secs(60), |s| {
            s.status.as_ref().is_some_and(|st| {
                st.observed_generation == s.metadata.generation
                    && c::find(&st.conditions, case.condition).is_some_and(|x| x.status == "False")
            })
        })
        .await;
        let st = svc.status.clone().unwrap();
        let cond = c::find(&st.conditions, case.condition).unwrap();
        if cond.reason != case.reason || !case.message.iter().all(|m| cond.message.contains(m)) {
            wrong.push(format!("{}: {} {:?}: {:?}", case.name, cond.type_, cond.reason, cond.message));
        }
        let ready = c::find(&st.conditions, c::READY).expect("Ready");
        if ready.status != "False" || st.phase != Some(Phase::Failed) {
            wrong.push(format!("{}: Ready {} phase {:?}", case.name, ready.status, st.phase));
        }
        if st.worker.is_some() || !st.databases.is_empty() || !st.routes.is_empty() {
            wrong.push(format!("{}: status records Cloudflare objects: {st:?}", case.name));
        }
    }
    assert!(wrong.is_empty(), "unclear or wrong conditions:\n  {}", wrong.join("\n  "));

    // A Warning Event per service names the failing condition.
    let events: Api<Event> = Api::namespaced(env.client.clone(), &ns);
    wait_until_async(Duration::from_secs(30), || async {
        let evs = events.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
        cases.iter().all(|case| {
            evs.iter().any(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(case.name)
                    && e.note.as_deref().is_some_and(|n| n.contains(case.condition))
            })
        })
    })
    .await;

    // Terminal: no retries with backoff (an edit of the spec or a referenced object retriggers).
    // Once the echoes of the status writes are over, 4 s pass without a pass; a retry policy
    // (2 s, 4 s, ...) would have run every service again at least once.
    let mut settled = service_passes(&op.metrics);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = service_passes(&op.metrics);
        if now == settled {
            break;
        }
        settled = now;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = service_passes(&op.metrics);
    assert!(later - settled <= 2, "terminal failures are retried: {settled} -> {later} passes");
    op.stop().await;

    // Nothing in Cloudflare changed: reads only, and nothing was created.
    let mutating: Vec<String> =
        env.emu.journal().iter().filter(|e| e.mutating).map(|e| format!("{} {}", e.method, e.path)).collect();
    assert!(mutating.is_empty(), "{mutating:?}");
    assert!(env.emu.scripts(&env.account).is_empty());
    assert!(env.emu.d1_databases(&env.account).is_empty());
    assert!(env.emu.routes("acme.com").is_empty());
    assert!(env.emu.custom_domains(&env.account).is_empty());
}

fn meta(ns: &str, name: &str) -> kube::api::ObjectMeta {
    kube::api::ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() }
}
