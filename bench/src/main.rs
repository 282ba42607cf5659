//! `clodo-bench`: what convergence costs. Starts the in-process fake Kubernetes API, the
//! Cloudflare emulator (with the given latency and rate limit) and the operator, applies N copies
//! of the example service (`examples/`, without its production tests, each with its own route and
//! custom domain), waits until all are Ready, then starts a fresh operator instance (a full
//! resync: its initial list reconciles every object once) and counts what that no-op pass sends.
//!
//! ```sh
//! cargo run --release -p clodo-bench -- --services 1000 --latency-ms 50 --rate-limit 1200/10
//! ```
//!
//! Prints one JSON line on stdout:
//! `{services, wall_s, cf_requests, requests_per_service, http_429, noop_pass_requests,
//! noop_pass_mutations, kube_requests, kube_requests_per_service, peak_rss_mib,
//! operator_rss_converging_mib, operator_rss_resyncing_mib}`; progress goes to stderr. `peak_rss_mib` is this process's
//! VmHWM: fake API, emulator (one SQLite database per service) and operator together. With
//! `--operator-process` each operator instance runs in a child process and its own peak RSS is
//! printed on stderr.

mod operator;
mod phases;
mod setup;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use chrono::{DateTime, Utc};
use clap::Parser;
use clodo_operator::cli::RateLimitArg;
use clodo_operator::crd::CloudflareService;
use clodo_operator::crd::conditions as c;
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use operator::{CHILD, child_operator};
use serde::Serialize;
use setup::{Fixture, StandIns};

/// Converge N example services on the fake Kubernetes API and the Cloudflare emulator.
#[derive(Debug, Parser)]
#[command(name = "clodo-bench", about)]
pub(crate) struct Args {
    /// Number of CloudflareServices.
    #[arg(long, default_value_t = 100)]
    services: usize,
    /// Latency the emulator adds to every Cloudflare API call, in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Cloudflare rate limit per token, REQUESTS/SECONDS: enforced by the emulator and used as
    /// the operator's client-side budget.
    #[arg(long, default_value = "1200/10")]
    rate_limit: RateLimitArg,
    /// Concurrent reconciles per controller (the operator's --concurrency).
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// Give up when convergence takes longer than this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout_s: u64,
    /// Run each operator instance in a child process, to measure its own memory.
    #[arg(long)]
    operator_process: bool,
    /// Operator replicas, each reconciling its shard (`--selector clodo.dev/shard=N`; services
    /// are spread round-robin and each shard gets its own copy of the Customer).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    shards: u16,
    /// Rate limit for the resync phase (emulator and client), e.g. Cloudflare's 1200/300, after
    /// a fleet was set up under --rate-limit.
    #[arg(long)]
    resync_rate_limit: Option<RateLimitArg>,
    /// Apply this many new services (20 without a value) in the middle of the resync and report
    /// their time to first Cloudflare request and to Ready.
    #[arg(long, num_args = 0..=1, default_missing_value = "20")]
    resync_storm: Option<usize>,
    /// The example manifests (Customer, Secrets, ConfigMaps, CloudflareService).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))]
    examples: PathBuf,
}

/// The one output line.
#[derive(Debug, Serialize)]
struct Report {
    services: usize,
    wall_s: f64,
    cf_requests: usize,
    requests_per_service: f64,
    http_429: usize,
    /// The full resync's requests (null with --resync-storm, which cuts the resync short).
    noop_pass_requests: Option<usize>,
    noop_pass_mutations: Option<usize>,
    /// Kubernetes API requests from the operator's start to all services Ready (the bench's own
    /// watch of the services adds two).
    kube_requests: usize,
    kube_requests_per_service: f64,
    peak_rss_mib: f64,
    /// Peak RSS of the operator process itself (only with `--operator-process`).
    operator_rss_converging_mib: Option<f64>,
    operator_rss_resyncing_mib: Option<f64>,
    shards: u16,
    /// With --shards > 1: Worker scripts more than one replica sent requests for (0 expected).
    shard_overlap: Option<usize>,
    storm_services: Option<usize>,
    storm_first_request_p50_s: Option<f64>,
    storm_first_request_p99_s: Option<f64>,
    storm_ready_p50_s: Option<f64>,
    storm_ready_p99_s: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some(CHILD) {
        return child_operator();
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(bench(args))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Peak resident set size of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    kib_field("VmHWM:") as f64 / 1024.0
}

/// Current resident set size (VmRSS), in MiB.
fn rss_mib() -> f64 {
    kib_field("VmRSS:") as f64 / 1024.0
}

pub(crate) fn kib_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
}

