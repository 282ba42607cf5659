//! Token verification (`/user/tokens/verify`, `/accounts/{a}/tokens/verify`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;

pub const EP_USER_TOKEN_VERIFY: &str = "/user/tokens/verify";
pub const EP_ACCOUNT_TOKEN_VERIFY: &str = "/accounts/:account/tokens/verify";

/// Code for "Invalid API Token" (also what an account token gets on the user path).
const INVALID_TOKEN: u32 = 1000;

/// Result of a token verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStatus {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub id: String,
    /// `active`, `disabled` or `expired`.
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub status: String,
    #[serde(default, deserialize_with = "de::lenient_datetime", skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "de::lenient_datetime", skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
}

impl TokenStatus {
    /// Only `active` tokens are usable.
    pub fn is_active(&self) -> bool {
        self.status.eq_ignore_ascii_case("active")
    }
}

impl CloudflareClient {
    /// Verify the token. With an account ID the account path is tried first (account-owned
    /// tokens fail on the user path with code 1000); on code 1000 the other path is tried.
    /// Without an account ID only the user path exists.
    pub async fn verify_token(&self, account_id: Option<&str>) -> Result<TokenStatus, CloudflareError> {
        let user = || Request::get(EP_USER_TOKEN_VERIFY, "/user/tokens/verify".to_string());
        let Some(account) = account_id.filter(|a| !a.is_empty()) else {
            return self.call(user()).await;
        };
        let account_req = Request::get(EP_ACCOUNT_TOKEN_VERIFY, format!("/accounts/{}/tokens/verify", enc(account)));
        match self.call(account_req).await {
            Err(first) if first.has_code(INVALID_TOKEN) => match self.call(user()).await {
                Ok(s) => Ok(s),
                // Both paths reject the token: report the account path's answer.
                Err(second) if second.has_code(INVALID_TOKEN) => Err(first),
                Err(second) => Err(second),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_parses_tolerantly() {
        let s: TokenStatus =
            serde_json::from_value(json!({"id": "abc", "status": "active", "expires_on": "2030-01-01T00:00:00Z"}))
                .unwrap();
        assert!(s.is_active());
        assert_eq!(s.expires_on.map(|d| d.timestamp()), Some(1893456000));
        let s: TokenStatus =
            serde_json::from_value(json!({"id": "abc", "status": "expired", "expires_on": null})).unwrap();
        assert!(!s.is_active() && s.expires_on.is_none());
    }
}
