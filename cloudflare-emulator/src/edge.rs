//! The edge listener: the emulator's stand-in for Cloudflare's network. A request's Host
//! header picks the Worker (custom domain, then the most specific zone route, then
//! `<script>.<subdomain>.workers.dev`); the script's active deployment picks the version (by
//! percentage, or `Cloudflare-Workers-Version-Overrides` for a version in that deployment);
//! the request is proxied to that version's workerd process.

use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::app::SharedApp;
use crate::model::{Deployment, State as Model, Version};
use crate::runtime::RUNTIME_KEY_HEADER;

/// Pins a request to a version of the current deployment: `script="version-id"`.
pub const VERSION_OVERRIDES_HEADER: &str = "cloudflare-workers-version-overrides";
/// Requests with the same key go to the same version of a split deployment.
pub const VERSION_KEY_HEADER: &str = "cloudflare-workers-version-key";

pub(crate) fn router(app: SharedApp) -> Router {
    Router::new().fallback(handle).with_state(app)
}

/// The Worker a host (and path) maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub account: String,
    pub script: String,
    /// A preview URL names one version.
    pub version_prefix: Option<String>,
}

/// Why no Worker answers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Miss(pub StatusCode, pub String);

/// How specific a matching route pattern is (larger wins).
type Specificity = (bool, usize, usize, bool);

/// Match a route pattern (`host/path`, `*` allowed at the start of the host and the end of
/// the path) against a request.
pub(crate) fn route_matches(pattern: &str, host: &str, path: &str) -> Option<Specificity> {
    let p = pattern.trim();
    let p = p.strip_prefix("https://").or_else(|| p.strip_prefix("http://")).unwrap_or(p);
    let (host_pat, path_pat) = match p.find('/') {
        Some(i) => (&p[..i], &p[i..]),
        None => (p, "/"),
    };
    let host_pat = host_pat.to_ascii_lowercase();
    let host_exact = !host_pat.starts_with('*');
    let host_ok = match host_pat.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix),
        None => host == host_pat,
    };
    if !host_ok {
        return None;
    }
    let (path_ok, path_exact, path_len) = match path_pat.strip_suffix('*') {
        Some(prefix) => (path.starts_with(prefix), false, prefix.len()),
        None => (path == path_pat, true, path_pat.len()),
    };
    path_ok.then_some((host_exact, host_pat.len(), path_len, path_exact))
}

/// Find the Worker for `host` + `path`.
pub(crate) fn resolve(s: &Model, host: &str, path: &str) -> Result<Target, Miss> {
    for (account_id, a) in &s.accounts {
        if let Some(d) = a.custom_domains.iter().find(|d| d.hostname.eq_ignore_ascii_case(host)) {
            return Ok(Target { account: account_id.clone(), script: d.service.clone(), version_prefix: None });
        }
    }
    let mut best: Option<(Specificity, &str, Option<&str>, &str)> = None;
    for z in s.zones.values() {
        for r in &z.routes {
            if let Some(spec) = route_matches(&r.pattern, host, path)
                && best.as_ref().is_none_or(|(b, ..)| spec > *b)
            {
                best = Some((spec, z.account_id.as_str(), r.script.as_deref(), r.pattern.as_str()));
            }
        }
    }
    if let Some((_, account, script, pattern)) = best {
        return match script {
            Some(script) => {
                Ok(Target { account: account.to_string(), script: script.to_string(), version_prefix: None })
            }
            None => Err(Miss(
                StatusCode::BAD_GATEWAY,
                format!(
                    "route {pattern} runs no Worker: Cloudflare would send this request to the origin, which the emulator does not have"
                ),
            )),
        };
    }
    if let Some(rest) = host.strip_suffix(".workers.dev")
        && let Some((label, sub)) = rest.split_once('.')
    {
        for (account_id, a) in &s.accounts {
            if a.workers_subdomain.as_deref() != Some(sub) {
                continue;
            }
            if let Some(sc) = a.scripts.get(label).filter(|sc| sc.workers_dev_enabled) {
                return Ok(Target { account: account_id.clone(), script: sc.name.clone(), version_prefix: None });
            }
            if let Some((prefix, script)) = label.split_once('-')
                && prefix.len() == 8
                && let Some(sc) = a.scripts.get(script).filter(|sc| sc.previews_enabled)
            {
                return Ok(Target {
                    account: account_id.clone(),
                    script: sc.name.clone(),
                    version_prefix: Some(prefix.to_string()),
                });
            }
        }
    }
    Err(Miss(StatusCode::NOT_FOUND, format!("no custom domain, Worker route or workers.dev name matches {host}{path}")))
}

