//! Workers KV: namespaces (create, list, get, rename, delete) and keys (single value
//! put/get/delete with metadata and expiration, list with cursor, bulk write/get/delete).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use super::{JsonBody, Params, account, account_mut};
use crate::app::SharedApp;
use crate::envelope::{ApiError, ApiResult, ok, ok_paged, paginate};
use crate::ids;
use crate::model::{Account, KvEntry, KvNamespace};

/// Malformed namespace id.
pub(crate) const CODE_BAD_ID: u32 = 10011;
/// Unknown namespace.
pub(crate) const CODE_NS_NOT_FOUND: u32 = 10013;
/// Title already used.
pub(crate) const CODE_TITLE_EXISTS: u32 = 10014;
/// Unknown key.
pub(crate) const CODE_KEY_NOT_FOUND: u32 = 10009;
/// Invalid key, value, expiration or metadata (exact codes unconfirmed).
pub(crate) const CODE_BAD_INPUT: u32 = 10019;

pub(crate) const MAX_KEY_BYTES: usize = 512;
pub(crate) const MAX_VALUE_BYTES: usize = 25 * 1024 * 1024;
pub(crate) const MAX_METADATA_BYTES: usize = 1024;
pub(crate) const MIN_TTL_SECS: i64 = 60;
const MAX_BULK: usize = 10_000;
const MAX_BULK_GET: usize = 100;

pub(crate) fn router() -> Router<SharedApp> {
    let ns = "/accounts/{account_id}/storage/kv/namespaces/{namespace_id}";
    Router::new()
        .route("/accounts/{account_id}/storage/kv/namespaces", get(list_namespaces).post(create_namespace))
        .route(ns, get(get_namespace).put(rename_namespace).delete(delete_namespace))
        .route(&format!("{ns}/values/{{key}}"), put(put_value).get(get_value).delete(delete_value))
        .route(&format!("{ns}/metadata/{{key}}"), get(get_metadata))
        .route(&format!("{ns}/keys"), get(list_keys))
        .route(&format!("{ns}/bulk"), put(bulk_write).delete(bulk_delete))
        .route(&format!("{ns}/bulk/delete"), post(bulk_delete))
        .route(&format!("{ns}/bulk/get"), post(bulk_get))
}

fn view(ns: &KvNamespace) -> Value {
    let mut v = json!({"id": ns.id, "title": ns.title, "supports_url_encoding": true});
    if let Some(j) = &ns.jurisdiction {
        v["jurisdiction"] = json!(j);
    }
    v
}

fn not_found() -> ApiError {
    ApiError::not_found(CODE_NS_NOT_FOUND, "namespace not found")
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(CODE_BAD_INPUT, message)
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::bad_request(CODE_BAD_ID, "could not route to namespace: namespace_id is malformed"))
    }
}

pub(crate) fn namespace<'a>(a: &'a Account, id: &str) -> Result<&'a KvNamespace, ApiError> {
    check_id(id)?;
    a.kv_namespaces.iter().find(|n| n.id == id).ok_or_else(not_found)
}

pub(crate) fn namespace_mut<'a>(a: &'a mut Account, id: &str) -> Result<&'a mut KvNamespace, ApiError> {
    check_id(id)?;
    a.kv_namespaces.iter_mut().find(|n| n.id == id).ok_or_else(not_found)
}

async fn list_namespaces(State(app): State<SharedApp>, Path(account_id): Path<String>, params: Params) -> ApiResult {
    let (page, per_page) = params.paging(20, 1000)?;
    let mut items = app.read(|s| account(s, &account_id).map(|a| a.kv_namespaces.clone()))?;
    match params.get("order") {
        Some("title") => items.sort_by(|a, b| a.title.cmp(&b.title)),
        Some("id") => items.sort_by(|a, b| a.id.cmp(&b.id)),
        _ => {}
    }
    if params.get("direction") == Some("desc") {
        items.reverse();
    }
    let values: Vec<Value> = items.iter().map(view).collect();
    let (slice, info) = paginate(&values, page, per_page);
    ok_paged(slice, info)
}

