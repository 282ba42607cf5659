//! `clodo-bench`: what convergence costs. Starts the in-process fake Kubernetes API, the
//! Cloudflare emulator (with the given latency and rate limit) and the operator, applies N copies
//! of the example service (`examples/`, without its production tests, each with its own route and
//! custom domain), waits until all are Ready, then starts a fresh operator instance (a full
//! resync: its initial list reconciles every object once) and counts what that no-op pass sends.
//!
//! ```sh
//! cargo run --release --bin clodo-bench -- --services 1000 --latency-ms 50 --rate-limit 1200/10
//! ```
//!
//! Prints one JSON line on stdout:
//! `{services, wall_s, cf_requests, requests_per_service, http_429, noop_pass_requests,
//! noop_pass_mutations, peak_rss_mib}`; progress goes to stderr. `peak_rss_mib` is this process's
//! VmHWM: fake API, emulator (one SQLite database per service) and operator together. With
//! `--operator-process` each operator instance runs in a child process and its own peak RSS is
//! printed on stderr.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use clodo_operator::cli::run::{OperatorHandles, run_operator};
use clodo_operator::cli::{RateLimitArg, RunArgs, manifests};
use clodo_operator::crd::conditions as c;
use clodo_operator::crd::{CloudflareService, RouteSpec, all_crds};
use clodo_operator::metrics::Metrics;
use cloudflare_emulator::{Emulator, EmulatorHandle};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{oneshot, watch};

/// Converge N example services on the fake Kubernetes API and the Cloudflare emulator.
#[derive(Debug, Parser)]
#[command(name = "clodo-bench", about)]
struct Args {
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
    /// The example manifests (Customer, Secrets, ConfigMaps, CloudflareService).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))]
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
    noop_pass_requests: usize,
    noop_pass_mutations: usize,
    peak_rss_mib: f64,
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

fn kib_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
}

