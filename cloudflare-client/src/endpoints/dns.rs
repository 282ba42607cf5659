//! DNS records of a zone.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;
use crate::pagination::{Page, collect_pages};

pub const EP_DNS_RECORDS: &str = "/zones/:zone/dns_records";
pub const EP_DNS_RECORD: &str = "/zones/:zone/dns_records/:record";

const DNS_PER_PAGE: u32 = 100;

/// A DNS record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsRecord {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub id: String,
    /// FQDN.
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub name: String,
    #[serde(rename = "type", default, deserialize_with = "de::lenient_string")]
    pub record_type: String,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub content: Option<String>,
    /// Seconds; 1 = automatic.
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub ttl: Option<u64>,
    #[serde(default, deserialize_with = "de::null_default")]
    pub proxied: Option<bool>,
    #[serde(default, deserialize_with = "de::null_default")]
    pub proxiable: Option<bool>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub comment: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub priority: Option<u64>,
    #[serde(default)]
    pub data: Option<Value>,
    #[serde(default)]
    pub settings: Option<Value>,
    #[serde(default)]
    pub meta: Option<Value>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub created_on: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub modified_on: Option<String>,
}

/// Body of create (POST) and full replacement (PUT).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsRecordInput {
    #[serde(rename = "type")]
    pub record_type: String,
    /// FQDN (Punycode).
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// 60..86400, or 1 for automatic. Always sent.
    pub ttl: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxied: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<Value>,
}

impl DnsRecordInput {
    /// A record with automatic TTL.
    pub fn new(record_type: impl Into<String>, name: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            record_type: record_type.into(),
            name: name.into(),
            content: Some(content.into()),
            ttl: 1,
            proxied: None,
            comment: None,
            tags: Vec::new(),
            priority: None,
            data: None,
            settings: None,
        }
    }

    pub fn proxied(mut self, proxied: bool) -> Self {
        self.proxied = Some(proxied);
        self
    }

    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
}

/// Body of PATCH: only the set fields change.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DnsRecordPatch {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub record_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxied: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// List filters (case-insensitive on the server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsFilter {
    pub record_type: Option<String>,
    /// Sent as `name.exact`.
    pub name: Option<String>,
    /// Sent as `content.exact`.
    pub content: Option<String>,
    pub proxied: Option<bool>,
}

fn records_path(zone: &str) -> String {
    format!("/zones/{}/dns_records", enc(zone))
}

impl CloudflareClient {
    /// `POST .../dns_records`.
    ///
    /// Not idempotent. The request is still retried on 5xx and timeouts, so a retry after a lost
    /// answer can fail with a conflict (81057 identical record, 81053/81054 name taken;
    /// `is_conflict()`) for a record this call created. Callers list with
    /// [`DnsFilter`] (type + name) and adopt the match instead of creating blindly.
    pub async fn create_dns_record(
        &self,
        zone_id: &str,
        record: &DnsRecordInput,
    ) -> Result<DnsRecord, CloudflareError> {
        self.call(Request::post(EP_DNS_RECORDS, records_path(zone_id)).json(record)?).await
    }

    /// One page of `GET .../dns_records`.
    pub async fn list_dns_records_page(
        &self,
        zone_id: &str,
        filter: &DnsFilter,
        page: u32,
        per_page: u32,
    ) -> Result<Page<DnsRecord>, CloudflareError> {
        let req = Request::get(EP_DNS_RECORDS, records_path(zone_id))
            .query_opt("type", filter.record_type.as_deref())
            .query_opt("name.exact", filter.name.as_deref())
            .query_opt("content.exact", filter.content.as_deref())
            .query_opt("proxied", filter.proxied)
            .query("page", page)
            .query("per_page", per_page);
        self.page_array(req).await
    }

    /// All records matching `filter` (every page).
    pub async fn list_dns_records(&self, zone_id: &str, filter: &DnsFilter) -> Result<Vec<DnsRecord>, CloudflareError> {
        collect_pages(DNS_PER_PAGE, |page| self.list_dns_records_page(zone_id, filter, page, DNS_PER_PAGE)).await
    }

    pub async fn get_dns_record(&self, zone_id: &str, record_id: &str) -> Result<DnsRecord, CloudflareError> {
        self.call(Request::get(EP_DNS_RECORD, format!("{}/{}", records_path(zone_id), enc(record_id)))).await
    }

    /// `PUT`: full replacement.
    pub async fn update_dns_record(
        &self,
        zone_id: &str,
        record_id: &str,
        record: &DnsRecordInput,
    ) -> Result<DnsRecord, CloudflareError> {
        self.call(Request::put(EP_DNS_RECORD, format!("{}/{}", records_path(zone_id), enc(record_id))).json(record)?)
            .await
    }

    /// `PATCH`: partial update.
    pub async fn patch_dns_record(
        &self,
        zone_id: &str,
        record_id: &str,
        patch: &DnsRecordPatch,
    ) -> Result<DnsRecord, CloudflareError> {
        self.call(Request::patch(EP_DNS_RECORD, format!("{}/{}", records_path(zone_id), enc(record_id))).json(patch)?)
            .await
    }

    pub async fn delete_dns_record(&self, zone_id: &str, record_id: &str) -> Result<(), CloudflareError> {
        self.call_unit(Request::delete(EP_DNS_RECORD, format!("{}/{}", records_path(zone_id), enc(record_id)))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies() {
        let r = DnsRecordInput::new("CNAME", "api.acme.com", "target.example.net").proxied(true);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"type": "CNAME", "name": "api.acme.com", "content": "target.example.net", "ttl": 1, "proxied": true})
        );
        let p = DnsRecordPatch { content: Some("1.2.3.4".into()), ..Default::default() };
        assert_eq!(serde_json::to_value(&p).unwrap(), json!({"content": "1.2.3.4"}));
        let rec: DnsRecord = serde_json::from_value(json!({
            "id": "r", "name": "a.acme.com", "type": "A", "content": "1.2.3.4", "ttl": 1, "proxied": true,
            "proxiable": true, "tags": null, "settings": {}, "meta": {}, "comment": null, "zone_id": "z"
        }))
        .unwrap();
        assert_eq!((rec.record_type.as_str(), rec.ttl, rec.proxied), ("A", Some(1), Some(true)));
        assert!(rec.tags.is_empty() && rec.comment.is_none());
    }
}
