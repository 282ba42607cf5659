//! Workers KV: namespaces (create, list, find by title, get, rename, delete) and keys
//! (single value put/get/delete, cursor listing, bulk write and bulk delete).
//!
//! No create is idempotent: a second namespace with the same title fails with 10014
//! (`is_conflict()`); list and match the title first ([`CloudflareClient::find_kv_namespace`]).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;
use crate::multipart::{MultipartBody, Part};
use crate::pagination::{Page, collect_pages};

pub const EP_KV_NAMESPACES: &str = "/accounts/:account/storage/kv/namespaces";
pub const EP_KV_NAMESPACE: &str = "/accounts/:account/storage/kv/namespaces/:namespace";
pub const EP_KV_VALUE: &str = "/accounts/:account/storage/kv/namespaces/:namespace/values/:key";
pub const EP_KV_KEYS: &str = "/accounts/:account/storage/kv/namespaces/:namespace/keys";
pub const EP_KV_BULK: &str = "/accounts/:account/storage/kv/namespaces/:namespace/bulk";
pub const EP_KV_BULK_DELETE: &str = "/accounts/:account/storage/kv/namespaces/:namespace/bulk/delete";

/// Code of an unknown namespace.
pub const KV_NAMESPACE_NOT_FOUND: u32 = 10013;
/// Page size for namespace listing (what wrangler uses).
pub const KV_NAMESPACES_PER_PAGE: u32 = 100;
/// Most pairs per bulk write or keys per bulk delete the API takes.
pub const KV_BULK_MAX: usize = 10_000;
/// Longest key name (bytes).
pub const KV_MAX_KEY_BYTES: usize = 512;
/// Shortest `expiration_ttl` (seconds).
pub const KV_MIN_TTL_SECS: u64 = 60;

/// A KV namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvNamespace {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub id: String,
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub title: String,
    #[serde(default, deserialize_with = "de::lenient_opt_string", skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    #[serde(default, deserialize_with = "de::null_default", skip_serializing_if = "Option::is_none")]
    pub supports_url_encoding: Option<bool>,
}

/// `POST .../storage/kv/namespaces` body. `jurisdiction` (`eu`, `fedramp`, `us`) is fixed at
/// creation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CreateKvNamespace {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
}

impl CreateKvNamespace {
    pub fn new(title: impl Into<String>) -> Self {
        Self { title: title.into(), jurisdiction: None }
    }
}

/// `PUT .../namespaces/:id` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenameKvNamespace {
    pub title: String,
}

/// Options of a single value write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PutKvValue {
    pub value: Bytes,
    /// Unix seconds; ignored when `expiration_ttl` is set.
    pub expiration: Option<u64>,
    /// Seconds from now, at least [`KV_MIN_TTL_SECS`].
    pub expiration_ttl: Option<u64>,
    /// Arbitrary JSON stored with the key (sent as multipart when present).
    pub metadata: Option<Value>,
}

impl PutKvValue {
    pub fn new(value: impl Into<Bytes>) -> Self {
        Self { value: value.into(), ..Self::default() }
    }
}

/// One pair of a bulk write. `value` is text; set `base64` for binary values encoded as base64.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KvPair {
    pub key: String,
    pub value: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub base64: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl KvPair {
    pub fn text(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self { key: key.into(), value: value.into(), ..Self::default() }
    }
}

/// Outcome of a bulk write or delete. The call succeeds even when some keys fail: check
/// `unsuccessful_keys` and retry those.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvBulkResult {
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub successful_key_count: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub unsuccessful_keys: Vec<String>,
}

/// A listed key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KvKey {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub name: String,
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub expiration: Option<u64>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// One page of keys and the cursor of the next page (`None` at the end).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KvKeyPage {
    pub keys: Vec<KvKey>,
    pub cursor: Option<String>,
}

fn ns_path(account: &str, namespace: &str) -> String {
    format!("/accounts/{}/storage/kv/namespaces/{}", enc(account), enc(namespace))
}

fn check_key(key: &str) -> Result<(), CloudflareError> {
    if key.is_empty() || key == "." || key == ".." || key.len() > KV_MAX_KEY_BYTES {
        return Err(CloudflareError::InvalidInput(format!(
            "KV key names must be 1 to {KV_MAX_KEY_BYTES} bytes and not \".\" or \"..\" (got {} bytes)",
            key.len()
        )));
    }
    Ok(())
}

