//! Production tests (DESIGN §5): checks run with reqwest against the live service after every
//! deploy and on every resync. Failures are results, never panics: DNS errors, refused
//! connections and timeouts become failed checks with a clear message.

pub mod defaults;
pub mod flow;
pub mod headers;
pub mod jsonpath;
pub mod regression;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{Client, Method, StatusCode};

use crate::crd::{AuthTest, EndpointTest, HealthTest, ProductionTestsSpec, TestResult, TestRun};
use crate::engine::secret::SecretValue;

/// Where and how to run the tests.
#[derive(Clone)]
pub struct Target {
    pub base_url: String,
    /// Host header to send (when the base URL is a local edge listener standing in for DNS).
    pub host_header: Option<String>,
    /// Extra headers on every request (e.g. the version-override header during a canary smoke test).
    pub headers: Vec<(String, String)>,
    pub credential: Option<crate::engine::secret::SecretValue>,
    /// Secret values for test headers, by [`headers::secret_key`].
    pub secrets: BTreeMap<String, SecretValue>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("base_url", &self.base_url).field("host_header", &self.host_header).finish()
    }
}

pub(crate) fn percentile(sorted_ms: &[u64], p: f64) -> u64 {
    if sorted_ms.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted_ms.len() as f64).ceil() as usize;
    sorted_ms[rank.clamp(1, sorted_ms.len()) - 1]
}

pub(crate) struct Probe {
    status: Option<StatusCode>,
    body: String,
    elapsed: Duration,
    error: Option<String>,
}

async fn probe(client: &Client, t: &Target, method: Method, path: &str, auth: Option<(&str, &str)>) -> Probe {
    let extra: Vec<(String, String)> = auth.map(|(k, v)| (k.to_string(), v.to_string())).into_iter().collect();
    probe_with(client, t, method, path, &extra, None).await
}

/// One request with extra headers and an optional JSON body.
pub(crate) async fn probe_with(
    client: &Client,
    t: &Target,
    method: Method,
    path: &str,
    extra: &[(String, String)],
    json: Option<&serde_json::Value>,
) -> Probe {
    let url = format!(
        "{}{}",
        t.base_url.trim_end_matches('/'),
        if path.starts_with('/') { path.to_string() } else { format!("/{path}") }
    );
    let mut req = client.request(method, &url);
    if let Some(h) = &t.host_header {
        req = req.header(reqwest::header::HOST, h);
    }
    for (k, v) in &t.headers {
        req = req.header(k, v);
    }
    for (k, v) in extra {
        req = req.header(k, v);
    }
    if let Some(body) = json {
        req = req.json(body);
    }
    let start = Instant::now();
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            Probe { status: Some(status), body, elapsed: start.elapsed(), error: None }
        }
        Err(e) => {
            Probe { status: None, body: String::new(), elapsed: start.elapsed(), error: Some(describe_error(&e)) }
        }
    }
}

fn describe_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        let mut src: Option<&dyn std::error::Error> = Some(e);
        let mut detail = String::new();
        while let Some(s) = src {
            detail = s.to_string();
            src = s.source();
        }
        if detail.to_ascii_lowercase().contains("dns") || detail.contains("failed to lookup") {
            format!("DNS lookup failed ({detail})")
        } else {
            format!("connection failed ({detail})")
        }
    } else {
        format!("request failed ({e})")
    }
}

pub(crate) fn result(suite: &str, name: &str, passed: bool, message: String, elapsed: Duration) -> TestResult {
    TestResult { suite: suite.into(), name: name.into(), passed, message, duration_ms: elapsed.as_millis() as u64 }
}

pub(crate) fn expect_status(suite: &str, name: &str, p: &Probe, want: u16) -> TestResult {
    match (&p.error, p.status) {
        (Some(e), _) => result(suite, name, false, e.clone(), p.elapsed),
        (None, Some(s)) if s.as_u16() == want => result(suite, name, true, format!("status {want}"), p.elapsed),
        (None, Some(s)) => result(suite, name, false, format!("expected status {want}, got {}", s.as_u16()), p.elapsed),
        (None, None) => result(suite, name, false, "no response".into(), p.elapsed),
    }
}

/// Run every declared check. Never fails: problems are failed results.
pub async fn run_suites(spec: &ProductionTestsSpec, t: &Target) -> TestRun {
    let timeout = Duration::from_secs(u64::from(spec.timeout_seconds.max(1)));
    let client = match Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            let r = result("setup", "http-client", false, format!("cannot build HTTP client: {e}"), Duration::ZERO);
            return TestRun::from_results(vec![r], Load::default());
        }
    };
    let mut results = Vec::new();
    if let Some(h) = &spec.health {
        results.push(health(&client, t, h).await);
    }
    if let Some(a) = &spec.auth {
        results.extend(auth(&client, t, a).await);
    }
    if let Some(dbt) = &spec.database {
        let p = probe(&client, t, Method::GET, &dbt.path, None).await;
        results.push(expect_status("database", &dbt.path, &p, dbt.expect_status));
    }
    for e in &spec.endpoints {
        results.push(check_endpoint(&client, t, "endpoints", e, &[]).await.0);
    }
    if let Some(f) = &spec.auth_flow {
        results.extend(flow::auth_flow(&client, t, f).await);
    }
    let mut load = Load::default();
    if let Some(perf) = &spec.performance {
        let (r, p, e) = performance(&client, t, perf).await;
        (load.p95_ms, load.error_rate) = (Some(p), Some(e));
        results.push(r);
    }
    if let Some(tp) = &spec.throughput {
        let m = flow::throughput(&client, t, tp).await;
        load.p95_ms = load.p95_ms.or(Some(m.p95_ms));
        load.error_rate = load.error_rate.or(Some(m.error_rate));
        load.requests_per_second = Some(m.requests_per_second);
        results.push(m.result);
    }
    TestRun::from_results(results, load)
}

