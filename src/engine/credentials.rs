//! API token verification, in one place: ask Cloudflare about a token, turn the answer into a
//! `CredentialsValid` condition and a bounded reason, decide when an unchanged token is asked
//! about again, and remember recent verdicts per token.
//!
//! A Customer's verdict is the one its services trust. A changed Secret is verified at once; an
//! unchanged one after [`TOKEN_RECHECK`], when it reaches its expiry, or sooner (at most every
//! [`TOKEN_MIN_INTERVAL`]) when a service saw Cloudflare reject it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;

use super::zones::ZONE_RETRY;
use crate::cloudflare::{CloudflareClient, CloudflareError, TokenKey};
use crate::crd::CustomerStatus;
use crate::crd::conditions::{self as c, CondSpec, reason};

/// A verified token is verified again after this long (a Customer's cached verdict, and the
/// in-memory [`VerifiedTokens`]).
pub const TOKEN_RECHECK: Duration = Duration::from_secs(3600);
/// Least time between two verifications of an unchanged Secret (a changed Secret is verified at
/// once): the rate limit for re-checks that a service's rejected call asks for.
pub const TOKEN_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// What Cloudflare said about a token it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenVerdict {
    /// `status` is `active`.
    pub active: bool,
    /// Cloudflare's word for it: `active`, `disabled`, `expired`.
    pub status: String,
    /// RFC 3339, when the token expires.
    pub expires_on: Option<String>,
}

/// The outcome of one verification.
#[derive(Debug)]
pub enum Verification {
    /// Accepted and active.
    Active(TokenVerdict),
    /// Accepted, but Cloudflare reports it as not active (disabled, expired).
    Inactive(TokenVerdict),
    /// Rejected (401/403): revoked, expired, or without access to the account.
    Rejected(CloudflareError),
    /// Cloudflare could not be asked (API error, rate limit, timeout): ask again later.
    Unavailable(CloudflareError),
}

/// Ask Cloudflare about the client's token, scoped to `account`.
pub async fn verify(client: &CloudflareClient, account: &str) -> Verification {
    Verification::from_result(client.verify_token(Some(account)).await.map(|t| TokenVerdict {
        active: t.is_active(),
        status: t.status.clone(),
        expires_on: t.expires_on.map(|e| e.to_rfc3339()),
    }))
}

impl Verification {
    /// Classify Cloudflare's answer.
    pub fn from_result(r: Result<TokenVerdict, CloudflareError>) -> Self {
        match r {
            Ok(v) if v.active => Self::Active(v),
            Ok(v) => Self::Inactive(v),
            Err(e) if e.is_auth_error() => Self::Rejected(e),
            Err(e) => Self::Unavailable(e),
        }
    }

    /// The token may be used.
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Active(_))
    }

    /// Cloudflare gave a verdict (valid or not); `false` means ask again.
    pub fn is_verdict(&self) -> bool {
        !matches!(self, Self::Unavailable(_))
    }

    /// Reason of the `CredentialsValid` condition.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Active(_) => reason::TOKEN_VALID,
            Self::Inactive(_) | Self::Rejected(_) => reason::TOKEN_INVALID,
            Self::Unavailable(e) => reason_for(e),
        }
    }

    /// Token status and expiry to record (`invalid` for a rejected token); `None` when
    /// Cloudflare gave no verdict.
    pub fn recorded(&self) -> Option<(String, Option<String>)> {
        match self {
            Self::Active(v) | Self::Inactive(v) => Some((v.status.clone(), v.expires_on.clone())),
            Self::Rejected(_) => Some(("invalid".into(), None)),
            Self::Unavailable(_) => None,
        }
    }

    /// `CredentialsValid` for a token verified in `account`.
    pub fn condition(&self, account: &str) -> CondSpec {
        let why = self.reason();
        match self {
            Self::Active(v) => CondSpec::ok(c::CREDENTIALS_VALID, why, format!("token is active{}", expiry(v))),
            Self::Inactive(v) => CondSpec::fail(
                c::CREDENTIALS_VALID,
                why,
                format!("Cloudflare reports the token as {}{}; put a valid token in the Secret", v.status, expiry(v)),
            ),
            Self::Rejected(e) => CondSpec::fail(
                c::CREDENTIALS_VALID,
                why,
                format!(
                    "Cloudflare rejected the token for account {account} (revoked, expired or without access to the account): {e}"
                ),
            ),
            Self::Unavailable(e) => CondSpec::unknown(c::CREDENTIALS_VALID, why, format!("verifying the token: {e}")),
        }
    }
}

