//! Helpers for the code-source suites: a fetcher over a temporary cache, passes with it, an HTTP
//! file server that counts requests, and gzipped tarballs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use clodo_operator::cli::manifests::ManifestSource;
use clodo_operator::crd::CloudflareService;
use clodo_operator::engine::{NoProgress, PassResult};
use clodo_operator::source::{Fetcher, Retry, SourceArgs};

use crate::common::World;

pub mod registry;

/// A fetcher with a short retry policy over `dir`.
pub fn fetcher(dir: &std::path::Path, max_compressed: u64, max_uncompressed: u64) -> Arc<Fetcher> {
    let args = SourceArgs {
        artifact_cache_dir: Some(dir.to_path_buf()),
        artifact_max_compressed_bytes: max_compressed,
        artifact_max_uncompressed_bytes: max_uncompressed,
        ..Default::default()
    };
    Arc::new(Fetcher::new(&args).unwrap().with_retry(Retry { attempts: 3, first_delay: Duration::from_millis(20) }))
}

pub fn default_fetcher(dir: &std::path::Path) -> Arc<Fetcher> {
    let d = SourceArgs::default();
    fetcher(dir, d.artifact_max_compressed_bytes, d.artifact_max_uncompressed_bytes)
}

/// One pass of `svc` with the world's manifests and this fetcher; the status is stored on `svc`.
pub async fn pass_with(w: &World, fetcher: &Arc<Fetcher>, svc: &mut CloudflareService) -> PassResult {
    let src = ManifestSource::new(w.manifests.clone(), None).unwrap().with_fetcher(Some(fetcher.clone()));
    let r = w.engine.reconcile(svc, &src, &NoProgress).await;
    svc.status = Some(r.status.clone());
    r
}

/// Condition (status, reason, message) of a type.
pub fn condition(svc: &CloudflareService, t: &str) -> (String, String, String) {
    let c = crate::common::cond(svc, t);
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// A gzipped tarball of the files.
pub fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (name, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *content).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    clodo_operator::source::sha256_hex(bytes)
}

/// Pseudo-random (incompressible) bytes, deterministic per seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[derive(Default)]
struct Files {
    files: std::sync::Mutex<BTreeMap<String, Vec<u8>>>,
    requests: AtomicUsize,
    down: AtomicBool,
}

/// A static file server on 127.0.0.1 counting its requests; `set_down` makes it answer 503.
pub struct FileServer {
    state: Arc<Files>,
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl FileServer {
    pub async fn start() -> FileServer {
        let state = Arc::new(Files::default());
        let app = axum::Router::new().route("/{*path}", axum::routing::get(serve)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FileServer { state, base, task }
    }

    pub fn put(&self, path: &str, content: Vec<u8>) -> String {
        self.state.files.lock().unwrap().insert(path.to_string(), content);
        format!("{}/{path}", self.base)
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(State(s): State<Arc<Files>>, Path(path): Path<String>) -> axum::response::Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    if s.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match s.files.lock().unwrap().get(&path) {
        Some(b) => b.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
