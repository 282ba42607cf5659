//! The measured phases: convergence from scratch, a full quiet resync, and the resync storm
//! (new services applied in the middle of a resync), each with one operator replica per shard.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clodo_operator::cli::RateLimitArg;
use cloudflare_emulator::JournalEntry;

use crate::operator::{Instance, Operator};
use crate::setup::{Fixture, SHARD_LABEL, StandIns};
use crate::{Args, breakdown, metric, wait_ready};

/// One replica per shard, named `{prefix}-{shard}`; sharded replicas select their label.
async fn start_replicas(
    args: &Args,
    env: &StandIns,
    prefix: &str,
    rate_limit: RateLimitArg,
) -> anyhow::Result<Vec<Operator>> {
    let mut ops = Vec::new();
    for shard in 0..usize::from(args.shards) {
        let instance = Instance {
            name: format!("{prefix}-{shard}"),
            selector: (args.shards > 1).then(|| format!("{SHARD_LABEL}={shard}")),
            rate_limit,
        };
        ops.push(Operator::start(args, &env.fake, &env.emu, &instance).await?);
    }
    Ok(ops)
}

/// Stop every replica; the largest child-process peak RSS, if measured.
async fn stop_all(ops: &mut [Operator]) -> anyhow::Result<Option<f64>> {
    let mut peak: Option<f64> = None;
    for op in ops {
        if let Some(rss) = op.stop().await? {
            peak = Some(peak.map_or(rss, |p| p.max(rss)));
        }
    }
    Ok(peak)
}

/// What convergence from scratch cost.
pub(crate) struct Converged {
    pub wall_s: f64,
    pub cf_requests: usize,
    pub http_429: usize,
    pub operator_rss: Option<f64>,
    /// Sharded: Worker scripts that more than one replica sent requests for (must be 0).
    pub shard_overlap: Option<usize>,
}

/// Convergence from scratch: the replicas bring every service to Ready.
pub(crate) async fn converge(args: &Args, env: &StandIns) -> anyhow::Result<Converged> {
    env.emu.clear_journal();
    let started = Instant::now();
    let mut ops = start_replicas(args, env, "bench-a", args.rate_limit).await?;
    let names: Vec<String> = (0..args.services).map(|i| format!("svc-{i:05}")).collect();
    wait_ready(&env.services(), &names, Duration::from_secs(args.timeout_s)).await?;
    let wall_s = started.elapsed().as_secs_f64();
    let journal = env.emu.journal();
    let cf_requests = journal.len();
    let http_429 = journal.iter().filter(|e| e.status == 429).count();
    let mut client_429 = 0.0;
    for op in &ops {
        client_429 += metric(&op.metrics_text().await?, "clodo_cloudflare_429_total");
    }
    eprintln!(
        "clodo-bench: converged in {wall_s:.1}s with {cf_requests} Cloudflare requests ({http_429} answered 429; the client counted {client_429})"
    );
    eprint!("{}", breakdown(&journal));
    let shard_overlap = (args.shards > 1).then(|| scripts_by_more_than_one_instance(&journal));
    if let Some(n) = shard_overlap {
        eprintln!("clodo-bench: {} shards; {n} Worker scripts were touched by more than one replica", args.shards);
    }
    let operator_rss = stop_all(&mut ops).await?;
    Ok(Converged { wall_s, cf_requests, http_429, operator_rss, shard_overlap })
}

/// Worker scripts whose requests came from more than one replica (by the `instance` the
/// operator puts in its User-Agent).
fn scripts_by_more_than_one_instance(journal: &[JournalEntry]) -> usize {
    let mut by_script: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in journal {
        let script = e.path.split("/workers/scripts/").nth(1).and_then(|rest| rest.split('/').next());
        let instance = e.user_agent.as_deref().and_then(|ua| ua.split("(instance ").nth(1));
        if let (Some(script), Some(instance)) = (script, instance) {
            by_script.entry(script).or_default().insert(instance.trim_end_matches(')'));
        }
    }
    by_script.values().filter(|i| i.len() > 1).count()
}

/// What a full quiet resync cost (`None` counts in storm mode, where the resync is cut short).
pub(crate) struct Resynced {
    pub requests: Option<usize>,
    pub mutations: Option<usize>,
    pub operator_rss: Option<f64>,
    pub storm: Option<Storm>,
}

