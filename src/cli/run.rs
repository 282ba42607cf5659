//! `run`: the operator process — admin server, leader election, controllers, graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tracing::{info, warn};

use super::RunArgs;
use crate::admin::{self, Readiness};
use crate::cloudflare::{ClientConfig, ClientMetrics, ClientPool, Fence};
use crate::controller::{self, Context, ControllerConfig};
use crate::engine::{Engine, EngineConfig};
use crate::lease::{LeaderElector, LeadershipEnd, LeaseConfig, LeaseState};
use crate::metrics::Metrics;

/// Resolves when SIGTERM or Ctrl-C arrives (or the sender side fires).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Everything `run` needs, so tests can start an operator in-process against a fake API.
pub struct OperatorHandles {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub admin_addr: std::net::SocketAddr,
}

/// Run the operator until `stop` flips to true. Lost leadership also ends the run (the pod
/// restarts and stands by), like controller-runtime.
pub async fn run_operator(
    args: RunArgs,
    client: kube::Client,
    stop: watch::Receiver<bool>,
    started: Option<tokio::sync::oneshot::Sender<OperatorHandles>>,
) -> anyhow::Result<()> {
    let metrics = Metrics::new()?;
    let readiness = Arc::new(Readiness::default());
    let mut stop_admin = stop.clone();
    let (admin_addr, admin_task) = admin::serve(args.metrics_addr, metrics.clone(), readiness.clone(), async move {
        let _ = stop_admin.wait_for(|s| *s).await;
    })
    .await
    .with_context(|| format!("binding the admin server on {}", args.metrics_addr))?;
    info!(addr = %admin_addr, "admin server listening");
    if let Some(tx) = started {
        let _ = tx.send(OperatorHandles { metrics: metrics.clone(), readiness: readiness.clone(), admin_addr });
    }

    let identity = args.pod_name.clone().unwrap_or_else(|| format!("clodo-operator-{}", uuid::Uuid::new_v4().simple()));
    // Closed when leadership is lost: from then on no Cloudflare request leaves this process.
    let fence = Fence::new();
    let ctx = context(&args, client.clone(), &metrics, &identity, &fence)?;

    // Leader election: wait for the lease before starting any controller.
    let elector = if args.leader_election {
        match acquire_leadership(&args, client, &identity, &readiness, stop.clone()).await? {
            Some(leading) => Some(leading),
            None => {
                admin_task.abort();
                return Ok(());
            }
        }
    } else {
        None
    };

    let (down, renew) = shutdown_fan_out(elector.clone(), &fence, &stop);
    let tasks = start_controllers(&ctx, &readiness, down);
    info!("controllers started");
    for t in tasks {
        let _ = t.await;
    }
    readiness.set_synced(false);
    if let Some(r) = renew {
        r.abort();
    }
    if let Some((e, _)) = elector
        && !fence.is_closed()
        && let Err(err) = e.release().await
    {
        warn!(error = %err, "releasing the lease failed");
    }
    admin_task.abort();
    info!("operator stopped");
    Ok(())
}

/// The controllers' shared context: the Cloudflare client pool (fenced, budgeted, with this
/// replica's identity in its User-Agent), the engine and the controller settings.
fn context(
    args: &RunArgs,
    client: kube::Client,
    metrics: &Arc<Metrics>,
    identity: &str,
    fence: &Fence,
) -> anyhow::Result<Arc<Context>> {
    let mut cf = ClientConfig::from_env();
    cf.fence = fence.clone();
    // Which replica sent a request, for audit logs on the Cloudflare side (a pod name, no secret).
    cf.user_agent = format!("{} (instance {identity})", cf.user_agent);
    if let Some(u) = &args.cloudflare_api_base_url {
        cf.base_url = u.clone();
    }
    cf.rate_limit = crate::cloudflare::RateLimit {
        requests: args.rate_limit.requests,
        window: Duration::from_secs(args.rate_limit.seconds),
    };
    cf.resync_share = args.resync_budget_share;
    let resync_rate = cf.rate_limit.resync_rate(cf.resync_share);
    let pool = ClientPool::new(cf, Some(ClientMetrics::register(&metrics.registry)?));
    // Runs against cloudflare-emulator: production tests go to its edge listener (which stands in
    // for DNS, picking the Worker by Host header). Environment only, like CLOUDFLARE_API_TOKEN.
    let edge_url = std::env::var("CLODO_EDGE_URL").ok().filter(|u| !u.trim().is_empty());
    let fetcher = Arc::new(crate::source::Fetcher::new(&args.artifacts)?);
    let engine = Arc::new(
        Engine::new(pool, metrics.clone(), EngineConfig { edge_url, ..EngineConfig::default() })
            .with_code_fetcher(fetcher),
    );
    let config = ControllerConfig {
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        resync_rate,
        concurrency: args.concurrency.max(1),
        watch_namespaces: args.watch_namespaces.iter().filter(|n| !n.is_empty()).cloned().collect(),
        selector: args.selector.clone().filter(|s| !s.is_empty()),
        instance: identity.to_string(),
        ..Default::default()
    };
    Ok(Context::new(client, engine, metrics.clone(), config, fence.clone()))
}