async fn bench(args: Args) -> anyhow::Result<Report> {
    ensure!(args.services > 0, "--services must be at least 1");
    let shards = usize::from(args.shards);
    let fx = Fixture::load(&args.examples)?;
    let env = StandIns::start(&args, &fx).await?;
    env.apply_fixture(&fx, args.services, shards).await?;
    eprintln!(
        "clodo-bench: {} services applied; latency {} ms, rate limit {}/{}s, concurrency {}, {shards} shard(s); rss before the operator {:.1} MiB",
        args.services,
        args.latency_ms,
        args.rate_limit.requests,
        args.rate_limit.seconds,
        args.concurrency,
        rss_mib()
    );
    let kube_before = env.kube_total();
    let converge = phases::converge(&args, &env).await?;
    let kube_requests = env.kube_total() - kube_before;
    let resync = phases::resync(&args, &env, &fx).await?;
    env.report_kube_requests();
    let peak = peak_rss_mib();
    eprintln!("clodo-bench: this process: rss now {:.1} MiB, peak {peak:.1} MiB", rss_mib());
    if let (Some(a), Some(b)) = (converge.operator_rss, resync.operator_rss) {
        eprintln!("clodo-bench: operator process peak rss: {a:.1} MiB converging, {b:.1} MiB resyncing");
    }
    env.shutdown().await;
    let per_service = |n: usize| ((n as f64 / args.services as f64) * 100.0).round() / 100.0;
    let mib = |x: f64| (x * 10.0).round() / 10.0;
    let storm = resync.storm.as_ref();
    Ok(Report {
        services: args.services,
        wall_s: (converge.wall_s * 100.0).round() / 100.0,
        cf_requests: converge.cf_requests,
        requests_per_service: per_service(converge.cf_requests),
        http_429: converge.http_429,
        noop_pass_requests: resync.requests,
        noop_pass_mutations: resync.mutations,
        kube_requests,
        kube_requests_per_service: per_service(kube_requests),
        peak_rss_mib: mib(peak),
        operator_rss_converging_mib: converge.operator_rss.map(mib),
        operator_rss_resyncing_mib: resync.operator_rss.map(mib),
        shards: args.shards,
        shard_overlap: converge.shard_overlap,
        storm_services: storm.map(|s| s.services),
        storm_first_request_p50_s: storm.map(|s| s.first_request_p50_s),
        storm_first_request_p99_s: storm.map(|s| s.first_request_p99_s),
        storm_ready_p50_s: storm.map(|s| s.ready_p50_s),
        storm_ready_p99_s: storm.map(|s| s.ready_p99_s),
    })
}

/// Requests per method and route template (ids and names replaced by `:x`), most frequent first.
fn breakdown(journal: &[cloudflare_emulator::JournalEntry]) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for e in journal {
        let path: Vec<&str> = e
            .path
            .split('/')
            .map(|seg| {
                let id = seg.len() >= 32 && seg.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
                if id || seg.contains("svc-") { ":x" } else { seg }
            })
            .collect();
        *counts.entry(format!("{} {}", e.method, path.join("/"))).or_default() += 1;
    }
    let mut rows: Vec<(String, usize)> = counts.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    rows.iter().map(|(k, n)| format!("  {n:>7}  {k}\n")).collect()
}

/// Wait until the named services are Ready for their generation, following a watch (listing a
/// large fleet over and over would cost more than the operator's own work). Returns when each
/// was first seen Ready.
async fn wait_ready(
    api: &Api<CloudflareService>,
    names: &[String],
    timeout: Duration,
) -> anyhow::Result<BTreeMap<String, DateTime<Utc>>> {
    let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let n = wanted.len();
    let mut ready: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let mut events =
        std::pin::pin!(watcher(api.clone(), watcher::Config::default()).default_backoff().applied_objects());
    let mut last_report = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    while ready.len() < n {
        let next = tokio::time::timeout_at(deadline, events.next())
            .await
            .map_err(|_| anyhow::anyhow!("only {} of {n} services Ready after {timeout:?}", ready.len()))?;
        let Some(s) = next.transpose()? else { bail!("the watch of services ended") };
        let name = s.name_any();
        if !wanted.contains(name.as_str()) {
            continue;
        }
        let is_ready = s
            .status
            .as_ref()
            .is_some_and(|st| st.observed_generation == s.metadata.generation && c::is_true(&st.conditions, c::READY));
        if is_ready {
            ready.entry(name).or_insert_with(Utc::now);
        } else {
            ready.remove(&name);
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!("clodo-bench: {}/{n} Ready", ready.len());
            last_report = Instant::now();
        }
    }
    Ok(ready)
}

/// A Prometheus sample without labels (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}
