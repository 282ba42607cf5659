//! The client's error type. Messages name the endpoint template and Cloudflare's error codes and
//! messages; they never contain the token, request bodies or concrete URLs.

use std::fmt::Write as _;
use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::de;

/// Codes Cloudflare uses for "the object does not exist" (besides HTTP 404).
const NOT_FOUND_CODES: &[u32] = &[
    7404,  // D1 database not found
    10007, // Worker script / workers.dev subdomain not found
    10090, // Worker service not found
    81044, // DNS record not found
    10006, // R2 bucket not found
    10009, // KV key not found
    11000, // queue or consumer not found
];
/// Codes for permanent conflicts with existing state.
const CONFLICT_CODES: &[u32] = &[
    7502,   // D1 name exists
    10014,  // KV namespace title exists
    10020,  // route pattern exists
    81053,  // DNS: A/AAAA/CNAME already at that name
    81054,  // DNS: CNAME already at that name
    81057,  // DNS: identical record exists
    100116, // custom domain owned by another Worker
    100117, // custom domain hostname has foreign DNS records
    10004,  // R2 bucket exists
    11009,  // queue name taken
];
/// Durable Object migration `old_tag` precondition failed.
pub const CODE_DO_MIGRATION_TAG: u32 = 10079;
/// A Durable Object migration step cannot apply (replayed new class, unknown class).
pub const CODE_DO_MIGRATION_STEP: u32 = 10074;
/// Codes for a missing, invalid or insufficient token.
const AUTH_CODES: &[u32] = &[1000, 9106, 10000];
/// Global rate limit.
const RATE_LIMIT_CODE: u32 = 971;
/// D1 SQL error.
const SQL_ERROR_CODE: u32 = 7500;

/// One entry of an envelope's `errors[]` or `messages[]`. Codes are parsed leniently (int or
/// string; unparseable = 0); a bare string entry becomes `{code: 0, message}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApiErrorItem {
    pub code: u32,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub error_chain: Vec<ApiErrorItem>,
}

impl ApiErrorItem {
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), documentation_url: None, error_chain: Vec::new() }
    }

    fn codes(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        Box::new(std::iter::once(self.code).chain(self.error_chain.iter().flat_map(|e| e.codes())))
    }
}

impl<'de> Deserialize<'de> for ApiErrorItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default, deserialize_with = "de::lenient_code")]
            code: u32,
            #[serde(default, deserialize_with = "de::lenient_string")]
            message: String,
            #[serde(default, deserialize_with = "de::lenient_opt_string")]
            documentation_url: Option<String>,
            #[serde(default, deserialize_with = "de::lenient_vec")]
            error_chain: Vec<ApiErrorItem>,
        }
        Ok(match Value::deserialize(d)? {
            Value::String(message) => ApiErrorItem::new(0, message),
            v @ Value::Object(_) => match serde_json::from_value::<Raw>(v) {
                Ok(r) => ApiErrorItem {
                    code: r.code,
                    message: r.message,
                    documentation_url: r.documentation_url,
                    error_chain: r.error_chain,
                },
                Err(_) => ApiErrorItem::default(),
            },
            _ => ApiErrorItem::default(),
        })
    }
}

/// What failed at the transport level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// Could not connect (DNS, refused, TLS handshake).
    Connect,
    /// The request failed after connecting (reset, closed connection).
    Request,
    /// Reading the response body failed.
    Body,
    /// Anything else reqwest reports.
    Other,
}

impl TransportKind {
    fn describe(self) -> &'static str {
        match self {
            TransportKind::Connect => "could not connect",
            TransportKind::Request => "request failed",
            TransportKind::Body => "reading the response failed",
            TransportKind::Other => "transport error",
        }
    }
}

