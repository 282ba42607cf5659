//! HTTP handlers under `/client/v4`, one module per API area, plus shared extractors.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::app::SharedApp;
use crate::envelope::ApiError;
use crate::model::{Account, Script, State};

pub(crate) mod accounts;
pub(crate) mod control;
pub(crate) mod d1;
pub(crate) mod d1_export;
pub(crate) mod dns;
pub(crate) mod domains;
pub(crate) mod durable_objects;
pub(crate) mod kv;
pub(crate) mod queues;
pub(crate) mod r2;
pub(crate) mod scripts;
pub(crate) mod secrets;
pub(crate) mod versions;
pub(crate) mod zones;

/// Every API route (paths relative to `/client/v4`).
pub(crate) fn api_router() -> Router<SharedApp> {
    Router::new()
        .merge(accounts::router())
        .merge(zones::router())
        .merge(dns::router())
        .merge(d1::router())
        .merge(scripts::router())
        .merge(versions::router())
        .merge(secrets::router())
        .merge(domains::router())
        .merge(kv::router())
        .merge(r2::router())
        .merge(queues::router())
        .merge(durable_objects::router())
}

/// Query parameters as ordered pairs (repeated keys allowed).
pub(crate) struct Params(pub Vec<(String, String)>);

impl Params {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | ""))
    }

    /// A positive integer parameter, `default` when absent; 400 when malformed.
    pub(crate) fn number(&self, key: &str, default: usize) -> Result<usize, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(default),
            Some(v) => v.parse::<usize>().map_err(|_| {
                ApiError::bad_request(1001, format!("Invalid {key} parameter {v:?}: expected a positive integer"))
            }),
        }
    }

    /// `page` (default 1) and `per_page` (default `per_page_default`, capped at `max`).
    pub(crate) fn paging(&self, per_page_default: usize, max: usize) -> Result<(usize, usize), ApiError> {
        let page = self.number("page", 1)?.max(1);
        let per_page = self.number("per_page", per_page_default)?.clamp(1, max);
        Ok((page, per_page))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(1001, format!("Invalid query string: {e}")))?;
        Ok(Params(pairs))
    }
}

/// A JSON body whose errors come back in the Cloudflare envelope. An empty body parses as
/// JSON `null`.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| ApiError::invalid_body(e.to_string()))?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"null" } else { &bytes };
        serde_json::from_slice(text).map(JsonBody).map_err(ApiError::invalid_body)
    }
}

/// `wrangler` when the client is wrangler (by User-Agent), `api` otherwise.
pub(crate) fn source_of(headers: &HeaderMap) -> &'static str {
    let ua = headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ua.starts_with("wrangler") { "wrangler" } else { "api" }
}

pub(crate) fn account<'a>(state: &'a State, id: &str) -> Result<&'a Account, ApiError> {
    state.accounts.get(id).ok_or_else(ApiError::forbidden)
}

pub(crate) fn account_mut<'a>(state: &'a mut State, id: &str) -> Result<&'a mut Account, ApiError> {
    state.accounts.get_mut(id).ok_or_else(ApiError::forbidden)
}

pub(crate) fn script<'a>(account: &'a Account, name: &str) -> Result<&'a Script, ApiError> {
    account.scripts.get(name).ok_or_else(|| ApiError::script_not_found(name))
}

pub(crate) fn script_mut<'a>(account: &'a mut Account, name: &str) -> Result<&'a mut Script, ApiError> {
    account.scripts.get_mut(name).ok_or_else(|| ApiError::script_not_found(name))
}
