//! The axum server: one fallback handler routing every path, the request log,
//! and injected faults.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, Request, header};
use serde_json::Value;

use crate::handlers::{self, Incoming};
use crate::path::{Route, parse};
use crate::query::Query;
use crate::status::{ApiError, json_response, reason_for_code};
use crate::store::State;
use crate::{Fault, RequestRecord, Target};
use crate::{discovery, openapi};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

pub(crate) struct Shared {
    state: Mutex<State>,
    log: Mutex<Vec<RequestRecord>>,
    faults: Mutex<Vec<Fault>>,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    pub bookmark_interval: Duration,
    pub addr: SocketAddr,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the fake server for the others.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn new(
        state: State,
        shutdown: tokio::sync::watch::Receiver<bool>,
        bookmark_interval: Duration,
        addr: SocketAddr,
    ) -> Self {
        Self {
            state: Mutex::new(state),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            shutdown,
            bookmark_interval,
            addr,
        }
    }

    pub fn lock_state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub fn request_log(&self) -> Vec<RequestRecord> {
        lock(&self.log).clone()
    }

    pub fn clear_request_log(&self) {
        lock(&self.log).clear();
    }

    pub fn add_fault(&self, f: Fault) {
        lock(&self.faults).push(f);
    }

    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// Take one use of the first fault matching this request.
    fn take_fault(&self, method: &Method, path: &str, headers: &header::HeaderMap) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let idx = faults.iter().position(|f| f.matches(method.as_str(), path, headers))?;
        let hit = faults[idx].clone();
        match &mut faults[idx].times {
            Some(n) if *n <= 1 => {
                faults.remove(idx);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Some(hit)
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

fn header_str(req: &Request<Body>, name: header::HeaderName) -> Option<String> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn parse_logged_body(body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    serde_json::from_slice(body).ok().or_else(|| serde_norway::from_slice(body).ok())
}

async fn handle(AxState(shared): AxState<Arc<Shared>>, req: Request<Body>) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().map(str::to_string);
    let content_type = header_str(&req, header::CONTENT_TYPE);
    let accept = header_str(&req, header::ACCEPT);
    let user_agent = header_str(&req, header::USER_AGENT);
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request(format!("reading body: {e}")).into_response(),
    };
    let query = Query::parse(raw_query.as_deref());
    let route = parse(&path);
    let (verb, target) = match &route {
        Route::Resource(rp) => (
            handlers::verb(&method, rp, &query).to_string(),
            Some(Target {
                group: rp.group.clone(),
                version: rp.version.clone(),
                plural: rp.plural.clone(),
                namespace: rp.namespace.clone(),
                name: rp.name.clone(),
                subresource: rp.subresource.clone(),
            }),
        ),
        _ => ("discovery".to_string(), None),
    };
    let mut record = RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        content_type: content_type.clone(),
        status: 0,
        body: parse_logged_body(&body),
        verb,
        target,
        injected: false,
    };

    let resp = if let Some(fault) = shared.take_fault(&method, &path, &headers) {
        record.injected = true;
        fault_response(&fault)
    } else {
        let incoming = Incoming {
            method: &method,
            query: &query,
            content_type: content_type.as_deref(),
            accept: accept.as_deref(),
            user_agent: user_agent.as_deref(),
            body: &body,
        };
        dispatch(&shared, route, incoming).unwrap_or_else(IntoResponse::into_response)
    };
    record.status = resp.status().as_u16();
    lock(&shared.log).push(record);
    resp
}

fn fault_response(f: &Fault) -> Response {
    let msg = f.message.clone().unwrap_or_else(|| format!("injected fault ({})", f.status));
    let err = ApiError::new(f.status, reason_for_code(f.status), msg);
    let mut resp = err.into_response();
    if let Some(secs) = f.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn dispatch(shared: &Arc<Shared>, route: Route, req: Incoming<'_>) -> Result<Response, ApiError> {
    let aggregated = req.accept.is_some_and(|a| a.contains("apidiscovery.k8s.io"));
    if *req.method != Method::GET && !matches!(route, Route::Resource(_)) {
        return Err(ApiError::method_not_allowed("only GET is served here"));
    }
    match route {
        Route::Version => Ok(json_response(200, &discovery::version())),
        Route::Health => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            Ok(r)
        }
        Route::CoreGroup if aggregated => {
            let st = shared.lock_state();
            Ok(discovery_response(&discovery::aggregated(&st.registry, true)))
        }
        Route::CoreGroup => Ok(json_response(200, &discovery::core_versions(&shared.addr.to_string()))),
        Route::Groups if aggregated => {
            let st = shared.lock_state();
            Ok(discovery_response(&discovery::aggregated(&st.registry, false)))
        }
        Route::Groups => {
            let st = shared.lock_state();
            Ok(json_response(200, &discovery::group_list(&st.registry)))
        }
        Route::Group(g) => {
            let st = shared.lock_state();
            discovery::group(&st.registry, &g).map(|v| json_response(200, &v)).ok_or_else(ApiError::path_not_found)
        }
        Route::CoreVersion(v) => {
            let st = shared.lock_state();
            discovery::resource_list(&st.registry, "", &v)
                .map(|v| json_response(200, &v))
                .ok_or_else(ApiError::path_not_found)
        }
        Route::GroupVersion(g, v) => {
            let st = shared.lock_state();
            discovery::resource_list(&st.registry, &g, &v)
                .map(|v| json_response(200, &v))
                .ok_or_else(ApiError::path_not_found)
        }
        Route::OpenApiV3Index => {
            let st = shared.lock_state();
            Ok(json_response(200, &openapi::v3_index(&st.registry)))
        }
        Route::OpenApiV3(g, v) => {
            let st = shared.lock_state();
            openapi::v3_group_version(&st.registry, &g, &v)
                .map(|d| json_response(200, &d))
                .ok_or_else(ApiError::path_not_found)
        }
        Route::OpenApiV2 => {
            // kubectl asks for protobuf only; JSON is all this server speaks (406 lets it say so).
            if !accepts_json(req.accept) {
                return Err(ApiError::new(406, "NotAcceptable", "only application/json is served for /openapi/v2"));
            }
            let st = shared.lock_state();
            Ok(json_response(200, &openapi::v2(&st.registry)))
        }
        Route::Resource(rp) => handlers::resource(shared, rp, req),
        Route::Unknown => Err(ApiError::path_not_found()),
    }
}

fn accepts_json(accept: Option<&str>) -> bool {
    accept.is_none_or(|a| {
        a.split(',').any(|t| {
            let base = t.split(';').next().unwrap_or_default().trim();
            matches!(base, "" | "application/json" | "*/*" | "application/*")
        })
    })
}

fn discovery_response(v: &Value) -> Response {
    let mut r = json_response(200, v);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"),
    );
    r
}