fn title_of(body: &Value) -> Result<String, ApiError> {
    match body.get("title").and_then(Value::as_str) {
        Some(t) if !t.trim().is_empty() && t.len() <= 512 => Ok(t.to_string()),
        _ => Err(ApiError::bad_request(10019, "title is required (a non-empty string of at most 512 bytes)")),
    }
}

fn title_exists() -> ApiError {
    ApiError::bad_request(CODE_TITLE_EXISTS, "a namespace with this account ID and title already exists")
}

async fn create_namespace(
    State(app): State<SharedApp>,
    Path(account_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let title = title_of(&body)?;
    let jurisdiction = match body.get("jurisdiction") {
        None | Some(Value::Null) => None,
        Some(Value::String(j)) if ["eu", "fedramp", "us"].contains(&j.as_str()) => Some(j.clone()),
        Some(other) => return Err(bad(format!("jurisdiction must be eu, fedramp or us, got {other}"))),
    };
    let ns = app.write(|s| {
        let a = account_mut(s, &account_id)?;
        if a.kv_namespaces.iter().any(|n| n.title == title) {
            return Err(title_exists());
        }
        let ns = KvNamespace { id: ids::hex32(), title, jurisdiction, keys: Default::default() };
        a.kv_namespaces.push(ns.clone());
        Ok(ns)
    })?;
    ok(view(&ns))
}

async fn get_namespace(State(app): State<SharedApp>, Path((account_id, ns_id)): Path<(String, String)>) -> ApiResult {
    let ns = app.read(|s| namespace(account(s, &account_id)?, &ns_id).map(view))?;
    ok(ns)
}

async fn rename_namespace(
    State(app): State<SharedApp>,
    Path((account_id, ns_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let title = title_of(&body)?;
    let v = app.write(|s| {
        let a = account_mut(s, &account_id)?;
        namespace(a, &ns_id)?;
        if a.kv_namespaces.iter().any(|n| n.title == title && n.id != ns_id) {
            return Err(title_exists());
        }
        let ns = namespace_mut(a, &ns_id)?;
        ns.title = title;
        Ok(view(ns))
    })?;
    ok(v)
}

async fn delete_namespace(
    State(app): State<SharedApp>,
    Path((account_id, ns_id)): Path<(String, String)>,
) -> ApiResult {
    app.write(|s| {
        let a = account_mut(s, &account_id)?;
        namespace(a, &ns_id)?;
        a.kv_namespaces.retain(|n| n.id != ns_id);
        Ok(())
    })?;
    ok(json!({}))
}

pub(crate) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key == "." || key == ".." {
        return Err(bad(format!("Invalid key name {key:?}: keys must not be empty, \".\" or \"..\"")));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::new(
            axum::http::StatusCode::URI_TOO_LONG,
            CODE_BAD_INPUT,
            format!("key is {} bytes; keys are at most {MAX_KEY_BYTES} bytes", key.len()),
        ));
    }
    Ok(())
}

/// Expiration from `expiration` (epoch seconds) and `expiration_ttl` (seconds, wins).
pub(crate) fn expiration_of(expiration: Option<i64>, ttl: Option<i64>, now: i64) -> Result<Option<i64>, ApiError> {
    if let Some(ttl) = ttl {
        if ttl < MIN_TTL_SECS {
            return Err(bad(format!("Invalid expiration_ttl of {ttl}. Expiration TTL must be at least 60.")));
        }
        return Ok(Some(now + ttl));
    }
    if let Some(e) = expiration {
        if e < now + MIN_TTL_SECS {
            return Err(bad(format!(
                "Invalid expiration of {e}. Expiration times must be at least 60 seconds in the future."
            )));
        }
        return Ok(Some(e));
    }
    Ok(None)
}

pub(crate) fn check_metadata(m: &Value) -> Result<(), ApiError> {
    let len = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
    if len > MAX_METADATA_BYTES {
        return Err(bad(format!("metadata is {len} bytes serialized; at most {MAX_METADATA_BYTES} are allowed")));
    }
    Ok(())
}

fn int_param(params: &Params, key: &str) -> Result<Option<i64>, ApiError> {
    match params.get(key) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| bad(format!("{key} must be an integer, got {v:?}"))),
    }
}

