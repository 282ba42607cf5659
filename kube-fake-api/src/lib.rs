//! An in-process fake Kubernetes API server for controller tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_fake_api::Error> {
//! let api = kube_fake_api::FakeApiServer::start().await?;
//! let client: kube::Client = api.client();
//! // ... drive controllers and kube::Api<T> against it ...
//! api.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Built-in resources: core/v1 namespaces, secrets, configmaps, events,
//! services and serviceaccounts, events.k8s.io/v1 events (the same store as
//! core/v1 events), coordination.k8s.io/v1 leases, apps/v1 deployments, RBAC
//! roles and bindings, policy/v1 poddisruptionbudgets and
//! apiextensions.k8s.io/v1 customresourcedefinitions. Custom resources are
//! served once their CRD is created through the API. OpenAPI v2/v3 documents
//! and Table output make it usable by kubectl and helm too (see the
//! `kube-fake-api` binary). See the README for what is implemented and how it
//! differs from a real API server.

mod admission;
mod crd;
mod delete;
mod discovery;
mod events;
mod gc;
mod handlers;
mod kinds;
mod managed;
mod openapi;
mod ops;
mod patch;
mod path;
mod protobuf;
mod query;
mod read;
mod registry;
use crd_admission::schema;
mod selectors;
mod server;
mod smp;
mod status;
mod store;
mod table;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::server::Shared;
use crate::store::{Options, State};

/// Errors starting the fake server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding or inspecting the listening socket failed.
    #[error("binding the fake API server: {0}")]
    Bind(#[source] std::io::Error),
    /// The server URL could not be turned into a kube client.
    #[error("building the kube client: {0}")]
    Client(#[source] kube::Error),
    /// The server URL was not a valid URI.
    #[error("invalid server URL: {0}")]
    Url(#[source] http::uri::InvalidUri),
}

/// The resource a logged request addressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// API group (`""` for core).
    pub group: String,
    /// API version from the path.
    pub version: String,
    /// Resource plural, e.g. `configmaps`.
    pub plural: String,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Object name, if the path names one.
    pub name: Option<String>,
    /// Subresource, e.g. `status`.
    pub subresource: Option<String>,
}

/// One request the server answered.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    /// HTTP method, e.g. `PATCH`.
    pub method: String,
    /// URL path without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// The request's `Content-Type`.
    pub content_type: Option<String>,
    /// HTTP status answered (200 for watches that started streaming).
    pub status: u16,
    /// The request body parsed as JSON (or YAML for apply patches), if any.
    pub body: Option<Value>,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or `discovery` for non-resource paths.
    pub verb: String,
    /// The addressed resource, for resource paths.
    pub target: Option<Target>,
    /// The answer came from an injected fault.
    pub injected: bool,
}

impl RequestRecord {
    /// A decoded query parameter.
    pub fn query_param(&self, key: &str) -> Option<String> {
        query::Query::parse(self.query.as_deref()).get(key).map(str::to_string)
    }

    /// The subresource addressed, if any.
    pub fn subresource(&self) -> Option<&str> {
        self.target.as_ref()?.subresource.as_deref()
    }

    /// The resource plural addressed, if any.
    pub fn plural(&self) -> Option<&str> {
        self.target.as_ref().map(|t| t.plural.as_str())
    }
}

/// Make matching requests fail: the next `times` requests (default 1) whose
/// path starts with `path_prefix` (and method matches, if set) get `status`
/// with a `Status` body.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    path_prefix: String,
    method: Option<String>,
    status: u16,
    times: Option<usize>,
    message: Option<String>,
    retry_after: Option<u64>,
    header: Option<(String, String)>,
}

impl Fault {
    /// Fail the next request under `path_prefix` with `status`.
    pub fn new(path_prefix: impl Into<String>, status: u16) -> Self {
        Self {
            path_prefix: path_prefix.into(),
            method: None,
            status,
            times: Some(1),
            message: None,
            retry_after: None,
            header: None,
        }
    }

    /// Only requests carrying this header with this value (e.g. to fail one client of several).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.header = Some((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Only requests with this HTTP method (e.g. `"PATCH"`).
    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Fail this many matching requests.
    #[must_use]
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n.max(1));
        self
    }

    /// Fail every matching request until [`FakeApiServer::clear_faults`].
    #[must_use]
    pub fn always(mut self) -> Self {
        self.times = None;
        self
    }

    /// The `Status.message` to answer with.
    #[must_use]
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Add a `Retry-After` header (kube's client retries 429/503/504 by itself).
    #[must_use]
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    fn matches(&self, method: &str, path: &str, headers: &axum::http::HeaderMap) -> bool {
        path.starts_with(&self.path_prefix)
            && self.method.as_deref().is_none_or(|m| m == method)
            && self
                .header
                .as_ref()
                .is_none_or(|(n, v)| headers.get(n.as_str()).and_then(|h| h.to_str().ok()) == Some(v.as_str()))
    }
}

