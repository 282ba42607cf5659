//! [`CloudflareClient`] and the one `send` path: bearer auth, body encoding, client-side rate
//! limit, retries, timeouts, envelope decoding, metrics and the per-request span.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::{Instrument, debug, field, info_span, warn};

use crate::envelope::{self, Envelope};
use crate::error::{CloudflareError, TransportKind, from_reqwest};
use crate::fence::Fence;
use crate::metrics::ClientMetrics;
use crate::multipart::MultipartBody;
use crate::pagination::{ItemsResult, Page};
use crate::ratelimit::{Priority, RateLimit, RateLimiter, ResyncShare};
use crate::retry::{self, RetryMode, RetryPolicy};
use crate::secret::{ApiToken, TokenKey};

/// Default API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";
/// Environment variable that overrides the base URL (same name wrangler honours).
pub const BASE_URL_ENV: &str = "CLOUDFLARE_API_BASE_URL";

/// Client settings. `Default` matches Cloudflare's documented limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// API root, without a trailing slash (`https://api.cloudflare.com/client/v4`).
    pub base_url: String,
    /// Whole-request timeout (connect, send, read the body), per attempt.
    pub request_timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff cap; doubles per retry up to `retry_max_delay` (full jitter below the cap).
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
    /// Longest server `Retry-After` waited out in-process; longer ones fail with `RateLimited`.
    pub max_retry_after: Duration,
    /// Client-side budget per token.
    pub rate_limit: RateLimit,
    /// Part of that budget [`Priority::Resync`] requests may use (see [`RateLimiter`]).
    pub resync_share: ResyncShare,
    pub user_agent: String,
    /// Closed when this process may no longer change Cloudflare (lost leadership): every request
    /// then fails with [`CloudflareError::Fenced`] before it is sent.
    pub fence: Fence,
}

impl Default for ClientConfig {
    fn default() -> Self {
        let retry = RetryPolicy::default();
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retries: retry.max_retries,
            retry_base_delay: retry.base_delay,
            retry_max_delay: retry.max_delay,
            max_retry_after: retry.max_retry_after,
            rate_limit: RateLimit::default(),
            resync_share: ResyncShare::default(),
            user_agent: format!("clodo-operator/{}", env!("CARGO_PKG_VERSION")),
            fence: Fence::default(),
        }
    }
}

impl ClientConfig {
    /// Defaults, with `CLOUDFLARE_API_BASE_URL` honoured when set and non-empty.
    pub fn from_env() -> Self {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// [`Self::from_env`] with an injectable variable lookup.
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Self {
        let mut c = Self::default();
        if let Some(url) = get(BASE_URL_ENV).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
            c.base_url = url;
        }
        c
    }

    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            base_delay: self.retry_base_delay,
            max_delay: self.retry_max_delay,
            max_retry_after: self.max_retry_after,
        }
    }
}

