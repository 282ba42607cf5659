//! Limiter tests on tokio's paused clock: every instant below is exact.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::ratelimit::{Priority, RateLimit, ResyncShare};

use Priority::{Change, Resync};

fn limiter(requests: u32, window_secs: u64) -> Arc<RateLimiter> {
    Arc::new(RateLimiter::new(
        RateLimit::new(requests, Duration::from_secs(window_secs)),
        ResyncShare::default(),
        Duration::from_secs(60),
    ))
}

/// One send: which job, its class, when it arrived and when it was sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    job: usize,
    priority: Priority,
    arrived: Instant,
    at: Instant,
}

/// Start jobs `(arrival offset, class)`; each acquires once. Returns the sends in send order.
async fn run(l: &Arc<RateLimiter>, t0: Instant, jobs: &[(Duration, Priority)]) -> Vec<Sent> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = jobs
        .iter()
        .enumerate()
        .map(|(job, &(offset, priority))| {
            let (l, log) = (l.clone(), log.clone());
            tokio::spawn(async move {
                tokio::time::sleep_until(t0 + offset).await;
                let arrived = Instant::now();
                l.acquire(priority).await.unwrap();
                // No await between the send decision and this push: the log is in send order.
                log.lock().unwrap().push(Sent { job, priority, arrived, at: Instant::now() });
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(log).unwrap().into_inner().unwrap()
}

/// Most sends of `class` (all when `None`) within any span of length `w` ending at a send.
fn max_in_any_window(sent: &[Sent], class: Option<Priority>, w: Duration) -> usize {
    let times: Vec<Instant> = sent.iter().filter(|s| class.is_none_or(|c| s.priority == c)).map(|s| s.at).collect();
    times.iter().map(|end| times.iter().filter(|s| **s <= *end && **s + w > *end).count()).max().unwrap_or(0)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[tokio::test(start_paused = true)]
async fn burst_up_to_budget_then_waits_for_oldest_to_expire() {
    let l = limiter(3, 10);
    let t0 = Instant::now();
    let sent = run(
        &l,
        t0,
        &[(secs(0.0), Change), (secs(1.0), Change), (secs(2.0), Change), (secs(3.0), Change), (secs(3.0), Change)],
    )
    .await;
    let at: Vec<Duration> = sent.iter().map(|s| s.at - t0).collect();
    // the fourth waits until the first left the window (t=10) plus the margin; the fifth until the second did
    assert_eq!(at, vec![secs(0.0), secs(1.0), secs(2.0), secs(10.5), secs(11.5)]);
    let late = t0 + Duration::from_secs(100);
    tokio::time::sleep_until(late).await;
    assert_eq!(l.acquire(Change).await, Ok(Duration::ZERO));
    assert_eq!(l.in_window(late), 1);
}

#[tokio::test(start_paused = true)]
async fn change_traffic_alone_may_use_the_whole_budget_in_arrival_order() {
    let w = Duration::from_secs(300);
    let l = limiter(50, 300);
    let t0 = Instant::now();
    // 400 callers arriving over 90 seconds in bursts
    let jobs: Vec<_> = (0..400u64).map(|i| (Duration::from_millis((i / 40) * 9_000), Change)).collect();
    let sent = run(&l, t0, &jobs).await;
    assert!(sent.windows(2).all(|p| p[0].arrived <= p[1].arrived), "served in arrival order");
    assert_eq!(max_in_any_window(&sent, None, w), 50);
    // 400 requests at 50 per 300.5 s: the 400th follows the 50th (sent at 9 s) by 7 windows
    assert_eq!(sent.last().unwrap().at - t0, Duration::from_secs(9 + 7 * 300) + Duration::from_millis(500) * 7);
}

#[tokio::test(start_paused = true)]
async fn resync_alone_uses_only_its_share() {
    // 10 per 10 s, half for resync: 5 sends per 10.5 s even with nothing else waiting
    let l = limiter(10, 10);
    let t0 = Instant::now();
    let sent = run(&l, t0, &vec![(Duration::ZERO, Resync); 20]).await;
    let at: Vec<Duration> = sent.iter().map(|s| s.at - t0).collect();
    let expect: Vec<Duration> = (0..20).map(|i| secs(10.5 * f64::from(i / 5))).collect();
    assert_eq!(at, expect);
    // the sustainable rate the scheduler is told about matches what happened
    let rate = l.resync_rate();
    assert!((rate - 5.0 / 10.5).abs() < 1e-9, "{rate}");
}

#[tokio::test(start_paused = true)]
async fn change_issued_during_a_resync_flood_is_sent_at_once() {
    // The resync share is saturated (5 sent, 95 queued); a change request 3 s later finds the
    // other half of the budget free and goes first.
    let l = limiter(10, 10);
    let t0 = Instant::now();
    let mut jobs = vec![(Duration::ZERO, Resync); 100];
    jobs.push((secs(3.0), Change));
    let log = tokio::spawn({
        let l = l.clone();
        async move { run(&l, t0, &jobs).await }
    });
    tokio::time::sleep_until(t0 + secs(2.0)).await;
    assert_eq!(
        l.snapshot(Instant::now()),
        BudgetSnapshot { in_window: 5, resync_in_window: 5, waiting_change: 0, waiting_resync: 95 }
    );
    let sent = log.await.unwrap();
    let change = sent.iter().position(|s| s.priority == Change).unwrap();
    assert_eq!(sent[change].at - sent[change].arrived, Duration::ZERO);
    assert_eq!(change, 5, "after the 5 resync requests sent at t0, before the 95 queued ones");
    assert!(sent[change + 1..].iter().all(|s| s.at >= t0 + secs(10.5)));
}

#[tokio::test(start_paused = true)]
async fn change_waits_only_for_the_budget_never_for_queued_resync() {
    // 6 change + 4 resync fill the budget at t0, 6 more resync wait. A change request at t=1
    // waits for the first send to leave the window (t=10.5) and is sent then, first.
    let l = limiter(10, 10);
    let t0 = Instant::now();
    let mut jobs = vec![(Duration::ZERO, Change); 6];
    jobs.extend(vec![(Duration::ZERO, Resync); 10]);
    jobs.push((secs(1.0), Change));
    let sent = run(&l, t0, &jobs).await;
    assert_eq!(sent.len(), 17);
    let late = sent.iter().find(|s| s.job == 16).unwrap();
    assert_eq!(late.at - t0, secs(10.5));
    // the bound: a lone change request waits at most window + margin, here 9.5 s
    assert!(late.at - late.arrived <= secs(10.5));
    let first_after_t0 = sent.iter().position(|s| s.at > t0).unwrap();
    assert_eq!(sent[first_after_t0].job, 16, "sent before the resync requests queued since t0");
    assert_eq!(sent.iter().filter(|s| s.at == t0).count(), 10);
    assert_eq!(max_in_any_window(&sent, Some(Resync), secs(10.5)), 5);
}

#[tokio::test(start_paused = true)]
async fn resync_never_exceeds_its_share_while_change_waits() {
    // Both classes flood the budget: 60 change and 60 resync requests, arriving over 30 s.
    let w = Duration::from_secs(10);
    let l = limiter(10, 10);
    let t0 = Instant::now();
    let jobs: Vec<_> =
        (0..120u64).map(|i| (Duration::from_millis(i * 250), if i % 2 == 0 { Resync } else { Change })).collect();
    let sent = run(&l, t0, &jobs).await;
    assert_eq!(sent.len(), 120);
    assert_eq!(max_in_any_window(&sent, None, w), 10);
    assert!(max_in_any_window(&sent, Some(Resync), w) <= 5);
    // Strict priority: no resync request is sent while a change request waits.
    for (k, s) in sent.iter().enumerate().filter(|(_, s)| s.priority == Resync) {
        let change_waiting = sent[k + 1..].iter().any(|c| c.priority == Change && c.arrived < s.at);
        assert!(!change_waiting, "resync job {} sent at {:?} while change traffic waited", s.job, s.at - t0);
    }
    // Within a class, arrival order.
    for class in [Change, Resync] {
        let mine: Vec<_> = sent.iter().filter(|s| s.priority == class).collect();
        assert!(mine.windows(2).all(|p| p[0].arrived <= p[1].arrived), "{class}");
    }
    // A server counting arrivals the way Cloudflare does (N per window) never rejects these.
    assert!(max_in_any_window(&sent, None, w) <= 10);
}

#[tokio::test(start_paused = true)]
async fn margin_absorbs_arrival_jitter_at_the_server() {
    // The server counts arrivals (departure + a delay that varies by up to the margin) in its
    // own sliding window. Here every other batch of requests takes 450 ms longer to arrive, so
    // newer requests catch up with older ones: at full budget the client must still never make
    // the server see more than the budget in a window.
    let limit = RateLimit::new(20, Duration::from_secs(10));
    assert_eq!(limit.margin(), Duration::from_millis(500));
    let delay = |i: u64| Duration::from_millis(if (i / 20).is_multiple_of(2) { 450 } else { 0 });
    let l = RateLimiter::new(limit, ResyncShare::default(), Duration::from_secs(60));
    let mut arrivals = Vec::new();
    for i in 0..200u64 {
        l.acquire(Change).await.unwrap();
        arrivals.push(Sent {
            job: i as usize,
            priority: Change,
            arrived: Instant::now(),
            at: Instant::now() + delay(i),
        });
    }
    arrivals.sort_by_key(|s| s.at);
    assert_eq!(max_in_any_window(&arrivals, None, limit.window), 20);
    // Spaced by exactly the window, the same jitter overruns the server's count.
    let t0 = Instant::now();
    let mut eager: Vec<Sent> = (0..200u64)
        .map(|i| {
            let at = t0 + Duration::from_secs(i / 20 * 10) + delay(i);
            Sent { job: i as usize, priority: Change, arrived: at, at }
        })
        .collect();
    eager.sort_by_key(|s| s.at);
    assert!(max_in_any_window(&eager, None, limit.window) > 20);
}

#[tokio::test(start_paused = true)]
async fn zero_budget_is_treated_as_one() {
    let l = limiter(0, 1);
    assert_eq!(l.acquire(Change).await, Ok(Duration::ZERO));
    assert_eq!(l.acquire(Resync).await, Ok(Duration::from_millis(1050)));
}

#[tokio::test(start_paused = true)]
async fn server_block_delays_or_fails_fast_for_both_classes() {
    let l =
        RateLimiter::new(RateLimit::new(100, Duration::from_secs(1)), ResyncShare::default(), Duration::from_secs(30));
    let t0 = Instant::now();
    l.block_until(t0 + Duration::from_secs(20));
    assert_eq!(l.acquire(Change).await, Ok(Duration::from_secs(20)));
    // a shorter block does not shorten the pause
    l.block_until(t0 + Duration::from_secs(40));
    l.block_until(t0 + Duration::from_secs(25));
    assert_eq!(l.acquire(Resync).await, Ok(Duration::from_secs(20)));
    // a long block makes callers fail fast with the remaining time, and leaves no one queued
    l.block_until(Instant::now() + Duration::from_secs(300));
    assert_eq!(l.acquire(Change).await, Err(Duration::from_secs(300)));
    assert_eq!(l.acquire(Resync).await, Err(Duration::from_secs(300)));
    let s = l.snapshot(Instant::now());
    assert_eq!((s.waiting_change, s.waiting_resync), (0, 0));
    // after the block has passed, it is cleared
    tokio::time::advance(Duration::from_secs(301)).await;
    assert_eq!(l.acquire(Change).await, Ok(Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_leaves_the_queue() {
    let l = limiter(2, 10);
    let t0 = Instant::now();
    l.acquire(Change).await.unwrap();
    l.acquire(Change).await.unwrap();
    // a change request gives up after 1 s; a resync request queued behind it must not stay stuck
    let gave_up = tokio::time::timeout(Duration::from_secs(1), l.acquire(Change)).await;
    assert!(gave_up.is_err());
    let s = l.snapshot(Instant::now());
    assert_eq!((s.waiting_change, s.waiting_resync), (0, 0));
    let resync = tokio::spawn({
        let l = l.clone();
        async move { l.acquire(Resync).await }
    });
    let blocker = tokio::spawn({
        let l = l.clone();
        async move { tokio::time::timeout(Duration::from_secs(5), l.acquire(Change)).await }
    });
    assert!(blocker.await.unwrap().is_err(), "the budget is full until t=10.5");
    assert_eq!(resync.await.unwrap(), Ok(secs(10.5 - 1.0)));
    assert_eq!(Instant::now() - t0, secs(10.5));
}