impl CloudflareClient {
    /// `POST .../storage/kv/namespaces`. An existing title fails with 10014 (`is_conflict()`).
    pub async fn create_kv_namespace(
        &self,
        account_id: &str,
        body: &CreateKvNamespace,
    ) -> Result<KvNamespace, CloudflareError> {
        let req = Request::post(EP_KV_NAMESPACES, format!("/accounts/{}/storage/kv/namespaces", enc(account_id)))
            .json(body)?;
        self.call(req).await
    }

    /// One page of namespaces ordered by title.
    pub async fn list_kv_namespaces_page(
        &self,
        account_id: &str,
        page: u32,
        per_page: u32,
    ) -> Result<Page<KvNamespace>, CloudflareError> {
        let req = Request::get(EP_KV_NAMESPACES, format!("/accounts/{}/storage/kv/namespaces", enc(account_id)))
            .query("page", page)
            .query("per_page", per_page)
            .query("order", "title")
            .query("direction", "asc");
        self.page_array(req).await
    }

    /// Every namespace of the account.
    pub async fn list_kv_namespaces(&self, account_id: &str) -> Result<Vec<KvNamespace>, CloudflareError> {
        collect_pages(KV_NAMESPACES_PER_PAGE, |page| {
            self.list_kv_namespaces_page(account_id, page, KV_NAMESPACES_PER_PAGE)
        })
        .await
    }

    /// The namespace titled exactly `title`, if any.
    pub async fn find_kv_namespace(
        &self,
        account_id: &str,
        title: &str,
    ) -> Result<Option<KvNamespace>, CloudflareError> {
        Ok(self.list_kv_namespaces(account_id).await?.into_iter().find(|n| n.title == title))
    }

    /// `GET .../namespaces/:id`. Unknown: HTTP 404 (`is_not_found()`) with code 10013
    /// ([`KV_NAMESPACE_NOT_FOUND`]).
    pub async fn get_kv_namespace(&self, account_id: &str, namespace_id: &str) -> Result<KvNamespace, CloudflareError> {
        self.call(Request::get(EP_KV_NAMESPACE, ns_path(account_id, namespace_id))).await
    }

    /// `PUT .../namespaces/:id`: new title. Older API versions answer without a body; then the
    /// namespace is returned as renamed.
    pub async fn rename_kv_namespace(
        &self,
        account_id: &str,
        namespace_id: &str,
        body: &RenameKvNamespace,
    ) -> Result<KvNamespace, CloudflareError> {
        let req = Request::put(EP_KV_NAMESPACE, ns_path(account_id, namespace_id)).json(body)?;
        let r: Option<Value> = self.call(req).await?;
        let parsed = r.and_then(|v| serde_json::from_value::<KvNamespace>(v).ok()).filter(|n| !n.id.is_empty());
        Ok(parsed.unwrap_or_else(|| KvNamespace {
            id: namespace_id.to_string(),
            title: body.title.clone(),
            ..KvNamespace::default()
        }))
    }

    /// `DELETE .../namespaces/:id` (keys included). Unknown: `is_not_found()`.
    pub async fn delete_kv_namespace(&self, account_id: &str, namespace_id: &str) -> Result<(), CloudflareError> {
        self.call_unit(Request::delete(EP_KV_NAMESPACE, ns_path(account_id, namespace_id))).await
    }

    /// `PUT .../values/:key`: raw bytes, or multipart (`value` + `metadata`) when metadata is set.
    pub async fn put_kv_value(
        &self,
        account_id: &str,
        namespace_id: &str,
        key: &str,
        put: &PutKvValue,
    ) -> Result<(), CloudflareError> {
        check_key(key)?;
        let path = format!("{}/values/{}", ns_path(account_id, namespace_id), enc(key));
        let mut req = Request::put(EP_KV_VALUE, path)
            .query_opt("expiration", put.expiration)
            .query_opt("expiration_ttl", put.expiration_ttl);
        req = match &put.metadata {
            None => req.raw(put.value.clone(), "application/octet-stream"),
            Some(m) => {
                let meta = serde_json::to_vec(m)
                    .map_err(|_| CloudflareError::InvalidInput("KV metadata could not be serialized".into()))?;
                req.multipart(MultipartBody::encode(&[
                    Part { name: "value".into(), filename: None, content_type: None, data: put.value.clone() },
                    Part { name: "metadata".into(), filename: None, content_type: None, data: Bytes::from(meta) },
                ]))
            }
        };
        self.call_unit(req).await
    }