async fn bench(args: Args) -> anyhow::Result<Report> {
    ensure!(args.services > 0, "--services must be at least 1");
    let m = manifests::load(std::slice::from_ref(&args.examples))
        .with_context(|| format!("loading the example manifests from {}", args.examples.display()))?;
    let (Some(customer), Some(template)) = (m.customers.first(), m.services.first()) else {
        bail!("{} must hold a Customer and a CloudflareService", args.examples.display());
    };
    let ns = template.namespace().unwrap_or_else(|| "default".into());
    let account = customer.spec.account_id.clone();
    let token = token_of(&m, &ns, &customer.spec.api_token_secret_ref)?;
    let zone = customer.spec.zones.first().cloned().unwrap_or_else(|| "acme.com".into());

    let emu = Emulator::builder()
        .account(&account)
        .token(&token, &[account.as_str()])
        .zone(&zone, &account)
        .rate_limit(args.rate_limit.requests, Duration::from_secs(args.rate_limit.seconds))
        .latency(Duration::from_millis(args.latency_ms))
        .start()
        .await
        .context("starting the Cloudflare emulator")?;
    // The fake API keeps a watch history and a log of every request; neither is what is measured,
    // so both are kept small.
    let fake = Arc::new(
        kube_fake_api::FakeApiServer::builder()
            .watch_history(2000)
            .start()
            .await
            .context("starting the fake Kubernetes API")?,
    );
    let kube_requests = KubeRequests::default();
    let log_task = {
        let (counts, fake) = (kube_requests.clone(), fake.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                count_kube_requests(&fake, &counts);
            }
        })
    };
    let client = fake.client();
    install_crds(&client).await?;

    for s in &m.secrets {
        apply(&Api::namespaced(client.clone(), &ns), s.clone()).await?;
    }
    for cm in &m.config_maps {
        apply(&Api::namespaced(client.clone(), &ns), cm.clone()).await?;
    }
    for cu in &m.customers {
        apply(&Api::namespaced(client.clone(), &ns), cu.clone()).await?;
    }
    let services: Api<CloudflareService> = Api::namespaced(client.clone(), &ns);
    let objects: Vec<CloudflareService> = (0..args.services).map(|i| nth_service(template, i, &zone)).collect();
    futures::stream::iter(objects.into_iter().map(|s| apply(&services, s)))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!(
        "clodo-bench: {} services applied; latency {} ms, rate limit {}/{}s, concurrency {}; rss before the operator {:.1} MiB",
        args.services,
        args.latency_ms,
        args.rate_limit.requests,
        args.rate_limit.seconds,
        args.concurrency,
        rss_mib()
    );

    // Convergence from scratch.
    emu.clear_journal();
    let started = Instant::now();
    let mut op = Operator::start(&args, &fake, &emu, "bench-a").await?;
    wait_all_ready(&services, args.services, Duration::from_secs(args.timeout_s)).await?;
    let wall_s = started.elapsed().as_secs_f64();
    let journal = emu.journal();
    let cf_requests = journal.len();
    let http_429 = journal.iter().filter(|e| e.status == 429).count();
    let client_429 = metric(&op.metrics_text().await?, "clodo_cloudflare_429_total");
    eprintln!(
        "clodo-bench: converged in {wall_s:.1}s with {cf_requests} Cloudflare requests ({http_429} answered 429; the client counted {client_429})"
    );
    eprint!("{}", breakdown(&journal));
    let converge_rss = op.stop().await?;

    // Full resync: a fresh instance reconciles every object once.
    emu.clear_journal();
    let mut op = Operator::start(&args, &fake, &emu, "bench-b").await?;
    let noop_started = Instant::now();
    op.wait_for_passes(args.services, Duration::from_secs(args.timeout_s)).await?;
    let journal = emu.journal();
    let noop_pass_requests = journal.len();
    let noop_pass_mutations = journal.iter().filter(|e| e.mutating).count();
    eprintln!(
        "clodo-bench: resync of {} services took {:.1}s: {noop_pass_requests} requests, {noop_pass_mutations} mutating; {} passes",
        args.services,
        noop_started.elapsed().as_secs_f64(),
        op.service_passes().await?
    );
    eprint!("{}", breakdown(&journal));
    let resync_rss = op.stop().await?;
    log_task.abort();
    let _ = log_task.await;
    count_kube_requests(&fake, &kube_requests);
    let kube_total: usize = kube_requests.lock().map(|c| c.values().sum()).unwrap_or_default();
    eprintln!(
        "clodo-bench: {kube_total} Kubernetes API requests in all (set CLODO_BENCH_KUBE_LOG=1 for the breakdown)"
    );
    if std::env::var_os("CLODO_BENCH_KUBE_LOG").is_some()
        && let Ok(counts) = kube_requests.lock()
    {
        for (k, n) in counts.iter() {
            eprintln!("  {n:>7}  {k}");
        }
    }
    let peak = peak_rss_mib();
    eprintln!("clodo-bench: this process: rss now {:.1} MiB, peak {peak:.1} MiB", rss_mib());
    if let (Some(a), Some(b)) = (converge_rss, resync_rss) {
        eprintln!("clodo-bench: operator process peak rss: {a:.1} MiB converging, {b:.1} MiB resyncing");
    }
    if let Ok(fake) = Arc::try_unwrap(fake) {
        fake.shutdown().await;
    }
    emu.shutdown().await;

    Ok(Report {
        services: args.services,
        wall_s: (wall_s * 100.0).round() / 100.0,
        cf_requests,
        requests_per_service: ((cf_requests as f64 / args.services as f64) * 100.0).round() / 100.0,
        http_429,
        noop_pass_requests,
        noop_pass_mutations,
        peak_rss_mib: (peak * 10.0).round() / 10.0,
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

/// The token the Customer's Secret holds.
fn token_of(m: &manifests::Manifests, ns: &str, r: &clodo_operator::crd::SecretKeyRef) -> anyhow::Result<String> {
    let secret = m
        .secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(r.name.as_str()) && s.namespace().as_deref() == Some(ns))
        .with_context(|| format!("Secret {ns}/{} not in the examples", r.name))?;
    let bytes = secret.data.as_ref().and_then(|d| d.get(&r.key)).with_context(|| format!("key {} missing", r.key))?;
    Ok(String::from_utf8(bytes.0.clone())?.trim_end().to_string())
}

/// Service `i`: the example with its own name, route and custom domain, without production tests
/// (nothing would answer them: there is no Workers runtime behind the emulator).
fn nth_service(template: &CloudflareService, i: usize, zone: &str) -> CloudflareService {
    let mut s = template.clone();
    let name = format!("svc-{i:05}");
    let host = format!("{name}.{zone}");
    s.metadata.name = Some(name);
    s.spec.body.routes = vec![RouteSpec { pattern: format!("{host}/*"), zone: None }];
    s.spec.body.custom_domains = vec![host];
    s.spec.body.production_tests = None;
    s
}

/// Install the CRDs the way `kubectl apply -f crds/` would.
async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in all_crds() {
        let name = crd.name_any();
        let mut body = serde_json::to_value(&crd)?;
        body["apiVersion"] = "apiextensions.k8s.io/v1".into();
        body["kind"] = "CustomResourceDefinition".into();
        api.patch(&name, &PatchParams::apply("clodo-bench").force(), &Patch::Apply(&body)).await?;
    }
    Ok(())
}