fn expiry(v: &TokenVerdict) -> String {
    v.expires_on.as_deref().map(|e| format!(", expires {e}")).unwrap_or_default()
}

/// Condition reason for a failed Cloudflare call, from the error's kind.
pub fn reason_for(e: &CloudflareError) -> &'static str {
    if e.is_auth_error() {
        reason::TOKEN_INVALID
    } else if e.is_rate_limited() {
        reason::RATE_LIMITED
    } else if e.is_timeout() {
        reason::TIMEOUT
    } else {
        reason::CLOUDFLARE_ERROR
    }
}

/// Whether a pass asks Cloudflare about the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Trust the verdict in status.
    Cached,
    /// Trust it for now, verify again after this long (rate limit).
    CachedFor(Duration),
    /// Verify now; the reason is for logs and the plan.
    Verify(&'static str),
    /// Verify now because the cached verdict is older than [`TOKEN_RECHECK`]: routine upkeep,
    /// sent at resync priority so it never delays a change on the same token.
    Refresh,
}

/// Decide whether to verify a Customer's token. `checked_for` identifies the Secret version and
/// account of this pass; `rejected_at` is the newest time a service of the customer saw
/// Cloudflare reject the token (`CredentialsValid=False, TokenInvalid`).
pub fn recheck(prev: &CustomerStatus, checked_for: &str, now: Timestamp, rejected_at: Option<Timestamp>) -> Recheck {
    let Some(token) = prev.token.as_ref().filter(|t| t.checked_for.as_deref() == Some(checked_for)) else {
        return Recheck::Verify("the token Secret changed or was never verified");
    };
    let Some(at) = token.checked_at.as_ref().map(|t| t.0) else {
        return Recheck::Verify("never verified");
    };
    let Some(verdict) = c::find(&prev.conditions, c::CREDENTIALS_VALID).filter(|x| x.status != "Unknown") else {
        return Recheck::Verify("the last verification did not finish");
    };
    let age = Duration::from_secs(now.duration_since(at).as_secs().max(0) as u64);
    if age >= TOKEN_RECHECK {
        return Recheck::Refresh;
    }
    if verdict.status != "True" {
        return Recheck::Cached;
    }
    let expired = token.expires_on.as_deref().and_then(|e| e.parse::<Timestamp>().ok()).is_some_and(|e| e <= now);
    let zones_failing = !c::is_true(&prev.conditions, c::ZONES_RESOLVED);
    let rejected = rejected_at.is_some_and(|r| r >= at);
    if !(expired || rejected || zones_failing) {
        return Recheck::Cached;
    }
    let min = if zones_failing && !expired && !rejected { ZONE_RETRY } else { TOKEN_MIN_INTERVAL };
    if age < min {
        return Recheck::CachedFor(min - age);
    }
    Recheck::Verify(if expired {
        "the token has reached its expiry"
    } else if rejected {
        "a service saw Cloudflare reject the token"
    } else {
        "zones were not resolved"
    })
}

/// Tokens verified recently, by key (never the token), so quiet passes skip the check.
#[derive(Debug)]
pub struct VerifiedTokens {
    ttl: Duration,
    at: Mutex<HashMap<TokenKey, Instant>>,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::new(TOKEN_RECHECK)
    }
}

impl VerifiedTokens {
    /// Trust a verification for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, at: Mutex::new(HashMap::new()) }
    }

    /// Whether the client's token was verified within the ttl.
    pub fn is_fresh(&self, client: &CloudflareClient) -> bool {
        let map = self.at.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&client.token_key()).is_some_and(|at| at.elapsed() < self.ttl)
    }

    /// Record a valid verification, or forget the token (`valid` false: Cloudflare rejected it).
    pub fn record(&self, client: &CloudflareClient, valid: bool) {
        let mut map = self.at.lock().unwrap_or_else(|e| e.into_inner());
        if valid {
            if map.len() >= 4096 {
                let ttl = self.ttl;
                map.retain(|_, at| at.elapsed() < ttl);
            }
            map.insert(client.token_key(), Instant::now());
        } else {
            map.remove(&client.token_key());
        }
    }
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