async fn read_value(headers: &HeaderMap, req: Request) -> Result<(Vec<u8>, Option<Value>), ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ct.starts_with("multipart/") {
        let bytes = Bytes::from_request(req, &()).await.map_err(|e| ApiError::invalid_body(e.to_string()))?;
        return Ok((bytes.to_vec(), None));
    }
    let mut mp = Multipart::from_request(req, &()).await.map_err(|e| ApiError::invalid_body(e.to_string()))?;
    let (mut value, mut metadata) = (None, None);
    while let Some(field) = mp.next_field().await.map_err(|e| ApiError::invalid_body(e.to_string()))? {
        let name = field.name().unwrap_or_default().to_string();
        let data = field.bytes().await.map_err(|e| ApiError::invalid_body(e.to_string()))?;
        match name.as_str() {
            "value" => value = Some(data.to_vec()),
            "metadata" => {
                let m: Value = serde_json::from_slice(&data).map_err(|e| bad(format!("metadata must be JSON: {e}")))?;
                metadata = Some(m);
            }
            _ => {}
        }
    }
    let value = value.ok_or_else(|| bad("multipart body needs a `value` part"))?;
    Ok((value, metadata))
}

async fn put_value(
    State(app): State<SharedApp>,
    Path((account_id, ns_id, key)): Path<(String, String, String)>,
    params: Params,
    headers: HeaderMap,
    req: Request,
) -> ApiResult {
    check_key(&key)?;
    let now = now_secs();
    let expiration = expiration_of(int_param(&params, "expiration")?, int_param(&params, "expiration_ttl")?, now)?;
    let (value, metadata) = read_value(&headers, req).await?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, CODE_BAD_INPUT, "value exceeds 25 MiB"));
    }
    if let Some(m) = &metadata {
        check_metadata(m)?;
    }
    app.write(|s| {
        let ns = namespace_mut(account_mut(s, &account_id)?, &ns_id)?;
        ns.keys.insert(key.clone(), KvEntry { value, expiration, metadata });
        Ok(())
    })?;
    ok(json!({}))
}

fn live_entry(ns: &KvNamespace, key: &str, now: i64) -> Result<KvEntry, ApiError> {
    ns.keys
        .get(key)
        .filter(|e| e.live(now))
        .cloned()
        .ok_or_else(|| ApiError::not_found(CODE_KEY_NOT_FOUND, "get: 'key not found'"))
}

/// `GET .../values/:key`: the raw value, not enveloped; expiration in the `expiration` header.
async fn get_value(
    State(app): State<SharedApp>,
    Path((account_id, ns_id, key)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let now = now_secs();
    let entry = app.read(|s| live_entry(namespace(account(s, &account_id)?, &ns_id)?, &key, now))?;
    let mut resp = entry.value.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Some(e) = entry.expiration
        && let Ok(v) = HeaderValue::from_str(&e.to_string())
    {
        resp.headers_mut().insert("expiration", v);
    }
    Ok(resp)
}

async fn get_metadata(
    State(app): State<SharedApp>,
    Path((account_id, ns_id, key)): Path<(String, String, String)>,
) -> ApiResult {
    let now = now_secs();
    let entry = app.read(|s| live_entry(namespace(account(s, &account_id)?, &ns_id)?, &key, now))?;
    ok(entry.metadata.unwrap_or(Value::Null))
}

async fn delete_value(
    State(app): State<SharedApp>,
    Path((account_id, ns_id, key)): Path<(String, String, String)>,
) -> ApiResult {
    app.write(|s| {
        let ns = namespace_mut(account_mut(s, &account_id)?, &ns_id)?;
        ns.keys.remove(&key);
        Ok(())
    })?;
    ok(json!({}))
}

/// One page of live keys after `cursor` with `prefix`; the next cursor is empty at the end.
pub(crate) fn list_page(
    ns: &KvNamespace,
    prefix: &str,
    limit: usize,
    cursor: Option<&str>,
    now: i64,
) -> Result<(Vec<Value>, String), ApiError> {
    let after = match cursor.filter(|c| !c.is_empty()) {
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| bad(format!("Invalid cursor {c:?}")))?,
        ),
        None => None,
    };
    let mut names = ns
        .keys
        .iter()
        .filter(|(k, e)| k.starts_with(prefix) && e.live(now))
        .filter(|(k, _)| after.as_deref().is_none_or(|a| k.as_str() > a));
    let mut out = Vec::new();
    for (k, e) in names.by_ref().take(limit) {
        let mut item = json!({"name": k});
        if let Some(x) = e.expiration {
            item["expiration"] = json!(x);
        }
        if let Some(m) = &e.metadata {
            item["metadata"] = m.clone();
        }
        out.push(item);
    }
    let more = names.next().is_some();
    let next = match (more, out.last()) {
        (true, Some(last)) => URL_SAFE_NO_PAD.encode(last["name"].as_str().unwrap_or_default()),
        _ => String::new(),
    };
    Ok((out, next))
}

