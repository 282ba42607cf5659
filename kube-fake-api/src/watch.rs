//! Watch streams: newline-delimited `{"type": ..., "object": ...}` events,
//! replay from the bounded history, 410 when too old, bookmarks, streaming lists.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, header};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::query::Query;
use crate::read::{Filter, render};
use crate::registry::ResourceDef;
use crate::server::Shared;
use crate::status::{ApiError, FieldError};
use crate::store::{Change, EventType};

/// Default watch duration when `timeoutSeconds` is absent (the real server picks 30–60 min).
const DEFAULT_TIMEOUT_SECS: u64 = 1800;

struct Watcher {
    rd: ResourceDef,
    version: String,
    filter: Filter,
    meta_only: bool,
}

impl Watcher {
    fn line(&self, kind: &str, object: &Value) -> Bytes {
        let mut s = json!({"type": kind, "object": object}).to_string();
        s.push('\n');
        Bytes::from(s)
    }

    fn object_line(&self, kind: &str, obj: &Value) -> Bytes {
        self.line(kind, &render(&self.rd, &self.version, obj, self.meta_only))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({
            "kind": self.rd.kind,
            "apiVersion": self.rd.api_version(&self.version),
            "metadata": meta,
        });
        self.line("BOOKMARK", &obj)
    }

    /// The event a change produces for this watcher, if any.
    fn event(&self, c: &Change) -> Option<Bytes> {
        if c.res != self.rd.key() {
            return None;
        }
        let now = self.filter.matches(&c.object);
        let kind = match c.kind {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => now.then_some("DELETED"),
            EventType::Modified => {
                let before = c.old.as_ref().is_some_and(|o| self.filter.matches(o));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }?;
        Some(self.object_line(kind, &c.object))
    }
}

fn invalid(field: &str, why: &str) -> ApiError {
    ApiError::invalid(
        &crate::status::Qualified {
            group: "meta.k8s.io".into(),
            plural: "listoptions".into(),
            kind: "ListOptions".into(),
        },
        "",
        &[FieldError::forbidden(field, why)],
    )
}

/// Start a watch; the response streams until timeout, shutdown or disconnect.
pub(crate) fn start(
    shared: Arc<Shared>,
    rd: ResourceDef,
    version: String,
    filter: Filter,
    q: &Query,
    meta_only: bool,
) -> Result<Response, ApiError> {
    let send_initial = q.get("sendInitialEvents") == Some("true");
    let rv_match = q.get("resourceVersionMatch").filter(|s| !s.is_empty());
    let bookmarks = matches!(q.get("allowWatchBookmarks"), Some("true") | Some("1"));
    if send_initial && rv_match != Some("NotOlderThan") {
        return Err(invalid(
            "resourceVersionMatch",
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    if send_initial && !bookmarks {
        return Err(invalid("allowWatchBookmarks", "sendInitialEvents requires allowWatchBookmarks=true"));
    }
    if rv_match.is_some() && !send_initial {
        return Err(invalid(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    let timeout = match q.get("timeoutSeconds") {
        Some(t) => t.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        None => DEFAULT_TIMEOUT_SECS,
    };
    let rv = q.get("resourceVersion").filter(|s| !s.is_empty());
    let w = Watcher { rd, version, filter, meta_only };

    let mut initial: Vec<Bytes> = Vec::new();
    let (start_rv, rx) = {
        let st = shared.lock_state();
        let current = st.rv;
        match rv {
            _ if send_initial => {
                for (_, obj) in st.list(&w.rd.key(), w.filter.namespace.as_deref()) {
                    if w.filter.matches(obj) {
                        initial.push(w.object_line("ADDED", obj));
                    }
                }
                initial.push(w.bookmark(current, true));
            }
            None | Some("0") => {
                for (_, obj) in st.list(&w.rd.key(), w.filter.namespace.as_deref()) {
                    if w.filter.matches(obj) {
                        initial.push(w.object_line("ADDED", obj));
                    }
                }
            }
            Some(s) => {
                let from =
                    s.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))?;
                if from < st.compacted_rv {
                    let gone = ApiError::gone(format!("too old resource version: {from} ({})", st.compacted_rv + 1));
                    let mut line = json!({"type": "ERROR", "object": gone.to_status()}).to_string();
                    line.push('\n');
                    return Ok(stream_response(vec![Bytes::from(line)], None));
                }
                for c in st.history_after(from) {
                    if let Some(line) = w.event(&c) {
                        initial.push(line);
                    }
                }
            }
        }
        (current, st.subscribe())
    };

    let (tx, body_rx) = mpsc::channel::<Bytes>(64);
    let shutdown = shared.shutdown.clone();
    let interval = shared.bookmark_interval;
    tokio::spawn(pump(
        w,
        initial,
        tx,
        rx,
        shutdown,
        Duration::from_secs(timeout),
        bookmarks.then_some(interval),
        start_rv,
    ));
    Ok(stream_response(Vec::new(), Some(body_rx)))
}

#[allow(clippy::too_many_arguments)]
async fn pump(
    w: Watcher,
    initial: Vec<Bytes>,
    tx: mpsc::Sender<Bytes>,
    mut rx: broadcast::Receiver<Arc<Change>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    timeout: Duration,
    bookmark_every: Option<Duration>,
    start_rv: u64,
) {
    for line in initial {
        if tx.send(line).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let period = bookmark_every.unwrap_or(Duration::from_secs(3600));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut last_rv = start_rv;
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = shutdown.changed() => break,
            _ = tx.closed() => break,
            r = rx.recv() => match r {
                Ok(change) => {
                    last_rv = last_rv.max(change.rv);
                    if let Some(line) = w.event(&change)
                        && tx.send(line).await.is_err()
                    {
                        break;
                    }
                }
                // A consumer too slow for the broadcast buffer: end the watch, the client resumes.
                Err(_) => break,
            },
            _ = ticker.tick(), if bookmark_every.is_some() => {
                if tx.send(w.bookmark(last_rv, false)).await.is_err() {
                    break;
                }
            }
        }
    }
}

fn stream_response(lines: Vec<Bytes>, rest: Option<mpsc::Receiver<Bytes>>) -> Response {
    let head = futures::stream::iter(lines.into_iter().map(Ok::<Bytes, Infallible>));
    let tail = futures::stream::unfold(rest, |rx| async move {
        let mut rx = rx?;
        let b = rx.recv().await?;
        Some((Ok::<Bytes, Infallible>(b), Some(rx)))
    });
    let body = Body::from_stream(futures::StreamExt::chain(head, tail));
    let mut resp = Response::new(body);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
