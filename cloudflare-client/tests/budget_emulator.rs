//! The priority budget against `cloudflare-emulator` enforcing the same limit per token: change
//! requests overtake queued resync requests, and respecting the budget never costs a 429.
//!
//! This runs on the real clock (the emulator counts arrivals with `std::time::Instant`), with a
//! 4 s window: the client's 200 ms margin absorbs scheduling jitter between sending and arriving.
//! The exact scheduling rule is tested on tokio's paused clock in `src/limiter_tests.rs`.

use std::time::Duration;

use cloudflare_client::*;
use cloudflare_emulator::Emulator;

const ACCT: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "emulator-token-abcdef123456";

#[tokio::test]
async fn change_overtakes_queued_resync_and_no_429_at_the_server_limit() {
    let limit = RateLimit::new(6, Duration::from_secs(4));
    let emu = Emulator::builder()
        .account(ACCT)
        .token(TOKEN, &[ACCT])
        .zone("example.com", ACCT)
        .rate_limit(limit.requests, limit.window)
        .start()
        .await
        .unwrap();
    let zone = emu.zone_id("example.com").unwrap();
    let registry = prometheus::Registry::new();
    let metrics = ClientMetrics::register(&registry).unwrap();
    let config = ClientConfig { base_url: emu.base_url(), rate_limit: limit, ..ClientConfig::default() };
    let client = CloudflareClient::new(config, ApiToken::new(TOKEN), Some(metrics.clone())).unwrap();
    let resync = client.with_priority(Priority::Resync);

    // Resync reads (zone lookups): 3 are sent (the 50% share), 3 queue.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (c, zone) = (resync.clone(), zone.clone());
        tasks.push(tokio::spawn(async move { c.get_zone(&zone).await.map(|_| ()) }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(client.rate_limiter().snapshot(tokio::time::Instant::now()).waiting_resync, 3);
    // Change requests (token checks): the other half of the budget is free for 3 of them at once;
    // 3 more wait for the window, and are sent before the queued resync reads.
    for i in 0..6 {
        if i == 3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let c = client.clone();
        tasks.push(tokio::spawn(async move { c.verify_token(Some(ACCT)).await.map(|_| ()) }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }

    let journal = emu.journal();
    assert_eq!(journal.len(), 12, "no retries: {journal:?}");
    assert!(journal.iter().all(|j| j.status == 200), "{journal:?}");
    let kinds: Vec<&str> =
        journal.iter().map(|j| if j.path.ends_with("/tokens/verify") { "change" } else { "resync" }).collect();
    assert_eq!(
        kinds,
        [
            "resync", "resync", "resync", "change", "change", "change", "change", "change", "change", "resync",
            "resync", "resync"
        ]
    );
    assert_eq!(metrics.too_many_requests_total.get(), 0);
}
