//! The send path and endpoints over real HTTP against the scripted fixture server.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudflare_client::*;
use common::{Fixture, Reply, TOKEN, metrics_text};
use serde_json::json;

const ACCT: &str = "0123456789abcdef0123456789abcdef";
const ZONE: &str = "fedcba9876543210fedcba9876543210";

#[tokio::test]
async fn retries_5xx_then_succeeds_with_metrics() {
    let fx = Fixture::start(|_, n| {
        if n < 2 {
            Reply::raw(503, "<html>busy</html>")
        } else {
            Reply::ok(json!({"id": ZONE, "name": "acme.com", "status": "active"}))
        }
    })
    .await;
    let reg = prometheus::Registry::new();
    let (c, _) = fx.client_with_metrics(&reg);
    let z = c.get_zone(ZONE).await.unwrap();
    assert_eq!(z.name, "acme.com");
    assert_eq!(fx.count(), 3);
    let text = metrics_text(&reg);
    assert!(
        text.contains(r#"clodo_cloudflare_requests_total{endpoint="/zones/:zone",method="GET",status="503"} 2"#),
        "{text}"
    );
    assert!(text.contains(r#"clodo_cloudflare_requests_total{endpoint="/zones/:zone",method="GET",status="200"} 1"#));
    assert!(text.contains(r#"clodo_cloudflare_retries_total{endpoint="/zones/:zone",method="GET"} 2"#));
    assert!(!text.contains(ZONE), "metric labels carry templates, not ids");
}

#[tokio::test]
async fn gives_up_after_max_retries_with_api_error() {
    let fx = Fixture::start(|_, _| Reply::err(502, 0, "bad gateway")).await;
    let c = fx.client();
    let e = c.get_zone(ZONE).await.unwrap_err();
    assert_eq!(fx.count(), 5, "1 attempt + 4 retries");
    assert_eq!((e.status(), e.is_retryable(), e.reason()), (Some(502), true, "ServerError"));
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let fx = Fixture::start(|_, _| {
        Reply::json(
            404,
            json!({"success": false, "errors": [{"code": "7003", "message": "Could not route to /zones/x"}, {"code": 7000, "message": "No route"}]}),
        )
    })
    .await;
    let e = fx.client().get_zone(ZONE).await.unwrap_err();
    assert_eq!(fx.count(), 1);
    assert!(e.has_code(7003) && e.has_code(7000) && e.is_not_found());
    assert_eq!(e.endpoint(), Some("/zones/:zone"));
}

#[tokio::test]
async fn x_should_retry_overrides_status() {
    // 409 with x-should-retry: true is retried; 503 with false is not.
    let fx = Fixture::start(|_, n| match n {
        0 => Reply::err(409, 1, "try again").header("x-should-retry", "true"),
        _ => Reply::ok(json!([])),
    })
    .await;
    fx.client().list_routes(ZONE).await.unwrap();
    assert_eq!(fx.count(), 2);
    let fx = Fixture::start(|_, _| Reply::err(503, 1, "no").header("x-should-retry", "false")).await;
    assert!(fx.client().list_routes(ZONE).await.is_err());
    assert_eq!(fx.count(), 1);
}

#[tokio::test]
async fn honours_retry_after_ms_on_429() {
    let fx = Fixture::start(|_, n| {
        if n == 0 {
            Reply::err(429, 971, "rate limited").header("retry-after-ms", "300").header("retry-after", "1")
        } else {
            Reply::ok(json!([]))
        }
    })
    .await;
    let reg = prometheus::Registry::new();
    let (c, _) = fx.client_with_metrics(&reg);
    let start = Instant::now();
    c.list_routes(ZONE).await.unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(290), "waited {elapsed:?}");
    assert!(elapsed < Duration::from_millis(990), "retry-after-ms wins over retry-after: {elapsed:?}");
    assert_eq!(fx.count(), 2);
    let text = metrics_text(&reg);
    assert!(text.contains("clodo_cloudflare_429_total 1"), "{text}");
    assert!(text.contains(r#"status="429"} 1"#));
    // The pause was taken through the shared limiter; the wait histogram saw it.
    assert!(text.contains(r#"clodo_cloudflare_ratelimit_wait_seconds_count{priority="change"} 1"#), "{text}");
}

#[tokio::test]
async fn long_retry_after_fails_fast_and_blocks_the_token() {
    let fx = Fixture::start(|_, _| Reply::err(429, 971, "rate limited").header("retry-after", "300")).await;
    let c = fx.client();
    let e = c.list_routes(ZONE).await.unwrap_err();
    assert!(
        matches!(e, CloudflareError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(300)),
        "{e:?}"
    );
    assert_eq!(e.reason(), "RateLimited");
    assert_eq!(fx.count(), 1);
    // A clone (same token, same limiter) does not even reach the server during the pause.
    let e2 = c.clone().get_zone(ZONE).await.unwrap_err();
    assert!(e2.is_rate_limited());
    assert!(e2.retry_after().unwrap() > Duration::from_secs(290));
    assert_eq!(fx.count(), 1);
}

#[tokio::test]
async fn exhausted_429_retries_report_rate_limited() {
    let fx = Fixture::start(|_, _| Reply::err(429, 971, "rate limited")).await;
    let mut cfg = fx.config();
    cfg.max_retries = 2;
    let c = CloudflareClient::new(cfg, ApiToken::new(TOKEN), None).unwrap();
    let e = c.list_routes(ZONE).await.unwrap_err();
    assert!(matches!(e, CloudflareError::RateLimited { retry_after: None, .. }), "{e:?}");
    assert_eq!(fx.count(), 3);
}

#[tokio::test]
async fn timeouts_are_retried() {
    let fx = Fixture::start(|_, n| {
        if n == 0 {
            Reply::ok(json!([])).delayed(Duration::from_secs(3))
        } else {
            Reply::ok(json!([{"id": "r1", "pattern": "a.com/*"}]))
        }
    })
    .await;
    let mut cfg = fx.config();
    cfg.request_timeout = Duration::from_millis(300);
    let reg = prometheus::Registry::new();
    let m = ClientMetrics::register(&reg).unwrap();
    let c = CloudflareClient::new(cfg, ApiToken::new(TOKEN), Some(m)).unwrap();
    let routes = c.list_routes(ZONE).await.unwrap();
    assert_eq!(routes[0].id, "r1");
    assert_eq!(fx.count(), 2);
    assert!(metrics_text(&reg).contains(r#"status="timeout"} 1"#));
}

#[tokio::test]
async fn persistent_timeout_is_a_timeout_error() {
    let fx = Fixture::start(|_, _| Reply::ok(json!([])).delayed(Duration::from_secs(3))).await;
    let mut cfg = fx.config();
    cfg.request_timeout = Duration::from_millis(200);
    cfg.max_retries = 1;
    let c = CloudflareClient::new(cfg, ApiToken::new(TOKEN), None).unwrap();
    let e = c.list_routes(ZONE).await.unwrap_err();
    assert!(e.is_timeout() && e.is_retryable(), "{e:?}");
    assert_eq!(e.reason(), "Timeout");
    assert_eq!(fx.count(), 2);
}

#[tokio::test]
async fn d1_writes_are_not_repeated_after_a_timeout_or_5xx() {
    let fx = Fixture::start(|_, _| Reply::ok(json!([])).delayed(Duration::from_secs(3))).await;
    let mut cfg = fx.config();
    cfg.request_timeout = Duration::from_millis(200);
    let c = CloudflareClient::new(cfg, ApiToken::new(TOKEN), None).unwrap();
    let e = c.query_d1(ACCT, "db", &D1Query::sql("INSERT INTO t VALUES (1)")).await.unwrap_err();
    assert!(e.is_timeout());
    assert_eq!(fx.count(), 1, "a write that may have run is not sent twice");

    let fx = Fixture::start(|_, n| {
        if n == 0 { Reply::err(500, 0, "oops") } else { Reply::ok(json!([{"results": [], "success": true}])) }
    })
    .await;
    let c = fx.client();
    assert!(c.query_d1(ACCT, "db", &D1Query::sql("INSERT INTO t VALUES (1)")).await.is_err());
    assert_eq!(fx.count(), 1);
    // reads marked idempotent are retried
    let r = c.query_d1(ACCT, "db", &D1Query::sql("SELECT 1").idempotent()).await;
    assert!(r.is_ok());
    assert_eq!(fx.count(), 2);

    // 429 means the query did not run: retried even for writes
    let fx =
        Fixture::start(
            |_, n| if n == 0 { Reply::err(429, 971, "slow down") } else { Reply::ok(json!([{"results": []}])) },
        )
        .await;
    fx.client().query_d1(ACCT, "db", &D1Query::sql("INSERT INTO t VALUES (1)")).await.unwrap();
    assert_eq!(fx.count(), 2);
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let cfg = ClientConfig {
        base_url: format!("http://{addr}/client/v4"),
        max_retries: 2,
        retry_base_delay: Duration::from_millis(1),
        retry_max_delay: Duration::from_millis(2),
        ..ClientConfig::default()
    };
    let reg = prometheus::Registry::new();
    let m = ClientMetrics::register(&reg).unwrap();
    let c = CloudflareClient::new(cfg, ApiToken::new(TOKEN), Some(m)).unwrap();
    let e = c.get_zone(ZONE).await.unwrap_err();
    assert!(matches!(e, CloudflareError::Transport { kind: TransportKind::Connect, .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(e.reason(), "TransportError");
    assert!(metrics_text(&reg).contains(r#"status="transport_error"} 3"#));
    assert!(!e.to_string().contains(&addr.to_string()), "no concrete URL in errors: {e}");
}

#[tokio::test]
async fn success_false_on_200_and_non_json_success_body() {
    let fx = Fixture::start(|r, _| {
        if r.path.ends_with("/routes") {
            Reply::json(200, json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}]}))
        } else {
            Reply::raw(200, "not json")
        }
    })
    .await;
    let c = fx.client();
    let e = c.list_routes(ZONE).await.unwrap_err();
    assert!(e.is_auth_error() && e.has_code(10000));
    let e = c.get_zone(ZONE).await.unwrap_err();
    assert_eq!(e.reason(), "DecodeError");
    assert_eq!(fx.count(), 2);
}

#[tokio::test]
async fn auth_header_user_agent_and_json_body() {
    let fx = Fixture::start(|_, _| Reply::ok(json!({"id": "r1", "pattern": "api.acme.com/*", "script": "w"}))).await;
    let c = fx.client();
    c.create_route(ZONE, &RouteSpec::new("api.acme.com/*", "w")).await.unwrap();
    let r = &fx.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/client/v4/zones/{ZONE}/workers/routes"));
    assert_eq!(r.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert!(r.header("user-agent").unwrap().starts_with("clodo-operator/"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"pattern": "api.acme.com/*", "script": "w"}));
}

#[tokio::test]
async fn delete_accepts_empty_and_null_results() {
    let fx =
        Fixture::start(
            |r, _| if r.path.contains("/scripts/") { Reply::raw(200, "") } else { Reply::ok(json!({"id": "r1"})) },
        )
        .await;
    let c = fx.client();
    c.delete_script(ACCT, "w", true).await.unwrap();
    c.delete_route(ZONE, "r1").await.unwrap();
    let reqs = fx.requests();
    assert_eq!(reqs[0].method, "DELETE");
    assert_eq!(reqs[0].q("force"), Some("true"));
}

#[tokio::test]
async fn script_upload_multipart_on_the_wire() {
    let fx = Fixture::start(|_, _| {
        Reply::ok(json!({"id": "acme-api", "tag": "t1", "etag": "e", "handlers": ["fetch"], "deployment_id": "v-123"}))
    })
    .await;
    let c = fx.client();
    let meta = WorkerMetadata {
        main_module: Some("index.js".into()),
        compatibility_date: Some("2025-10-01".into()),
        compatibility_flags: vec!["nodejs_compat".into()],
        bindings: vec![
            Binding::plain_text("MODE", "prod"),
            Binding::secret_text("API_KEY", SecretString::new("s3cr3t-value")),
            Binding::d1("DB", "a1b2c3d4-0000-1111-2222-333344445555"),
        ],
        annotations: Some(Annotations::new(Some("deploy by clodo"), Some("abc123"))),
        tags: Some(vec!["clodo:acme/api".into()]),
        ..WorkerMetadata::default()
    }
    .keep_secrets();
    let upload = WorkerUpload::new(
        meta,
        vec![
            WorkerModule::new(
                "index.js",
                "import u from './lib/util.js'; export default { fetch() { return new Response(u) } }",
            ),
            WorkerModule::new("lib/util.js", "export default 'ok'"),
            WorkerModule::new("add.wasm", vec![0u8, 97, 115, 109, 1, 0, 0, 0]),
            WorkerModule::new("schema.sql", "CREATE TABLE t(x);"),
        ],
    );
    let script = c.upload_script(ACCT, "acme-api", &upload).await.unwrap();
    assert_eq!(script.version_id(), Some("v-123"));

    let r = &fx.requests()[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.path, format!("/client/v4/accounts/{ACCT}/workers/scripts/acme-api"));
    assert!(r.header("content-type").unwrap().starts_with("multipart/form-data; boundary="));
    assert_eq!(r.header("content-length").map(|l| l.parse::<usize>().unwrap()), Some(r.body.len()));
    let parts = r.multipart_parts().await;
    let names: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["metadata", "index.js", "lib/util.js", "add.wasm", "schema.sql"]);
    let (_, filename, ct, data) = &parts[0];
    assert_eq!((filename.as_deref(), ct.as_deref()), (None, Some("application/json")));
    let meta: serde_json::Value = serde_json::from_slice(data).unwrap();
    assert_eq!(meta["main_module"], "index.js");
    assert_eq!(meta["compatibility_date"], "2025-10-01");
    assert_eq!(meta["keep_bindings"], json!(["secret_text", "secret_key"]));
    assert_eq!(meta["bindings"][1], json!({"type": "secret_text", "name": "API_KEY", "text": "s3cr3t-value"}));
    assert_eq!(meta["bindings"][2], json!({"type": "d1", "name": "DB", "id": "a1b2c3d4-0000-1111-2222-333344445555"}));
    assert_eq!(meta["annotations"], json!({"workers/message": "deploy by clodo", "workers/tag": "abc123"}));
    assert_eq!(meta["tags"], json!(["clodo:acme/api"]));
    let expect = [
        ("index.js", "application/javascript+module"),
        ("lib/util.js", "application/javascript+module"),
        ("add.wasm", "application/wasm"),
        ("schema.sql", "text/plain"),
    ];
    for (i, (name, ct)) in expect.iter().enumerate() {
        let p = &parts[i + 1];
        assert_eq!(p.1.as_deref(), Some(*name), "filename = module name");
        assert_eq!(p.2.as_deref(), Some(*ct), "{name}");
    }
    assert_eq!(&parts[3].3[..], &[0u8, 97, 115, 109, 1, 0, 0, 0], "binary module intact");
}

#[tokio::test]
async fn multipart_upload_is_resent_identically_on_retry() {
    let fx = Fixture::start(
        |_, n| if n == 0 { Reply::err(500, 0, "x") } else { Reply::ok(json!({"id": "v1", "number": 2})) },
    )
    .await;
    let upload = WorkerUpload::new(
        WorkerMetadata { main_module: Some("index.js".into()), ..Default::default() }.keep_secrets(),
        vec![WorkerModule::new("index.js", "export default {}")],
    );
    let v = fx.client().upload_version(ACCT, "w", &upload).await.unwrap();
    assert_eq!((v.id.as_str(), v.number), ("v1", Some(2)));
    let reqs = fx.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, reqs[1].body);
    assert_eq!(reqs[1].path, format!("/client/v4/accounts/{ACCT}/workers/scripts/w/versions"));
    // version upload without main_module is refused before sending
    let bad = WorkerUpload::new(WorkerMetadata::default(), vec![WorkerModule::new("index.js", "")]);
    assert_eq!(fx.client().upload_version(ACCT, "w", &bad).await.unwrap_err().reason(), "InvalidInput");
    assert_eq!(fx.count(), 2);
}

#[tokio::test]
async fn page_array_pagination_follows_total_pages() {
    // 120 zones, server caps per_page at 50
    let fx = Fixture::start(|r, _| {
        let page: u64 = r.q("page").unwrap().parse().unwrap();
        let per_page = r.q("per_page").unwrap().parse::<u64>().unwrap().min(50);
        let all: Vec<_> = (0..120)
            .map(|i| json!({"id": format!("{i:032x}"), "name": format!("z{i}.com"), "status": "active"}))
            .collect();
        let items: Vec<_> =
            all.iter().skip(((page - 1) * per_page) as usize).take(per_page as usize).cloned().collect();
        Reply::ok_paged(
            json!(items),
            json!({"page": page, "per_page": per_page, "count": items.len(), "total_count": 120, "total_pages": 3}),
        )
    })
    .await;
    let zones =
        fx.client().list_zones(&ZoneFilter { account_id: Some(ACCT.into()), ..Default::default() }).await.unwrap();
    assert_eq!(zones.len(), 120);
    let reqs = fx.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs.iter().map(|r| r.q("page").unwrap()).collect::<Vec<_>>(), ["1", "2", "3"]);
    assert!(reqs.iter().all(|r| r.q("account.id") == Some(ACCT) && r.q("per_page") == Some("50")));
}

#[tokio::test]
async fn d1_list_pages_until_short_page_without_result_info() {
    let fx = Fixture::start(|r, _| {
        let page: usize = r.q("page").unwrap().parse().unwrap();
        let per_page: usize = r.q("per_page").unwrap().parse().unwrap();
        let items: Vec<_> = (0..130usize)
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|i| json!({"uuid": format!("uuid-{i}"), "name": format!("db-{i}")}))
            .collect();
        Reply::ok(json!(items))
    })
    .await;
    let c = fx.client();
    let dbs = c.list_d1_databases(ACCT, None).await.unwrap();
    assert_eq!(dbs.len(), 130);
    assert_eq!(fx.count(), 2);
}

#[tokio::test]
async fn find_d1_database_matches_exact_name() {
    let fx = Fixture::start(|r, _| {
        assert_eq!(r.q("name"), Some("acme-data"));
        Reply::ok(json!([{"uuid": "u1", "name": "acme-data-staging"}, {"uuid": "u2", "name": "acme-data"}]))
    })
    .await;
    let db = fx.client().find_d1_database(ACCT, "acme-data").await.unwrap().unwrap();
    assert_eq!(db.uuid, "u2");
}

#[tokio::test]
async fn page_items_versions_and_deployments_object_results() {
    let fx = Fixture::start(|r, _| {
        if r.path.ends_with("/versions") {
            let page: usize = r.q("page").map_or(1, |p| p.parse().unwrap());
            let items: Vec<_> = (0..60usize).skip((page - 1) * 50).take(50).map(|i| json!({"id": format!("v{i}"), "number": 60 - i})).collect();
            Reply::ok(json!({"items": items}))
        } else {
            Reply::ok(json!({"deployments": [
                {"id": "d1", "created_on": "2025-01-01T00:00:00Z", "versions": [{"version_id": "v1", "percentage": 100}]},
                {"id": "d2", "created_on": "2025-02-01T00:00:00Z", "versions": [{"version_id": "v2", "percentage": 100}]}
            ]}))
        }
    })
    .await;
    let c = fx.client();
    let versions = c.list_versions(ACCT, "w").await.unwrap();
    assert_eq!(versions.len(), 60);
    assert_eq!(versions[0].id, "v0");
    let deps = c.list_deployments(ACCT, "w").await.unwrap();
    assert_eq!(deps.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["d2", "d1"]);
    let active = c.active_deployment(ACCT, "w").await.unwrap().unwrap();
    assert_eq!(active.sole_version(), Some("v2"));
}

#[tokio::test]
async fn deployments_create_body_and_force() {
    let fx = Fixture::start(|_, _| {
        Reply::ok(json!({"id": "dep", "strategy": "percentage", "versions": [{"version_id": "new", "percentage": 10}, {"version_id": "old", "percentage": 90}]}))
    })
    .await;
    let c = fx.client();
    let d = c
        .create_deployment(ACCT, "w", &CreateDeployment::split("new", 10.0, "old", Some("canary 10%")), true)
        .await
        .unwrap();
    assert_eq!(d.traffic(), vec![("new".into(), 10), ("old".into(), 90)]);
    let r = &fx.requests()[0];
    assert_eq!(r.q("force"), Some("true"));
    assert_eq!(
        r.json(),
        json!({"strategy": "percentage", "versions": [{"version_id": "new", "percentage": 10}, {"version_id": "old", "percentage": 90}],
               "annotations": {"workers/message": "canary 10%"}})
    );
    let bad = CreateDeployment::split("new", 10.0, "new", None);
    assert!(c.create_deployment(ACCT, "w", &bad, false).await.is_err());
    assert_eq!(fx.count(), 1);
}

#[tokio::test]
async fn token_verify_falls_back_on_code_1000() {
    let fx = Fixture::start(|r, _| {
        if r.path.starts_with("/client/v4/accounts/") {
            Reply::err(401, 1000, "Invalid API Token")
        } else {
            Reply::ok(json!({"id": "tokid", "status": "active", "expires_on": "2030-01-01T00:00:00Z"}))
        }
    })
    .await;
    let c = fx.client();
    let s = c.verify_token(Some(ACCT)).await.unwrap();
    assert!(s.is_active());
    let paths: Vec<String> = fx.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [format!("/client/v4/accounts/{ACCT}/tokens/verify"), "/client/v4/user/tokens/verify".to_string()]
    );

    // Both paths reject: the account path's error is reported.
    let fx = Fixture::start(|r, _| {
        if r.path.starts_with("/client/v4/accounts/") {
            Reply::err(401, 1000, "Invalid API Token (account)")
        } else {
            Reply::err(400, 1000, "Invalid API Token")
        }
    })
    .await;
    let e = fx.client().verify_token(Some(ACCT)).await.unwrap_err();
    assert!(e.is_auth_error() && e.to_string().contains("(account)"), "{e}");
    // Other errors do not fall back.
    let fx = Fixture::start(|_, _| Reply::err(403, 10000, "Authentication error")).await;
    assert!(fx.client().verify_token(Some(ACCT)).await.unwrap_err().is_auth_error());
    assert_eq!(fx.count(), 1);
    // Without an account only the user path is used.
    let fx = Fixture::start(|_, _| Reply::ok(json!({"id": "t", "status": "disabled"}))).await;
    assert!(!fx.client().verify_token(None).await.unwrap().is_active());
    assert_eq!(fx.requests()[0].path, "/client/v4/user/tokens/verify");
}

#[tokio::test]
async fn zone_for_hostname_tries_longest_suffix_first() {
    let fx = Fixture::start(|r, _| {
        let name = r.q("name").unwrap_or_default().to_string();
        if name == "acme.com" {
            Reply::ok_paged(
                json!([{"id": ZONE, "name": "acme.com", "status": "active", "account": {"id": ACCT}}]),
                json!({"page": 1, "per_page": 50, "total_pages": 1}),
            )
        } else {
            Reply::ok_paged(json!([]), json!({"page": 1, "per_page": 50, "total_pages": 0}))
        }
    })
    .await;
    let z = fx.client().find_zone_for_hostname(ACCT, "*.api.eu.acme.com/*").await.unwrap().unwrap();
    assert_eq!(z.id, ZONE);
    let names: Vec<String> = fx.requests().iter().map(|r| r.q("name").unwrap().to_string()).collect();
    assert_eq!(names, ["api.eu.acme.com", "eu.acme.com", "acme.com"]);
    assert!(fx.requests().iter().all(|r| r.q("account.id") == Some(ACCT)));
}

#[tokio::test]
async fn secrets_endpoints_shapes() {
    let fx = Fixture::start(|r, _| match (r.method.as_str(), r.path.rsplit('/').next().unwrap()) {
        ("PUT", "secrets") => Reply::ok(json!({"name": "API_KEY", "type": "secret_text"})),
        ("GET", "secrets") => Reply::ok(json!([{"name": "API_KEY", "type": "secret_text"}])),
        ("PATCH", "secrets-bulk") => Reply::ok(json!({"A": {"name": "A", "type": "secret_text"}})),
        ("DELETE", _) => Reply::ok(serde_json::Value::Null),
        _ => Reply::err(404, 10007, "not found"),
    })
    .await;
    let c = fx.client();
    let info = c.put_secret(ACCT, "w", "API_KEY", &SecretString::new("v4lue-v4lue")).await.unwrap();
    assert_eq!(info.secret_type, "secret_text");
    assert_eq!(c.list_secrets(ACCT, "w").await.unwrap().len(), 1);
    c.delete_secret(ACCT, "w", "MY KEY/1").await.unwrap();
    let changes: BTreeMap<String, Option<SecretString>> =
        [("A".to_string(), Some(SecretString::new("aaaa"))), ("B".to_string(), None)].into_iter().collect();
    let res = c.bulk_patch_secrets(ACCT, "w", &changes).await.unwrap();
    assert_eq!(res[0].name, "A");

    let reqs = fx.requests();
    assert_eq!(reqs[0].json(), json!({"name": "API_KEY", "text": "v4lue-v4lue", "type": "secret_text"}));
    assert_eq!(reqs[2].path, format!("/client/v4/accounts/{ACCT}/workers/scripts/w/secrets/MY%20KEY%2F1"));
    assert_eq!(reqs[2].q("url_encoded"), Some("true"));
    assert_eq!(
        reqs[3].json(),
        json!({"secrets": {"A": {"name": "A", "type": "secret_text", "text": "aaaa"}, "B": null}})
    );
}

#[tokio::test]
async fn workers_dev_subdomain_calls() {
    let fx = Fixture::start(|r, _| {
        if r.path.ends_with("/workers/subdomain") {
            Reply::err(404, 10007, "This account does not have a workers.dev subdomain")
        } else {
            Reply::ok(json!({"enabled": true, "previews_enabled": false}))
        }
    })
    .await;
    let c = fx.client();
    assert_eq!(c.get_account_subdomain(ACCT).await.unwrap(), None);
    let s = c.set_script_subdomain(ACCT, "w", true, false).await.unwrap();
    assert!(s.enabled && !s.previews_enabled);
    let r = &fx.requests()[1];
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("cloudflare-workers-script-api-date"), Some("2025-08-01"));
    assert_eq!(r.json(), json!({"enabled": true, "previews_enabled": false}));
}

#[tokio::test]
async fn domains_dns_and_d1_request_shapes() {
    let fx = Fixture::start(|r, _| {
        let p = r.path.as_str();
        if p.ends_with("/workers/domains") && r.method == "PUT" {
            Reply::ok(json!({"id": "dom1", "hostname": "api.acme.com", "service": "w", "zone_id": ZONE, "zone_name": "acme.com"}))
        } else if p.ends_with("/workers/domains") {
            Reply::ok(json!([{"id": "dom1", "hostname": "api.acme.com", "service": "w"}]))
        } else if p.ends_with("/dns_records") && r.method == "GET" {
            Reply::ok_paged(json!([{"id": "rec", "name": "x.acme.com", "type": "A", "content": "1.2.3.4"}]), json!({"page": 1, "per_page": 100, "total_pages": 1}))
        } else if p.contains("/dns_records") {
            Reply::ok(json!({"id": "rec", "name": "x.acme.com", "type": "A", "content": "1.2.3.4", "ttl": 1}))
        } else if p.ends_with("/time_travel/bookmark") {
            Reply::ok(json!({"bookmark": "00000001-00000002"}))
        } else if p.ends_with("/time_travel/restore") {
            Reply::ok(json!({"bookmark": "b2", "previous_bookmark": "b1", "message": "restored"}))
        } else if p.ends_with("/raw") {
            Reply::ok(json!([{"results": {"columns": ["n"], "rows": [[1]]}, "success": true, "meta": {}}]))
        } else {
            Reply::ok(json!({"uuid": "u1", "name": "acme-db", "created_at": "2025-01-01T00:00:00Z"}))
        }
    })
    .await;
    let c = fx.client();
    let d = c.attach_domain(ACCT, &AttachDomain::new("api.acme.com", "w").zone_id(ZONE)).await.unwrap();
    assert_eq!(d.id, "dom1");
    c.list_domains(
        ACCT,
        &DomainFilter { service: Some("w".into()), hostname: Some("api.acme.com".into()), ..Default::default() },
    )
    .await
    .unwrap();
    let recs = c
        .list_dns_records(
            ZONE,
            &DnsFilter { record_type: Some("A".into()), name: Some("x.acme.com".into()), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(recs.len(), 1);
    c.create_dns_record(ZONE, &DnsRecordInput::new("A", "x.acme.com", "1.2.3.4").proxied(true)).await.unwrap();
    c.patch_dns_record(ZONE, "rec", &DnsRecordPatch { content: Some("5.6.7.8".into()), ..Default::default() })
        .await
        .unwrap();
    let db = c.create_d1_database(ACCT, &CreateD1Database::new("acme-db")).await.unwrap();
    assert_eq!(db.uuid, "u1");
    assert_eq!(c.d1_bookmark(ACCT, "u1", None).await.unwrap(), "00000001-00000002");
    let rr = c.d1_restore(ACCT, "u1", &RestoreTarget::Bookmark("b1".into())).await.unwrap();
    assert_eq!(rr.previous_bookmark.as_deref(), Some("b1"));
    let raw = c.raw_d1(ACCT, "u1", &D1Query::with_params("SELECT ?1 AS n", vec![json!(1)])).await.unwrap();
    assert_eq!(raw[0].results.rows, vec![vec![json!(1)]]);

    let reqs = fx.requests();
    assert_eq!(
        reqs[0].json(),
        json!({"hostname": "api.acme.com", "service": "w", "zone_id": ZONE, "environment": "production"})
    );
    assert_eq!((reqs[1].q("service"), reqs[1].q("hostname")), (Some("w"), Some("api.acme.com")));
    assert_eq!((reqs[2].q("type"), reqs[2].q("name.exact")), (Some("A"), Some("x.acme.com")));
    assert_eq!(
        reqs[3].json(),
        json!({"type": "A", "name": "x.acme.com", "content": "1.2.3.4", "ttl": 1, "proxied": true})
    );
    assert_eq!((reqs[4].method.as_str(), reqs[4].json()), ("PATCH", json!({"content": "5.6.7.8"})));
    assert_eq!(reqs[5].json(), json!({"name": "acme-db"}));
    assert_eq!(reqs[6].q("timestamp"), None);
    assert_eq!((reqs[7].method.as_str(), reqs[7].q("bookmark"), reqs[7].body.len()), ("POST", Some("b1"), 0));
    assert_eq!(reqs[8].json(), json!({"sql": "SELECT ?1 AS n", "params": [1]}));
}

#[tokio::test]
async fn client_side_budget_is_never_exceeded() {
    let fx = Fixture::start(|_, _| Reply::ok(json!([]))).await;
    let mut cfg = fx.config();
    cfg.rate_limit = RateLimit::new(3, Duration::from_secs(3600));
    let pool = ClientPool::new(cfg, None);
    // Two "services" sharing one token get one client and one budget.
    let a = pool.client_for(&ApiToken::new(TOKEN)).unwrap();
    let b = pool.client_for(&ApiToken::new(TOKEN)).unwrap();
    a.list_routes(ZONE).await.unwrap();
    b.list_routes(ZONE).await.unwrap();
    a.list_routes(ZONE).await.unwrap();
    assert_eq!(fx.count(), 3);
    // The fourth call waits for the window instead of reaching the server.
    let fourth = tokio::time::timeout(Duration::from_millis(300), b.list_routes(ZONE)).await;
    assert!(fourth.is_err(), "fourth request must wait for the budget");
    assert_eq!(fx.count(), 3);
    // Another token has its own budget.
    let other = pool.client_for(&ApiToken::new("other-token")).unwrap();
    other.list_routes(ZONE).await.unwrap();
    assert_eq!(fx.count(), 4);
}

/// Captures tracing output for the token-redaction test.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn token_and_secret_values_never_leak() {
    const SECRET: &str = "super-secret-value-0123456789abcdef";
    let cap = Capture::default();
    let writer = cap.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fx = Fixture::start(|r, n| {
        if r.path.ends_with("/secrets") {
            Reply::err(400, 10215, "latest version is not deployed")
        } else if n % 2 == 0 {
            Reply::err(503, 0, "busy")
        } else {
            Reply::err(401, 1000, "Invalid API Token")
        }
    })
    .await;
    let reg = prometheus::Registry::new();
    let metrics = ClientMetrics::register(&reg).unwrap();
    let pool = ClientPool::new(fx.config(), Some(metrics));
    let token = ApiToken::new(TOKEN);
    let c = pool.client_for(&token).unwrap();

    let mut texts = Vec::new();
    let e1 = c.get_zone(ZONE).await.unwrap_err();
    let e2 = c.put_secret(ACCT, "w", "API_KEY", &SecretString::new(SECRET)).await.unwrap_err();
    let upload = WorkerUpload::new(
        WorkerMetadata {
            main_module: Some("index.js".into()),
            bindings: vec![Binding::secret_text("K", SecretString::new(SECRET))],
            ..Default::default()
        },
        vec![WorkerModule::new("index.js", "export default {}")],
    );
    let e3 = c.upload_script(ACCT, "w", &upload).await.unwrap_err();
    for e in [&e1, &e2, &e3] {
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
    }
    assert!(e2.has_code(10215));
    texts.push(format!("{c:?}"));
    texts.push(format!("{pool:?}"));
    texts.push(format!("{token:?} {token}"));
    texts.push(format!("{:?}", c.config()));
    texts.push(format!("{upload:?}"));
    texts.push(format!("{:?}", c.token_key()));
    texts.push(metrics_text(&reg));
    let logs = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    // the span carries the structured fields
    assert!(logs.contains("cf.endpoint=\"/zones/:zone\"") || logs.contains("cf.endpoint=/zones/:zone"), "{logs}");
    assert!(logs.contains("attempt=1") && logs.contains("cf.status=503"), "{logs}");
    assert!(logs.contains("retrying"), "{logs}");
    texts.push(logs);
    for t in &texts {
        assert!(!t.contains(TOKEN), "token leaked in: {t}");
        assert!(!t.contains(SECRET), "secret leaked in: {t}");
    }
    // Requests did carry both, so the checks above are meaningful.
    let reqs = fx.requests();
    assert!(reqs.iter().all(|r| r.header("authorization") == Some(format!("Bearer {TOKEN}").as_str())));
    assert!(reqs.iter().any(|r| String::from_utf8_lossy(&r.body).contains(SECRET)));
}