async fn list_keys(
    State(app): State<SharedApp>,
    Path((account_id, ns_id)): Path<(String, String)>,
    params: Params,
) -> ApiResult {
    let limit = params.number("limit", 1000)?;
    if !(10..=1000).contains(&limit) {
        return Err(bad(format!("Invalid key_limit of {limit}. Please specify an integer between 10 and 1000.")));
    }
    let prefix = params.get("prefix").unwrap_or_default().to_string();
    let now = now_secs();
    let (items, cursor) = app
        .read(|s| list_page(namespace(account(s, &account_id)?, &ns_id)?, &prefix, limit, params.get("cursor"), now))?;
    let count = items.len();
    Ok(axum::Json(json!({
        "success": true, "errors": [], "messages": [], "result": items,
        "result_info": {"count": count, "cursor": cursor},
    }))
    .into_response())
}

/// One validated bulk item.
fn bulk_item(item: &Value, now: i64) -> Result<(String, KvEntry), String> {
    let key = item.get("key").and_then(Value::as_str).ok_or("missing key")?.to_string();
    check_key(&key).map_err(|_| key.clone())?;
    let raw = item.get("value").and_then(Value::as_str).ok_or_else(|| key.clone())?;
    let value = if item.get("base64").and_then(Value::as_bool) == Some(true) {
        STANDARD.decode(raw).map_err(|_| key.clone())?
    } else {
        raw.as_bytes().to_vec()
    };
    let int = |k: &str| item.get(k).and_then(Value::as_i64);
    let expiration = expiration_of(int("expiration"), int("expiration_ttl"), now).map_err(|_| key.clone())?;
    let metadata = item.get("metadata").filter(|m| !m.is_null()).cloned();
    if let Some(m) = &metadata {
        check_metadata(m).map_err(|_| key.clone())?;
    }
    Ok((key, KvEntry { value, expiration, metadata }))
}