/// Server-side apply of a typed object.
async fn apply<K>(api: &Api<K>, obj: K) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.name_any();
    let mut body = serde_json::to_value(&obj)?;
    body["apiVersion"] = K::api_version(&()).to_string().into();
    body["kind"] = K::kind(&()).to_string().into();
    if let Some(m) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        m.remove("generation");
        m.remove("resourceVersion");
    }
    if let Some(o) = body.as_object_mut() {
        o.remove("status");
    }
    api.patch(&name, &PatchParams::apply("clodo-bench").force(), &Patch::Apply(&body))
        .await
        .with_context(|| format!("applying {} {name}", K::kind(&())))?;
    Ok(())
}

/// Wait until `n` services are Ready for their generation, following a watch (listing a large
/// fleet over and over would cost more than the operator's own work).
async fn wait_all_ready(api: &Api<CloudflareService>, n: usize, timeout: Duration) -> anyhow::Result<()> {
    let mut ready: std::collections::HashSet<String> = Default::default();
    let mut events =
        std::pin::pin!(watcher(api.clone(), watcher::Config::default()).default_backoff().applied_objects());
    let mut last_report = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    while ready.len() < n {
        let next = tokio::time::timeout_at(deadline, events.next())
            .await
            .map_err(|_| anyhow::anyhow!("only {} of {n} services Ready after {timeout:?}", ready.len()))?;
        let Some(s) = next.transpose()? else { bail!("the watch of services ended") };
        let is_ready = s
            .status
            .as_ref()
            .is_some_and(|st| st.observed_generation == s.metadata.generation && c::is_true(&st.conditions, c::READY));
        if is_ready {
            ready.insert(s.name_any());
        } else {
            ready.remove(&s.name_any());
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!("clodo-bench: {}/{n} Ready", ready.len());
            last_report = Instant::now();
        }
    }
    Ok(())
}

type KubeRequests = Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>;

/// Move the fake API's request log into per-verb counts (the log would otherwise grow for the
/// whole run).
fn count_kube_requests(fake: &kube_fake_api::FakeApiServer, counts: &KubeRequests) {
    let log = fake.request_log();
    fake.clear_request_log();
    let Ok(mut counts) = counts.lock() else { return };
    for r in log {
        let resource = r
            .target
            .as_ref()
            .map(|t| format!("{}{}", t.plural, t.subresource.as_deref().map(|s| format!("/{s}")).unwrap_or_default()))
            .unwrap_or_default();
        *counts.entry(format!("{} {resource}", r.verb)).or_default() += 1;
    }
}

/// A Prometheus sample without labels (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Service passes (ok + error) in a Prometheus text exposition.
fn service_passes_in(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("clodo_reconcile_total{") && l.contains("controller=\"service\""))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>() as u64
}

/// The operator `run` arguments for an instance.
fn run_args(concurrency: u16, rate_limit: RateLimitArg, cf_url: String, name: &str) -> anyhow::Result<RunArgs> {
    Ok(RunArgs {
        metrics_addr: "127.0.0.1:0".parse()?,
        leader_election: false,
        lease_name: "clodo-bench".into(),
        lease_namespace: "default".into(),
        pod_name: Some(name.into()),
        lease_duration_seconds: 15,
        renew_deadline_seconds: 10,
        retry_period_seconds: 2,
        watch_namespaces: Vec::new(),
        selector: None,
        resync_seconds: 3600,
        concurrency,
        cloudflare_api_base_url: Some(cf_url),
        rate_limit,
        resync_budget_share: Default::default(),
        artifacts: Default::default(),
    })
}

/// First argument of the child-process mode (`--operator-process`).
const CHILD: &str = "__operator";

