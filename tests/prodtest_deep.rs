//! Deeper production tests against a local HTTP double: headers and JSON bodies, header values
//! from Secrets (resolved by the engine like every Secret), the auth flow, throughput,
//! serviceType defaults and regression against the previous release (through the engine).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use clodo_operator::crd::conditions as c;
use clodo_operator::crd::*;
use clodo_operator::engine::secret::SecretValue;
use clodo_operator::prodtest::{Target, run_suites};
use common::*;
use serde_json::json;

const ISSUED_TOKEN: &str = "tok-7d1f9a2c4b";
const CLIENT_KEY: &str = "client-key-5e8a";

#[derive(Clone, Default)]
struct Double {
    errors: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    /// Value the double expects in `x-api-key` on /echo.
    api_key: Arc<String>,
}

async fn handle(State(d): State<Double>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    match (method.as_str(), uri.path()) {
        ("GET", "/health") => "ok".into_response(),
        ("GET", "/health/db") => "db ok".into_response(),
        ("POST", "/login") => {
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let json_ct = header("content-type").starts_with("application/json");
            if header("x-client-key") == CLIENT_KEY && json_ct && body == json!({"user": "ada", "password": "pw"}) {
                axum::Json(json!({"data": {"token": ISSUED_TOKEN}})).into_response()
            } else {
                StatusCode::UNAUTHORIZED.into_response()
            }
        }
        ("GET", "/me") if header("authorization") == format!("Bearer {ISSUED_TOKEN}") => {
            axum::Json(json!({"id": 7})).into_response()
        }
        ("GET", "/me") => StatusCode::UNAUTHORIZED.into_response(),
        ("GET", "/echo") if header("x-api-key") == *d.api_key && header("x-plain") == "yes" => {
            axum::Json(json!({"ok": true})).into_response()
        }
        ("GET", "/echo") => StatusCode::FORBIDDEN.into_response(),
        ("GET", "/load") => {
            let n = d.hits.fetch_add(1, Ordering::SeqCst);
            if d.errors.load(Ordering::SeqCst) && n % 2 == 0 {
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            } else {
                "ok".into_response()
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start(api_key: &str) -> (String, Double) {
    let d = Double { api_key: Arc::new(api_key.to_string()), ..Default::default() };
    let app = Router::new().fallback(handle).with_state(d.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, d)
}

fn endpoint(name: &str, method: &str, path: &str, status: u16) -> EndpointTest {
    EndpointTest {
        name: name.into(),
        method: method.into(),
        path: path.into(),
        expect_status: status,
        json_path: None,
        headers: vec![],
        json_body: None,
    }
}

fn secret_header(name: &str, secret: &str, key: &str) -> TestHeader {
    TestHeader {
        name: name.into(),
        value: None,
        value_from: Some(ValueFrom { secret_key_ref: SecretKeyRef { name: secret.into(), key: key.into() } }),
    }
}

fn auth_flow() -> AuthFlowTest {
    let mut login = endpoint("login", "POST", "/login", 200);
    login.headers = vec![secret_header("x-client-key", "login", "key")];
    login.json_body = Some(json!({"user": "ada", "password": "pw"}));
    AuthFlowTest {
        token_request: login,
        token_json_path: "$.data.token".into(),
        header: "Authorization".into(),
        value_prefix: "Bearer ".into(),
        protected: EndpointTest { json_path: Some("$.id".into()), ..endpoint("me", "GET", "/me", 200) },
        expect_status_without_token: Some(401),
    }
}

fn target(url: &str) -> Target {
    Target {
        base_url: url.into(),
        host_header: None,
        headers: vec![],
        credential: None,
        secrets: BTreeMap::from([("login/key".to_string(), SecretValue::new(CLIENT_KEY))]),
    }
}

fn spec() -> ProductionTestsSpec {
    ProductionTestsSpec { timeout_seconds: 5, service_type_defaults: true, ..Default::default() }
}

fn find<'a>(run: &'a TestRun, suite: &str, name: &str) -> &'a TestResult {
    run.results
        .iter()
        .find(|r| r.suite == suite && r.name == name)
        .unwrap_or_else(|| panic!("{suite}/{name} missing: {run:#?}"))
}

#[tokio::test]
async fn auth_flow_obtains_a_token_and_uses_it_without_revealing_it() {
    let (url, _) = start("unused").await;
    let s = ProductionTestsSpec { auth_flow: Some(auth_flow()), ..spec() };
    let run = run_suites(&s, &target(&url)).await;
    assert_eq!((run.passed, run.failed), (3, 0), "{run:#?}");
    assert!(find(&run, "auth-flow", "me-without-token").passed);
    let text = serde_json::to_string(&run).unwrap();
    assert!(!text.contains(ISSUED_TOKEN) && !text.contains(CLIENT_KEY), "no token or secret in results: {text}");

    // A wrong JSON path: the token request passes, the flow stops with a clear reason.
    let mut f = auth_flow();
    f.token_json_path = "$.data.accessToken".into();
    let run = run_suites(&ProductionTestsSpec { auth_flow: Some(f), ..spec() }, &target(&url)).await;
    assert!(find(&run, "auth-flow", "login").message.contains("$.data.accessToken not found"), "{run:#?}");
    assert!(!find(&run, "auth-flow", "me").passed);

    // Without the client key Secret the login is refused: no token, no protected call.
    let mut t = target(&url);
    t.secrets.clear();
    let run = run_suites(&ProductionTestsSpec { auth_flow: Some(auth_flow()), ..spec() }, &t).await;
    let login = find(&run, "auth-flow", "login");
    assert!(!login.passed && login.message.contains("x-client-key: Secret value not resolved"), "{login:?}");
}

#[tokio::test]
async fn endpoints_send_literal_and_secret_headers() {
    let (url, _) = start(CLIENT_KEY).await;
    let mut e = endpoint("echo", "GET", "/echo", 200);
    e.json_path = Some("$.ok".into());
    e.headers = vec![
        secret_header("x-api-key", "login", "key"),
        TestHeader { name: "x-plain".into(), value: Some("yes".into()), value_from: None },
    ];
    let run = run_suites(&ProductionTestsSpec { endpoints: vec![e.clone()], ..spec() }, &target(&url)).await;
    assert!(find(&run, "endpoints", "echo").passed, "{run:#?}");
    e.headers.pop();
    let run = run_suites(&ProductionTestsSpec { endpoints: vec![e], ..spec() }, &target(&url)).await;
    assert!(find(&run, "endpoints", "echo").message.contains("expected status 200, got 403"), "{run:#?}");
}

#[tokio::test]
async fn throughput_measures_requests_per_second_and_errors() {
    let (url, d) = start("unused").await;
    let tp = |min: f64| ThroughputTest {
        path: "/load".into(),
        requests: 40,
        concurrency: 4,
        min_requests_per_second: min,
        max_error_rate: 0.0,
    };
    let run = run_suites(&ProductionTestsSpec { throughput: Some(tp(0.5)), ..spec() }, &target(&url)).await;
    let r = find(&run, "throughput", "/load");
    assert!(r.passed && r.message.contains("requests/s"), "{r:?}");
    println!("throughput against the local double: {:?} requests/s", run.requests_per_second);
    assert!(run.requests_per_second.is_some_and(|x| x > 0.0));
    assert_eq!(run.error_rate, Some(0.0));
    // An impossible target fails, and errors count.
    d.errors.store(true, Ordering::SeqCst);
    let run = run_suites(&ProductionTestsSpec { throughput: Some(tp(1e12)), ..spec() }, &target(&url)).await;
    let r = find(&run, "throughput", "/load");
    assert!(!r.passed && r.message.contains("under") && r.message.contains("error rate 0.500"), "{r:?}");
}

#[tokio::test]
async fn service_type_defaults_and_secret_headers_run_through_the_engine() {
    let (url, _) = start(STRONG).await;
    let mut w = World::new(97).await;
    // data-service with `productionTests: {}` gets health + database checks.
    w.manifests.services[0].spec.body.production_tests =
        Some(ProductionTestsSpec { base_url: Some(url.clone()), propagation_delay_seconds: 0, ..spec() });
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    assert_eq!(cond(&svc, c::PRODUCTION_TESTS_PASSED).status, "True", "{:#?}", svc.status);
    let run = svc.status.as_ref().unwrap().last_test_run.clone().unwrap();
    assert!(find(&run, "health", "/health").passed && find(&run, "database", "/health/db").passed, "{run:#?}");

    // A header from the service's Secret, resolved by the engine (acme-secrets/jwt).
    let mut e = endpoint("echo", "GET", "/echo", 200);
    e.headers = vec![
        secret_header("x-api-key", "acme-secrets", "jwt"),
        TestHeader { name: "x-plain".into(), value: Some("yes".into()), value_from: None },
    ];
    w.manifests.services[0].spec.body.production_tests = Some(ProductionTestsSpec {
        base_url: Some(url.clone()),
        propagation_delay_seconds: 0,
        endpoints: vec![e.clone()],
        ..spec()
    });
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    let run = svc.status.as_ref().unwrap().last_test_run.clone().unwrap();
    assert_eq!(run.results.len(), 1, "declared checks replace the type's defaults: {run:#?}");
    assert!(find(&run, "endpoints", "echo").passed, "{run:#?}");
    // A header Secret that does not exist is a configuration error naming the field.
    e.headers[0] = secret_header("x-api-key", "nope", "jwt");
    w.manifests.services[0].spec.body.production_tests.as_mut().unwrap().endpoints = vec![e];
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    let ready = cond(&svc, c::READY);
    assert!(ready.message.contains("spec.productionTests.endpoints[0].headers[0].valueFrom.secretKeyRef"), "{ready:?}");
}

#[tokio::test]
async fn a_release_with_a_worse_error_rate_fails_and_keeps_the_baseline() {
    let (url, d) = start("unused").await;
    let mut w = World::new(98).await;
    w.manifests.services[0].spec.body.production_tests = Some(ProductionTestsSpec {
        base_url: Some(url),
        propagation_delay_seconds: 0,
        health: Some(HealthTest { path: "/health".into(), expect_status: 200, body_contains: None }),
        performance: Some(PerformanceTest {
            path: "/load".into(),
            requests: 20,
            concurrency: 2,
            max_p95_ms: 60_000,
            max_error_rate: 1.0,
        }),
        regression: Some(RegressionTest { max_degradation_percent: 20, p95_slack_ms: 60_000, error_rate_slack: 0.01 }),
        ..spec()
    });
    let mut svc = w.svc();
    w.pass(&mut svc).await;
    assert_eq!(cond(&svc, c::READY).status, "True", "{:#?}", svc.status);
    let st = svc.status.clone().unwrap();
    let v1 = st.worker.as_ref().unwrap().version_id.clone().unwrap();
    let baseline = st.release_baseline.clone().expect("the first release is measured");
    assert_eq!((baseline.version_id.as_str(), baseline.error_rate), (v1.as_str(), 0.0));
    assert!(find(st.last_test_run.as_ref().unwrap(), "regression", "previous-release").message.contains("first"));

    // v2 fails half its requests: within its own performance limit, but a regression.
    w.set_config_map("data-code", &[("index.js", "export default { fetch() { return new Response('v2') } };")]);
    d.errors.store(true, Ordering::SeqCst);
    let mut svc2 = svc.clone();
    w.pass(&mut svc2).await;
    let st = svc2.status.clone().unwrap();
    let r = find(st.last_test_run.as_ref().unwrap(), "regression", "previous-release");
    assert!(!r.passed && r.message.contains("error rate 0.500 is more than 20% over"), "{r:?}");
    assert_eq!(st.phase, Some(Phase::RolledBack), "{st:#?}");
    assert_eq!(st.release_baseline.unwrap().version_id, v1, "a failed release does not become the baseline");
}
