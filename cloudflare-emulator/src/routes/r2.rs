//! R2: buckets (create with jurisdiction header and location hint, list, get, storage-class
//! PATCH, delete only when empty) and objects (PUT, GET, DELETE; what `wrangler r2 object`
//! uses).

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{JsonBody, Params, account, account_mut};
use crate::app::SharedApp;
use crate::envelope::{ApiError, ApiResult, ok};
use crate::ids;
use crate::model::{Account, R2Bucket, R2Object};

pub(crate) const CODE_EXISTS: u32 = 10004;
pub(crate) const CODE_BAD_NAME: u32 = 10005;
pub(crate) const CODE_NOT_FOUND: u32 = 10006;
/// Delete of a bucket holding objects (code unconfirmed).
pub(crate) const CODE_NOT_EMPTY: u32 = 10008;
pub(crate) const CODE_NO_OBJECT: u32 = 10007;
const CODE_BAD_INPUT: u32 = 10040;

pub(crate) const JURISDICTION_HEADER: &str = "cf-r2-jurisdiction";
const STORAGE_CLASS_HEADER: &str = "cf-r2-storage-class";
const JURISDICTIONS: &[&str] = &["default", "eu", "us", "fedramp", "fedramp-high"];
const LOCATIONS: &[&str] = &["apac", "eeur", "enam", "weur", "wnam", "oc"];
const STORAGE_CLASSES: &[&str] = &["Standard", "InfrequentAccess"];
/// Default page size of the bucket list (unconfirmed on the real API).
const LIST_DEFAULT: usize = 20;

pub(crate) fn router() -> Router<SharedApp> {
    let b = "/accounts/{account_id}/r2/buckets/{bucket_name}";
    Router::new()
        .route("/accounts/{account_id}/r2/buckets", get(list_buckets).post(create_bucket))
        .route(b, get(get_bucket).patch(patch_bucket).delete(delete_bucket))
        .route(&format!("{b}/objects/{{*key}}"), get(get_object).put(put_object).delete(delete_object))
}

/// 3-63 characters: lowercase letters, digits and `-`, not starting or ending with `-`.
pub(crate) fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(CODE_BAD_INPUT, msg)
}

fn jurisdiction(headers: &HeaderMap) -> Result<String, ApiError> {
    let j = headers.get(JURISDICTION_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("default").to_string();
    if JURISDICTIONS.contains(&j.as_str()) {
        Ok(j)
    } else {
        Err(bad(format!("Invalid jurisdiction {j:?}: expected one of {}", JURISDICTIONS.join(", "))))
    }
}

fn view(b: &R2Bucket) -> Value {
    json!({
        "name": b.name,
        "creation_date": ids::ts(&b.creation_date),
        "location": b.location.to_ascii_uppercase(),
        "storage_class": b.storage_class,
        "jurisdiction": b.jurisdiction,
    })
}

fn not_found() -> ApiError {
    ApiError::not_found(CODE_NOT_FOUND, "The specified bucket does not exist.")
}

pub(crate) fn bucket<'a>(a: &'a Account, name: &str, jurisdiction: &str) -> Result<&'a R2Bucket, ApiError> {
    a.r2_buckets.iter().find(|b| b.name == name && b.jurisdiction == jurisdiction).ok_or_else(not_found)
}

pub(crate) fn bucket_mut<'a>(a: &'a mut Account, name: &str, jurisdiction: &str) -> Result<&'a mut R2Bucket, ApiError> {
    a.r2_buckets.iter_mut().find(|b| b.name == name && b.jurisdiction == jurisdiction).ok_or_else(not_found)
}

async fn create_bucket(
    State(app): State<SharedApp>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let jurisdiction = jurisdiction(&headers)?;
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    if !valid_name(&name) {
        return Err(ApiError::bad_request(CODE_BAD_NAME, "The specified bucket name is not valid."));
    }
    let location = match body.get("locationHint").and_then(Value::as_str) {
        None => "enam".to_string(),
        Some(l) if LOCATIONS.contains(&l.to_ascii_lowercase().as_str()) => l.to_ascii_lowercase(),
        Some(l) => return Err(bad(format!("Invalid locationHint {l:?}: expected one of {}", LOCATIONS.join(", ")))),
    };
    let storage_class = match body.get("storageClass").and_then(Value::as_str) {
        None => "Standard".to_string(),
        Some(c) if STORAGE_CLASSES.contains(&c) => c.to_string(),
        Some(c) => return Err(bad(format!("Invalid storageClass {c:?}"))),
    };
    let created = app.write(|s| {
        let a = account_mut(s, &account_id)?;
        if a.r2_buckets.iter().any(|b| b.name == name && b.jurisdiction == jurisdiction) {
            return Err(ApiError::bad_request(
                CODE_EXISTS,
                "The bucket you tried to create already exists, and you own it.",
            ));
        }
        let b = R2Bucket {
            name,
            creation_date: ids::now(),
            jurisdiction,
            location,
            storage_class,
            objects: BTreeMap::new(),
        };
        a.r2_buckets.push(b.clone());
        Ok(b)
    })?;
    ok(view(&created))
}