/// Load figures of a run (performance and throughput suites).
#[derive(Default)]
struct Load {
    p95_ms: Option<u64>,
    error_rate: Option<f64>,
    requests_per_second: Option<f64>,
}

impl TestRun {
    fn from_results(results: Vec<TestResult>, load: Load) -> TestRun {
        let passed = results.iter().filter(|r| r.passed).count() as u32;
        let failed = results.len() as u32 - passed;
        TestRun {
            started_at: None,
            passed,
            failed,
            p95_ms: load.p95_ms,
            error_rate: load.error_rate,
            requests_per_second: load.requests_per_second,
            results,
        }
    }
}

/// The health check: status, then an optional body substring.
async fn health(client: &Client, t: &Target, h: &HealthTest) -> TestResult {
    let p = probe(client, t, Method::GET, &h.path, None).await;
    let mut r = expect_status("health", &h.path, &p, h.expect_status);
    if r.passed
        && let Some(needle) = &h.body_contains
        && !p.body.contains(needle.as_str())
    {
        r.passed = false;
        r.message = format!("body does not contain {needle:?}");
    }
    r
}

/// The auth checks: refused without credentials, accepted with them (when declared).
async fn auth(client: &Client, t: &Target, a: &AuthTest) -> Vec<TestResult> {
    let p = probe(client, t, Method::GET, &a.path, None).await;
    let mut r = expect_status("auth", "without-credentials", &p, a.expect_status_without_credentials);
    if !r.passed && p.status.is_some_and(|s| s.is_success()) {
        r.message = format!("{} (the endpoint answers without credentials)", r.message);
    }
    let mut results = vec![r];
    if let Some(w) = &a.with_credentials {
        results.push(match &t.credential {
            Some(cred) => {
                let p = probe(client, t, Method::GET, &a.path, Some((w.header.as_str(), cred.expose()))).await;
                expect_status("auth", "with-credentials", &p, w.expect_status)
            }
            None => result("auth", "with-credentials", false, "credential Secret not resolved".into(), Duration::ZERO),
        });
    }
    results
}

/// One endpoint check: headers (Secrets resolved), JSON body, status, optional JSON path.
/// Returns the result and the response body (for the auth flow).
pub(crate) async fn check_endpoint(
    client: &Client,
    t: &Target,
    suite: &str,
    e: &EndpointTest,
    extra: &[(String, String)],
) -> (TestResult, String) {
    let mut hdrs = match headers::resolve(&e.headers, t) {
        Ok(h) => h,
        Err(msg) => return (result(suite, &e.name, false, msg, Duration::ZERO), String::new()),
    };
    hdrs.extend(extra.iter().cloned());
    let method = Method::from_bytes(e.method.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET);
    let p = probe_with(client, t, method, &e.path, &hdrs, e.json_body.as_ref()).await;
    let mut r = expect_status(suite, &e.name, &p, e.expect_status);
    if r.passed
        && let Some(path) = &e.json_path
    {
        match serde_json::from_str::<serde_json::Value>(&p.body) {
            Err(_) => {
                r.passed = false;
                r.message = format!("body is not JSON, cannot check {path}");
            }
            Ok(doc) => match jsonpath::lookup(&doc, path) {
                Ok(Some(_)) => r.message = format!("{}; {path} present", r.message),
                Ok(None) => {
                    r.passed = false;
                    r.message = format!("{path} not found in the response");
                }
                Err(err) => {
                    r.passed = false;
                    r.message = err.to_string();
                }
            },
        }
    }
    (r, p.body)
}

async fn performance(client: &Client, t: &Target, perf: &crate::crd::PerformanceTest) -> (TestResult, u64, f64) {
    let start = Instant::now();
    let client = Arc::new(client.clone());
    let probes: Vec<Probe> = futures::stream::iter(0..perf.requests)
        .map(|_| {
            let client = client.clone();
            let t = t.clone();
            let path = perf.path.clone();
            async move { probe(&client, &t, Method::GET, &path, None).await }
        })
        .buffer_unordered(perf.concurrency.max(1) as usize)
        .collect()
        .await;
    let mut ms: Vec<u64> = probes.iter().map(|p| p.elapsed.as_millis() as u64).collect();
    ms.sort_unstable();
    let errors = probes.iter().filter(|p| p.error.is_some() || p.status.is_none_or(|s| s.is_server_error())).count();
    let error_rate = errors as f64 / probes.len().max(1) as f64;
    let (p50, p95, p99) = (percentile(&ms, 50.0), percentile(&ms, 95.0), percentile(&ms, 99.0));
    let mut problems = Vec::new();
    if p95 > perf.max_p95_ms {
        problems.push(format!("p95 {p95} ms over {} ms", perf.max_p95_ms));
    }
    if error_rate > perf.max_error_rate {
        problems.push(format!("error rate {:.3} over {:.3}", error_rate, perf.max_error_rate));
    }
    let summary = format!(
        "{} requests at concurrency {}: p50 {p50} ms, p95 {p95} ms, p99 {p99} ms, error rate {error_rate:.3}",
        perf.requests, perf.concurrency
    );
    let passed = problems.is_empty();
    let message = if passed { summary } else { format!("{}; {summary}", problems.join("; ")) };
    (result("performance", &perf.path, passed, message, start.elapsed()), p95, error_rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[7], 95.0), 7);
        assert_eq!(percentile(&[], 95.0), 0);
    }
}
