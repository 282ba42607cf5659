//! Zones: list (page-array), get, and the zone a hostname belongs to.

use serde::{Deserialize, Serialize};

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;
use crate::pagination::{Page, collect_pages};

pub const EP_ZONES: &str = "/zones";
pub const EP_ZONE: &str = "/zones/:zone";

/// Zones per page (the API allows 5..50).
const ZONES_PER_PAGE: u32 = 50;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneAccount {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub id: String,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub name: Option<String>,
}

/// A zone (the fields an operator needs; others are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    pub id: String,
    pub name: String,
    /// `initializing`, `pending`, `active` or `moved`.
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub status: String,
    #[serde(default, deserialize_with = "de::null_default")]
    pub paused: bool,
    /// `full`, `partial`, `secondary` or `internal`.
    #[serde(rename = "type", default, deserialize_with = "de::lenient_opt_string")]
    pub zone_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_account")]
    pub account: Option<ZoneAccount>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub name_servers: Vec<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub created_on: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub modified_on: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub activated_on: Option<String>,
}

fn lenient_account<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ZoneAccount>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

impl Zone {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// Filters of `GET /zones` (exact matches).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneFilter {
    pub name: Option<String>,
    pub account_id: Option<String>,
    pub status: Option<String>,
}

/// Normalize a hostname or route pattern to a bare lowercase host:
/// `*.API.example.com/path*` -> `api.example.com`.
pub fn normalize_hostname(input: &str) -> String {
    let mut h = input.trim();
    if let Some(i) = h.find("://") {
        h = &h[i + 3..];
    }
    if let Some(i) = h.find('/') {
        h = &h[..i];
    }
    if let Some(i) = h.rfind(':')
        && h[i + 1..].chars().all(|c| c.is_ascii_digit())
    {
        h = &h[..i];
    }
    let h = h.trim_start_matches('*').trim_start_matches('.').trim_end_matches('.');
    h.to_ascii_lowercase()
}

/// Candidate zone names for a hostname, longest first, down to two labels:
/// `a.b.example.com` -> `[a.b.example.com, b.example.com, example.com]`.
pub fn zone_candidates(hostname: &str) -> Vec<String> {
    let host = normalize_hostname(hostname);
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    if labels.len() < 2 {
        return Vec::new();
    }
    (0..=labels.len() - 2).map(|i| labels[i..].join(".")).collect()
}

impl CloudflareClient {
    /// One page of `GET /zones`.
    pub async fn list_zones_page(
        &self,
        filter: &ZoneFilter,
        page: u32,
        per_page: u32,
    ) -> Result<Page<Zone>, CloudflareError> {
        let req = Request::get(EP_ZONES, "/zones".to_string())
            .query_opt("name", filter.name.as_deref())
            .query_opt("account.id", filter.account_id.as_deref())
            .query_opt("status", filter.status.as_deref())
            .query("page", page)
            .query("per_page", per_page);
        self.page_array(req).await
    }

    /// All zones matching `filter` (every page).
    pub async fn list_zones(&self, filter: &ZoneFilter) -> Result<Vec<Zone>, CloudflareError> {
        collect_pages(ZONES_PER_PAGE, |page| self.list_zones_page(filter, page, ZONES_PER_PAGE)).await
    }

    /// The zone named exactly `name` (case-insensitive), optionally restricted to an account.
    pub async fn find_zone_by_name(
        &self,
        account_id: Option<&str>,
        name: &str,
    ) -> Result<Option<Zone>, CloudflareError> {
        let name = normalize_hostname(name);
        let filter = ZoneFilter { name: Some(name.clone()), account_id: account_id.map(str::to_string), status: None };
        let zones = self.list_zones(&filter).await?;
        Ok(zones.into_iter().find(|z| {
            z.name.eq_ignore_ascii_case(&name)
                && account_id.is_none_or(|a| z.account.as_ref().is_none_or(|acc| acc.id == a))
        }))
    }

    pub async fn get_zone(&self, zone_id: &str) -> Result<Zone, CloudflareError> {
        self.call(Request::get(EP_ZONE, format!("/zones/{}", enc(zone_id)))).await
    }

    /// The zone of `account_id` that `hostname` belongs to: tries each parent suffix, longest
    /// first (`a.b.example.com`, `b.example.com`, `example.com`). Accepts route patterns.
    pub async fn find_zone_for_hostname(
        &self,
        account_id: &str,
        hostname: &str,
    ) -> Result<Option<Zone>, CloudflareError> {
        for candidate in zone_candidates(hostname) {
            if let Some(z) = self.find_zone_by_name(Some(account_id), &candidate).await? {
                return Ok(Some(z));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hostname_normalization_and_candidates() {
        assert_eq!(normalize_hostname("*.API.Example.com/*"), "api.example.com");
        assert_eq!(normalize_hostname("https://x.example.com:8443/p"), "x.example.com");
        assert_eq!(normalize_hostname("example.com."), "example.com");
        assert_eq!(normalize_hostname("*example.com/*"), "example.com");
        assert_eq!(
            zone_candidates("a.b.example.co.uk"),
            vec!["a.b.example.co.uk", "b.example.co.uk", "example.co.uk", "co.uk"]
        );
        assert_eq!(zone_candidates("example.com"), vec!["example.com"]);
        assert!(zone_candidates("localhost").is_empty());
        assert!(zone_candidates("").is_empty());
    }

    #[test]
    fn zone_parses_with_missing_and_null_fields() {
        let z: Zone = serde_json::from_value(json!({
            "id": "023e105f4ecef8ad9ca31a8372d0c353", "name": "example.com", "status": "active", "paused": null,
            "type": "full", "account": {"id": "acc", "name": "Acme"}, "name_servers": null, "plan": {"id": "x"},
            "activated_on": null
        }))
        .unwrap();
        assert!(z.is_active() && !z.paused);
        assert_eq!(z.account.unwrap().id, "acc");
        assert!(z.name_servers.is_empty());
        let z: Zone = serde_json::from_value(json!({"id": "1", "name": "a.com", "account": "weird"})).unwrap();
        assert!(z.account.is_none() && z.status.is_empty());
    }
}
