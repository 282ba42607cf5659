//! Prometheus metrics of the client. Labels come from closed sets: `endpoint` is a route template
//! (`/accounts/:account/workers/scripts/:script`), never a concrete path.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

use crate::ratelimit::Priority;

/// Client metrics; share one instance (`Arc`) between all clients of a process.
#[derive(Clone, Debug)]
pub struct ClientMetrics {
    /// `clodo_cloudflare_requests_total{endpoint,method,status}`; `status` is the HTTP status or
    /// `timeout` / `transport_error` when no response arrived. One count per HTTP attempt.
    pub requests_total: IntCounterVec,
    /// `clodo_cloudflare_request_duration_seconds{endpoint,method}` per HTTP attempt.
    pub request_duration_seconds: HistogramVec,
    /// `clodo_cloudflare_ratelimit_wait_seconds{priority}`: time spent waiting for the
    /// client-side budget (or a server-imposed pause), by `change` / `resync`. Observed only when
    /// a request actually waited.
    pub ratelimit_wait_seconds: HistogramVec,
    /// `clodo_cloudflare_429_total`: HTTP 429 responses received.
    pub too_many_requests_total: IntCounter,
    /// `clodo_cloudflare_retries_total{endpoint,method}`: attempts repeated after a retryable failure.
    pub retries_total: IntCounterVec,
}

const DURATION_BUCKETS: &[f64] = &[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const WAIT_BUCKETS: &[f64] = &[0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0];

impl ClientMetrics {
    /// Create the metrics without registering them.
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            requests_total: IntCounterVec::new(
                Opts::new(
                    "clodo_cloudflare_requests_total",
                    "Cloudflare API requests by endpoint template, method and status",
                ),
                &["endpoint", "method", "status"],
            )?,
            request_duration_seconds: HistogramVec::new(
                HistogramOpts::new("clodo_cloudflare_request_duration_seconds", "Cloudflare API request latency")
                    .buckets(DURATION_BUCKETS.to_vec()),
                &["endpoint", "method"],
            )?,
            ratelimit_wait_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "clodo_cloudflare_ratelimit_wait_seconds",
                    "Time requests waited for the client-side Cloudflare rate limit, by priority",
                )
                .buckets(WAIT_BUCKETS.to_vec()),
                &["priority"],
            )?,
            too_many_requests_total: IntCounter::new(
                "clodo_cloudflare_429_total",
                "HTTP 429 responses from Cloudflare",
            )?,
            retries_total: IntCounterVec::new(
                Opts::new(
                    "clodo_cloudflare_retries_total",
                    "Cloudflare API attempts retried after a retryable failure",
                ),
                &["endpoint", "method"],
            )?,
        })
    }

    /// Create the metrics and register them in `registry`.
    pub fn register(registry: &Registry) -> Result<Arc<Self>, prometheus::Error> {
        let m = Self::new()?;
        registry.register(Box::new(m.requests_total.clone()))?;
        registry.register(Box::new(m.request_duration_seconds.clone()))?;
        registry.register(Box::new(m.ratelimit_wait_seconds.clone()))?;
        registry.register(Box::new(m.too_many_requests_total.clone()))?;
        registry.register(Box::new(m.retries_total.clone()))?;
        Ok(Arc::new(m))
    }

    pub(crate) fn observe_request(&self, endpoint: &str, method: &str, status: &str, elapsed: Duration) {
        self.requests_total.with_label_values(&[endpoint, method, status]).inc();
        self.request_duration_seconds.with_label_values(&[endpoint, method]).observe(elapsed.as_secs_f64());
        if status == "429" {
            self.too_many_requests_total.inc();
        }
    }

    pub(crate) fn observe_wait(&self, priority: Priority, waited: Duration) {
        self.ratelimit_wait_seconds.with_label_values(&[priority.as_str()]).observe(waited.as_secs_f64());
    }

    pub(crate) fn observe_retry(&self, endpoint: &str, method: &str) {
        self.retries_total.with_label_values(&[endpoint, method]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Encoder;

    #[test]
    fn registers_and_exposes_expected_series() {
        let reg = Registry::new();
        let m = ClientMetrics::register(&reg).unwrap();
        m.observe_request("/zones/:zone", "GET", "200", Duration::from_millis(20));
        m.observe_request("/zones/:zone", "GET", "429", Duration::from_millis(5));
        m.observe_wait(Priority::Resync, Duration::from_secs(2));
        m.observe_retry("/zones/:zone", "GET");
        let mut out = Vec::new();
        prometheus::TextEncoder::new().encode(&reg.gather(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(r#"clodo_cloudflare_requests_total{endpoint="/zones/:zone",method="GET",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"clodo_cloudflare_requests_total{endpoint="/zones/:zone",method="GET",status="429"} 1"#)
        );
        assert!(text.contains("clodo_cloudflare_429_total 1"));
        assert!(
            text.contains(r#"clodo_cloudflare_request_duration_seconds_count{endpoint="/zones/:zone",method="GET"} 2"#)
        );
        assert!(text.contains(r#"clodo_cloudflare_ratelimit_wait_seconds_sum{priority="resync"} 2"#), "{text}");
        assert!(text.contains(r#"clodo_cloudflare_retries_total{endpoint="/zones/:zone",method="GET"} 1"#));
        // registering twice in one registry is refused
        assert!(ClientMetrics::register(&reg).is_err());
    }
}
