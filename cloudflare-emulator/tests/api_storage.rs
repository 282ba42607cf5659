//! KV and R2 over HTTP: namespaces, keys (raw and multipart values, metadata, expiration,
//! cursor listing, bulk), buckets (jurisdiction header, location hint, listing, non-empty delete).

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn kv() -> String {
    format!("/accounts/{A}/storage/kv/namespaces")
}

fn r2() -> String {
    format!("/accounts/{A}/r2/buckets")
}

async fn raw(api: &Api, method: Method, path: &str, body: Option<Vec<u8>>, headers: &[(&str, &str)]) -> Resp {
    let mut rb = api.client.request(method, format!("{}{path}", api.base)).bearer_auth(TOK_A);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    api.send(rb).await
}

#[tokio::test]
async fn kv_namespaces_lifecycle() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let ns = api.post(&kv(), json!({"title": "cache"})).await.ok().clone();
    let id = ns["id"].as_str().unwrap().to_string();
    assert!(is_hex32(&id));
    assert_eq!(ns["supports_url_encoding"], true);
    api.post(&kv(), json!({"title": "cache"})).await.err(400, 10014);
    api.post(&kv(), json!({"title": "eu-cache", "jurisdiction": "eu"})).await.ok();
    let list = api.get(&format!("{}?per_page=100&order=title&direction=asc&page=1", kv())).await;
    let titles: Vec<&str> = list.ok().as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["cache", "eu-cache"]);
    assert_eq!(list.body["result_info"]["total_count"], 2);
    api.put(&format!("{}/{id}", kv()), json!({"title": "eu-cache"})).await.err(400, 10014);
    let renamed = api.put(&format!("{}/{id}", kv()), json!({"title": "cache-2"})).await;
    assert_eq!(renamed.ok()["title"], "cache-2");
    assert_eq!(api.get(&format!("{}/{id}", kv())).await.ok()["title"], "cache-2");
    api.get(&format!("{}/{}", kv(), "0".repeat(32))).await.err(404, 10013);
    api.get(&format!("{}/not-an-id", kv())).await.err(400, 10011);
    api.delete(&format!("{}/{id}", kv())).await.ok();
    api.delete(&format!("{}/{id}", kv())).await.err(404, 10013);
    // another account cannot see it
    Api::new(&emu, TOK_B).get(&format!("{}/{id}", kv())).await.err(403, 10000);
}

#[tokio::test]
async fn kv_keys_values_metadata_and_bulk() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let id = api.post(&kv(), json!({"title": "data"})).await.ok()["id"].as_str().unwrap().to_string();
    let ns = format!("{}/{id}", kv());
    // raw body, key with a slash (percent-encoded)
    raw(&api, Method::PUT, &format!("{ns}/values/a%2Fb"), Some(b"\x00\x01bin".to_vec()), &[]).await.ok();
    let resp = api.client.get(format!("{}{ns}/values/a%2Fb", api.base)).bearer_auth(TOK_A).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"\x00\x01bin");
    // multipart with metadata and a TTL
    let form = reqwest::multipart::Form::new().text("value", "hello").text("metadata", r#"{"v":1}"#);
    let rb = api.client.put(format!("{}{ns}/values/greeting?expiration_ttl=120", api.base)).bearer_auth(TOK_A);
    api.send(rb.multipart(form)).await.ok();
    assert_eq!(api.get(&format!("{ns}/metadata/greeting")).await.ok(), &json!({"v": 1}));
    raw(&api, Method::PUT, &format!("{ns}/values/short?expiration_ttl=30"), Some(b"x".to_vec()), &[])
        .await
        .err(400, 10019);
    api.get(&format!("{ns}/values/missing")).await.err(404, 10009);

    // bulk write (one bad item reported, not failing the call), list with cursor, bulk get, bulk delete
    let mut items: Vec<Value> = (0..25).map(|i| json!({"key": format!("k{i:02}"), "value": format!("v{i}")})).collect();
    items.push(json!({"key": "b64", "value": "aGk=", "base64": true}));
    items.push(json!({"key": "k".repeat(600), "value": "too long key"}));
    let r = api.put(&format!("{ns}/bulk"), Value::Array(items)).await;
    assert_eq!(r.ok()["successful_key_count"], 26);
    assert_eq!(r.result()["unsuccessful_keys"].as_array().unwrap().len(), 1);
    let p1 = api.get(&format!("{ns}/keys?prefix=k&limit=10")).await;
    assert_eq!(p1.ok().as_array().unwrap().len(), 10);
    let cursor = p1.body["result_info"]["cursor"].as_str().unwrap().to_string();
    assert!(!cursor.is_empty());
    let p2 = api.get(&format!("{ns}/keys?prefix=k&limit=1000&cursor={cursor}")).await;
    assert_eq!(p2.ok().as_array().unwrap().len(), 15);
    assert_eq!(p2.body["result_info"]["cursor"], "");
    let greeting = api.get(&format!("{ns}/keys?prefix=gr")).await;
    assert!(greeting.ok()[0]["expiration"].as_i64().unwrap() > 0);
    api.get(&format!("{ns}/keys?limit=5")).await.err(400, 10019);
    let got = api.post(&format!("{ns}/bulk/get"), json!({"keys": ["b64", "k00", "nope"], "withMetadata": true})).await;
    assert_eq!(got.ok()["values"]["b64"]["value"], "hi");
    assert_eq!(got.result()["values"]["nope"], Value::Null);
    api.post(&format!("{ns}/bulk/delete"), json!(["k00", "k01"])).await.ok();
    // wrangler's legacy form: DELETE .../bulk with the key array
    api.call(Method::DELETE, &format!("{ns}/bulk"), Some(json!(["k02"]))).await.ok();
    api.delete(&format!("{ns}/values/k03")).await.ok();
    let left = api.get(&format!("{ns}/keys?prefix=k")).await;
    assert_eq!(left.ok().as_array().unwrap().len(), 21);
    let stored = &emu.account(A).unwrap().kv_namespaces[0];
    assert_eq!(stored.keys.len(), 24);
}