/// Errors from the Cloudflare client.
#[derive(Debug, thiserror::Error)]
pub enum CloudflareError {
    /// Cloudflare answered with an error envelope (or a non-2xx status).
    #[error("{method} {endpoint}: HTTP {status}: {}", describe_items(errors))]
    Api { status: u16, errors: Vec<ApiErrorItem>, method: Method, endpoint: &'static str },

    /// HTTP 429 after all retries, or a `Retry-After` longer than the client is willing to wait.
    #[error("{method} {endpoint}: rate limited by Cloudflare{}", describe_retry_after(*retry_after))]
    RateLimited { retry_after: Option<Duration>, method: Method, endpoint: &'static str },

    /// The request (including reading the body) exceeded the configured timeout.
    #[error("{method} {endpoint}: request timed out")]
    Timeout { method: Method, endpoint: &'static str },

    /// Connection-level failure.
    #[error("{method} {endpoint}: {}: {detail}", kind.describe())]
    Transport {
        method: Method,
        endpoint: &'static str,
        kind: TransportKind,
        detail: String,
        #[source]
        source: reqwest::Error,
    },

    /// The response was not the JSON the endpoint documents.
    #[error("{method} {endpoint}: could not decode the response: {detail}")]
    Decode { method: Method, endpoint: &'static str, detail: String },

    /// The caller asked for something the API cannot do (checked before sending). The message
    /// names fields, never values.
    #[error("invalid request: {0}")]
    InvalidInput(String),

    /// A lookup that is not a single API call found nothing (e.g. a zone for a hostname).
    #[error("{what} not found")]
    NotFound { what: String },

    /// The token cannot be used in an `Authorization` header (empty, control characters).
    #[error("invalid API token: {0}")]
    InvalidToken(&'static str),

    /// Building the HTTP client failed.
    #[error("cloudflare client setup failed: {0}")]
    Setup(String),

    /// Not sent: this process's [`crate::Fence`] is closed (it no longer holds leadership).
    #[error("{method} {endpoint}: not sent: this replica is no longer the leader")]
    Fenced { method: Method, endpoint: &'static str },
}

fn describe_items(errors: &[ApiErrorItem]) -> String {
    if errors.is_empty() {
        return "no error details in the response".to_string();
    }
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        let msg = truncate(&e.message, 500);
        if e.code != 0 {
            let _ = write!(out, "[{}] {}", e.code, msg);
        } else {
            out.push_str(msg);
        }
        for c in &e.error_chain {
            let _ = write!(out, " (caused by [{}] {})", c.code, truncate(&c.message, 200));
        }
    }
    out
}

fn describe_retry_after(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!(" (retry after {}s)", d.as_secs_f64().ceil() as u64),
        None => String::new(),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl CloudflareError {
    /// A client-side "not found" for lookups composed of several calls.
    pub fn not_found(what: impl Into<String>) -> Self {
        CloudflareError::NotFound { what: what.into() }
    }

    /// HTTP status of an API error, if there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            CloudflareError::Api { status, .. } => Some(*status),
            CloudflareError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// The envelope's error items (empty for non-API errors).
    pub fn api_errors(&self) -> &[ApiErrorItem] {
        match self {
            CloudflareError::Api { errors, .. } => errors,
            _ => &[],
        }
    }

    /// Whether any error item (or its `error_chain`) carries `code`.
    pub fn has_code(&self, code: u32) -> bool {
        self.api_errors().iter().any(|e| e.codes().any(|c| c == code))
    }

    fn has_any_code(&self, codes: &[u32]) -> bool {
        self.api_errors().iter().any(|e| e.codes().any(|c| codes.contains(&c)))
    }

    /// Waiting and retrying may help: 408, 429, 5xx, timeouts and transport failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            CloudflareError::Api { status, .. } => {
                *status == 408 || *status == 429 || *status >= 500 || self.has_code(RATE_LIMIT_CODE)
            }
            CloudflareError::RateLimited { .. }
            | CloudflareError::Timeout { .. }
            | CloudflareError::Transport { .. } => true,
            CloudflareError::Decode { .. }
            | CloudflareError::InvalidInput(_)
            | CloudflareError::NotFound { .. }
            | CloudflareError::InvalidToken(_)
            | CloudflareError::Setup(_)
            | CloudflareError::Fenced { .. } => false,
        }
    }

    /// The object does not exist: HTTP 404 or a Cloudflare "not found" code (10007, 7404, 10090,
    /// 81044).
    pub fn is_not_found(&self) -> bool {
        match self {
            CloudflareError::Api { status, .. } => *status == 404 || self.has_any_code(NOT_FOUND_CODES),
            CloudflareError::NotFound { .. } => true,
            _ => false,
        }
    }

    /// The token is missing, invalid, expired or lacks a permission (401/403, codes 1000, 9106,
    /// 10000). Waiting does not help; a new token does.
    pub fn is_auth_error(&self) -> bool {
        match self {
            CloudflareError::Api { status, .. } => *status == 401 || *status == 403 || self.has_any_code(AUTH_CODES),
            CloudflareError::InvalidToken(_) => true,
            _ => false,
        }
    }

    /// A permanent conflict with existing state (HTTP 409 or a known conflict code).
    pub fn is_conflict(&self) -> bool {
        match self {
            CloudflareError::Api { status, .. } => *status == 409 || self.has_any_code(CONFLICT_CODES),
            _ => false,
        }
    }

    /// Cloudflare rate limit (429 or code 971).
    pub fn is_rate_limited(&self) -> bool {
        match self {
            CloudflareError::RateLimited { .. } => true,
            CloudflareError::Api { status, .. } => *status == 429 || self.has_code(RATE_LIMIT_CODE),
            _ => false,
        }
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, CloudflareError::Timeout { .. }) || matches!(self, CloudflareError::Api { status: 408, .. })
    }

    /// The upload's Durable Object migration `old_tag` is not the script's current tag (10079):
    /// the tag read before the upload was stale.
    pub fn is_migration_tag_mismatch(&self) -> bool {
        self.has_code(CODE_DO_MIGRATION_TAG)
    }

    /// D1 rejected the SQL (code 7500).
    pub fn is_sql_error(&self) -> bool {
        self.has_code(SQL_ERROR_CODE)
    }

    /// Server-provided wait before retrying, when Cloudflare rate-limited us.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CloudflareError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Endpoint route template the error came from, if any.
    pub fn endpoint(&self) -> Option<&'static str> {
        match self {
            CloudflareError::Api { endpoint, .. }
            | CloudflareError::RateLimited { endpoint, .. }
            | CloudflareError::Timeout { endpoint, .. }
            | CloudflareError::Transport { endpoint, .. }
            | CloudflareError::Decode { endpoint, .. }
            | CloudflareError::Fenced { endpoint, .. } => Some(endpoint),
            _ => None,
        }
    }

    /// Bounded CamelCase reason for conditions, Events and metric labels.
    ///
    /// One of: `Unauthorized`, `Forbidden`, `NotFound`, `Conflict`, `RateLimited`, `Timeout`,
    /// `ServerError`, `SqlError`, `InvalidRequest`, `TransportError`, `DecodeError`,
    /// `InvalidInput`, `ClientSetup`, `NotLeader`.
    pub fn reason(&self) -> &'static str {
        match self {
            CloudflareError::Api { status, .. } => {
                let status = *status;
                if self.is_rate_limited() {
                    "RateLimited"
                } else if status == 403 {
                    "Forbidden"
                } else if self.is_auth_error() {
                    "Unauthorized"
                } else if self.is_not_found() {
                    "NotFound"
                } else if self.is_conflict() {
                    "Conflict"
                } else if status == 408 {
                    "Timeout"
                } else if status >= 500 {
                    "ServerError"
                } else if self.is_sql_error() {
                    "SqlError"
                } else {
                    "InvalidRequest"
                }
            }
            CloudflareError::RateLimited { .. } => "RateLimited",
            CloudflareError::Timeout { .. } => "Timeout",
            CloudflareError::Transport { .. } => "TransportError",
            CloudflareError::Decode { .. } => "DecodeError",
            CloudflareError::InvalidInput(_) => "InvalidInput",
            CloudflareError::NotFound { .. } => "NotFound",
            CloudflareError::InvalidToken(_) => "Unauthorized",
            CloudflareError::Setup(_) => "ClientSetup",
            CloudflareError::Fenced { .. } => "NotLeader",
        }
    }
}

