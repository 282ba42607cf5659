//! Auth scoping, rate limiting, fault injection, journal and reset.

mod common;

use std::time::{Duration, Instant};

use cloudflare_emulator::Faults;
use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn auth_errors_and_account_scoping() {
    let emu = start().await;
    let anon = Api::anonymous(&emu);
    anon.get("/zones").await.err(400, 9106);
    let r = anon.send(anon.client.get(format!("{}/zones", anon.base)).header("Authorization", "Basic abc")).await;
    r.err(400, 6111);
    Api::new(&emu, "wrong-token").get("/zones").await.err(401, 10000);
    Api::new(&emu, "wrong-token").get("/user/tokens/verify").await.err(401, 1000);

    let a = Api::new(&emu, TOK_A);
    let v = a.get("/user/tokens/verify").await;
    assert_eq!(v.ok()["status"], "active");
    assert_eq!(v.result()["id"], emu.token_id(TOK_A).unwrap().as_str());
    assert_eq!(v.body["messages"][0]["message"], "This API Token is valid and active");
    a.get(&format!("/accounts/{A}/tokens/verify")).await.ok();
    a.get(&format!("/accounts/{B}/tokens/verify")).await.err(403, 10000);

    // scoped token: only its account's objects
    let accounts = a.get("/accounts").await;
    assert_eq!(accounts.ok().as_array().unwrap().len(), 1);
    assert_eq!(accounts.result()[0]["id"], A);
    let zones = a.get("/zones").await;
    let names: Vec<&str> = zones.ok().as_array().unwrap().iter().map(|z| z["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["example.com", "sub.example.com"]);
    let other_zone = emu.zone_id("other.org").unwrap();
    a.get(&format!("/zones/{other_zone}")).await.err(403, 10000);
    a.get(&format!("/accounts/{B}/workers/scripts")).await.err(403, 10000);
    a.put_script(B, "w", json!({})).await.err(403, 10000);
    a.get("/accounts/cccccccccccccccccccccccccccccccc/d1/database").await.err(403, 10000);
    assert!(emu.scripts(B).is_empty());

    // a token for all accounts sees both
    let all = Api::new(&emu, TOK_ALL);
    assert_eq!(all.get("/accounts?per_page=1&page=2").await.ok()[0]["id"], B);
    all.get(&format!("/zones/{other_zone}")).await.ok();
    assert_eq!(all.get("/user").await.ok()["email"], "emulator@example.com");
    assert_eq!(all.get("/memberships").await.ok().as_array().unwrap().len(), 2);

    // unknown paths and methods still answer with the envelope
    all.get("/nope").await.err(404, 7003);
    all.call(Method::DELETE, "/zones", None).await.err(405, 10405);
}

#[tokio::test]
async fn rate_limit_per_token_with_retry_after() {
    let emu = builder().rate_limit(3, Duration::from_secs(2)).start().await.unwrap();
    let a = Api::new(&emu, TOK_A);
    for _ in 0..3 {
        a.get("/zones").await.ok();
    }
    let limited = a.get("/zones").await;
    limited.err(429, 971);
    let retry: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // other tokens have their own budget
    Api::new(&emu, TOK_B).get("/zones").await.ok();
    // the window slides
    tokio::time::sleep(Duration::from_millis(2100)).await;
    a.get("/zones").await.ok();
    let statuses: Vec<u16> = emu.journal().iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![200, 200, 200, 429, 200, 200]);
}

#[tokio::test]
async fn faults_fail_delay_and_time_out() {
    let emu = start().await;
    let a = Api::new(&emu, TOK_A);
    emu.set_faults(Faults { fail_next: 2, error_status: 503, ..Faults::default() });
    a.get("/zones").await.err(503, 10013);
    a.get("/zones").await.err(503, 10013);
    a.get("/zones").await.ok();

    emu.set_faults(Faults { path_prefix_failures: vec![("/zones".into(), 502)], ..Faults::default() });
    a.get("/zones").await.err(502, 10013);
    a.get("/accounts").await.ok();

    emu.set_faults(Faults { error_rate: 1.0, error_status: 429, retry_after_secs: 7, ..Faults::default() });
    let r = a.get("/zones").await;
    r.err(429, 971);
    assert_eq!(r.headers["retry-after"], "7");

    emu.set_faults(Faults { added_latency_ms: 150, ..Faults::default() });
    let t = Instant::now();
    a.get("/zones").await.ok();
    assert!(t.elapsed() >= Duration::from_millis(150));

    emu.set_faults(Faults { timeout_rate: 1.0, timeout_ms: 300, ..Faults::default() });
    let t = Instant::now();
    a.get("/zones").await.err(504, 10013);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // a client with a shorter timeout gives up
    let short = reqwest::Client::builder().timeout(Duration::from_millis(100)).build().unwrap();
    assert!(short.get(format!("{}/zones", emu.base_url())).bearer_auth(TOK_A).send().await.is_err());

    // the same JSON over HTTP
    let http = reqwest::Client::new();
    let set: serde_json::Value = http
        .post(format!("{}/__emulator/faults", emu.root_url()))
        .json(&json!({"fail_next": 1, "error_status": 500}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(set["fail_next"], 1);
    assert_eq!(set["timeout_rate"], 0.0, "missing fields reset to defaults");
    a.get("/zones").await.err(500, 10013);
    a.get("/zones").await.ok();
    let current: Faults =
        http.get(format!("{}/__emulator/faults", emu.root_url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(current.fail_next, 0);
}

#[tokio::test]
async fn base_latency_applies_to_every_call() {
    let emu = builder().latency(Duration::from_millis(120)).start().await.unwrap();
    let a = Api::new(&emu, TOK_A);
    let t = Instant::now();
    a.get("/zones").await.ok();
    assert!(t.elapsed() >= Duration::from_millis(120));
    assert!(emu.journal()[0].duration_ms >= 120);
}

#[tokio::test]
async fn journal_records_calls_without_secrets_and_reset_restores() {
    let emu = start().await;
    let a = Api::new(&emu, TOK_A);
    a.put_script(A, "w", json!({"bindings": [{"type": "secret_text", "name": "S", "text": "very-secret-value"}]}))
        .await
        .ok();
    a.put(
        &format!("/accounts/{A}/workers/scripts/w/secrets"),
        json!({"name": "T", "text": "another-secret", "type": "secret_text"}),
    )
    .await
    .ok();
    a.get("/zones?name=example.com").await.ok();
    Api::anonymous(&emu).get("/zones").await.err(400, 9106);

    let http = reqwest::Client::new();
    let journal_text =
        http.get(format!("{}/__emulator/journal", emu.root_url())).send().await.unwrap().text().await.unwrap();
    for needle in [TOK_A, "very-secret-value", "another-secret"] {
        assert!(!journal_text.contains(needle), "journal leaks {needle}");
    }
    let journal: Vec<cloudflare_emulator::JournalEntry> = serde_json::from_str(&journal_text).unwrap();
    assert_eq!(journal, emu.journal());
    assert_eq!(journal.len(), 4);
    let tid = emu.token_id(TOK_A).unwrap();
    assert_eq!(journal[0].method, "PUT");
    assert_eq!(journal[0].path, format!("/client/v4/accounts/{A}/workers/scripts/w"));
    assert!(journal[0].mutating);
    assert_eq!(journal[0].token_id.as_deref(), Some(tid.as_str()));
    assert_eq!(journal[2].query.as_deref(), Some("name=example.com"));
    assert!(!journal[2].mutating);
    assert_eq!(journal[3].status, 400);
    assert_eq!(journal[3].token_id, None);
    assert!(journal.windows(2).all(|w| w[0].seq < w[1].seq));

    emu.clear_journal();
    assert!(emu.journal().is_empty());
    emu.set_faults(Faults { fail_next: 5, ..Faults::default() });
    let zone_id = emu.zone_id("example.com");
    let r = http.post(format!("{}/__emulator/reset", emu.root_url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(emu.scripts(A).is_empty());
    assert_eq!(emu.faults(), Faults::default());
    assert_eq!(emu.zone_id("example.com"), zone_id, "configured zones keep their ids");
    assert!(emu.journal().is_empty());
    a.get("/zones").await.ok();
}

#[tokio::test]
async fn shutdown_does_not_wait_for_held_requests_forever() {
    let emu = start().await;
    emu.set_faults(Faults { timeout_rate: 1.0, timeout_ms: 120_000, ..Faults::default() });
    let url = format!("{}/zones", emu.base_url());
    let held = tokio::spawn(async move { reqwest::Client::new().get(url).bearer_auth(TOK_A).send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    emu.shutdown().await;
    assert!(t.elapsed() < cloudflare_emulator::SHUTDOWN_GRACE + Duration::from_secs(2));
    let held = tokio::time::timeout(Duration::from_secs(3), held).await.expect("held request ends promptly");
    if let Ok(resp) = held.unwrap() {
        assert_eq!(resp.status(), 504);
    }
}