/// `script="version"` members of a `Cloudflare-Workers-Version-Overrides` dictionary.
pub(crate) fn parse_overrides(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| !matches!(c, '=' | ',' | ';'))).collect();
        let key = key.trim().to_string();
        if chars.peek().is_none() && key.is_empty() {
            break;
        }
        let mut string_value = None;
        if chars.next_if_eq(&'=').is_some() {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.next_if_eq(&'"').is_some() {
                let mut v = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                v.push(n);
                            }
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => v.push(c),
                    }
                }
                if closed {
                    string_value = Some(v);
                }
            }
        }
        // Skip parameters and anything else up to the next member.
        let mut in_string = false;
        while let Some(c) = chars.peek().copied() {
            if c == ',' && !in_string {
                break;
            }
            if c == '"' {
                in_string = !in_string;
            }
            chars.next();
        }
        if let Some(v) = string_value
            && !key.is_empty()
        {
            out.push((key, v));
        }
        if chars.peek().is_none() {
            break;
        }
    }
    out
}

/// Pick the version of `dep` that serves a request: the override when it names a version of
/// the deployment, else by percentage (`roll` in `0..100`).
pub(crate) fn choose_version<'a>(script: &str, dep: &'a Deployment, overrides: Option<&str>, roll: f64) -> &'a str {
    if let Some(h) = overrides
        && let Some((_, v)) = parse_overrides(h).into_iter().find(|(k, _)| k == script)
    {
        if let Some(dv) = dep.versions.iter().find(|dv| dv.version_id == v) {
            return &dv.version_id;
        }
        tracing::warn!(
            script,
            version = %v,
            "version override ignored: the version is not in the current deployment (deploy it, at 0% if need be)"
        );
    }
    let mut acc = 0.0;
    for dv in &dep.versions {
        acc += dv.percentage;
        if dv.percentage > 0.0 && roll < acc {
            return &dv.version_id;
        }
    }
    dep.versions
        .iter()
        .rev()
        .find(|dv| dv.percentage > 0.0)
        .or(dep.versions.last())
        .map(|dv| dv.version_id.as_str())
        .unwrap_or_default()
}

