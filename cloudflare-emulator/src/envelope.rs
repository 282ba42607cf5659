//! Cloudflare's JSON envelope, API errors and list pagination.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// One `{code, message}` item of `errors[]` or `messages[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiMessage {
    pub code: u32,
    pub message: String,
}

/// An API failure: HTTP status plus the envelope's `errors[]`.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<ApiMessage>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self { status, errors: vec![ApiMessage { code, message: message.into() }], retry_after_secs: None }
    }

    pub fn with_error(mut self, code: u32, message: impl Into<String>) -> Self {
        self.errors.push(ApiMessage { code, message: message.into() });
        self
    }

    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 404 code 10007, the Workers "script not found" error.
    pub fn script_not_found(name: &str) -> Self {
        Self::not_found(10007, format!("This Worker does not exist on your account. (script: {name})"))
    }

    /// Invalid request body (unparsable JSON or a field of the wrong type).
    pub fn invalid_body(detail: impl std::fmt::Display) -> Self {
        Self::bad_request(10026, format!("Could not parse request body: {detail}"))
    }

    /// 403 code 10000.
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, 10000, "Authentication error")
    }

    /// Unknown path (real API: 7003 + 7000).
    pub fn no_route(path: &str) -> Self {
        Self::not_found(7003, format!("Could not route to {path}, perhaps your object identifier is invalid?"))
            .with_error(7000, "No route for that URI")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 10002, message)
    }

    #[cfg(test)]
    pub fn first_code(&self) -> u32 {
        self.errors.first().map(|e| e.code).unwrap_or(0)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let msgs: Vec<String> = self.errors.iter().map(|e| format!("{} {}", e.code, e.message)).collect();
        write!(f, "HTTP {}: {}", self.status.as_u16(), msgs.join("; "))
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "errors": self.errors,
            "messages": [],
            "result": null,
        });
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// `result_info` of list endpoints.
#[derive(Clone, Debug, Serialize)]
pub struct ResultInfo {
    pub page: usize,
    pub per_page: usize,
    pub count: usize,
    pub total_count: usize,
    pub total_pages: usize,
}

/// Success envelope with `result`.
pub fn ok(result: impl Serialize) -> ApiResult {
    ok_with_messages(result, Vec::new())
}

/// Success envelope with `result` and `messages[]`.
pub fn ok_with_messages(result: impl Serialize, messages: Vec<ApiMessage>) -> ApiResult {
    let result = serde_json::to_value(result).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(json!({
        "success": true,
        "errors": [],
        "messages": messages,
        "result": result,
    }))
    .into_response())
}

/// Success envelope with `result` and `result_info`.
pub fn ok_paged(result: Vec<Value>, info: ResultInfo) -> ApiResult {
    Ok(Json(json!({
        "success": true,
        "errors": [],
        "messages": [],
        "result": result,
        "result_info": info,
    }))
    .into_response())
}

/// Success envelope with an object `result` plus `result_info` (versions list).
pub fn ok_object_paged(result: Value, info: ResultInfo) -> ApiResult {
    Ok(Json(json!({
        "success": true,
        "errors": [],
        "messages": [],
        "result": result,
        "result_info": info,
    }))
    .into_response())
}

/// Page-array pagination: 1-based `page`; a page past the end is empty, not an error.
pub fn paginate<T: Clone>(items: &[T], page: usize, per_page: usize) -> (Vec<T>, ResultInfo) {
    let page = page.max(1);
    let per_page = per_page.max(1);
    let total_count = items.len();
    let total_pages = total_count.div_ceil(per_page);
    let start = (page - 1).saturating_mul(per_page);
    let slice: Vec<T> = items.iter().skip(start).take(per_page).cloned().collect();
    let info = ResultInfo { page, per_page, count: slice.len(), total_count, total_pages };
    (slice, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paginate_splits_and_answers_past_the_end_with_empty() {
        let items: Vec<u32> = (0..25).collect();
        let (p1, i1) = paginate(&items, 1, 10);
        assert_eq!(p1, (0..10).collect::<Vec<_>>());
        assert_eq!((i1.count, i1.total_count, i1.total_pages), (10, 25, 3));
        let (p3, i3) = paginate(&items, 3, 10);
        assert_eq!(p3, (20..25).collect::<Vec<_>>());
        assert_eq!(i3.count, 5);
        let (p4, i4) = paginate(&items, 4, 10);
        assert!(p4.is_empty());
        assert_eq!(i4.page, 4);
        let (p0, i0) = paginate(&items, 0, 0);
        assert_eq!(p0, vec![0]);
        assert_eq!((i0.page, i0.per_page), (1, 1));
    }
}
