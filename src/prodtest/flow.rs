//! The auth flow (token from one endpoint, used on the next) and the throughput check.
//! The token is only ever put in a request header: never in a result message or a log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{Client, Method};

use super::{Target, check_endpoint, expect_status, jsonpath, percentile, probe, result};
use crate::crd::{AuthFlowTest, TestResult, ThroughputTest};

const AUTH: &str = "auth-flow";

/// Token request, then (optionally) the protected request without the token, then with it.
pub async fn auth_flow(client: &Client, t: &Target, f: &AuthFlowTest) -> Vec<TestResult> {
    let mut out = Vec::new();
    let (mut r, body) = check_endpoint(client, t, AUTH, &f.token_request, &[]).await;
    let token = if r.passed { extract_token(&body, &f.token_json_path) } else { Err(String::new()) };
    let token = match token {
        Ok(tok) => {
            r.message = format!("{}; token read from {}", r.message, f.token_json_path);
            out.push(r);
            tok
        }
        Err(why) => {
            if !why.is_empty() {
                r.passed = false;
                r.message = why;
            }
            out.push(r);
            out.push(result(AUTH, &f.protected.name, false, "skipped: no token was obtained".into(), Duration::ZERO));
            return out;
        }
    };
    if let Some(want) = f.expect_status_without_token {
        let hdrs = super::headers::resolve(&f.protected.headers, t).unwrap_or_default();
        let method = Method::from_bytes(f.protected.method.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET);
        let p = super::probe_with(client, t, method, &f.protected.path, &hdrs, f.protected.json_body.as_ref()).await;
        out.push(expect_status(AUTH, &format!("{}-without-token", f.protected.name), &p, want));
    }
    let header = (f.header.clone(), format!("{}{token}", f.value_prefix));
    out.push(check_endpoint(client, t, AUTH, &f.protected, std::slice::from_ref(&header)).await.0);
    out
}

/// The token at `path` in a JSON body (strings and numbers), or why not (never the value).
fn extract_token(body: &str, path: &str) -> Result<String, String> {
    let doc: serde_json::Value =
        serde_json::from_str(body).map_err(|_| format!("token response is not JSON, cannot read {path}"))?;
    match jsonpath::lookup(&doc, path) {
        Ok(Some(serde_json::Value::String(s))) if !s.is_empty() => Ok(s.clone()),
        Ok(Some(serde_json::Value::Number(n))) => Ok(n.to_string()),
        Ok(Some(_)) => Err(format!("{path} in the token response is not a non-empty string")),
        Ok(None) => Err(format!("{path} not found in the token response")),
        Err(e) => Err(e.to_string()),
    }
}

/// What a throughput run measured.
pub struct Throughput {
    pub result: TestResult,
    pub requests_per_second: f64,
    pub error_rate: f64,
    pub p95_ms: u64,
}

/// `requests` GETs at `concurrency`; passes at or above `minRequestsPerSecond` and within
/// `maxErrorRate` (5xx, connection errors and timeouts count as errors).
pub async fn throughput(client: &Client, t: &Target, tp: &ThroughputTest) -> Throughput {
    let start = Instant::now();
    let client = Arc::new(client.clone());
    let probes: Vec<super::Probe> = futures::stream::iter(0..tp.requests)
        .map(|_| {
            let (client, t, path) = (client.clone(), t.clone(), tp.path.clone());
            async move { probe(&client, &t, Method::GET, &path, None).await }
        })
        .buffer_unordered(tp.concurrency.max(1) as usize)
        .collect()
        .await;
    let elapsed = start.elapsed();
    let mut ms: Vec<u64> = probes.iter().map(|p| p.elapsed.as_millis() as u64).collect();
    ms.sort_unstable();
    let errors = probes.iter().filter(|p| p.error.is_some() || p.status.is_none_or(|s| s.is_server_error())).count();
    let error_rate = errors as f64 / probes.len().max(1) as f64;
    let rps = probes.len() as f64 / elapsed.as_secs_f64().max(1e-6);
    let p95 = percentile(&ms, 95.0);
    let mut problems = Vec::new();
    if rps < tp.min_requests_per_second {
        problems.push(format!("{rps:.1} requests/s under {:.1}", tp.min_requests_per_second));
    }
    if error_rate > tp.max_error_rate {
        problems.push(format!("error rate {error_rate:.3} over {:.3}", tp.max_error_rate));
    }
    let summary = format!(
        "{} requests at concurrency {}: {rps:.1} requests/s, p95 {p95} ms, error rate {error_rate:.3}",
        tp.requests, tp.concurrency
    );
    let passed = problems.is_empty();
    let message = if passed { summary } else { format!("{}; {summary}", problems.join("; ")) };
    Throughput {
        result: result("throughput", &tp.path, passed, message, elapsed),
        requests_per_second: rps,
        error_rate,
        p95_ms: p95,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_but_never_echoed() {
        assert_eq!(extract_token(r#"{"data":{"token":"s3cr3t"}}"#, "$.data.token").unwrap(), "s3cr3t");
        assert_eq!(extract_token(r#"{"id":42}"#, "$.id").unwrap(), "42");
        let err = extract_token(r#"{"token":""}"#, "$.token").unwrap_err();
        assert!(err.contains("$.token"));
        let err = extract_token("not json s3cr3t", "$.token").unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}
