//! Zone lookup in an account, in one place: a zone name becomes its id and status, or a typed
//! [`ZoneError`] that says whether the zone is missing, unreadable with the token, or the lookup
//! failed.

use std::time::Duration;

use super::credentials::reason_for;
use crate::cloudflare::{CloudflareClient, CloudflareError};
use crate::crd::conditions::reason;

/// Zones that were not found are looked up again after this long.
pub const ZONE_RETRY: Duration = Duration::from_secs(300);

/// A zone found in the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub id: String,
    /// Cloudflare's zone status (`active`, `pending`, …).
    pub status: String,
}

/// Why a zone could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// The account has no zone of that name.
    #[error("zone {zone} is not in account {account}")]
    NotFound { zone: String, account: String },
    /// Cloudflare refused the lookup (401/403): the token may not read the zone.
    #[error("the token may not read zone {zone}")]
    Forbidden {
        zone: String,
        #[source]
        source: CloudflareError,
    },
    /// The lookup failed (API error, rate limit, timeout).
    #[error("looking up zone {zone}")]
    Lookup {
        zone: String,
        #[source]
        source: CloudflareError,
    },
}

impl ZoneError {
    /// Condition reason: `ZoneNotFound`, `TokenInvalid`, or the Cloudflare error's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => reason::ZONE_NOT_FOUND,
            Self::Forbidden { .. } => reason::TOKEN_INVALID,
            Self::Lookup { source, .. } => reason_for(source),
        }
    }

    /// Waiting may help (the lookup itself failed retryably); a missing or unreadable zone needs
    /// a change of the zones or the token.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Lookup { source, .. } if source.is_retryable())
    }

    /// The zone name.
    pub fn zone(&self) -> &str {
        match self {
            Self::NotFound { zone, .. } | Self::Forbidden { zone, .. } | Self::Lookup { zone, .. } => zone,
        }
    }

    /// The Cloudflare error behind the failure, if there was one.
    pub fn cloudflare(&self) -> Option<&CloudflareError> {
        match self {
            Self::NotFound { .. } => None,
            Self::Forbidden { source, .. } | Self::Lookup { source, .. } => Some(source),
        }
    }
}

/// Look up one zone by name in `account`.
pub async fn lookup(client: &CloudflareClient, account: &str, zone: &str) -> Result<Zone, ZoneError> {
    match client.find_zone_by_name(Some(account), zone).await {
        Ok(Some(z)) => Ok(Zone { name: zone.to_string(), id: z.id, status: z.status }),
        Ok(None) => Err(ZoneError::NotFound { zone: zone.to_string(), account: account.to_string() }),
        Err(source) if source.is_auth_error() => Err(ZoneError::Forbidden { zone: zone.to_string(), source }),
        Err(source) => Err(ZoneError::Lookup { zone: zone.to_string(), source }),
    }
}

/// Every zone of a list that the account has, and the names it does not have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub found: Vec<Zone>,
    pub missing: Vec<String>,
}

/// Look up each zone in order. A missing zone is collected in [`Resolved::missing`]; any other
/// failure stops at that zone.
pub async fn resolve(client: &CloudflareClient, account: &str, zones: &[String]) -> Result<Resolved, ZoneError> {
    let mut out = Resolved::default();
    for z in zones {
        match lookup(client, account, z).await {
            Ok(zone) => out.found.push(zone),
            Err(ZoneError::NotFound { zone, .. }) => out.missing.push(zone),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> CloudflareError {
        CloudflareError::Api { status, errors: Vec::new(), method: reqwest::Method::GET, endpoint: "/zones" }
    }

    #[test]
    fn reasons_and_retries_follow_the_kind_of_failure() {
        let missing = ZoneError::NotFound { zone: "acme.com".into(), account: "a1".into() };
        assert_eq!((missing.reason(), missing.is_retryable()), (reason::ZONE_NOT_FOUND, false));
        assert_eq!(missing.to_string(), "zone acme.com is not in account a1");
        let forbidden = ZoneError::Forbidden { zone: "acme.com".into(), source: api(403) };
        assert_eq!((forbidden.reason(), forbidden.is_retryable()), (reason::TOKEN_INVALID, false));
        let down = ZoneError::Lookup { zone: "acme.com".into(), source: api(503) };
        assert_eq!((down.reason(), down.is_retryable()), (reason::CLOUDFLARE_ERROR, true));
        let limited = ZoneError::Lookup { zone: "acme.com".into(), source: api(429) };
        assert_eq!(limited.reason(), reason::RATE_LIMITED);
        assert_eq!(limited.zone(), "acme.com");
        assert!(std::error::Error::source(&limited).is_some());
    }
}