/// Percent-encode one path segment (everything but RFC 3986 unreserved characters).
pub(crate) fn enc(segment: &str) -> String {
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Request body.
#[derive(Clone)]
pub(crate) enum Body {
    Empty,
    Json(Bytes),
    Multipart(MultipartBody),
    /// Raw bytes with their content type (KV values, R2 objects).
    Raw(Bytes, &'static str),
}

/// One API call, described once and re-sent as is on retry.
#[derive(Clone)]
pub(crate) struct Request {
    pub method: Method,
    /// Route template, used for metrics, spans and errors.
    pub endpoint: &'static str,
    /// Concrete path below the base URL, segments already encoded.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Body,
    pub headers: Vec<(&'static str, String)>,
    pub retry: RetryMode,
}

impl Request {
    pub fn new(method: Method, endpoint: &'static str, path: String) -> Self {
        Self {
            method,
            endpoint,
            path,
            query: Vec::new(),
            body: Body::Empty,
            headers: Vec::new(),
            retry: RetryMode::Full,
        }
    }

    pub fn get(endpoint: &'static str, path: String) -> Self {
        Self::new(Method::GET, endpoint, path)
    }

    pub fn post(endpoint: &'static str, path: String) -> Self {
        Self::new(Method::POST, endpoint, path)
    }

    pub fn put(endpoint: &'static str, path: String) -> Self {
        Self::new(Method::PUT, endpoint, path)
    }

    pub fn patch(endpoint: &'static str, path: String) -> Self {
        Self::new(Method::PATCH, endpoint, path)
    }

    pub fn delete(endpoint: &'static str, path: String) -> Self {
        Self::new(Method::DELETE, endpoint, path)
    }

    pub fn query(mut self, key: &'static str, value: impl ToString) -> Self {
        self.query.push((key, value.to_string()));
        self
    }

    pub fn query_opt(self, key: &'static str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.query(key, v),
            None => self,
        }
    }

    /// JSON body. Serialization failures name the endpoint, never the content.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, CloudflareError> {
        let bytes = serde_json::to_vec(body).map_err(|_| {
            CloudflareError::InvalidInput(format!("request body for {} could not be serialized", self.endpoint))
        })?;
        self.body = Body::Json(Bytes::from(bytes));
        Ok(self)
    }

    pub fn multipart(mut self, body: MultipartBody) -> Self {
        self.body = Body::Multipart(body);
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn header_opt(self, name: &'static str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.header(name, v),
            None => self,
        }
    }

    pub fn raw(mut self, body: Bytes, content_type: &'static str) -> Self {
        self.body = Body::Raw(body, content_type);
        self
    }

    pub fn retry_mode(mut self, mode: RetryMode) -> Self {
        self.retry = mode;
        self
    }
}

/// A raw HTTP answer.
struct RawResponse {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    auth: HeaderValue,
    key: TokenKey,
    limiter: RateLimiter,
    retry: RetryPolicy,
    metrics: Option<Arc<ClientMetrics>>,
    config: ClientConfig,
}

/// Typed Cloudflare API client for one token. Cheap to clone; clones share the connection pool
/// and the rate budget. Use [`crate::ClientPool`] to get one client per token. Every request of a
/// handle has the handle's [`Priority`] ([`Priority::Change`] unless [`Self::with_priority`]).
#[derive(Clone)]
pub struct CloudflareClient {
    inner: Arc<Inner>,
    priority: Priority,
}

impl fmt::Debug for CloudflareClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareClient")
            .field("base_url", &self.inner.base_url)
            .field("token", &"***")
            .field("rate_limit", &self.inner.config.rate_limit)
            .field("priority", &self.priority)
            .finish()
    }
}

impl CloudflareClient {
    /// Build a client. Fails on an unusable token (empty, control characters), a base URL that is
    /// not http(s), or a TLS setup error.
    pub fn new(
        config: ClientConfig,
        token: ApiToken,
        metrics: Option<Arc<ClientMetrics>>,
    ) -> Result<Self, CloudflareError> {
        if token.is_empty() {
            return Err(CloudflareError::InvalidToken("empty"));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| CloudflareError::InvalidToken("contains characters not allowed in an HTTP header"))?;
        auth.set_sensitive(true);

        let base_url = config.base_url.trim().trim_end_matches('/').to_string();
        let parsed =
            reqwest::Url::parse(&base_url).map_err(|e| CloudflareError::Setup(format!("invalid base URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
            return Err(CloudflareError::Setup("base URL must be http(s) without a query".into()));
        }

        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| CloudflareError::Setup(format!("building the HTTP client: {}", e.without_url())))?;
        let retry = config.retry_policy();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url,
                auth,
                key: token.key(),
                limiter: RateLimiter::new(config.rate_limit, config.resync_share, retry.max_retry_after),
                retry,
                metrics,
                config,
            }),
            priority: Priority::Change,
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Hash of the token this client uses.
    pub fn token_key(&self) -> TokenKey {
        self.inner.key
    }

    /// The client-side limiter (shared by clones).
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// A handle on the same client (same budget) whose requests have `priority`.
    pub fn with_priority(&self, priority: Priority) -> CloudflareClient {
        CloudflareClient { inner: self.inner.clone(), priority }
    }

    /// The priority of this handle's requests.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// Whether two handles share one client (and so one rate budget).
    pub fn same_client(&self, other: &CloudflareClient) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Send and decode `result` into `T`.
    pub(crate) async fn call<T: DeserializeOwned>(&self, req: Request) -> Result<T, CloudflareError> {
        let env = self.send(&req).await?;
        envelope::decode_result(env.result, &req.method, req.endpoint)
    }

    /// Send, ignoring `result`.
    pub(crate) async fn call_unit(&self, req: Request) -> Result<(), CloudflareError> {
        self.send(&req).await.map(|_| ())
    }

    /// One page of a page-array endpoint (`result` is an array).
    pub(crate) async fn page_array<T: DeserializeOwned>(&self, req: Request) -> Result<Page<T>, CloudflareError> {
        let env = self.send(&req).await?;
        let items: Option<Vec<T>> = envelope::decode_result(env.result, &req.method, req.endpoint)?;
        Ok(Page { items: items.unwrap_or_default(), result_info: env.result_info })
    }