/// Full resync: fresh replicas reconcile every object once. With `--resync-storm`, new services
/// are applied once half the fleet (at most 500 services) was resynced, and the phase ends when
/// they are Ready.
pub(crate) async fn resync(args: &Args, env: &StandIns, fx: &Fixture) -> anyhow::Result<Resynced> {
    let rate_limit = args.resync_rate_limit.unwrap_or(args.rate_limit);
    if args.resync_rate_limit.is_some() {
        env.emu.set_rate_limit(rate_limit.requests, Duration::from_secs(rate_limit.seconds));
    }
    env.emu.clear_journal();
    let mut ops = start_replicas(args, env, "bench-b", rate_limit).await?;
    let started = Instant::now();
    let timeout = Duration::from_secs(args.timeout_s);
    if let Some(n) = args.resync_storm {
        let storm = storm(args, env, fx, &ops, n).await?;
        let operator_rss = stop_all(&mut ops).await?;
        return Ok(Resynced { requests: None, mutations: None, operator_rss, storm: Some(storm) });
    }
    for (shard, op) in ops.iter().enumerate() {
        let mine = (0..args.services).filter(|i| i % usize::from(args.shards) == shard).count();
        op.wait_for_passes(mine, timeout).await?;
    }
    let journal = env.emu.journal();
    let requests = journal.len();
    let mutations = journal.iter().filter(|e| e.mutating).count();
    let mut passes = 0;
    for op in &ops {
        passes += op.service_passes().await?;
    }
    eprintln!(
        "clodo-bench: resync of {} services took {:.1}s: {requests} requests, {mutations} mutating; {passes} passes",
        args.services,
        started.elapsed().as_secs_f64(),
    );
    eprint!("{}", breakdown(&journal));
    let operator_rss = stop_all(&mut ops).await?;
    Ok(Resynced { requests: Some(requests), mutations: Some(mutations), operator_rss, storm: None })
}

/// How quickly new services got served while a resync ran (seconds from their apply).
pub(crate) struct Storm {
    pub services: usize,
    pub first_request_p50_s: f64,
    pub first_request_p99_s: f64,
    pub ready_p50_s: f64,
    pub ready_p99_s: f64,
}

async fn storm(args: &Args, env: &StandIns, fx: &Fixture, ops: &[Operator], n: usize) -> anyhow::Result<Storm> {
    let midway = (args.services / 2).clamp(1, 500) as u64;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    loop {
        let mut done = 0;
        for op in ops {
            done += op.service_passes().await?;
        }
        if done >= midway {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "only {done} of {midway} resync passes before the storm");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names: Vec<String> = (0..n).map(|i| format!("storm-{i:03}")).collect();
    let mut applied: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        applied.insert(name.clone(), Utc::now());
        env.apply_service(fx.service(name, i % usize::from(args.shards), usize::from(args.shards))).await?;
    }
    eprintln!("clodo-bench: {n} new services applied after {midway} resync passes");
    let ready_at = wait_ready(&env.services(), &names, Duration::from_secs(args.timeout_s)).await?;
    let journal = env.emu.journal();
    let mut first = Vec::new();
    let mut ready = Vec::new();
    for name in &names {
        let at = applied[name];
        let sent = journal
            .iter()
            .filter(|e| e.path.contains(name.as_str()) || e.query.as_deref().is_some_and(|q| q.contains(name.as_str())))
            .map(|e| e.at)
            .min()
            .with_context(|| format!("no Cloudflare request for {name}"))?;
        first.push(seconds(sent - at));
        ready.push(seconds(ready_at[name] - at));
    }
    let storm = Storm {
        services: n,
        first_request_p50_s: percentile(&mut first, 0.50),
        first_request_p99_s: percentile(&mut first, 0.99),
        ready_p50_s: percentile(&mut ready, 0.50),
        ready_p99_s: percentile(&mut ready, 0.99),
    };
    eprintln!(
        "clodo-bench: storm: first request p50 {:.2}s p99 {:.2}s; Ready p50 {:.2}s p99 {:.2}s",
        storm.first_request_p50_s, storm.first_request_p99_s, storm.ready_p50_s, storm.ready_p99_s
    );
    Ok(storm)
}

fn seconds(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds().max(0) as f64 / 1000.0
}

/// Nearest-rank percentile of a non-empty sample, rounded to 10 ms.
fn percentile(xs: &mut [f64], q: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    (xs[rank - 1] * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, instance: &str) -> JournalEntry {
        JournalEntry {
            seq: 1,
            at: Utc::now(),
            method: "GET".into(),
            path: path.into(),
            query: None,
            status: 200,
            token_id: None,
            mutating: false,
            duration_ms: 0,
            user_agent: Some(format!("clodo-operator/0.1.0 (instance {instance})")),
        }
    }

    #[test]
    fn a_script_touched_by_two_replicas_is_an_overlap() {
        let s = "/client/v4/accounts/a/workers/scripts";
        let journal = vec![
            entry(&format!("{s}/svc-00000"), "bench-a-0"),
            entry(&format!("{s}/svc-00000/deployments"), "bench-a-0"),
            entry(&format!("{s}/svc-00001"), "bench-a-1"),
            entry("/client/v4/zones", "bench-a-0"),
        ];
        assert_eq!(scripts_by_more_than_one_instance(&journal), 0);
        let mut both = journal;
        both.push(entry(&format!("{s}/svc-00001/settings"), "bench-a-0"));
        assert_eq!(scripts_by_more_than_one_instance(&both), 1);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut xs, 0.5), 50.0);
        assert_eq!(percentile(&mut xs, 0.99), 99.0);
        assert_eq!(percentile(&mut [3.0, 1.0, 2.0], 0.99), 3.0);
    }
}
