//! Workers scripts, versions, deployments, settings, secrets, subdomains, schedules.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn s(name: &str) -> String {
    format!("/accounts/{A}/workers/scripts/{name}")
}

#[tokio::test]
async fn upload_list_download_and_services() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let r = api
        .put_script(
            A,
            "my-worker",
            json!({
                "bindings": [
                    {"type": "plain_text", "name": "MODE", "text": "prod"},
                    {"type": "secret_text", "name": "KEY", "text": "hunter2-secret"},
                    {"type": "json", "name": "CFG", "json": {"a": 1}}
                ],
                "compatibility_flags": ["nodejs_compat"],
                "tags": ["team-a"]
            }),
        )
        .await;
    let result = r.ok().clone();
    assert_eq!(result["id"], "my-worker");
    assert!(is_hex32(result["tag"].as_str().unwrap()));
    assert!(is_uuid(result["deployment_id"].as_str().unwrap()));
    assert_eq!(result["handlers"], json!(["fetch"]));
    assert_eq!(result["compatibility_flags"], json!(["nodejs_compat"]));
    assert_eq!(result["tags"], json!(["team-a"]));

    // list with tag filters
    let list = api.get(&format!("/accounts/{A}/workers/scripts")).await;
    assert_eq!(list.ok().as_array().unwrap().len(), 1);
    assert_eq!(list.result()[0]["routes"], Value::Null);
    let yes = api.get(&format!("/accounts/{A}/workers/scripts?tags=team-a:yes")).await;
    assert_eq!(yes.ok().as_array().unwrap().len(), 1);
    let no = api.get(&format!("/accounts/{A}/workers/scripts?tags=team-a:no")).await;
    assert_eq!(no.ok().as_array().unwrap().len(), 0);

    // raw content is not enveloped
    let raw = api.client.get(format!("{}{}", api.base, s("my-worker"))).bearer_auth(TOK_A).send().await.unwrap();
    assert_eq!(raw.status(), 200);
    assert!(raw.text().await.unwrap().contains("new Response('hi')"));
    let v2 =
        api.client.get(format!("{}{}/content/v2", api.base, s("my-worker"))).bearer_auth(TOK_A).send().await.unwrap();
    assert_eq!(v2.headers()["cf-entrypoint"], "index.js");
    assert!(v2.headers()["content-type"].to_str().unwrap().starts_with("multipart/form-data; boundary="));
    assert!(v2.text().await.unwrap().contains("name=\"index.js\""));

    // services: present and missing
    let svc = api.get(&format!("/accounts/{A}/workers/services/my-worker")).await;
    let script = &svc.ok()["default_environment"]["script"];
    assert_eq!(script["tag"], result["tag"]);
    assert_eq!(script["tags"], json!(["team-a"]));
    assert_eq!(script["last_deployed_from"], "wrangler");
    api.get(&format!("/accounts/{A}/workers/services/nope")).await.err(404, 10007);
    api.get(&s("nope")).await.err(404, 10007);

    // settings hide secret values, show plain ones
    let settings = api.get(&format!("{}/settings", s("my-worker"))).await;
    let bindings = settings.ok()["bindings"].as_array().unwrap().clone();
    let key = bindings.iter().find(|b| b["name"] == "KEY").unwrap();
    assert_eq!(key, &json!({"name": "KEY", "type": "secret_text"}));
    let mode = bindings.iter().find(|b| b["name"] == "MODE").unwrap();
    assert_eq!(mode["text"], "prod");
    assert!(!settings.body.to_string().contains("hunter2-secret"));

    // script-settings: tags stored verbatim and visible everywhere
    let patched = api
        .patch(
            &format!("{}/script-settings", s("my-worker")),
            json!({"tags": ["clodo.dev/owner=acme.svc", "x"], "logpush": true}),
        )
        .await;
    assert_eq!(patched.ok()["tags"], json!(["clodo.dev/owner=acme.svc", "x"]));
    assert_eq!(patched.result()["logpush"], true);
    let got = api.get(&format!("{}/script-settings", s("my-worker"))).await;
    assert_eq!(got.ok()["tags"], json!(["clodo.dev/owner=acme.svc", "x"]));
    let svc = api.get(&format!("/accounts/{A}/workers/services/my-worker")).await;
    assert_eq!(svc.ok()["default_environment"]["script"]["tags"], json!(["clodo.dev/owner=acme.svc", "x"]));
    let settings = api.get(&format!("{}/settings", s("my-worker"))).await;
    assert_eq!(settings.ok()["tags"], json!(["clodo.dev/owner=acme.svc", "x"]));
    assert_eq!(emu.script(A, "my-worker").unwrap().tags, vec!["clodo.dev/owner=acme.svc", "x"]);

    // PATCH settings (multipart) makes and deploys a version
    let form = reqwest::multipart::Form::new().text("settings", json!({"compatibility_date": "2025-02-02", "bindings": [{"type": "plain_text", "name": "MODE", "text": "dev"}]}).to_string());
    let r = api
        .send(api.client.patch(format!("{}{}/settings", api.base, s("my-worker"))).bearer_auth(TOK_A).multipart(form))
        .await;
    assert_eq!(r.ok()["compatibility_date"], "2025-02-02");
    let script = emu.script(A, "my-worker").unwrap();
    assert_eq!(script.versions.len(), 2);
    let latest = script.latest_version().unwrap();
    assert_eq!(latest.binding("MODE").unwrap()["text"], "dev");
    assert!(latest.binding("CFG").is_none(), "unlisted non-secret binding removed");
    assert_eq!(latest.binding("KEY").unwrap()["text"], "hunter2-secret", "secret kept");
    assert_eq!(script.active_deployment().unwrap().versions[0].version_id, latest.id);
}