/// Child-process mode: `clodo-bench __operator KUBE_URL CF_URL CONCURRENCY RATE_LIMIT NAME`.
/// Runs one operator until stdin closes; prints `admin ADDR` once started and `peak_rss_kib N`
/// when done.
fn child_operator() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().skip(2).collect();
    let [kube_url, cf_url, concurrency, rate_limit, name] = a.as_slice() else {
        bail!("usage: clodo-bench {CHILD} KUBE_URL CF_URL CONCURRENCY RATE_LIMIT NAME");
    };
    let args = run_args(
        concurrency.parse()?,
        rate_limit.parse().map_err(|e: String| anyhow::anyhow!(e))?,
        cf_url.clone(),
        name,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let client = Client::try_from(kube::Config::new(kube_url.parse()?))?;
        let (stop, stop_rx) = watch::channel(false);
        let (tx, rx) = oneshot::channel::<OperatorHandles>();
        let task = tokio::spawn(run_operator(args, client, stop_rx, Some(tx)));
        let handles = rx.await.context("the operator did not start")?;
        println!("admin {}", handles.admin_addr);
        // Stop when the parent closes stdin.
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await??;
        let _ = stop.send(true);
        task.await??;
        println!("peak_rss_kib {}", kib_field("VmHWM:"));
        anyhow::Ok(())
    })
}

/// An operator instance: in this process, or in a child process.
enum Operator {
    InProcess { metrics: Arc<Metrics>, stop: watch::Sender<bool>, task: tokio::task::JoinHandle<anyhow::Result<()>> },
    Child(Box<ChildOperator>),
}

/// An operator instance in a child process.
struct ChildOperator {
    child: tokio::process::Child,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    admin: String,
}

impl Operator {
    async fn start(
        args: &Args,
        fake: &kube_fake_api::FakeApiServer,
        emu: &EmulatorHandle,
        name: &str,
    ) -> anyhow::Result<Operator> {
        if args.operator_process {
            use tokio::io::AsyncBufReadExt;
            let mut child = tokio::process::Command::new(std::env::current_exe()?)
                .args([
                    CHILD,
                    fake.url(),
                    &emu.base_url(),
                    &args.concurrency.to_string(),
                    &format!("{}/{}", args.rate_limit.requests, args.rate_limit.seconds),
                    name,
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("starting the operator process")?;
            let out = child.stdout.take().context("child stdout")?;
            let mut stdout = tokio::io::BufReader::new(out).lines();
            let line = stdout.next_line().await?.context("the operator process exited")?;
            let admin = line.strip_prefix("admin ").context("unexpected operator output")?.to_string();
            return Ok(Operator::Child(Box::new(ChildOperator { child, stdout, admin })));
        }
        let run = run_args(args.concurrency, args.rate_limit, emu.base_url(), name)?;
        let (stop, stop_rx) = watch::channel(false);
        let (tx, rx) = oneshot::channel::<OperatorHandles>();
        let client = fake.client();
        let task = tokio::spawn(async move { run_operator(run, client, stop_rx, Some(tx)).await });
        let handles = rx.await.context("the operator did not start")?;
        Ok(Operator::InProcess { metrics: handles.metrics, stop, task })
    }

    async fn metrics_text(&self) -> anyhow::Result<String> {
        match self {
            Operator::InProcess { metrics, .. } => Ok(metrics.render()),
            Operator::Child(c) => Ok(reqwest::get(format!("http://{}/metrics", c.admin)).await?.text().await?),
        }
    }

    /// Service reconcile passes finished by this instance.
    async fn service_passes(&self) -> anyhow::Result<u64> {
        Ok(service_passes_in(&self.metrics_text().await?))
    }

    /// Wait until this instance finished at least `n` service passes and then made no further
    /// pass for a second (a quiet resync triggers nothing else).
    async fn wait_for_passes(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.service_passes().await?;
            if done >= n as u64 {
                break;
            }
            if Instant::now() > deadline {
                bail!("only {done} of {n} service passes after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut seen = self.service_passes().await?;
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.service_passes().await?;
            if now != seen {
                seen = now;
                quiet_since = Instant::now();
            }
        }
        Ok(())
    }

    /// Graceful stop. For a child process, its peak RSS in MiB.
    async fn stop(&mut self) -> anyhow::Result<Option<f64>> {
        match self {
            Operator::InProcess { stop, task, .. } => {
                let _ = stop.send(true);
                let _ = tokio::time::timeout(Duration::from_secs(60), task).await;
                Ok(None)
            }
            Operator::Child(c) => {
                let ChildOperator { child, stdout, .. } = &mut **c;
                drop(child.stdin.take());
                let mut peak = None;
                while let Some(line) = tokio::time::timeout(Duration::from_secs(60), stdout.next_line()).await?? {
                    if let Some(kib) = line.strip_prefix("peak_rss_kib ").and_then(|v| v.parse::<f64>().ok()) {
                        peak = Some(kib / 1024.0);
                    }
                }
                child.wait().await?;
                Ok(peak)
            }
        }
    }
}