    /// One page of a page-items endpoint (`result` is `{items: [...]}`).
    pub(crate) async fn page_items<T: DeserializeOwned>(&self, req: Request) -> Result<Page<T>, CloudflareError> {
        let env = self.send(&req).await?;
        let r: Option<ItemsResult<T>> = envelope::decode_result(env.result, &req.method, req.endpoint)?;
        Ok(Page { items: r.map(|r| r.items).unwrap_or_default(), result_info: env.result_info })
    }

    /// Send and decode the envelope.
    pub(crate) async fn send(&self, req: &Request) -> Result<Envelope, CloudflareError> {
        let (status, body) = self.send_raw(req).await?;
        envelope::decode(status, &body, &req.method, req.endpoint)
    }

    /// Send and return a successful answer's raw body (endpoints that answer without the
    /// envelope, such as KV value reads). Failures are decoded from the envelope as usual.
    pub(crate) async fn call_bytes(&self, req: Request) -> Result<Bytes, CloudflareError> {
        self.send_raw(&req).await.map(|(_, body)| body)
    }

    /// The one send path: rate limit, attempt, classify, retry. Returns status and body of a
    /// 2xx answer; anything else becomes an error.
    async fn send_raw(&self, req: &Request) -> Result<(u16, Bytes), CloudflareError> {
        let inner = &*self.inner;
        let method = req.method.as_str();
        let max_attempts = inner.retry.max_retries.saturating_add(1);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.check_fence(req)?;
            match inner.limiter.acquire(self.priority).await {
                Ok(waited) if !waited.is_zero() => {
                    if let Some(m) = &inner.metrics {
                        m.observe_wait(self.priority, waited);
                    }
                    debug!(
                        cf.endpoint = req.endpoint,
                        cf.method = method,
                        priority = self.priority.as_str(),
                        waited_ms = waited.as_millis() as u64,
                        "waited for rate budget"
                    );
                }
                Ok(_) => {}
                Err(remaining) => {
                    return Err(CloudflareError::RateLimited {
                        retry_after: Some(remaining),
                        method: req.method.clone(),
                        endpoint: req.endpoint,
                    });
                }
            }

            // The wait for budget may have outlasted our leadership.
            self.check_fence(req)?;
            let span = info_span!(
                "cloudflare_request",
                cf.endpoint = req.endpoint,
                cf.method = method,
                cf.status = field::Empty,
                attempt = attempt
            );
            let started = Instant::now();
            let outcome = self.attempt(req).instrument(span.clone()).await;
            let elapsed = started.elapsed();
            let can_retry = attempt < max_attempts;

            match outcome {
                Ok(raw) => {
                    span.record("cf.status", raw.status);
                    if let Some(m) = &inner.metrics {
                        m.observe_request(req.endpoint, method, &raw.status.to_string(), elapsed);
                    }
                    if (200..300).contains(&raw.status) {
                        debug!(
                            parent: &span,
                            elapsed_ms = elapsed.as_millis() as u64,
                            "cloudflare request succeeded"
                        );
                        return Ok((raw.status, raw.body));
                    }
                    let hint = retry::parse_retry_after(&raw.headers, SystemTime::now());
                    // A 429 with a hint pauses the whole token: the next reservation (of this or
                    // any other request on the same client) waits in the limiter, and that wait
                    // is recorded like any rate-limit wait.
                    let server_pause = raw.status == 429 && hint.is_some();
                    if server_pause && let Some(h) = hint {
                        inner.limiter.block_until(Instant::now() + h);
                    }
                    let retryable = retry::should_retry_header(&raw.headers)
                        .unwrap_or_else(|| retry::status_is_retryable(raw.status))
                        && (req.retry == RetryMode::Full || raw.status == 429);
                    let delay = hint.unwrap_or_else(|| inner.retry.backoff(attempt, &mut rand::rng()));
                    if retryable && can_retry && delay <= inner.retry.max_retry_after {
                        warn!(
                            parent: &span,
                            retry_in_ms = delay.as_millis() as u64,
                            "cloudflare request failed with a retryable status; retrying"
                        );
                        let sleep = if server_pause { Duration::ZERO } else { delay };
                        self.before_retry(req, sleep).await;
                        continue;
                    }
                    if raw.status == 429 {
                        return Err(CloudflareError::RateLimited {
                            retry_after: hint,
                            method: req.method.clone(),
                            endpoint: req.endpoint,
                        });
                    }
                    return Err(envelope::failure(raw.status, &raw.body, &req.method, req.endpoint));
                }
                Err(err) => {
                    let label = match &err {
                        CloudflareError::Timeout { .. } => "timeout",
                        _ => "transport_error",
                    };
                    span.record("cf.status", label);
                    if let Some(m) = &inner.metrics {
                        m.observe_request(req.endpoint, method, label, elapsed);
                    }
                    let retryable = match &err {
                        CloudflareError::Transport { kind: TransportKind::Connect, .. } => true,
                        CloudflareError::Timeout { .. } | CloudflareError::Transport { .. } => {
                            req.retry == RetryMode::Full
                        }
                        _ => false,
                    };
                    if retryable && can_retry {
                        let delay = inner.retry.backoff(attempt, &mut rand::rng());
                        warn!(
                            parent: &span,
                            retry_in_ms = delay.as_millis() as u64,
                            error = %err,
                            "cloudflare request failed; retrying"
                        );
                        self.before_retry(req, delay).await;
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }

    fn check_fence(&self, req: &Request) -> Result<(), CloudflareError> {
        if self.inner.config.fence.is_closed() {
            return Err(CloudflareError::Fenced { method: req.method.clone(), endpoint: req.endpoint });
        }
        Ok(())
    }

    async fn before_retry(&self, req: &Request, delay: Duration) {
        if let Some(m) = &self.inner.metrics {
            m.observe_retry(req.endpoint, req.method.as_str());
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP exchange, body fully read.
    async fn attempt(&self, req: &Request) -> Result<RawResponse, CloudflareError> {
        let inner = &*self.inner;
        let url = format!("{}{}", inner.base_url, req.path);
        let mut rb = inner
            .http
            .request(req.method.clone(), url)
            .header(AUTHORIZATION, inner.auth.clone())
            .header(ACCEPT, "application/json");
        if !req.query.is_empty() {
            rb = rb.query(&req.query);
        }
        rb = match &req.body {
            Body::Empty => rb,
            Body::Json(b) => rb.header(CONTENT_TYPE, "application/json").body(b.clone()),
            Body::Multipart(m) => rb.header(CONTENT_TYPE, m.content_type()).body(m.bytes().clone()),
            Body::Raw(b, ct) => rb.header(CONTENT_TYPE, *ct).body(b.clone()),
        };
        for (k, v) in &req.headers {
            rb = rb.header(*k, v.as_str());
        }
        let resp = rb.send().await.map_err(|e| from_reqwest(e, &req.method, req.endpoint))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| from_reqwest(e, &req.method, req.endpoint))?;
        Ok(RawResponse { status, headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_env() {
        let c = ClientConfig::default();
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.max_retries, 4);
        assert_eq!(c.rate_limit, RateLimit::new(1200, Duration::from_secs(300)));
        assert!(c.user_agent.starts_with("clodo-operator/"));
        let c =
            ClientConfig::from_env_with(|k| (k == BASE_URL_ENV).then(|| " http://127.0.0.1:8787/client/v4 ".into()));
        assert_eq!(c.base_url, "http://127.0.0.1:8787/client/v4");
        let c = ClientConfig::from_env_with(|_| Some(String::new()));
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        let c = ClientConfig::from_env_with(|_| None);
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(enc("my-worker_1.x~"), "my-worker_1.x~");
        assert_eq!(enc("a/b c"), "a%2Fb%20c");
        assert_eq!(enc("名前"), "%E5%90%8D%E5%89%8D");
        assert_eq!(enc("../x"), "..%2Fx");
    }

    #[test]
    fn construction_validates_token_and_url() {
        let ok = CloudflareClient::new(ClientConfig::default(), ApiToken::new("tok"), None).unwrap();
        let dbg = format!("{ok:?}");
        assert!(dbg.contains("***") && !dbg.contains("tok\""), "{dbg}");
        assert!(matches!(
            CloudflareClient::new(ClientConfig::default(), ApiToken::new("  "), None),
            Err(CloudflareError::InvalidToken("empty"))
        ));
        let bad = CloudflareClient::new(ClientConfig::default(), ApiToken::new("a\u{7}b"), None).unwrap_err();
        assert!(matches!(bad, CloudflareError::InvalidToken(_)));
        assert!(!bad.to_string().contains("a\u{7}b"));
        let e = CloudflareClient::new(ClientConfig::default().with_base_url("ftp://x"), ApiToken::new("t"), None)
            .unwrap_err();
        assert_eq!(e.reason(), "ClientSetup");
        let c = CloudflareClient::new(
            ClientConfig::default().with_base_url("http://h/client/v4/"),
            ApiToken::new("t"),
            None,
        )
        .unwrap();
        assert_eq!(c.inner.base_url, "http://h/client/v4");
        assert!(c.same_client(&c.clone()));
        assert!(!c.same_client(&ok));
        let resync = c.with_priority(Priority::Resync);
        assert!(resync.same_client(&c), "a priority handle shares the budget");
        assert_eq!(
            (c.priority(), resync.priority(), resync.clone().priority()),
            (Priority::Change, Priority::Resync, Priority::Resync)
        );
    }
}