#[tokio::test]
async fn upload_validation_matches_the_api() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    api.put_script(A, "1bad", json!({})).await.err(400, 10016);
    api.put_script(A, "bad-", json!({})).await.err(400, 10016);
    let r = api.put_script(A, "w", json!({"main_module": "missing.js"})).await;
    r.err(400, 10021);
    assert!(r.message().contains("missing.js"));
    let r = api
        .put_script(
            A,
            "w",
            json!({"bindings": [{"type": "d1", "name": "DB", "id": "00000000-0000-0000-0000-000000000000"}]}),
        )
        .await;
    r.err(400, 10021);
    assert!(r.message().contains("DB") && r.message().contains("d1"), "{}", r.message());
    api.put_script(
        A,
        "w",
        json!({"bindings": [
        {"type": "plain_text", "name": "X", "text": "1"},
        {"type": "plain_text", "name": "X", "text": "2"}]}),
    )
    .await
    .err(400, 10021);
    api.put_script(A, "w", json!({"bindings": [{"type": "kv_namespace", "name": "KV", "namespace_id": "0123"}]}))
        .await
        .err(400, 10041);
    // metadata part missing / not multipart
    let r = api.upload(Method::PUT, &s("w"), json!("not an object"), &[("index.js", "x")]).await;
    r.err(400, 10021);
    api.put(&s("w"), json!({"main_module": "index.js"})).await.err(400, 10021);
    // strict inherit with nothing to inherit
    api.put_script(A, "w", json!({})).await.ok();
    let path = format!("{}?bindings_inherit=strict", s("w"));
    let r = api
        .upload(
            Method::PUT,
            &path,
            json!({"main_module": "index.js", "bindings": [{"type": "inherit", "name": "GONE"}]}),
            &[("index.js", "export default {}")],
        )
        .await;
    r.err(400, 10057);
    // non-strict inherit silently drops it
    let r = api
        .upload(
            Method::PUT,
            &s("w"),
            json!({"main_module": "index.js", "bindings": [{"type": "inherit", "name": "GONE"}]}),
            &[("index.js", "export default {}")],
        )
        .await;
    r.ok();
    // nothing was stored by the failed uploads
    assert_eq!(emu.script(A, "w").unwrap().versions.len(), 2);
    assert!(emu.script(A, "1bad").is_none());
    // a D1 binding to a real database works, by `id` or `database_id`
    let db = api.post(&format!("/accounts/{A}/d1/database"), json!({"name": "bind-db"})).await;
    let uuid = db.ok()["uuid"].as_str().unwrap().to_string();
    api.put_script(A, "w", json!({"bindings": [{"type": "d1", "name": "DB", "database_id": uuid}]})).await.ok();
    let v = emu.script(A, "w").unwrap().latest_version().unwrap().clone();
    assert_eq!(v.binding("DB").unwrap()["id"], uuid.as_str());
}

