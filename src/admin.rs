//! The admin HTTP server: `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Readiness flags shared with the controllers and the leader elector.
#[derive(Debug, Default)]
pub struct Readiness {
    /// This replica leads (or election is off) and every watch has listed once.
    pub caches_synced: AtomicBool,
    /// Another replica holds the Lease; this one is a healthy standby.
    pub standing_by: AtomicBool,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.caches_synced.load(Ordering::Acquire) || self.standing_by.load(Ordering::Acquire)
    }
    pub fn set_synced(&self, v: bool) {
        self.caches_synced.store(v, Ordering::Release);
    }
    pub fn set_standing_by(&self, v: bool) {
        self.standing_by.store(v, Ordering::Release);
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

/// The router, for tests and for [`serve`].
pub fn router(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AdminState { metrics, readiness })
}

async fn metrics_handler(State(s): State<AdminState>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    if s.readiness.is_ready() { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready") }
}

/// Bind and serve until `shutdown` resolves. Returns the bound address through `bound`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(metrics, readiness);
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    Ok((bound, handle))
}
