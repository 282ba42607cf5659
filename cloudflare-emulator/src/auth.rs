//! Bearer-token authentication and account scoping.

use axum::http::{HeaderMap, StatusCode, header};

use crate::app::App;
use crate::config::TokenScope;
use crate::envelope::ApiError;

/// The authenticated caller, stored in request extensions for handlers.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub token_id: String,
    pub scope: TokenScope,
}

impl Caller {
    pub(crate) fn allows(&self, account_id: &str) -> bool {
        self.scope.allows(account_id)
    }
}

/// Identify the token. Errors follow the real API: no credentials 400/9106, malformed
/// header 400/6111, unknown token 401 (code 1000 on token verify, 10000 elsewhere).
pub(crate) fn authenticate(app: &App, headers: &HeaderMap, path: &str) -> Result<Caller, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        if headers.contains_key("x-auth-key") || headers.contains_key("x-auth-email") {
            return Err(ApiError::new(StatusCode::FORBIDDEN, 9103, "Unknown X-Auth-Key or X-Auth-Email"));
        }
        return Err(
            ApiError::bad_request(9106, "Missing X-Auth-Email header").with_error(9107, "Missing X-Auth-Key header")
        );
    };
    let value = value.to_str().unwrap_or_default();
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
        _ => {
            return Err(ApiError::bad_request(6111, "Invalid format for Authorization header"));
        }
    };
    match app.config.token(token) {
        Some(t) => Ok(Caller { token_id: t.id.clone(), scope: t.scope.clone() }),
        None if path.ends_with("/tokens/verify") => {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, 1000, "Invalid API Token"))
        }
        None => Err(ApiError::new(StatusCode::UNAUTHORIZED, 10000, "Authentication error")),
    }
}

/// Check the account or zone named in the path against the token's scope.
/// `api_path` is the path below `/client/v4`.
pub(crate) fn check_scope(app: &App, caller: &Caller, api_path: &str) -> Result<(), ApiError> {
    let mut segs = api_path.trim_start_matches('/').split('/');
    match (segs.next(), segs.next()) {
        (Some("accounts"), Some(id)) if !id.is_empty() => {
            let exists = app.read(|s| s.accounts.contains_key(id));
            if exists && caller.allows(id) { Ok(()) } else { Err(ApiError::forbidden()) }
        }
        (Some("zones"), Some(id)) if !id.is_empty() => {
            match app.read(|s| s.zones.get(id).map(|z| z.account_id.clone())) {
                None => Err(ApiError::no_route(&format!("/zones/{id}"))),
                Some(acc) if caller.allows(&acc) => Ok(()),
                Some(_) => Err(ApiError::forbidden()),
            }
        }
        _ => Ok(()),
    }
}
