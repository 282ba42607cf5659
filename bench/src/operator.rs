//! Operator instances under test: in this process, or in a child process (`--operator-process`)
//! so their own memory can be measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clodo_operator::cli::run::{OperatorHandles, run_operator};
use clodo_operator::cli::{RateLimitArg, RunArgs};
use clodo_operator::metrics::Metrics;
use cloudflare_emulator::EmulatorHandle;
use kube::Client;
use tokio::sync::{oneshot, watch};

use crate::{Args, kib_field};

/// One operator replica: its name (pod name and User-Agent instance), the label selector of its
/// shard, and its client-side Cloudflare budget.
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub name: String,
    pub selector: Option<String>,
    pub rate_limit: RateLimitArg,
}

/// The operator `run` arguments for an instance.
fn run_args(concurrency: u16, instance: &Instance, cf_url: String) -> anyhow::Result<RunArgs> {
    Ok(RunArgs {
        metrics_addr: "127.0.0.1:0".parse()?,
        leader_election: false,
        lease_name: "clodo-bench".into(),
        lease_namespace: "default".into(),
        pod_name: Some(instance.name.clone()),
        lease_duration_seconds: 15,
        renew_deadline_seconds: 10,
        retry_period_seconds: 2,
        watch_namespaces: Vec::new(),
        selector: instance.selector.clone(),
        resync_seconds: 3600,
        concurrency,
        cloudflare_api_base_url: Some(cf_url),
        rate_limit: instance.rate_limit,
        resync_budget_share: Default::default(),
        artifacts: Default::default(),
    })
}

/// First argument of the child-process mode (`--operator-process`).
pub(crate) const CHILD: &str = "__operator";

/// Child-process mode: `clodo-bench __operator KUBE_URL CF_URL CONCURRENCY RATE_LIMIT NAME
/// SELECTOR` (SELECTOR `-` for none).
/// Runs one operator until stdin closes; prints `admin ADDR` once started and `peak_rss_kib N`
/// when done.
pub(crate) fn child_operator() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().skip(2).collect();
    let [kube_url, cf_url, concurrency, rate_limit, name, selector] = a.as_slice() else {
        bail!("usage: clodo-bench {CHILD} KUBE_URL CF_URL CONCURRENCY RATE_LIMIT NAME SELECTOR");
    };
    let instance = Instance {
        name: name.clone(),
        selector: Some(selector.clone()).filter(|s| s != "-"),
        rate_limit: rate_limit.parse().map_err(|e: String| anyhow::anyhow!(e))?,
    };
    let args = run_args(concurrency.parse()?, &instance, cf_url.clone())?;
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
pub(crate) enum Operator {
    InProcess { metrics: Arc<Metrics>, stop: watch::Sender<bool>, task: tokio::task::JoinHandle<anyhow::Result<()>> },
    Child(Box<ChildOperator>),
}

/// An operator instance in a child process.
pub(crate) struct ChildOperator {
    child: tokio::process::Child,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    admin: String,
}

impl Operator {
    pub(crate) async fn start(
        args: &Args,
        fake: &kube_fake_api::FakeApiServer,
        emu: &EmulatorHandle,
        instance: &Instance,
    ) -> anyhow::Result<Operator> {
        if args.operator_process {
            use tokio::io::AsyncBufReadExt;
            let mut child = tokio::process::Command::new(std::env::current_exe()?)
                .args([
                    CHILD,
                    fake.url(),
                    &emu.base_url(),
                    &args.concurrency.to_string(),
                    &format!("{}/{}", instance.rate_limit.requests, instance.rate_limit.seconds),
                    &instance.name,
                    instance.selector.as_deref().unwrap_or("-"),
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
        let run = run_args(args.concurrency, instance, emu.base_url())?;
        let (stop, stop_rx) = watch::channel(false);
        let (tx, rx) = oneshot::channel::<OperatorHandles>();
        let client = fake.client();
        let task = tokio::spawn(async move { run_operator(run, client, stop_rx, Some(tx)).await });
        let handles = rx.await.context("the operator did not start")?;
        Ok(Operator::InProcess { metrics: handles.metrics, stop, task })
    }

    pub(crate) async fn metrics_text(&self) -> anyhow::Result<String> {
        match self {
            Operator::InProcess { metrics, .. } => Ok(metrics.render()),
            Operator::Child(c) => Ok(reqwest::get(format!("http://{}/metrics", c.admin)).await?.text().await?),
        }
    }

    /// Service reconcile passes finished by this instance.
    pub(crate) async fn service_passes(&self) -> anyhow::Result<u64> {
        Ok(service_passes_in(&self.metrics_text().await?))
    }

    /// Wait until this instance finished at least `n` service passes and then made no further
    /// pass for a second (a quiet resync triggers nothing else).
    pub(crate) async fn wait_for_passes(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
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
    pub(crate) async fn stop(&mut self) -> anyhow::Result<Option<f64>> {
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

/// Service passes (ok + error) in a Prometheus text exposition.
fn service_passes_in(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("clodo_reconcile_total{") && l.contains("controller=\"service\""))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>() as u64
}