    /// `GET .../values/:key`: the raw value (not enveloped); `None` when the key does not exist.
    pub async fn get_kv_value(
        &self,
        account_id: &str,
        namespace_id: &str,
        key: &str,
    ) -> Result<Option<Bytes>, CloudflareError> {
        check_key(key)?;
        let path = format!("{}/values/{}", ns_path(account_id, namespace_id), enc(key));
        match self.call_bytes(Request::get(EP_KV_VALUE, path)).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.has_code(10009) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE .../values/:key` (a missing key is not an error).
    pub async fn delete_kv_value(
        &self,
        account_id: &str,
        namespace_id: &str,
        key: &str,
    ) -> Result<(), CloudflareError> {
        check_key(key)?;
        let path = format!("{}/values/{}", ns_path(account_id, namespace_id), enc(key));
        self.call_unit(Request::delete(EP_KV_VALUE, path)).await
    }

    /// One page of `GET .../keys` (`limit` 10..=1000; cursor from the previous page).
    pub async fn list_kv_keys_page(
        &self,
        account_id: &str,
        namespace_id: &str,
        prefix: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KvKeyPage, CloudflareError> {
        let req = Request::get(EP_KV_KEYS, format!("{}/keys", ns_path(account_id, namespace_id)))
            .query_opt("prefix", prefix)
            .query_opt("cursor", cursor)
            .query("limit", limit);
        let page: Page<KvKey> = self.page_array(req).await?;
        let cursor = page.result_info.and_then(|i| i.cursor).filter(|c| !c.is_empty());
        Ok(KvKeyPage { keys: page.items, cursor })
    }

    /// Every key (with `prefix`), following cursors.
    pub async fn list_kv_keys(
        &self,
        account_id: &str,
        namespace_id: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<KvKey>, CloudflareError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..crate::pagination::MAX_PAGES {
            let page = self.list_kv_keys_page(account_id, namespace_id, prefix, cursor.as_deref(), 1000).await?;
            all.extend(page.keys);
            match page.cursor {
                Some(c) if cursor.as_deref() != Some(c.as_str()) => cursor = Some(c),
                _ => break,
            }
        }
        Ok(all)
    }

    /// `PUT .../bulk`: up to [`KV_BULK_MAX`] pairs. Partial failures come back in
    /// `unsuccessful_keys` of a successful answer.
    pub async fn kv_bulk_write(
        &self,
        account_id: &str,
        namespace_id: &str,
        pairs: &[KvPair],
    ) -> Result<KvBulkResult, CloudflareError> {
        if pairs.len() > KV_BULK_MAX {
            return Err(CloudflareError::InvalidInput(format!(
                "a KV bulk write takes at most {KV_BULK_MAX} pairs, got {}",
                pairs.len()
            )));
        }
        for p in pairs {
            check_key(&p.key)?;
        }
        let req = Request::put(EP_KV_BULK, format!("{}/bulk", ns_path(account_id, namespace_id))).json(pairs)?;
        let r: Option<KvBulkResult> = self.call(req).await?;
        Ok(r.unwrap_or_default())
    }

    /// `POST .../bulk/delete`: up to [`KV_BULK_MAX`] keys; missing keys are not an error.
    pub async fn kv_bulk_delete(
        &self,
        account_id: &str,
        namespace_id: &str,
        keys: &[String],
    ) -> Result<KvBulkResult, CloudflareError> {
        if keys.len() > KV_BULK_MAX {
            return Err(CloudflareError::InvalidInput(format!(
                "a KV bulk delete takes at most {KV_BULK_MAX} keys, got {}",
                keys.len()
            )));
        }
        let req = Request::post(EP_KV_BULK_DELETE, format!("{}/bulk/delete", ns_path(account_id, namespace_id)))
            .json(keys)?;
        let r: Option<KvBulkResult> = self.call(req).await?;
        Ok(r.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn shapes() {
        let ns: KvNamespace =
            serde_json::from_value(json!({"id": "a", "title": "t", "supports_url_encoding": true, "beta": 1})).unwrap();
        assert_eq!((ns.id.as_str(), ns.supports_url_encoding), ("a", Some(true)));
        assert_eq!(serde_json::to_value(CreateKvNamespace::new("x")).unwrap(), json!({"title": "x"}));
        let p = KvPair { expiration_ttl: Some(60), ..KvPair::text("k", "v") };
        assert_eq!(serde_json::to_value(p).unwrap(), json!({"key": "k", "value": "v", "expiration_ttl": 60}));
        let r: KvBulkResult =
            serde_json::from_value(json!({"successful_key_count": 2, "unsuccessful_keys": null})).unwrap();
        assert_eq!(r.successful_key_count, Some(2));
        assert!(check_key(&"k".repeat(513)).is_err() && check_key("").is_err() && check_key("a/b").is_ok());
    }
}
