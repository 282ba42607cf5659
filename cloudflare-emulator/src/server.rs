//! Router assembly and the per-request pipeline: base latency, auth, rate limit, faults,
//! account/zone scoping, journal.

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, OriginalUri, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tracing::debug;

use crate::API_PREFIX;
use crate::app::SharedApp;
use crate::auth::{self, Caller};
use crate::envelope::ApiError;
use crate::faults::FaultOutcome;
use crate::journal::JournalEntry;
use crate::routes;

/// Response marker set by handlers whose call changed nothing (read-only D1 queries).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadOnlyCall;

const MAX_BODY_BYTES: usize = 128 * 1024 * 1024;

pub(crate) fn router(app: SharedApp) -> Router {
    let api = routes::api_router()
        .fallback(api_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), pipeline));
    Router::new()
        .nest(API_PREFIX, api)
        .nest("/__emulator", routes::control::router())
        .fallback(api_not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

async fn api_not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::no_route(uri.path())
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, 10405, "Method not allowed for this endpoint")
}

async fn pipeline(State(app): State<SharedApp>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let at = Utc::now();
    let method = req.method().clone();
    let api_path = req.uri().path().to_string();
    let full_path = req
        .extensions()
        .get::<OriginalUri>()
        .map(|u| u.path().to_string())
        .unwrap_or_else(|| format!("{API_PREFIX}{api_path}"));
    let query = req.uri().query().map(str::to_string);

    let headers = req.headers().clone();
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect());
    let (token_id, response) = match admit(&app, &headers, &full_path, &api_path).await {
        Ok(caller) => {
            let id = caller.token_id.clone();
            req.extensions_mut().insert(caller);
            (Some(id), next.run(req).await)
        }
        Err((id, err)) => (id, err.into_response()),
    };

    let read_only = response.extensions().get::<ReadOnlyCall>().is_some();
    let mutating = !(method == Method::GET || method == Method::HEAD || read_only);
    let status = response.status().as_u16();
    debug!(
        method = %method,
        path = %full_path,
        status,
        token_id = token_id.as_deref().unwrap_or("-"),
        mutating,
        "api request"
    );
    app.journal.record(JournalEntry {
        seq: 0,
        at,
        method: method.to_string(),
        path: full_path,
        query,
        status,
        token_id,
        mutating,
        duration_ms: started.elapsed().as_millis() as u64,
        user_agent,
    });
    response
}

/// Everything that happens before the handler. On rejection returns the token id (when
/// known) and the error to send.
async fn admit(
    app: &SharedApp,
    headers: &HeaderMap,
    full_path: &str,
    api_path: &str,
) -> Result<Caller, (Option<String>, ApiError)> {
    if !app.config.latency.is_zero() {
        app.hold(app.config.latency).await;
    }
    let caller = auth::authenticate(app, headers, api_path).map_err(|e| (None, e))?;
    let id = Some(caller.token_id.clone());
    if let Err(secs) = app.limiter.check(&caller.token_id, Instant::now()) {
        let mut e =
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, 971, "Please wait and consider throttling your request speed");
        e.retry_after_secs = Some(secs);
        return Err((id, e));
    }
    let decision = app.faults.decide(full_path);
    if !decision.latency.is_zero() {
        app.hold(decision.latency).await;
    }
    match decision.outcome {
        FaultOutcome::Pass => {}
        FaultOutcome::Fail { status, retry_after_secs } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut e = if status == StatusCode::TOO_MANY_REQUESTS {
                ApiError::new(status, 971, "Please wait and consider throttling your request speed")
            } else {
                ApiError::new(status, 10013, format!("emulator: injected fault (HTTP {})", status.as_u16()))
            };
            if status == StatusCode::TOO_MANY_REQUESTS {
                e.retry_after_secs = Some(retry_after_secs);
            }
            return Err((id, e));
        }
        FaultOutcome::Timeout { hold } => {
            app.hold(hold).await;
            return Err((id, ApiError::new(StatusCode::GATEWAY_TIMEOUT, 10013, "emulator: injected timeout")));
        }
    }
    auth::check_scope(app, &caller, api_path).map_err(|e| (id, e))?;
    Ok(caller)
}
