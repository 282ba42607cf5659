//! A local HTTP server playing the deployed Worker, whose behaviour a test switches at will.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;

/// How the double answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Healthy,
    /// Every request answers 500.
    Errors,
    /// /health answers 200 with the wrong body.
    WrongBody,
    /// Every request sleeps this long first.
    Slow(u64),
    /// The private endpoint answers 200 without credentials.
    AuthLeak,
}

#[derive(Clone)]
struct Shared {
    mode: Arc<Mutex<Mode>>,
    seen_overrides: Arc<Mutex<Vec<String>>>,
}

pub struct ServiceDouble {
    pub addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl ServiceDouble {
    pub async fn start() -> ServiceDouble {
        let shared = Shared { mode: Arc::new(Mutex::new(Mode::Healthy)), seen_overrides: Arc::default() };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ServiceDouble { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Values of the version-override header seen so far.
    pub fn overrides(&self) -> Vec<String> {
        self.shared.seen_overrides.lock().unwrap().clone()
    }
}

impl Drop for ServiceDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const SECRET_HEADER_VALUE: &str = "Bearer double-credential-7d1f3a9c2e5b8a4f6c0d1e2f3a4b5c6d";

async fn handle(State(s): State<Shared>, uri: Uri, headers: HeaderMap) -> impl IntoResponse {
    if let Some(v) = headers.get("cloudflare-workers-version-overrides").and_then(|v| v.to_str().ok()) {
        s.seen_overrides.lock().unwrap().push(v.to_string());
    }
    let mode = *s.mode.lock().unwrap();
    if let Mode::Slow(ms) = mode {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if mode == Mode::Errors {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom".to_string());
    }
    match uri.path() {
        "/health" if mode == Mode::WrongBody => (StatusCode::OK, "degraded".into()),
        "/health" => (StatusCode::OK, "ok".into()),
        "/health/db" => (StatusCode::OK, r#"{"ok":true}"#.into()),
        "/api/users" => (StatusCode::OK, r#"{"items":[{"id":1}]}"#.into()),
        "/api/private" => {
            let authorized = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(SECRET_HEADER_VALUE);
            if authorized || mode == Mode::AuthLeak {
                (StatusCode::OK, r#"{"secret":true}"#.into())
            } else {
                (StatusCode::UNAUTHORIZED, "no".into())
            }
        }
        _ => (StatusCode::OK, "hello".into()),
    }
}