#[tokio::test]
async fn versions_deployments_and_rollback() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    // a first upload cannot be a version upload
    let meta = json!({"main_module": "index.js", "compatibility_date": "2025-01-01", "annotations": {"workers/tag": "hash-1", "workers/message": "first version"}});
    api.upload(Method::POST, &format!("{}/versions", s("w")), meta.clone(), &[("index.js", "export default {}")])
        .await
        .err(404, 10007);
    let v1 = api.put_script(A, "w", json!({})).await.ok()["deployment_id"].as_str().unwrap().to_string();
    let r = api
        .upload(Method::POST, &format!("{}/versions", s("w")), meta, &[("index.js", "export default { fetch() {} }")])
        .await;
    let version = r.ok().clone();
    let v2 = version["id"].as_str().unwrap().to_string();
    assert!(is_uuid(&v2));
    assert_eq!(version["number"], 2);
    assert!(version["resources"]["script"]["etag"].as_str().unwrap().len() >= 32);
    assert_eq!(version["metadata"]["has_preview"], false);
    assert_eq!(version["annotations"]["workers/tag"], "hash-1");
    assert_eq!(version["annotations"]["workers/triggered_by"], "upload");
    // not deployed: still v1 at 100%
    let script = emu.script(A, "w").unwrap();
    assert_eq!(script.active_deployment().unwrap().versions[0].version_id, v1);

    let list = api.get(&format!("{}/versions", s("w"))).await;
    let items = list.ok()["items"].as_array().unwrap().clone();
    assert_eq!(items.iter().map(|i| i["id"].as_str().unwrap()).collect::<Vec<_>>(), vec![v2.as_str(), v1.as_str()]);
    let dep = api.get(&format!("{}/versions?deployable=true", s("w"))).await;
    assert_eq!(dep.ok()["items"].as_array().unwrap().len(), 2);
    let paged = api.get(&format!("{}/versions?page=2&per_page=1", s("w"))).await;
    assert_eq!(paged.ok()["items"][0]["id"], v1.as_str());
    let one = api.get(&format!("{}/versions/{v2}", s("w"))).await;
    assert_eq!(one.ok()["annotations"]["workers/message"], "first version");
    assert_eq!(one.result()["resources"]["script_runtime"]["compatibility_date"], "2025-01-01");
    api.get(&format!("{}/versions/00000000-0000-0000-0000-000000000000", s("w"))).await.err(404, 10221);

    // split deployment
    let deployments = format!("{}/deployments", s("w"));
    let r = api
        .post(&deployments, json!({"strategy": "percentage", "versions": [{"version_id": v1, "percentage": 90}, {"version_id": v2, "percentage": 10}], "annotations": {"workers/message": "canary"}}))
        .await;
    let d = r.ok().clone();
    assert!(is_uuid(d["id"].as_str().unwrap()));
    assert_eq!(d["annotations"]["workers/message"], "canary");
    assert_eq!(d["versions"].as_array().unwrap().len(), 2);
    // invalid deployments
    api.post(&deployments, json!({"strategy": "percentage", "versions": [{"version_id": v1, "percentage": 60}, {"version_id": v2, "percentage": 50}]})).await.err(400, 10021);
    api.post(&deployments, json!({"strategy": "percentage", "versions": [{"version_id": "00000000-0000-0000-0000-000000000000", "percentage": 100}]})).await.err(400, 10221);
    api.post(&deployments, json!({"strategy": "other", "versions": [{"version_id": v1, "percentage": 100}]}))
        .await
        .err(400, 10021);
    api.post(&deployments, json!({"strategy": "percentage", "versions": []})).await.err(400, 10021);
    // secrets refused during a split
    api.put(&format!("{}/secrets", s("w")), json!({"name": "S", "text": "v", "type": "secret_text"}))
        .await
        .err(400, 10215);

    api.post(&deployments, json!({"strategy": "percentage", "versions": [{"version_id": v2, "percentage": 100}]}))
        .await
        .ok();
    let back = api.post(&deployments, json!({"strategy": "percentage", "versions": [{"version_id": v1, "percentage": 100}], "annotations": {"workers/message": "roll"}})).await;
    assert_eq!(back.ok()["annotations"]["workers/triggered_by"], "rollback");
    let list = api.get(&deployments).await;
    let ds = list.ok()["deployments"].as_array().unwrap().clone();
    assert_eq!(ds.len(), 4);
    assert_eq!(ds[0]["versions"][0]["version_id"], v1.as_str(), "newest first");
    let created: Vec<&str> = ds.iter().map(|d| d["created_on"].as_str().unwrap()).collect();
    let mut sorted = created.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(created, sorted, "created_on strings sort newest first");
    let first_id = ds[3]["id"].as_str().unwrap();
    let got = api.get(&format!("{deployments}/{first_id}")).await;
    assert_eq!(got.ok()["annotations"]["workers/triggered_by"], "upload");
    let active = ds[0]["id"].as_str().unwrap();
    api.delete(&format!("{deployments}/{active}")).await.err(400, 10223);
    api.delete(&format!("{deployments}/{first_id}")).await.ok();
    assert_eq!(api.get(&deployments).await.ok()["deployments"].as_array().unwrap().len(), 3);
    api.get(&format!("/accounts/{A}/workers/scripts/none/deployments")).await.err(404, 10007);
}