/// Classify a reqwest error and flatten its source chain into text (without the URL).
pub(crate) fn from_reqwest(err: reqwest::Error, method: &Method, endpoint: &'static str) -> CloudflareError {
    let err = err.without_url();
    if err.is_timeout() {
        return CloudflareError::Timeout { method: method.clone(), endpoint };
    }
    let kind = if err.is_connect() {
        TransportKind::Connect
    } else if err.is_body() || err.is_decode() {
        TransportKind::Body
    } else if err.is_request() {
        TransportKind::Request
    } else {
        TransportKind::Other
    };
    let mut detail = err.to_string();
    let mut src = std::error::Error::source(&err);
    while let Some(s) = src {
        let _ = write!(detail, ": {s}");
        src = s.source();
    }
    // A timeout can also surface as an io::Error deep in the chain.
    if detail.contains("timed out") {
        return CloudflareError::Timeout { method: method.clone(), endpoint };
    }
    CloudflareError::Transport { method: method.clone(), endpoint, kind, detail, source: err }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api(status: u16, codes: &[u32]) -> CloudflareError {
        CloudflareError::Api {
            status,
            errors: codes.iter().map(|c| ApiErrorItem::new(*c, format!("msg {c}"))).collect(),
            method: Method::GET,
            endpoint: "/zones/:zone",
        }
    }

    #[test]
    fn items_parse_leniently() {
        let items: Vec<ApiErrorItem> = serde_json::from_value(json!([
            {"code": 7003, "message": "Could not route"},
            {"code": "7000", "message": "No route for that URI"},
            "plain string message",
            {"message": "no code"},
            {"code": 10000, "message": "Authentication error", "error_chain": [{"code": 1000, "message": "Invalid API Token"}]},
            42
        ]))
        .unwrap();
        assert_eq!(items[0].code, 7003);
        assert_eq!(items[1].code, 7000);
        assert_eq!(items[2], ApiErrorItem::new(0, "plain string message"));
        assert_eq!(items[3].code, 0);
        assert_eq!(items[4].error_chain[0].code, 1000);
        assert_eq!(items[5], ApiErrorItem::default());
    }

    #[test]
    fn classification_table() {
        // (error, retryable, not_found, auth, conflict, reason)
        let cases = [
            (api(404, &[10007]), false, true, false, false, "NotFound"),
            (api(400, &[7003, 7000]), false, false, false, false, "InvalidRequest"),
            (api(404, &[7404]), false, true, false, false, "NotFound"),
            (api(400, &[10007]), false, true, false, false, "NotFound"),
            (api(401, &[1000]), false, false, true, false, "Unauthorized"),
            (api(400, &[9106]), false, false, true, false, "Unauthorized"),
            (api(403, &[10000]), false, false, true, false, "Forbidden"),
            (api(409, &[100116]), false, false, false, true, "Conflict"),
            (api(400, &[81057]), false, false, false, true, "Conflict"),
            (api(400, &[10020]), false, false, false, true, "Conflict"),
            (api(429, &[971]), true, false, false, false, "RateLimited"),
            (api(500, &[]), true, false, false, false, "ServerError"),
            (api(503, &[10013]), true, false, false, false, "ServerError"),
            (api(408, &[]), true, false, false, false, "Timeout"),
            (api(400, &[7500]), false, false, false, false, "SqlError"),
            (api(400, &[10021]), false, false, false, false, "InvalidRequest"),
        ];
        for (e, retry, nf, auth, conflict, reason) in cases {
            assert_eq!(e.is_retryable(), retry, "{e}");
            assert_eq!(e.is_not_found(), nf, "{e}");
            assert_eq!(e.is_auth_error(), auth, "{e}");
            assert_eq!(e.is_conflict(), conflict, "{e}");
            assert_eq!(e.reason(), reason, "{e}");
        }
        assert!(api(400, &[7500]).is_sql_error());
        let t = CloudflareError::Timeout { method: Method::GET, endpoint: "/x" };
        assert!(t.is_retryable() && t.is_timeout());
        assert_eq!(t.reason(), "Timeout");
        let rl = CloudflareError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            method: Method::GET,
            endpoint: "/x",
        };
        assert!(rl.is_retryable() && rl.is_rate_limited());
        assert_eq!(rl.status(), Some(429));
        assert_eq!(rl.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(rl.to_string(), "GET /x: rate limited by Cloudflare (retry after 7s)");
        assert!(CloudflareError::not_found("zone a.com").is_not_found());
        assert!(!CloudflareError::InvalidInput("x".into()).is_retryable());
    }

    #[test]
    fn has_code_looks_into_error_chain() {
        let mut item = ApiErrorItem::new(10000, "Authentication error");
        item.error_chain.push(ApiErrorItem::new(1000, "Invalid API Token"));
        let e = CloudflareError::Api {
            status: 400,
            errors: vec![item],
            method: Method::GET,
            endpoint: "/user/tokens/verify",
        };
        assert!(e.has_code(1000) && e.has_code(10000) && !e.has_code(7000));
        assert_eq!(
            e.to_string(),
            "GET /user/tokens/verify: HTTP 400: [10000] Authentication error (caused by [1000] Invalid API Token)"
        );
    }

    #[test]
    fn display_truncates_long_messages_on_char_boundary() {
        let e = CloudflareError::Api {
            status: 400,
            errors: vec![ApiErrorItem::new(10021, "é".repeat(400))],
            method: Method::PUT,
            endpoint: "/accounts/:account/workers/scripts/:script",
        };
        let s = e.to_string();
        assert!(s.len() < 600, "{}", s.len());
        let empty = CloudflareError::Api { status: 502, errors: vec![], method: Method::GET, endpoint: "/zones" };
        assert_eq!(empty.to_string(), "GET /zones: HTTP 502: no error details in the response");
    }
}