/// A number in `0..100` for a request: from `Cloudflare-Workers-Version-Key` when present (the
/// same key always lands on the same version), random otherwise.
fn roll(headers: &HeaderMap) -> f64 {
    match headers.get(VERSION_KEY_HEADER) {
        Some(key) => {
            let d = Sha256::digest(key.as_bytes());
            let n = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
            (n % 10_000) as f64 / 100.0
        }
        None => rand::rng().random_range(0.0..100.0),
    }
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut r = (status, format!("cloudflare-emulator edge: {}\n", message.into())).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn host_of(req: &Request) -> Option<String> {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().host().map(str::to_string))?;
    let host = if raw.starts_with('[') {
        raw.split(']').next().map(|h| format!("{h}]"))?
    } else {
        raw.rsplit_once(':')
            .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
            .map(|(h, _)| h.to_string())
            .unwrap_or(raw)
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// The version a request runs: (account, script, version).
fn pick(app: &SharedApp, req: &Request, host: &str) -> Result<(String, String, Version), Miss> {
    let path = req.uri().path().to_string();
    let overrides = req.headers().get(VERSION_OVERRIDES_HEADER).and_then(|h| h.to_str().ok()).map(str::to_string);
    let roll = roll(req.headers());
    app.read(|s| {
        let t = resolve(s, host, &path)?;
        let script = s.accounts.get(&t.account).and_then(|a| a.scripts.get(&t.script)).ok_or_else(|| {
            Miss(StatusCode::NOT_FOUND, format!("{host} is attached to Worker {}, which does not exist", t.script))
        })?;
        let version = match &t.version_prefix {
            Some(prefix) => {
                script.versions.iter().rev().find(|v| v.id.starts_with(prefix.as_str())).ok_or_else(|| {
                    Miss(StatusCode::NOT_FOUND, format!("Worker {} has no version starting with {prefix}", t.script))
                })?
            }
            None => {
                let dep = script.active_deployment().ok_or_else(|| {
                    Miss(StatusCode::SERVICE_UNAVAILABLE, format!("Worker {} has no deployment", t.script))
                })?;
                let id = choose_version(&t.script, dep, overrides.as_deref(), roll);
                script.version(id).ok_or_else(|| {
                    Miss(StatusCode::INTERNAL_SERVER_ERROR, format!("deployment names unknown version {id}"))
                })?
            }
        };
        Ok((t.account, t.script.clone(), version.clone()))
    })
}

async fn handle(State(app): State<SharedApp>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request) -> Response {
    let Some(host) = host_of(&req) else {
        return text(StatusCode::BAD_REQUEST, "the request has no Host header");
    };
    let (account, script, version) = match pick(&app, &req, &host) {
        Ok(x) => x,
        Err(Miss(status, message)) => return text(status, message),
    };
    let Some(rt) = app.runtime.clone() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{host} runs Worker {script}, but no Workers runtime is configured: install workerd (npm install workerd) and pass --workerd or WORKERD_BIN"
            ),
        );
    };
    let socket = match rt.socket_for(&account, &script, &version).await {
        Ok(s) => s,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    match proxy(&socket, req, &host, peer).await {
        Ok(r) => r,
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("Worker {script} (version {}): {e}", version.id)),
    }
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let listed: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|x| x.trim().to_ascii_lowercase()))
        .collect();
    for name in HOP_BY_HOP.iter().map(|s| s.to_string()).chain(listed) {
        h.remove(name.as_str());
    }
}

