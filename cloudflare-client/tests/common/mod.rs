//! A tiny scripted HTTP server (axum on 127.0.0.1:0) that records every request and answers
//! with whatever the test's responder returns.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cloudflare_client::{ApiToken, ClientConfig, ClientMetrics, CloudflareClient, RateLimit};
use serde_json::{Value, json};

pub const TOKEN: &str = "cf-test-token-9f8e7d6c5b4a";

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Parse a multipart body back into `(name, filename, content_type, bytes)`.
    pub async fn multipart_parts(&self) -> Vec<(String, Option<String>, Option<String>, Bytes)> {
        let ct = self.header("content-type").unwrap().to_string();
        let req =
            axum::http::Request::builder().header("content-type", ct).body(Body::from(self.body.clone())).unwrap();
        let mut mp = Multipart::from_request(req, &()).await.unwrap();
        let mut out = Vec::new();
        while let Some(field) = mp.next_field().await.unwrap() {
            let name = field.name().unwrap_or_default().to_string();
            let filename = field.file_name().map(str::to_string);
            let content_type = field.content_type().map(str::to_string);
            let data = field.bytes().await.unwrap();
            out.push((name, filename, content_type, data));
        }
        out
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(result: Value) -> Self {
        Self::json(200, json!({"success": true, "errors": [], "messages": [], "result": result}))
    }

    pub fn ok_paged(result: Value, info: Value) -> Self {
        Self::json(200, json!({"success": true, "errors": [], "messages": [], "result": result, "result_info": info}))
    }

    pub fn err(status: u16, code: u32, message: &str) -> Self {
        Self::json(
            status,
            json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null}),
        )
    }

    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn raw(status: u16, body: &str) -> Self {
        Self { status, headers: vec![], body: body.to_string(), delay: Duration::ZERO }
    }

    pub fn header(mut self, k: &'static str, v: &str) -> Self {
        self.headers.push((k, v.to_string()));
        self
    }

    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

type Responder = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    responder: Box<Responder>,
}

pub struct Fixture {
    pub base_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let url = reqwest::Url::parse(&format!("http://x{}", parts.uri)).unwrap();
    let rec = Recorded {
        method: parts.method.to_string(),
        path: url.path().to_string(),
        query: url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
        headers: parts.headers,
        body,
    };
    let n = {
        let mut reqs = shared.requests.lock().unwrap();
        reqs.push(rec.clone());
        reqs.len() - 1
    };
    let reply = (shared.responder)(&rec, n);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (k, v) in reply.headers {
        resp.headers_mut().insert(k, HeaderValue::from_str(&v).unwrap());
    }
    resp
}

impl Fixture {
    /// Serve under `/client/v4` like the real API.
    pub async fn start(responder: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared { requests: Mutex::new(Vec::new()), responder: Box::new(responder) });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fixture { base_url: format!("http://{addr}/client/v4"), shared, task }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Fast-retry config pointed at this fixture.
    pub fn config(&self) -> ClientConfig {
        ClientConfig {
            base_url: self.base_url.clone(),
            request_timeout: Duration::from_secs(5),
            retry_base_delay: Duration::from_millis(5),
            retry_max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(2),
            rate_limit: RateLimit::new(10_000, Duration::from_secs(1)),
            ..ClientConfig::default()
        }
    }

    pub fn client(&self) -> CloudflareClient {
        CloudflareClient::new(self.config(), ApiToken::new(TOKEN), None).unwrap()
    }

    pub fn client_with_metrics(&self, registry: &prometheus::Registry) -> (CloudflareClient, Arc<ClientMetrics>) {
        let m = ClientMetrics::register(registry).unwrap();
        (CloudflareClient::new(self.config(), ApiToken::new(TOKEN), Some(m.clone())).unwrap(), m)
    }
}

/// Render a registry in the Prometheus text format.
pub fn metrics_text(registry: &prometheus::Registry) -> String {
    use prometheus::Encoder;
    let mut out = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}
