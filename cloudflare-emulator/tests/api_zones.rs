//! Zones, zone routes, custom domains and DNS records over HTTP.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn zones_list_filter_page_and_get() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_ALL);
    let all = api.get("/zones").await;
    assert_eq!(all.ok().as_array().unwrap().len(), 3);
    assert_eq!(all.body["result_info"]["total_count"], 3);
    let by_name = api.get("/zones?name=example.com").await;
    let zones = by_name.ok().as_array().unwrap().clone();
    assert_eq!(zones.len(), 1);
    let z = &zones[0];
    assert_eq!(z["name"], "example.com");
    assert_eq!(z["status"], "active");
    assert_eq!(z["account"]["id"], A);
    assert!(is_hex32(z["id"].as_str().unwrap()));
    assert_eq!(Some(z["id"].as_str().unwrap().to_string()), emu.zone_id("example.com"));
    let by_account = api.get(&format!("/zones?account.id={B}")).await;
    assert_eq!(by_account.ok()[0]["name"], "other.org");
    let p2 = api.get("/zones?per_page=2&page=2").await;
    assert_eq!(p2.ok().as_array().unwrap().len(), 1);
    assert_eq!(p2.body["result_info"]["total_pages"], 2);
    let past = api.get("/zones?per_page=2&page=5").await;
    assert_eq!(past.ok(), &json!([]));
    let id = emu.zone_id("other.org").unwrap();
    assert_eq!(api.get(&format!("/zones/{id}")).await.ok()["name"], "other.org");
    api.get("/zones/ffffffffffffffffffffffffffffffff").await.err(404, 7003);
    api.get("/zones?page=x").await.err(400, 1001);
}

#[tokio::test]
async fn zone_routes_are_validated() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    api.put_script(A, "w", json!({})).await.ok();
    let zid = emu.zone_id("example.com").unwrap();
    let routes = format!("/zones/{zid}/workers/routes");
    let r = api.post(&routes, json!({"pattern": "api.example.com/*", "script": "w"})).await;
    let route = r.ok().clone();
    assert!(is_hex32(route["id"].as_str().unwrap()));
    assert_eq!(route["script"], "w");
    api.post(&routes, json!({"pattern": "api.example.com/*", "script": "w"})).await.err(409, 10020);
    api.post(&routes, json!({"pattern": "api.other.org/*", "script": "w"})).await.err(400, 10022);
    api.post(&routes, json!({"pattern": "https://x.example.com/*"})).await.err(400, 10022);
    api.post(&routes, json!({"pattern": "y.example.com/*", "script": "missing"})).await.err(404, 10007);
    let bypass = api.post(&routes, json!({"pattern": "*example.com/static/*"})).await;
    assert_eq!(bypass.ok().get("script"), None, "route without script bypasses Workers");
    let rid = route["id"].as_str().unwrap();
    let upd = api.put(&format!("{routes}/{rid}"), json!({"pattern": "api.example.com/v2/*", "script": "w"})).await;
    assert_eq!(upd.ok()["pattern"], "api.example.com/v2/*");
    api.put(&format!("{routes}/{rid}"), json!({"pattern": "*example.com/static/*"})).await.err(409, 10020);
    assert_eq!(api.get(&routes).await.ok().as_array().unwrap().len(), 2);
    assert_eq!(api.get(&format!("{routes}/{rid}")).await.ok()["pattern"], "api.example.com/v2/*");
    assert_eq!(api.delete(&format!("{routes}/{rid}")).await.ok(), &json!({"id": rid}));
    api.get(&format!("{routes}/{rid}")).await.err(404, 10005);
    assert_eq!(emu.routes("example.com").len(), 1);
    // the scripts list shows routes
    api.put(&format!("/accounts/{A}/workers/scripts/w/routes"), json!([{"pattern": "w.example.com/*"}])).await.ok();
    let list = api.get(&format!("/accounts/{A}/workers/scripts")).await;
    assert_eq!(list.ok()[0]["routes"][0]["pattern"], "w.example.com/*");
}