/// A held lease and when the request that won it was sent.
type Leading = (Arc<LeaderElector>, tokio::time::Instant);

/// Try for the lease until it is ours (`Some`) or `stop` fires first (`None`).
async fn acquire_leadership(
    args: &RunArgs,
    client: kube::Client,
    identity: &str,
    readiness: &Readiness,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<Leading>> {
    let cfg = LeaseConfig::new(&args.lease_name, &args.lease_namespace, identity)
        .with_timing(
            Duration::from_secs(args.lease_duration_seconds),
            Duration::from_secs(args.renew_deadline_seconds),
            Duration::from_secs(args.retry_period_seconds),
        )
        .map_err(anyhow::Error::msg)?;
    let e = LeaderElector::new(client, cfg);
    loop {
        let sent = tokio::time::Instant::now();
        match e.try_acquire().await {
            Ok(LeaseState::Leading) => {
                readiness.set_standing_by(false);
                info!(identity = %identity, "acquired leadership");
                return Ok(Some((Arc::new(e), sent)));
            }
            Ok(LeaseState::Standby { holder }) => {
                readiness.set_standing_by(true);
                info!(holder = %holder, "standing by");
            }
            Err(err) => warn!(error = %err, "leader election attempt failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(e.config().retry_period) => {}
            _ = stop.wait_for(|s| *s) => return Ok(None),
        }
    }
}

/// Shutdown fan-out: the stop flag, or a lost lease (the fence is closed before controllers
/// stop, so passes in flight end at their next Cloudflare call). Returns the receiver that
/// flips when the controllers must stop, and the lease-renewal task.
fn shutdown_fan_out(
    elector: Option<Leading>,
    fence: &Fence,
    stop: &watch::Receiver<bool>,
) -> (watch::Receiver<bool>, Option<tokio::task::JoinHandle<()>>) {
    let (down_tx, down_rx) = watch::channel(false);
    let renew = elector.map(|(e, acquired)| {
        let down_tx = down_tx.clone();
        let mut stop_r = stop.clone();
        let fence = fence.clone();
        tokio::spawn(async move {
            let end = e
                .keep(acquired, &fence, async move {
                    let _ = stop_r.wait_for(|s| *s).await;
                })
                .await;
            if end != LeadershipEnd::Stopped {
                let _ = down_tx.send(true);
            }
        })
    });
    let mut stop_r = stop.clone();
    tokio::spawn(async move {
        let _ = stop_r.wait_for(|s| *s).await;
        let _ = down_tx.send(true);
    });
    (down_rx, renew)
}

/// The Customer, CloudflareService and Portfolio controllers for every watched namespace (or
/// the whole cluster). Ready once every service controller's cache has synced.
fn start_controllers(
    ctx: &Arc<Context>,
    readiness: &Arc<Readiness>,
    down: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let on_down = move || {
        let mut r = down.clone();
        async move {
            let _ = r.wait_for(|s| *s).await;
        }
    };
    let namespaces: Vec<Option<String>> = if ctx.config.watch_namespaces.is_empty() {
        vec![None]
    } else {
        ctx.config.watch_namespaces.iter().cloned().map(Some).collect()
    };
    let expected_syncs = namespaces.len();
    let synced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for ns in namespaces {
        let (cust_controller, cust_store) = controller::customer::controller(ctx.clone(), ns.clone());
        tasks.push(tokio::spawn(controller::customer::run(
            ctx.clone(),
            cust_controller,
            cust_store.clone(),
            ns.clone(),
            on_down(),
        )));
        let readiness2 = readiness.clone();
        let synced2 = synced.clone();
        let mark = move || {
            if synced2.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1 >= expected_syncs {
                readiness2.set_synced(true);
            }
        };
        tasks.push(tokio::spawn(controller::service::run(ctx.clone(), ns.clone(), cust_store, on_down(), mark)));
        tasks.push(tokio::spawn(controller::portfolio::run(ctx.clone(), ns.clone(), on_down())));
    }
    tasks
}