async fn proxy(socket: &Path, req: Request, host: &str, peer: SocketAddr) -> Result<Response, String> {
    let stream =
        tokio::net::UnixStream::connect(socket).await.map_err(|e| format!("cannot reach the workerd process: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with workerd failed: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
    parts.uri = path.parse().map_err(|e| format!("bad request target: {e}"))?;
    parts.version = axum::http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(RUNTIME_KEY_HEADER);
    let h = &mut parts.headers;
    h.insert(header::HOST, HeaderValue::from_str(host).map_err(|e| e.to_string())?);
    h.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static("https"));
    if let Ok(ip) = HeaderValue::from_str(&peer.ip().to_string()) {
        h.insert(HeaderName::from_static("cf-connecting-ip"), ip.clone());
        h.insert(HeaderName::from_static("x-real-ip"), ip);
    }
    if let Ok(ray) = HeaderValue::from_str(&format!("{}-EMU", &crate::ids::hex32()[..16])) {
        h.insert(HeaderName::from_static("cf-ray"), ray);
    }
    h.insert(HeaderName::from_static("cf-visitor"), HeaderValue::from_static("{\"scheme\":\"https\"}"));
    let resp = sender
        .send_request(axum::http::Request::from_parts(parts, body))
        .await
        .map_err(|e| format!("request to workerd failed: {e}"))?;
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeploymentVersion;
    use std::collections::BTreeMap;

    #[test]
    fn route_patterns_match_like_cloudflare() {
        assert!(route_matches("api.acme.com/*", "api.acme.com", "/x/y").is_some());
        assert!(route_matches("api.acme.com/*", "api.acme.com", "/").is_some());
        assert!(route_matches("api.acme.com/*", "www.acme.com", "/").is_none());
        assert!(route_matches("*.acme.com/*", "api.acme.com", "/").is_some());
        assert!(route_matches("*.acme.com/*", "acme.com", "/").is_none());
        assert!(route_matches("*acme.com/*", "acme.com", "/").is_some());
        assert!(route_matches("acme.com/api/*", "acme.com", "/api/users").is_some());
        assert!(route_matches("acme.com/api/*", "acme.com", "/web").is_none());
        assert!(route_matches("acme.com/exact", "acme.com", "/exact").is_some());
        assert!(route_matches("acme.com/exact", "acme.com", "/exact/more").is_none());
        assert!(route_matches("https://Acme.com/*", "acme.com", "/").is_some());
        // Exact hosts beat wildcards; longer paths beat shorter ones.
        let exact = route_matches("api.acme.com/*", "api.acme.com", "/a").unwrap();
        let wild = route_matches("*.acme.com/*", "api.acme.com", "/a").unwrap();
        assert!(exact > wild);
        let long = route_matches("api.acme.com/a*", "api.acme.com", "/a").unwrap();
        assert!(long > exact);
    }

    #[test]
    fn override_header_is_a_structured_dictionary() {
        assert_eq!(parse_overrides(r#"w="v1""#), vec![("w".to_string(), "v1".to_string())]);
        assert_eq!(
            parse_overrides(r#"a="1", b="2";p=1 , c=token, d="x\"y""#),
            vec![("a".into(), "1".into()), ("b".into(), "2".into()), ("d".into(), "x\"y".into())]
        );
        assert!(parse_overrides("").is_empty());
        assert!(parse_overrides("garbage").is_empty());
        assert!(parse_overrides(r#"w="unterminated"#).is_empty());
    }

    fn dep(versions: &[(&str, f64)]) -> Deployment {
        Deployment {
            id: "d".into(),
            created_on: crate::ids::now(),
            source: "api".into(),
            strategy: "percentage".into(),
            author_email: "e".into(),
            versions: versions
                .iter()
                .map(|(v, p)| DeploymentVersion { version_id: v.to_string(), percentage: *p })
                .collect(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn versions_are_chosen_by_percentage_and_override() {
        let d = dep(&[("new", 10.0), ("old", 90.0)]);
        assert_eq!(choose_version("w", &d, None, 0.0), "new");
        assert_eq!(choose_version("w", &d, None, 9.99), "new");
        assert_eq!(choose_version("w", &d, None, 10.0), "old");
        assert_eq!(choose_version("w", &d, None, 99.99), "old");
        assert_eq!(choose_version("w", &d, Some(r#"w="new""#), 50.0), "new");
        assert_eq!(choose_version("w", &d, Some(r#"other="new""#), 50.0), "old");
        // Versions outside the deployment are not honoured.
        assert_eq!(choose_version("w", &d, Some(r#"w="elsewhere""#), 50.0), "old");
        // 0% versions never get traffic but can be pinned.
        let zero = dep(&[("new", 0.0), ("old", 100.0)]);
        assert_eq!(choose_version("w", &zero, None, 0.0), "old");
        assert_eq!(choose_version("w", &zero, Some(r#"w="new""#), 0.0), "new");
    }

    #[test]
    fn version_key_is_sticky() {
        let mut h = HeaderMap::new();
        h.insert(VERSION_KEY_HEADER, HeaderValue::from_static("user-42"));
        let a = roll(&h);
        assert!((0.0..100.0).contains(&a));
        assert_eq!(a, roll(&h));
    }
}
