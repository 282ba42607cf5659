//! Workers custom domains (account level). Cloudflare creates the DNS record and certificate.

use serde::{Deserialize, Serialize};

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;

pub const EP_DOMAINS: &str = "/accounts/:account/workers/domains";
pub const EP_DOMAIN: &str = "/accounts/:account/workers/domains/:domain";

/// Hostname attached to another Worker (409).
pub const CODE_DOMAIN_OTHER_WORKER: u32 = 100116;
/// Hostname has DNS records not owned by Workers (409).
pub const CODE_DOMAIN_FOREIGN_DNS: u32 = 100117;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomDomain {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub id: String,
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub hostname: String,
    /// Script name.
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub service: String,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub zone_id: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub zone_name: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub cert_id: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub environment: Option<String>,
}

/// Body of `PUT .../workers/domains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachDomain {
    pub hostname: String,
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
    /// Deprecated but harmless; older API versions required `production`.
    pub environment: String,
    /// Take the hostname over from another Worker (code 100116 otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_existing_origin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_existing_dns_record: Option<bool>,
}

impl AttachDomain {
    pub fn new(hostname: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            hostname: hostname.into(),
            service: service.into(),
            zone_id: None,
            zone_name: None,
            environment: "production".into(),
            override_existing_origin: None,
            override_existing_dns_record: None,
        }
    }

    pub fn zone_id(mut self, zone_id: impl Into<String>) -> Self {
        self.zone_id = Some(zone_id.into());
        self
    }

    pub fn zone_name(mut self, zone_name: impl Into<String>) -> Self {
        self.zone_name = Some(zone_name.into());
        self
    }
}

/// Exact-match filters of the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainFilter {
    pub hostname: Option<String>,
    pub service: Option<String>,
    pub zone_id: Option<String>,
    pub zone_name: Option<String>,
    pub environment: Option<String>,
}

impl CloudflareClient {
    /// `PUT .../workers/domains`: attach a hostname to a script (idempotent for the same
    /// hostname and script).
    pub async fn attach_domain(
        &self,
        account_id: &str,
        domain: &AttachDomain,
    ) -> Result<CustomDomain, CloudflareError> {
        let req = Request::put(EP_DOMAINS, format!("/accounts/{}/workers/domains", enc(account_id))).json(domain)?;
        self.call(req).await
    }

    /// `GET .../workers/domains` with exact-match filters (unpaginated).
    pub async fn list_domains(
        &self,
        account_id: &str,
        filter: &DomainFilter,
    ) -> Result<Vec<CustomDomain>, CloudflareError> {
        let req = Request::get(EP_DOMAINS, format!("/accounts/{}/workers/domains", enc(account_id)))
            .query_opt("hostname", filter.hostname.as_deref())
            .query_opt("service", filter.service.as_deref())
            .query_opt("zone_id", filter.zone_id.as_deref())
            .query_opt("zone_name", filter.zone_name.as_deref())
            .query_opt("environment", filter.environment.as_deref());
        let r: Option<Vec<CustomDomain>> = self.call(req).await?;
        Ok(r.unwrap_or_default())
    }

    pub async fn get_domain(&self, account_id: &str, domain_id: &str) -> Result<CustomDomain, CloudflareError> {
        self.call(Request::get(EP_DOMAIN, format!("/accounts/{}/workers/domains/{}", enc(account_id), enc(domain_id))))
            .await
    }

    /// `DELETE .../workers/domains/:domain`: detach (the API removes its DNS record).
    pub async fn detach_domain(&self, account_id: &str, domain_id: &str) -> Result<(), CloudflareError> {
        self.call_unit(Request::delete(
            EP_DOMAIN,
            format!("/accounts/{}/workers/domains/{}", enc(account_id), enc(domain_id)),
        ))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attach_body() {
        let b = AttachDomain::new("api.acme.com", "acme-api").zone_id("z1");
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!({"hostname": "api.acme.com", "service": "acme-api", "zone_id": "z1", "environment": "production"})
        );
        let d: CustomDomain =
            serde_json::from_value(json!({"id": "d", "hostname": "h", "service": "s", "zone_id": null})).unwrap();
        assert!(d.zone_id.is_none());
    }
}