#[tokio::test]
async fn custom_domains_attach_conflict_and_detach() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let domains = format!("/accounts/{A}/workers/domains");
    api.put(&domains, json!({"hostname": "api.example.com", "service": "w"})).await.err(404, 10007);
    api.put_script(A, "w", json!({})).await.ok();
    api.put_script(A, "other", json!({})).await.ok();
    let r =
        api.put(&domains, json!({"hostname": "api.example.com", "service": "w", "environment": "production"})).await;
    let d = r.ok().clone();
    assert!(is_hex32(d["id"].as_str().unwrap()));
    assert_eq!(d["zone_id"], emu.zone_id("example.com").unwrap().as_str());
    assert_eq!(d["zone_name"], "example.com");
    // longest zone match
    let deep = api.put(&domains, json!({"hostname": "x.sub.example.com", "service": "w"})).await;
    assert_eq!(deep.ok()["zone_name"], "sub.example.com");
    // idempotent re-PUT
    let again = api.put(&domains, json!({"hostname": "api.example.com", "service": "w"})).await;
    assert_eq!(again.ok(), &d);
    // owned by another worker
    api.put(&domains, json!({"hostname": "api.example.com", "service": "other"})).await.err(409, 100116);
    let moved = api
        .put(&domains, json!({"hostname": "api.example.com", "service": "other", "override_existing_origin": true}))
        .await;
    assert_eq!(moved.ok()["service"], "other");
    assert_eq!(moved.result()["id"], d["id"]);
    // unknown zone, another account's zone, foreign DNS records
    api.put(&domains, json!({"hostname": "api.nowhere.net", "service": "w"})).await.err(400, 100109);
    api.put(&domains, json!({"hostname": "api.other.org", "service": "w"})).await.err(400, 100109);
    let zid = emu.zone_id("example.com").unwrap();
    api.post(
        &format!("/zones/{zid}/dns_records"),
        json!({"type": "A", "name": "taken", "content": "192.0.2.1", "ttl": 1}),
    )
    .await
    .ok();
    api.put(&domains, json!({"hostname": "taken.example.com", "service": "w"})).await.err(409, 100117);
    // list with filters, get, delete
    let list = api.get(&format!("{domains}?hostname=api.example.com")).await;
    assert_eq!(list.ok().as_array().unwrap().len(), 1);
    let by_service = api.get(&format!("{domains}?service=w")).await;
    assert_eq!(by_service.ok().as_array().unwrap().len(), 1);
    let id = d["id"].as_str().unwrap();
    assert_eq!(api.get(&format!("{domains}/{id}")).await.ok()["hostname"], "api.example.com");
    api.delete(&format!("{domains}/{id}")).await.ok();
    api.get(&format!("{domains}/{id}")).await.err(404, 100114);
    assert_eq!(emu.custom_domains(A).len(), 1);
}