/// Options for [`FakeApiServer`].
#[derive(Clone, Debug)]
pub struct FakeApiServerBuilder {
    strict_namespaces: bool,
    history_limit: usize,
    bookmark_interval: Duration,
    listen: std::net::SocketAddr,
}

impl Default for FakeApiServerBuilder {
    fn default() -> Self {
        Self {
            strict_namespaces: false,
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(5),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

impl FakeApiServerBuilder {
    /// Require namespaces to exist before objects are created in them, as a
    /// real cluster does. Off by default: a missing namespace is created.
    #[must_use]
    pub fn strict_namespaces(mut self, strict: bool) -> Self {
        self.strict_namespaces = strict;
        self
    }

    /// How many changes are kept for watch resumption (default 10 000);
    /// older resourceVersions get 410 Gone.
    #[must_use]
    pub fn watch_history(mut self, events: usize) -> Self {
        self.history_limit = events.max(1);
        self
    }

    /// How often watches with `allowWatchBookmarks` get a BOOKMARK (default 5 s).
    #[must_use]
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    /// Listen on this address instead of `127.0.0.1:0` (a random free port).
    #[must_use]
    pub fn listen(mut self, addr: std::net::SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Bind the listen address (default `127.0.0.1:0`) and serve.
    pub async fn start(self) -> Result<FakeApiServer, Error> {
        let listener = tokio::net::TcpListener::bind(self.listen).await.map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let state =
            State::new(Options { strict_namespaces: self.strict_namespaces, history_limit: self.history_limit });
        let shared = Arc::new(Shared::new(state, stop_rx.clone(), self.bookmark_interval, addr));
        let url = format!("http://{addr}");
        let uri: http::Uri = url.parse().map_err(Error::Url)?;
        let client = kube::Client::try_from(kube::Config::new(uri)).map_err(Error::Client)?;
        let app = server::router(shared.clone());
        let mut stop = stop_rx;
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "fake API server stopped with an error");
            }
        });
        Ok(FakeApiServer { shared, url, client, stop: stop_tx, task: Some(task) })
    }
}

/// A running fake API server. Dropping it stops the server.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    url: String,
    client: kube::Client,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApiServer").field("url", &self.url).finish()
    }
}

impl FakeApiServer {
    /// Start with default options (namespaces auto-created).
    pub async fn start() -> Result<Self, Error> {
        FakeApiServerBuilder::default().start().await
    }

    /// Options: strict namespaces, watch history size, bookmark interval.
    pub fn builder() -> FakeApiServerBuilder {
        FakeApiServerBuilder::default()
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kube client for this server (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Stop serving: open watches end, then the listener closes.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                abort.abort();
            }
        }
    }

    /// Every request answered so far, oldest first.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.shared.request_log()
    }

    /// Forget the request log.
    pub fn clear_request_log(&self) {
        self.shared.clear_request_log();
    }

    /// Fail matching requests (see [`Fault`]).
    pub fn inject_fault(&self, fault: Fault) {
        self.shared.add_fault(fault);
    }

    /// Remove all pending faults.
    pub fn clear_faults(&self) {
        self.shared.clear_faults();
    }

    /// The stored object as JSON, rendered at `version`; `None` when absent.
    /// `group` is `""` for core resources; `namespace` is `None` for cluster-scoped ones.
    pub fn get_raw(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let st = self.shared.lock_state();
        let rd = st.registry.lookup(group, version, plural)?;
        let key = (namespace.unwrap_or_default().to_string(), name.to_string());
        st.get(&rd.key(), &key).map(|o| read::render(rd, version, o, false))
    }

    /// All stored objects of a resource (optionally one namespace), in name order.
    pub fn list_raw(&self, group: &str, version: &str, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let st = self.shared.lock_state();
        let Some(rd) = st.registry.lookup(group, version, plural) else {
            return Vec::new();
        };
        st.list(&rd.key(), namespace).into_iter().map(|(_, o)| read::render(rd, version, o, false)).collect()
    }

    /// A kubeconfig (YAML) whose only context points at this server, for kubectl, helm or
    /// any client-go or kube-rs program. There is no authentication, so the user is empty.
    pub fn kubeconfig(&self) -> String {
        kubeconfig_yaml(&self.url)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock_state().rv
    }

    /// Drop the watch history, as an etcd compaction would: watches resuming
    /// from any earlier resourceVersion get 410 Gone.
    pub fn compact(&self) {
        self.shared.lock_state().compact();
    }
}

fn kubeconfig_yaml(url: &str) -> String {
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube-fake-api", "cluster": {"server": url}}],
        "users": [{"name": "kube-fake-api", "user": {}}],
        "contexts": [{"name": "kube-fake-api", "context": {"cluster": "kube-fake-api", "user": "kube-fake-api", "namespace": "default"}}],
        "current-context": "kube-fake-api",
    });
    serde_norway::to_string(&doc).unwrap_or_default()
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub use crd_admission::check_custom_resource;