#[tokio::test]
async fn secrets_write_versions_and_survive_uploads() {
    let emu = start().await;
    let api = Api::new(&emu, TOK_A);
    let secrets = format!("{}/secrets", s("w"));
    api.put(&secrets, json!({"name": "S", "text": "v", "type": "secret_text"})).await.err(404, 10007);
    api.put_script(A, "w", json!({"bindings": [{"type": "plain_text", "name": "P", "text": "p"}]})).await.ok();
    let r = api.put(&secrets, json!({"name": "API_KEY", "text": "first-value", "type": "secret_text"})).await;
    assert_eq!(r.ok(), &json!({"name": "API_KEY", "type": "secret_text"}));
    let script = emu.script(A, "w").unwrap();
    assert_eq!(script.versions.len(), 2);
    let v = script.latest_version().unwrap();
    assert_eq!(v.annotations["workers/triggered_by"], "secret");
    assert_eq!(script.active_deployment().unwrap().versions[0].version_id, v.id);
    assert_eq!(script.active_deployment().unwrap().annotations["workers/triggered_by"], "secret");

    let list = api.get(&secrets).await;
    assert_eq!(list.ok(), &json!([{"name": "API_KEY", "type": "secret_text"}]));
    assert!(!list.body.to_string().contains("first-value"));
    api.get(&format!("{secrets}/API_KEY")).await.ok();
    api.get(&format!("{secrets}/NOPE")).await.err(404, 10056);
    // a secret may not shadow a plain binding
    api.put(&secrets, json!({"name": "P", "text": "x", "type": "secret_text"})).await.err(400, 10053);

    // PUT script without listing the secret keeps it; so does a version upload
    api.put_script(A, "w", json!({})).await.ok();
    let v = emu.script(A, "w").unwrap().latest_version().unwrap().clone();
    assert_eq!(v.binding("API_KEY").unwrap()["text"], "first-value");
    assert!(v.binding("P").is_none());
    api.upload(
        Method::POST,
        &format!("{}/versions", s("w")),
        json!({"main_module": "index.js", "keep_bindings": ["secret_text"]}),
        &[("index.js", "export default {}")],
    )
    .await
    .ok();
    let v = emu.script(A, "w").unwrap().latest_version().unwrap().clone();
    assert_eq!(v.binding("API_KEY").unwrap()["text"], "first-value");
    // newest version not deployed -> 10215
    api.put(&secrets, json!({"name": "B", "text": "b", "type": "secret_text"})).await.err(400, 10215);
    let latest = v.id.clone();
    api.post(
        &format!("{}/deployments", s("w")),
        json!({"strategy": "percentage", "versions": [{"version_id": latest, "percentage": 100}]}),
    )
    .await
    .ok();

    // bulk: set two, delete one, in one version
    let before = emu.script(A, "w").unwrap().versions.len();
    let r = api
        .patch(
            &format!("{}/secrets-bulk", s("w")),
            json!({"secrets": {
            "B": {"name": "B", "type": "secret_text", "text": "b"},
            "C": {"name": "C", "type": "secret_text", "text": "c"},
            "API_KEY": null}}),
        )
        .await;
    assert_eq!(r.ok(), &json!({"B": {"name": "B", "type": "secret_text"}, "C": {"name": "C", "type": "secret_text"}}));
    assert_eq!(emu.script(A, "w").unwrap().versions.len(), before + 1);

    // delete with url_encoded name
    api.delete(&format!("{secrets}/C?url_encoded=true")).await.ok();
    api.delete(&format!("{secrets}/C?url_encoded=true")).await.err(404, 10056);
    assert_eq!(api.get(&secrets).await.ok(), &json!([{"name": "B", "type": "secret_text"}]));
}