#[tokio::test]
async fn dns_records_crud_filters_and_conflicts() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let zid = emu.zone_id("example.com").unwrap();
    let recs = format!("/zones/{zid}/dns_records");
    let a = api.post(&recs, json!({"type": "A", "name": "www.example.com", "content": "192.0.2.10", "ttl": 300, "proxied": false, "comment": "web", "tags": ["env:prod"]})).await;
    let a = a.ok().clone();
    assert!(is_hex32(a["id"].as_str().unwrap()));
    assert_eq!(a["name"], "www.example.com");
    assert_eq!(a["proxiable"], true);
    assert_eq!(a["ttl"], 300);
    // relative name, proxied forces ttl 1
    let b = api
        .post(&recs, json!({"type": "AAAA", "name": "www", "content": "2001:db8::1", "ttl": 300, "proxied": true}))
        .await;
    assert_eq!(b.ok()["name"], "www.example.com");
    assert_eq!(b.result()["ttl"], 1);
    api.post(&recs, json!({"type": "TXT", "name": "@", "content": "v=spf1 -all", "ttl": 1})).await.ok();
    api.post(&recs, json!({"type": "MX", "name": "@", "content": "mx.example.com", "priority": 10, "ttl": 3600}))
        .await
        .ok();
    // validation and conflicts
    api.post(&recs, json!({"type": "A", "name": "bad", "content": "not-an-ip", "ttl": 1})).await.err(400, 9005);
    api.post(&recs, json!({"type": "AAAA", "name": "bad", "content": "1.2.3.4", "ttl": 1})).await.err(400, 9006);
    api.post(&recs, json!({"type": "A", "name": "bad", "content": "192.0.2.1", "ttl": 5})).await.err(400, 9021);
    api.post(&recs, json!({"type": "TXT", "name": "bad", "content": "x", "proxied": true})).await.err(400, 9004);
    api.post(&recs, json!({"type": "BOGUS", "name": "bad", "content": "x"})).await.err(400, 9000);
    api.post(&recs, json!({"type": "A", "name": "www", "content": "192.0.2.10", "ttl": 300})).await.err(400, 81057);
    api.post(&recs, json!({"type": "CNAME", "name": "www", "content": "x.example.net", "ttl": 1}))
        .await
        .err(400, 81053);
    api.post(&recs, json!({"type": "CNAME", "name": "alias", "content": "x.example.net", "ttl": 1})).await.ok();
    api.post(&recs, json!({"type": "A", "name": "alias", "content": "192.0.2.1", "ttl": 1})).await.err(400, 81054);

    // filters
    let list = |q: &'static str| {
        let api = &api;
        let recs = recs.clone();
        async move { api.get(&format!("{recs}?{q}")).await.ok().as_array().unwrap().len() }
    };
    assert_eq!(list("").await, 5);
    assert_eq!(list("type=A").await, 1);
    assert_eq!(list("type=A&type=AAAA").await, 2);
    assert_eq!(list("name=www.example.com").await, 2);
    assert_eq!(list("name.exact=WWW.example.com").await, 2);
    assert_eq!(list("name.startswith=ali").await, 1);
    assert_eq!(list("name.endswith=.example.com").await, 3);
    assert_eq!(list("content.contains=spf1").await, 1);
    assert_eq!(list("proxied=true").await, 1);
    assert_eq!(list("comment.exact=web").await, 1);
    assert_eq!(list("tag=env:prod").await, 1);
    assert_eq!(list("type=TXT&name=www.example.com").await, 0);
    assert_eq!(list("match=any&type=TXT&name=www.example.com").await, 3);
    assert_eq!(list("search=192.0.2").await, 1);
    let page = api.get(&format!("{recs}?per_page=2&page=3&order=name&direction=asc")).await;
    assert_eq!(page.ok().as_array().unwrap().len(), 1);
    assert_eq!(page.body["result_info"]["total_count"], 5);

    // get, patch, put, delete
    let id = a["id"].as_str().unwrap();
    let one = format!("{recs}/{id}");
    assert_eq!(api.get(&one).await.ok()["content"], "192.0.2.10");
    let patched = api.patch(&one, json!({"content": "192.0.2.11"})).await;
    assert_eq!(patched.ok()["content"], "192.0.2.11");
    assert_eq!(patched.result()["ttl"], 300, "PATCH keeps unspecified fields");
    assert_eq!(patched.result()["comment"], "web");
    let put = api.put(&one, json!({"type": "A", "name": "www", "content": "192.0.2.12", "ttl": 1})).await;
    assert_eq!(put.ok()["comment"], serde_json::Value::Null, "PUT replaces the whole record");
    assert_eq!(put.result()["created_on"], a["created_on"]);
    assert_eq!(api.delete(&one).await.ok(), &json!({"id": id}));
    api.get(&one).await.err(404, 81044);
    assert_eq!(emu.dns_records("example.com").len(), 4);
    // another account's zone is off limits
    let other = emu.zone_id("other.org").unwrap();
    api.get(&format!("/zones/{other}/dns_records")).await.err(403, 10000);
    api.post(&format!("/zones/{other}/dns_records"), json!({"type": "A", "name": "x", "content": "192.0.2.1"}))
        .await
        .err(403, 10000);
}
