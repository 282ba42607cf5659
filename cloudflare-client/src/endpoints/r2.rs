//! R2 buckets: create (location hint, storage class, jurisdiction), list, get, delete.
//!
//! The jurisdiction travels in the `cf-r2-jurisdiction` header on every call: a bucket in `eu`
//! is invisible without it. Create is not idempotent (10004, `is_conflict()`); a bucket that
//! still holds objects cannot be deleted ([`CloudflareError::is_conflict`] or a 4xx).

use serde::{Deserialize, Serialize};

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;

pub const EP_R2_BUCKETS: &str = "/accounts/:account/r2/buckets";
pub const EP_R2_BUCKET: &str = "/accounts/:account/r2/buckets/:bucket";

pub const R2_JURISDICTION_HEADER: &str = "cf-r2-jurisdiction";
/// Location hints the API takes.
pub const R2_LOCATION_HINTS: &[&str] = &["apac", "eeur", "enam", "weur", "wnam", "oc"];
/// Jurisdictions the API takes (`default` = none).
pub const R2_JURISDICTIONS: &[&str] = &["default", "eu", "us", "fedramp", "fedramp-high"];
/// A full page of the bucket list (cursor paging).
pub const R2_PER_PAGE: u32 = 1000;

/// A bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct R2Bucket {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub name: String,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub creation_date: Option<String>,
    /// Location, e.g. `ENAM` (case varies).
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub location: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub storage_class: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub jurisdiction: Option<String>,
}

/// `POST .../r2/buckets`. `jurisdiction` is sent as the header, the rest as camelCase JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CreateR2Bucket {
    pub name: String,
    #[serde(rename = "locationHint", skip_serializing_if = "Option::is_none")]
    pub location_hint: Option<String>,
    #[serde(rename = "storageClass", skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    #[serde(skip)]
    pub jurisdiction: Option<String>,
}

impl CreateR2Bucket {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// Check name, location hint and jurisdiction before sending.
    pub fn validate(&self) -> Result<(), CloudflareError> {
        if !valid_bucket_name(&self.name) {
            return Err(CloudflareError::InvalidInput(format!(
                "R2 bucket name {:?} is invalid: 3-63 lowercase letters, digits and '-', not starting or ending with '-'",
                self.name
            )));
        }
        if let Some(h) = &self.location_hint
            && !R2_LOCATION_HINTS.contains(&h.to_ascii_lowercase().as_str())
        {
            return Err(CloudflareError::InvalidInput(format!(
                "R2 locationHint {h:?} is invalid: one of {}",
                R2_LOCATION_HINTS.join(", ")
            )));
        }
        check_jurisdiction(self.jurisdiction.as_deref())
    }
}

/// `^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn check_jurisdiction(j: Option<&str>) -> Result<(), CloudflareError> {
    match j {
        Some(j) if !R2_JURISDICTIONS.contains(&j) => Err(CloudflareError::InvalidInput(format!(
            "R2 jurisdiction {j:?} is invalid: one of {}",
            R2_JURISDICTIONS.join(", ")
        ))),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct BucketList {
    #[serde(default, deserialize_with = "de::lenient_vec")]
    buckets: Vec<R2Bucket>,
}

fn bucket_path(account: &str, bucket: &str) -> String {
    format!("/accounts/{}/r2/buckets/{}", enc(account), enc(bucket))
}

impl CloudflareClient {
    /// `POST .../r2/buckets`. Existing name: 10004 (`is_conflict()`).
    pub async fn create_r2_bucket(&self, account_id: &str, body: &CreateR2Bucket) -> Result<R2Bucket, CloudflareError> {
        body.validate()?;
        let req = Request::post(EP_R2_BUCKETS, format!("/accounts/{}/r2/buckets", enc(account_id)))
            .header_opt(R2_JURISDICTION_HEADER, body.jurisdiction.clone())
            .json(body)?;
        let r: Option<R2Bucket> = self.call(req).await?;
        Ok(r.filter(|b| !b.name.is_empty()).unwrap_or_else(|| R2Bucket {
            name: body.name.clone(),
            jurisdiction: body.jurisdiction.clone(),
            ..R2Bucket::default()
        }))
    }

    /// Every bucket of the account in `jurisdiction` (following `result_info.cursor`),
    /// optionally only names containing `name_contains`.
    pub async fn list_r2_buckets(
        &self,
        account_id: &str,
        jurisdiction: Option<&str>,
        name_contains: Option<&str>,
    ) -> Result<Vec<R2Bucket>, CloudflareError> {
        check_jurisdiction(jurisdiction)?;
        let mut all: Vec<R2Bucket> = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..crate::pagination::MAX_PAGES {
            let req = Request::get(EP_R2_BUCKETS, format!("/accounts/{}/r2/buckets", enc(account_id)))
                .header_opt(R2_JURISDICTION_HEADER, jurisdiction)
                .query("per_page", R2_PER_PAGE)
                .query_opt("name_contains", name_contains)
                .query_opt("cursor", cursor.clone());
            let env = self.send(&req).await?;
            let list: Option<BucketList> = crate::envelope::decode_result(env.result, &req.method, req.endpoint)?;
            let items = list.map(|l| l.buckets).unwrap_or_default();
            let next = env.result_info.and_then(|i| i.cursor).filter(|c| !c.is_empty());
            let empty = items.is_empty();
            all.extend(items);
            match next {
                Some(c) if !empty && cursor.as_deref() != Some(c.as_str()) => cursor = Some(c),
                _ => break,
            }
        }
        Ok(all)
    }

    /// `GET .../r2/buckets/:name`. Missing: `is_not_found()` (10006).
    pub async fn get_r2_bucket(
        &self,
        account_id: &str,
        bucket: &str,
        jurisdiction: Option<&str>,
    ) -> Result<R2Bucket, CloudflareError> {
        check_jurisdiction(jurisdiction)?;
        let req = Request::get(EP_R2_BUCKET, bucket_path(account_id, bucket))
            .header_opt(R2_JURISDICTION_HEADER, jurisdiction);
        self.call(req).await
    }

    /// `DELETE .../r2/buckets/:name`. Refused while the bucket holds objects.
    pub async fn delete_r2_bucket(
        &self,
        account_id: &str,
        bucket: &str,
        jurisdiction: Option<&str>,
    ) -> Result<(), CloudflareError> {
        check_jurisdiction(jurisdiction)?;
        let req = Request::delete(EP_R2_BUCKET, bucket_path(account_id, bucket))
            .header_opt(R2_JURISDICTION_HEADER, jurisdiction);
        self.call_unit(req).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn create_body_and_validation() {
        let c = CreateR2Bucket {
            location_hint: Some("weur".into()),
            jurisdiction: Some("eu".into()),
            ..CreateR2Bucket::new("files")
        };
        assert_eq!(serde_json::to_value(&c).unwrap(), json!({"name": "files", "locationHint": "weur"}));
        assert!(c.validate().is_ok());
        assert!(CreateR2Bucket::new("Bad_Name").validate().is_err());
        let bad_hint = CreateR2Bucket { location_hint: Some("mars".into()), ..CreateR2Bucket::new("ok-name") };
        assert!(bad_hint.validate().unwrap_err().to_string().contains("locationHint"));
        let bad_j = CreateR2Bucket { jurisdiction: Some("moon".into()), ..CreateR2Bucket::new("ok-name") };
        assert!(bad_j.validate().is_err());
    }
}