#[tokio::test]
async fn r2_buckets_with_jurisdiction_and_non_empty_delete() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let b = api.post(&r2(), json!({"name": "files", "locationHint": "weur"})).await.ok().clone();
    assert_eq!(
        (b["name"].as_str(), b["location"].as_str(), b["jurisdiction"].as_str()),
        (Some("files"), Some("WEUR"), Some("default"))
    );
    assert!(b["creation_date"].is_string());
    api.post(&r2(), json!({"name": "files"})).await.err(400, 10004);
    api.post(&r2(), json!({"name": "Bad_Name"})).await.err(400, 10005);
    api.post(&r2(), json!({"name": "x12", "locationHint": "mars"})).await.err(400, 10040);
    // the same name in the eu jurisdiction is a different bucket, invisible without the header
    let eu = raw(
        &api,
        Method::POST,
        &r2(),
        Some(br#"{"name":"files"}"#.to_vec()),
        &[("cf-r2-jurisdiction", "eu"), ("content-type", "application/json")],
    )
    .await;
    assert_eq!(eu.ok()["jurisdiction"], "eu");
    for i in 0..22 {
        api.post(&r2(), json!({"name": format!("bulk-{i:02}")})).await.ok();
    }
    let p1 = api.get(&r2()).await;
    assert_eq!(p1.ok()["buckets"].as_array().unwrap().len(), 20, "default page of 20");
    let cursor = p1.body["result_info"]["cursor"].as_str().unwrap().to_string();
    let p2 = api.get(&format!("{}?cursor={cursor}", r2())).await;
    assert_eq!(p2.ok()["buckets"].as_array().unwrap().len(), 3);
    let only_eu = raw(&api, Method::GET, &r2(), None, &[("cf-r2-jurisdiction", "eu")]).await;
    assert_eq!(only_eu.ok()["buckets"].as_array().unwrap().len(), 1);
    let filtered = api.get(&format!("{}?name_contains=fil", r2())).await;
    assert_eq!(filtered.ok()["buckets"][0]["name"], "files");

    // a bucket with an object cannot be deleted
    raw(
        &api,
        Method::PUT,
        &format!("{}/files/objects/dir/a.txt", r2()),
        Some(b"x".to_vec()),
        &[("content-type", "text/plain")],
    )
    .await
    .ok();
    api.delete(&format!("{}/files", r2())).await.err(409, 10008);
    let obj = api
        .client
        .get(format!("{}{}/files/objects/dir/a.txt", api.base, r2()))
        .bearer_auth(TOK_A)
        .send()
        .await
        .unwrap();
    assert_eq!(obj.headers()["content-type"], "text/plain");
    api.delete(&format!("{}/files/objects/dir/a.txt", r2())).await.ok();
    api.delete(&format!("{}/files", r2())).await.ok();
    api.get(&format!("{}/files", r2())).await.err(404, 10006);
    raw(&api, Method::GET, &format!("{}/files", r2()), None, &[("cf-r2-jurisdiction", "eu")]).await.ok();

    // bindings: an R2 binding needs the bucket (and its jurisdiction); KV needs the namespace
    api.put_script(A, "w", json!({"bindings": [{"type": "r2_bucket", "name": "F", "bucket_name": "nope"}]}))
        .await
        .err(400, 10021);
    api.put_script(
        A,
        "w",
        json!({"bindings": [{"type": "r2_bucket", "name": "F", "bucket_name": "bulk-00", "jurisdiction": "eu"}]}),
    )
    .await
    .err(400, 10021);
    let ok = api
        .put_script(
            A,
            "w",
            json!({"bindings": [{"type": "r2_bucket", "name": "F", "bucket_name": "files", "jurisdiction": "eu"}]}),
        )
        .await;
    ok.ok();
    api.put_script(
        A,
        "w",
        json!({"bindings": [{"type": "kv_namespace", "name": "K", "namespace_id": "0".repeat(32)}]}),
    )
    .await
    .err(400, 10041);
}