async fn bulk_write(
    State(app): State<SharedApp>,
    Path((account_id, ns_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let items = body.as_array().ok_or_else(|| bad("expected a JSON array of {key, value}"))?;
    if items.len() > MAX_BULK {
        return Err(bad(format!("at most {MAX_BULK} pairs per bulk write, got {}", items.len())));
    }
    let now = now_secs();
    let mut good = Vec::new();
    let mut failed = Vec::new();
    for item in items {
        match bulk_item(item, now) {
            Ok(kv) => good.push(kv),
            Err(key) => failed.push(key),
        }
    }
    let count = good.len();
    app.write(|s| {
        let ns = namespace_mut(account_mut(s, &account_id)?, &ns_id)?;
        ns.keys.extend(good);
        Ok(())
    })?;
    ok(json!({"successful_key_count": count, "unsuccessful_keys": failed}))
}

async fn bulk_delete(
    State(app): State<SharedApp>,
    Path((account_id, ns_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let items = body.as_array().ok_or_else(|| bad("expected a JSON array of key names"))?;
    if items.len() > MAX_BULK {
        return Err(bad(format!("at most {MAX_BULK} keys per bulk delete, got {}", items.len())));
    }
    let keys: Vec<String> = items.iter().filter_map(|k| k.as_str().map(str::to_string)).collect();
    let failed: Vec<Value> = items.iter().filter(|k| !k.is_string()).cloned().collect();
    let count = keys.len();
    app.write(|s| {
        let ns = namespace_mut(account_mut(s, &account_id)?, &ns_id)?;
        for k in &keys {
            ns.keys.remove(k);
        }
        Ok(())
    })?;
    ok(json!({"successful_key_count": count, "unsuccessful_keys": failed}))
}

async fn bulk_get(
    State(app): State<SharedApp>,
    Path((account_id, ns_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let keys: Vec<String> = body
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("keys (a list of key names) is required"))?
        .iter()
        .map(|k| k.as_str().map(str::to_string).ok_or_else(|| bad("keys must be strings")))
        .collect::<Result<_, _>>()?;
    if keys.is_empty() || keys.len() > MAX_BULK_GET {
        return Err(bad(format!("between 1 and {MAX_BULK_GET} keys per bulk get, got {}", keys.len())));
    }
    let as_json = match body.get("type").and_then(Value::as_str) {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => return Err(bad(format!("type must be text or json, got {other:?}"))),
    };
    let with_meta = body.get("withMetadata").and_then(Value::as_bool).unwrap_or(false);
    let now = now_secs();
    let ns = app.read(|s| namespace(account(s, &account_id)?, &ns_id).cloned())?;
    let mut values = Map::new();
    for k in keys {
        let entry = ns.keys.get(&k).filter(|e| e.live(now));
        let value = match entry {
            None => Value::Null,
            Some(e) if as_json => {
                serde_json::from_slice(&e.value).map_err(|_| bad(format!("value of key {k:?} is not valid JSON")))?
            }
            Some(e) => Value::String(String::from_utf8_lossy(&e.value).into_owned()),
        };
        let out = match (with_meta, entry) {
            (false, _) => value,
            (true, None) => Value::Null,
            (true, Some(e)) => {
                let mut o = json!({"value": value, "metadata": e.metadata});
                if let Some(x) = e.expiration {
                    o["expiration"] = json!(x);
                }
                o
            }
        };
        values.insert(k, out);
    }
    ok(json!({"values": values}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns_with(keys: &[&str]) -> KvNamespace {
        let mut ns =
            KvNamespace { id: "0".repeat(32), title: "t".into(), jurisdiction: None, keys: Default::default() };
        for k in keys {
            ns.keys.insert(k.to_string(), KvEntry { value: b"v".to_vec(), expiration: None, metadata: None });
        }
        ns
    }

    #[test]
    fn listing_pages_by_cursor_and_prefix() {
        let ns = ns_with(&["a1", "a2", "a3", "b1"]);
        let (p1, c1) = list_page(&ns, "a", 2, None, 0).unwrap();
        assert_eq!(p1.len(), 2);
        assert!(!c1.is_empty());
        let (p2, c2) = list_page(&ns, "a", 2, Some(&c1), 0).unwrap();
        assert_eq!(p2, vec![json!({"name": "a3"})]);
        assert!(c2.is_empty());
        assert!(list_page(&ns, "", 2, Some("%%%"), 0).is_err());
    }

    #[test]
    fn expiration_rules() {
        assert_eq!(expiration_of(None, Some(60), 100).unwrap(), Some(160));
        assert!(expiration_of(None, Some(59), 100).is_err());
        assert!(expiration_of(Some(120), None, 100).is_err());
        assert_eq!(expiration_of(Some(500), Some(100), 100).unwrap(), Some(200), "ttl wins");
        let mut ns = ns_with(&[]);
        ns.keys.insert("old".into(), KvEntry { value: vec![], expiration: Some(10), metadata: None });
        assert!(live_entry(&ns, "old", 11).is_err());
        assert!(live_entry(&ns, "old", 9).is_ok());
    }

    #[test]
    fn keys_and_bulk_items_are_validated() {
        assert!(check_key(&"k".repeat(512)).is_ok());
        assert_eq!(check_key(&"k".repeat(513)).unwrap_err().status, axum::http::StatusCode::URI_TOO_LONG);
        assert!(check_key("").is_err());
        let (k, e) = bulk_item(&json!({"key": "b", "value": "aGk=", "base64": true}), 0).unwrap();
        assert_eq!((k.as_str(), e.value.as_slice()), ("b", b"hi".as_slice()));
        assert_eq!(bulk_item(&json!({"key": "t", "value": "x", "expiration_ttl": 5}), 0).unwrap_err(), "t");
    }
}
