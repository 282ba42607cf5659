//! Production test suites against a local server playing the deployed service.

mod common;

use clodo_operator::crd::*;
use clodo_operator::engine::secret::SecretValue;
use clodo_operator::prodtest::{Target, run_suites};
use common::service_double::{Mode, SECRET_HEADER_VALUE, ServiceDouble};

fn spec() -> ProductionTestsSpec {
    ProductionTestsSpec {
        base_url: None,
        propagation_delay_seconds: 0,
        timeout_seconds: 1,
        health: Some(HealthTest { path: "/health".into(), expect_status: 200, body_contains: Some("ok".into()) }),
        auth: Some(AuthTest {
            path: "/api/private".into(),
            expect_status_without_credentials: 401,
            with_credentials: Some(CredentialTest {
                header: "Authorization".into(),
                value_from: ValueFrom { secret_key_ref: SecretKeyRef { name: "s".into(), key: "k".into() } },
                expect_status: 200,
            }),
        }),
        database: Some(StatusTest { path: "/health/db".into(), expect_status: 200 }),
        endpoints: vec![
            EndpointTest {
                name: "list-users".into(),
                method: "GET".into(),
                path: "/api/users".into(),
                expect_status: 200,
                json_path: Some("$.items[0].id".into()),
                headers: vec![],
                json_body: None,
            },
            EndpointTest {
                name: "missing-field".into(),
                method: "GET".into(),
                path: "/api/users".into(),
                expect_status: 200,
                json_path: Some("$.total".into()),
                headers: vec![],
                json_body: None,
            },
        ],
        performance: Some(PerformanceTest {
            path: "/".into(),
            requests: 20,
            concurrency: 4,
            max_p95_ms: 500,
            max_error_rate: 0.0,
        }),
        ..Default::default()
    }
}

fn target(d: &ServiceDouble) -> Target {
    Target {
        base_url: d.url(),
        host_header: None,
        headers: vec![],
        credential: Some(SecretValue::new(SECRET_HEADER_VALUE)),
        secrets: Default::default(),
    }
}

fn result<'a>(run: &'a TestRun, suite: &str, name: &str) -> &'a TestResult {
    run.results
        .iter()
        .find(|r| r.suite == suite && r.name == name)
        .unwrap_or_else(|| panic!("{suite}/{name} missing: {run:#?}"))
}

#[tokio::test]
async fn healthy_service_passes_every_suite_but_the_missing_json_path() {
    let d = ServiceDouble::start().await;
    let run = run_suites(&spec(), &target(&d)).await;
    assert_eq!(run.failed, 1, "{run:#?}");
    assert!(result(&run, "health", "/health").passed);
    assert!(result(&run, "auth", "without-credentials").passed);
    assert!(result(&run, "auth", "with-credentials").passed);
    assert!(result(&run, "database", "/health/db").passed);
    assert!(result(&run, "endpoints", "list-users").passed);
    let missing = result(&run, "endpoints", "missing-field");
    assert!(!missing.passed && missing.message.contains("$.total not found"), "{missing:?}");
    let perf = result(&run, "performance", "/");
    assert!(perf.passed && perf.message.contains("p95"), "{perf:?}");
    assert!(run.p95_ms.is_some());
    let text = serde_json::to_string(&run).unwrap();
    assert!(!text.contains(SECRET_HEADER_VALUE), "credentials never land in results");
}

#[tokio::test]
async fn wrong_body_500s_and_auth_leaks_fail_with_clear_messages() {
    let d = ServiceDouble::start().await;
    d.set(Mode::WrongBody);
    let run = run_suites(&spec(), &target(&d)).await;
    let h = result(&run, "health", "/health");
    assert!(!h.passed && h.message.contains("does not contain \"ok\""), "{h:?}");

    d.set(Mode::Errors);
    let run = run_suites(&spec(), &target(&d)).await;
    let h = result(&run, "health", "/health");
    assert!(!h.passed && h.message.contains("expected status 200, got 500"), "{h:?}");
    let perf = result(&run, "performance", "/");
    assert!(!perf.passed && perf.message.contains("error rate 1.000 over 0.000"), "{perf:?}");

    d.set(Mode::AuthLeak);
    let run = run_suites(&spec(), &target(&d)).await;
    let a = result(&run, "auth", "without-credentials");
    assert!(!a.passed && a.message.contains("answers without credentials"), "{a:?}");
}

#[tokio::test]
async fn slow_service_times_out_and_misses_the_p95_threshold() {
    let d = ServiceDouble::start().await;
    d.set(Mode::Slow(1500));
    let mut s = spec();
    s.performance = None;
    let run = run_suites(&s, &target(&d)).await;
    let h = result(&run, "health", "/health");
    assert!(!h.passed && h.message == "timed out", "{h:?}");

    d.set(Mode::Slow(60));
    let mut s = spec();
    s.performance =
        Some(PerformanceTest { path: "/".into(), requests: 10, concurrency: 5, max_p95_ms: 20, max_error_rate: 0.0 });
    let run = run_suites(&s, &target(&d)).await;
    let perf = result(&run, "performance", "/");
    assert!(!perf.passed && perf.message.contains("over 20 ms"), "{perf:?}");
}

#[tokio::test]
async fn unreachable_hosts_are_failed_checks_not_crashes() {
    let mut s = spec();
    s.performance = None;
    let t = Target {
        base_url: "http://clodo-no-such-host.invalid".into(),
        host_header: None,
        headers: vec![],
        credential: None,
        secrets: Default::default(),
    };
    let run = run_suites(&s, &t).await;
    assert_eq!(run.passed, 0);
    let h = result(&run, "health", "/health");
    assert!(h.message.contains("DNS lookup failed") || h.message.contains("connection failed"), "{h:?}");
    // A refused connection on loopback.
    let t = Target {
        base_url: "http://127.0.0.1:9".into(),
        host_header: None,
        headers: vec![],
        credential: None,
        secrets: Default::default(),
    };
    let run = run_suites(&s, &t).await;
    assert!(result(&run, "health", "/health").message.contains("connection failed"));
}