/// `GET .../r2/buckets`: `{buckets: [...]}` sorted by name, cursor paging in `result_info`.
async fn list_buckets(
    State(app): State<SharedApp>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let jurisdiction = jurisdiction(&headers)?;
    let per_page = params.number("per_page", LIST_DEFAULT)?.clamp(1, 1000);
    let contains = params.get("name_contains").unwrap_or_default().to_string();
    let after = params.get("cursor").filter(|c| !c.is_empty()).or(params.get("start_after")).map(str::to_string);
    let mut all: Vec<R2Bucket> = app.read(|s| {
        account(s, &account_id).map(|a| {
            a.r2_buckets
                .iter()
                .filter(|b| b.jurisdiction == jurisdiction && b.name.contains(&contains))
                .cloned()
                .collect()
        })
    })?;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    if params.get("direction") == Some("desc") {
        all.reverse();
    }
    let desc = params.get("direction") == Some("desc");
    let mut rest = all
        .into_iter()
        .filter(|b| after.as_deref().is_none_or(|a| if desc { b.name.as_str() < a } else { b.name.as_str() > a }));
    let page: Vec<R2Bucket> = rest.by_ref().take(per_page).collect();
    let more = rest.next().is_some();
    let cursor = if more { page.last().map(|b| b.name.clone()) } else { None };
    Ok(axum::Json(json!({
        "success": true, "errors": [], "messages": [],
        "result": {"buckets": page.iter().map(view).collect::<Vec<_>>()},
        "result_info": {"cursor": cursor, "per_page": per_page},
    }))
    .into_response())
}

async fn get_bucket(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let j = jurisdiction(&headers)?;
    let v = app.read(|s| bucket(account(s, &account_id)?, &name, &j).map(view))?;
    ok(v)
}

async fn patch_bucket(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let j = jurisdiction(&headers)?;
    let class = headers.get(STORAGE_CLASS_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    if !STORAGE_CLASSES.contains(&class.as_str()) {
        return Err(bad(format!("header {STORAGE_CLASS_HEADER} must be Standard or InfrequentAccess")));
    }
    let v = app.write(|s| {
        let b = bucket_mut(account_mut(s, &account_id)?, &name, &j)?;
        b.storage_class = class;
        Ok(view(b))
    })?;
    ok(v)
}

async fn delete_bucket(
    State(app): State<SharedApp>,
    Path((account_id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let j = jurisdiction(&headers)?;
    app.write(|s| {
        let a = account_mut(s, &account_id)?;
        if !bucket(a, &name, &j)?.objects.is_empty() {
            return Err(ApiError::conflict(CODE_NOT_EMPTY, "The bucket you tried to delete is not empty."));
        }
        a.r2_buckets.retain(|b| !(b.name == name && b.jurisdiction == j));
        Ok(())
    })?;
    ok(json!({}))
}

/// Content headers stored with an object.
const HTTP_METADATA: &[&str] =
    &["content-type", "content-language", "content-disposition", "content-encoding", "cache-control", "expires"];

pub(crate) fn new_object(body: Vec<u8>, http_metadata: BTreeMap<String, String>) -> R2Object {
    let etag = hex::encode(&Sha256::digest(&body)[..16]);
    R2Object { body, etag, uploaded: ids::now(), http_metadata, custom_metadata: BTreeMap::new() }
}

async fn put_object(
    State(app): State<SharedApp>,
    Path((account_id, name, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let j = jurisdiction(&headers)?;
    if key.is_empty() || key.len() > 1024 {
        return Err(bad("object keys are 1 to 1024 bytes"));
    }
    let mut meta = BTreeMap::new();
    for h in HTTP_METADATA {
        if let Some(v) = headers.get(*h).and_then(|v| v.to_str().ok()) {
            meta.insert((*h).to_string(), v.to_string());
        }
    }
    let obj = new_object(body.to_vec(), meta);
    let out = json!({"key": key, "etag": obj.etag, "size": obj.body.len(), "uploaded": ids::ts(&obj.uploaded)});
    app.write(|s| {
        let b = bucket_mut(account_mut(s, &account_id)?, &name, &j)?;
        b.objects.insert(key.clone(), obj);
        Ok(())
    })?;
    ok(out)
}

async fn get_object(
    State(app): State<SharedApp>,
    Path((account_id, name, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let j = jurisdiction(&headers)?;
    let obj = app.read(|s| {
        bucket(account(s, &account_id)?, &name, &j)?
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(CODE_NO_OBJECT, "The specified key does not exist."))
    })?;
    let mut resp = (StatusCode::OK, obj.body).into_response();
    for (k, v) in &obj.http_metadata {
        if let (Ok(name), Ok(value)) = (header::HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            resp.headers_mut().insert(name, value);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", obj.etag)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

async fn delete_object(
    State(app): State<SharedApp>,
    Path((account_id, name, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let j = jurisdiction(&headers)?;
    app.write(|s| {
        let b = bucket_mut(account_mut(s, &account_id)?, &name, &j)?;
        b.objects.remove(&key);
        Ok(())
    })?;
    ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket-1", &"a".repeat(63)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["ab", "-abc", "abc-", "Abc", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