#[tokio::test]
async fn subdomains_schedules_triggers_and_delete() {
    let emu = builder().workers_subdomain(B, "bee-team").start().await.unwrap();
    let api = Api::new(&emu, TOK_ALL);
    assert_eq!(api.get(&format!("/accounts/{A}/workers/subdomain")).await.ok(), &json!({"subdomain": "aaaaaaaa"}));
    assert_eq!(api.get(&format!("/accounts/{B}/workers/subdomain")).await.ok(), &json!({"subdomain": "bee-team"}));
    api.put(&format!("/accounts/{A}/workers/subdomain"), json!({"subdomain": "bee-team"})).await.err(409, 10032);
    api.put(&format!("/accounts/{A}/workers/subdomain"), json!({"subdomain": "Bad_Name"})).await.err(400, 10032);
    api.put(&format!("/accounts/{A}/workers/subdomain"), json!({"subdomain": "acme"})).await.ok();
    assert_eq!(emu.workers_subdomain(A).as_deref(), Some("acme"));
    api.delete(&format!("/accounts/{A}/workers/subdomain")).await.ok();
    api.get(&format!("/accounts/{A}/workers/subdomain")).await.err(404, 10007);

    api.put_script(A, "w", json!({})).await.ok();
    api.put_script(A, "caller", json!({"bindings": [{"type": "service", "name": "W", "service": "w"}]})).await.ok();
    let sub = format!("{}/subdomain", s("w"));
    assert_eq!(api.get(&sub).await.ok(), &json!({"enabled": false, "previews_enabled": false}));
    assert_eq!(
        api.post(&sub, json!({"enabled": true, "previews_enabled": true})).await.ok(),
        &json!({"enabled": true, "previews_enabled": true})
    );
    assert_eq!(
        api.post(&sub, json!({"enabled": true})).await.ok(),
        &json!({"enabled": true, "previews_enabled": true})
    );
    api.post(&sub, json!({})).await.err(400, 10021);

    let sched =
        api.put(&format!("{}/schedules", s("w")), json!([{"cron": "*/5 * * * *"}, {"cron": "0 0 * * 1"}])).await;
    assert_eq!(sched.ok()["schedules"].as_array().unwrap().len(), 2);
    api.put(&format!("{}/schedules", s("w")), json!([{"cron": "nope"}])).await.err(400, 10100);
    assert_eq!(api.get(&format!("{}/schedules", s("w"))).await.ok()["schedules"][1]["cron"], "0 0 * * 1");

    // wrangler's route and domain sync endpoints
    let routes = api
        .put(
            &format!("{}/routes", s("w")),
            json!([{"pattern": "api.example.com/*", "zone_name": "example.com"}, {"pattern": "x.sub.example.com/*"}]),
        )
        .await;
    assert_eq!(routes.ok().as_array().unwrap().len(), 2);
    assert_eq!(emu.routes("sub.example.com")[0].pattern, "x.sub.example.com/*", "longest zone wins");
    let id_before = emu.routes("example.com")[0].id.clone();
    api.put(&format!("{}/routes", s("w")), json!([{"pattern": "api.example.com/*"}])).await.ok();
    assert_eq!(emu.routes("example.com")[0].id, id_before, "unchanged route keeps its id");
    assert!(emu.routes("sub.example.com").is_empty(), "PUT replaces all of the script's routes");
    api.put(&format!("{}/routes", s("w")), json!([{"pattern": "api.nowhere.net/*"}])).await.err(400, 10022);
    api.put(&format!("{}/routes", s("caller")), json!([{"pattern": "api.example.com/*"}])).await.err(409, 10020);

    let recs = api.put(&format!("{}/domains/records", s("w")), json!({"override_scope": true, "override_existing_origin": true, "override_existing_dns_record": true, "origins": [{"hostname": "app.example.com"}]})).await;
    assert_eq!(recs.ok()[0]["hostname"], "app.example.com");
    let cs = api
        .post(&format!("{}/domains/changeset?replace_state=true", s("w")), json!([{"hostname": "new.example.com"}]))
        .await;
    assert_eq!(cs.ok()["added"], json!([{"hostname": "new.example.com"}]));
    assert_eq!(cs.result()["removed"][0]["hostname"], "app.example.com");

    let refs = api.get(&format!("{}/references", s("w"))).await;
    assert_eq!(refs.ok()["services"]["incoming"][0]["service"], "caller");
    assert_eq!(api.get(&format!("/accounts/{A}/workers/tails/by-consumer/w")).await.ok(), &json!([]));

    // delete: refused while referenced, then forced; routes and domains go with it
    api.delete(&format!("/accounts/{A}/workers/services/w?force=false")).await.err(400, 10064);
    api.delete(&format!("/accounts/{A}/workers/services/w?force=true")).await.ok();
    assert!(emu.script(A, "w").is_none());
    assert!(emu.routes("example.com").is_empty());
    assert!(emu.custom_domains(A).is_empty());
    api.delete(&s("w")).await.err(404, 10007);
    api.delete(&s("caller")).await.ok();

    // KV namespaces: real paging
    for i in 0..3 {
        api.post(&format!("/accounts/{A}/storage/kv/namespaces"), json!({"title": format!("ns-{i}")})).await.ok();
    }
    api.post(&format!("/accounts/{A}/storage/kv/namespaces"), json!({"title": "ns-1"})).await.err(400, 10014);
    let page =
        api.get(&format!("/accounts/{A}/storage/kv/namespaces?per_page=2&page=2&order=title&direction=asc")).await;
    assert_eq!(page.ok().as_array().unwrap().len(), 1);
    assert_eq!(page.result()[0]["title"], "ns-2");
    assert_eq!(page.body["result_info"]["total_count"], 3);
}
